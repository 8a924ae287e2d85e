/* test-cli-config.c: where `kfleet` gets its server and token
 * (src/cli/cli-config.c): the precedence flag > environment > config file >
 * default, for each setting on its own; the config file's format, mode and
 * errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "kfleet/strbuf.h"
#include "cli/cli.h"

static void test_precedence(void **state)
{
    struct kf_cli_file_config file = { .server = "http://file:1", .token = "file-token" };
    static const struct {
        const char *flag_s, *flag_t, *env_s, *env_t;
        bool with_file;
        const char *want_s;
        enum kf_cli_source src_s;
        const char *want_t;
        enum kf_cli_source src_t;
    } cases[] = {
        { NULL, NULL, NULL, NULL, false, KF_CLI_DEFAULT_SERVER, KF_CLI_SRC_DEFAULT, NULL,
          KF_CLI_SRC_DEFAULT },
        { NULL, NULL, NULL, NULL, true, "http://file:1", KF_CLI_SRC_FILE, "file-token",
          KF_CLI_SRC_FILE },
        { NULL, NULL, "http://env:2", NULL, true, "http://env:2", KF_CLI_SRC_ENV, "file-token",
          KF_CLI_SRC_FILE },
        { NULL, NULL, "", "", true, "http://file:1", KF_CLI_SRC_FILE, "file-token",
          KF_CLI_SRC_FILE }, /* empty variables count as unset */
        { "http://flag:3", NULL, "http://env:2", "env-token", true, "http://flag:3",
          KF_CLI_SRC_FLAG, "env-token", KF_CLI_SRC_ENV },
        { NULL, "flag-token", NULL, "env-token", true, "http://file:1", KF_CLI_SRC_FILE,
          "flag-token", KF_CLI_SRC_FLAG },
        { "https://flag:3///", NULL, NULL, NULL, false, "https://flag:3", KF_CLI_SRC_FLAG, NULL,
          KF_CLI_SRC_DEFAULT }, /* trailing slashes dropped */
    };

    (void)state;
    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        struct kf_cli_conn c = { 0 };
        struct kf_strbuf err = KF_STRBUF_INIT;

        assert_int_equal(kf_cli_conn_resolve(&c, cases[i].flag_s, cases[i].flag_t, cases[i].env_s,
                                             cases[i].env_t, cases[i].with_file ? &file : NULL,
                                             &err),
                         0);
        if (strcmp(c.server, cases[i].want_s) != 0 || c.server_src != cases[i].src_s)
            fail_msg("case %zu: server %s from %s, want %s from %s", i, c.server,
                     kf_cli_source_name(c.server_src), cases[i].want_s,
                     kf_cli_source_name(cases[i].src_s));
        if (!kf_streq(c.token, cases[i].want_t) || c.token_src != cases[i].src_t)
            fail_msg("case %zu: token %s from %s, want %s", i, c.token ? c.token : "(none)",
                     kf_cli_source_name(c.token_src), cases[i].want_t ? cases[i].want_t : "none");
        kf_cli_conn_release(&c);
        kf_strbuf_release(&err);
    }
}

static void test_bad_server(void **state)
{
    struct kf_cli_conn c = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct kf_cli_file_config file = { .server = "kfleet.example.com:7480" };

    (void)state;
    assert_int_equal(kf_cli_conn_resolve(&c, NULL, NULL, NULL, NULL, &file, &err), -EINVAL);
    assert_string_equal(err.buf, "the server \"kfleet.example.com:7480\" (from the config file) "
                                 "is not a URL; write it as http://HOST:PORT or "
                                 "https://HOST:PORT");
    assert_int_equal(kf_cli_conn_resolve(&c, NULL, NULL, "ftp://x", NULL, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "(from KFLEET_SERVER)"));
    assert_int_equal(kf_cli_conn_resolve(&c, NULL, "a\nb", NULL, NULL, NULL, &err), -EINVAL);
    assert_string_equal(err.buf, "the token (from --token) contains a line break");
    kf_cli_conn_release(&c);
    kf_strbuf_release(&err);
}

static char *write_tmp(const char *dir, const char *name, const char *text)
{
    char *path = kf_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_file(void **state)
{
    char dir[] = "/tmp/kfleet-cli-config-XXXXXX";
    struct kf_cli_file_config c = { 0 }, back = { 0 };
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct stat st;
    char *path, *sub, *bad;

    (void)state;
    assert_non_null(mkdtemp(dir));

    /* A missing file is no error: nothing is set. */
    path = kf_xasprintf("%s/nested/dir/config", dir);
    assert_int_equal(kf_cli_config_read(path, &c, &err), 0);
    assert_null(c.server);
    assert_null(c.token);

    /* Written with its directories, mode 0600 / 0700, and read back. */
    c.server = kf_xstrdup("https://kfleet.example.com:7480");
    c.token = kf_xstrdup("s3cret:with: colons");
    assert_int_equal(kf_cli_config_write(path, &c, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    sub = kf_xasprintf("%s/nested/dir", dir);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(kf_cli_config_read(path, &back, &err), 0);
    assert_string_equal(back.server, c.server);
    assert_string_equal(back.token, c.token);
    kf_cli_file_config_release(&back);

    /* A hand-written file with comments. */
    bad = write_tmp(dir, "hand", "# mine\nserver: http://10.0.0.1:7480\ntoken: null\n");
    assert_int_equal(kf_cli_config_read(bad, &back, &err), 0);
    assert_string_equal(back.server, "http://10.0.0.1:7480");
    assert_null(back.token);
    kf_cli_file_config_release(&back);
    free(bad);

    /* Mistakes are errors that name the file. */
    bad = write_tmp(dir, "typo", "sever: http://x:1\n");
    assert_int_equal(kf_cli_config_read(bad, &back, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "has an unknown key \"sever\" (it knows server and token)"));
    assert_non_null(strstr(err.buf, bad));
    free(bad);
    bad = write_tmp(dir, "notyaml", "server: [unclosed\n");
    assert_int_equal(kf_cli_config_read(bad, &back, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "is not valid YAML: line 2"));
    free(bad);
    bad = write_tmp(dir, "number", "server: 7480\n");
    assert_int_equal(kf_cli_config_read(bad, &back, &err), -EINVAL);
    assert_non_null(strstr(err.buf, "server must be a string"));
    free(bad);

    kf_cli_file_config_release(&c);
    kf_strbuf_release(&err);
    free(sub);
    free(path);
    {
        char *cmd = kf_xasprintf("rm -rf '%s'", dir);

        assert_int_equal(system(cmd), 0);
        free(cmd);
    }
}

static void test_config_path(void **state)
{
    char *p;

    (void)state;
    setenv("KFLEET_CONFIG", "/etc/kfleet/cli.yaml", 1);
    p = kf_cli_config_path();
    assert_string_equal(p, "/etc/kfleet/cli.yaml");
    free(p);
    unsetenv("KFLEET_CONFIG");
    setenv("HOME", "/home/op", 1);
    p = kf_cli_config_path();
    assert_string_equal(p, "/home/op/.kfleet/config");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_bad_server),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_config_path),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
