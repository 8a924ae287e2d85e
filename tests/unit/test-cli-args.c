/* test-cli-args.c: how `kfleet` reads its command line (src/cli/cli-args.c):
 * options mixed with positionals, the spellings of a value, repeatable
 * options, global options on either side of the command, and the message
 * for each mistake. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfleet/strbuf.h"
#include "cli/cli.h"

static const struct kf_cli_opt opts[] = {
    { "output", 'o', KF_CLI_VALUE, "FORMAT", "format" },
    { "filename", 'f', KF_CLI_LIST, "FILE", "files" },
    { "wait", 0, KF_CLI_FLAG, NULL, "wait" },
    { NULL, 0, 0, NULL, NULL },
};

/* Splits a command line at spaces (no quoting needed in these tests). */
static int split(char *line, char **argv, int max)
{
    int n = 0;
    char *save = NULL;

    for (char *t = strtok_r(line, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    return n;
}

static int parse(const char *line, struct kf_cli_args *a, struct kf_strbuf *err)
{
    static char buf[512];
    static char *argv[32];
    int argc;

    snprintf(buf, sizeof(buf), "%s", line);
    argc = split(buf, argv, 32);
    return kf_cli_args_parse(a, opts, argc, argv, err);
}

static void test_mixed(void **state)
{
    struct kf_cli_args a;
    struct kf_strbuf err = KF_STRBUF_INIT;

    (void)state;
    assert_int_equal(
        parse("gc web-1 -o yaml web-2 --wait -f a.yaml --filename=b.yaml -fc.yaml", &a, &err), 0);
    assert_int_equal(a.n_pos, 3);
    assert_string_equal(a.pos[0], "gc");
    assert_string_equal(a.pos[2], "web-2");
    assert_string_equal(kf_cli_args_get(&a, "output"), "yaml");
    assert_true(kf_cli_args_has(&a, "wait"));
    assert_string_equal(kf_cli_args_nth(&a, "filename", 0), "a.yaml");
    assert_string_equal(kf_cli_args_nth(&a, "filename", 1), "b.yaml");
    assert_string_equal(kf_cli_args_nth(&a, "filename", 2), "c.yaml");
    assert_null(kf_cli_args_nth(&a, "filename", 3));
    assert_null(kf_cli_args_get(&a, "server"));
    kf_cli_args_release(&a);

    /* The last value wins; -ojson and -o=json; "-" is a positional. */
    assert_int_equal(parse("-o json -oyaml -o=wide -f - --server http://h:1 -- -o", &a, &err), 0);
    assert_string_equal(kf_cli_args_get(&a, "output"), "wide");
    assert_string_equal(kf_cli_args_nth(&a, "filename", 0), "-");
    assert_string_equal(kf_cli_args_get(&a, "server"), "http://h:1");
    assert_int_equal(a.n_pos, 1);
    assert_string_equal(a.pos[0], "-o");
    kf_cli_args_release(&a);
    kf_strbuf_release(&err);
}

static void test_mistakes(void **state)
{
    static const struct {
        const char *line, *msg;
    } cases[] = {
        { "gc --frob", "unknown option \"--frob\"" },
        { "gc -x", "unknown option \"-x\"" },
        { "gc -o", "option \"--output\" needs a value (FORMAT)" },
        { "gc --wait=yes", "option \"--wait\" takes no value" },
        { "gc --server", "option \"--server\" needs a value (URL)" },
    };

    (void)state;
    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        struct kf_cli_args a;
        struct kf_strbuf err = KF_STRBUF_INIT;

        assert_int_equal(parse(cases[i].line, &a, &err), -EINVAL);
        if (strcmp(err.buf, cases[i].msg) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i].line, err.buf, cases[i].msg);
        kf_cli_args_release(&a);
        kf_strbuf_release(&err);
    }
}

static void test_find_command(void **state)
{
    static const struct {
        const char *line;
        int want;
    } cases[] = {
        { "kfleet get gc", 1 },
        { "kfleet --server http://x:1 get gc", 3 },
        { "kfleet -s http://x:1 --token t get", 5 },
        { "kfleet --server=http://x:1 apply -f a", 2 },
        { "kfleet --help", 2 },
        { "kfleet -h version", 2 },
        { "kfleet", 1 },
    };

    (void)state;
    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        char buf[256], *argv[16];
        int argc;

        snprintf(buf, sizeof(buf), "%s", cases[i].line);
        argc = split(buf, argv, 16);
        if (kf_cli_find_command(argc, argv) != cases[i].want)
            fail_msg("%s: command at %d, want %d", cases[i].line, kf_cli_find_command(argc, argv),
                     cases[i].want);
    }
}

static void test_help_text(void **state)
{
    static const struct kf_cli_command cmds[] = {
        { "get", "KIND [NAME...]", "show objects", "Long text.\n", opts, NULL },
    };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    (void)state;
    kf_cli_print_command_help(f, &cmds[0]);
    fclose(f);
    assert_true(kf_str_has_prefix(text, "usage: kfleet get KIND [NAME...]\n\nshow objects\n\n"
                                        "Long text.\n"));
    assert_non_null(strstr(text, "  -o, --output FORMAT            format\n"));
    assert_non_null(strstr(text, "  -f, --filename FILE            files (repeatable)\n"));
    assert_non_null(strstr(text, "      --wait                     wait\n"));
    free(text);

    text = NULL;
    f = open_memstream(&text, &len);
    kf_cli_print_overview(f, cmds, 1);
    fclose(f);
    assert_non_null(strstr(text, "  get             show objects\n"));
    /* The exit codes are documented where users look. */
    assert_non_null(strstr(text, "  3  the server could not be reached\n"));
    assert_non_null(strstr(text, "  4  not found"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed),
        cmocka_unit_test(test_mistakes),
        cmocka_unit_test(test_find_command),
        cmocka_unit_test(test_help_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
