/* test-exec.c: kf_exec_capture (exec.h), the one way kfleetd and the agent
 * run a short-lived tool: exit status, output with and without standard
 * error, the cap on output, the environment given, a tool past its
 * deadline killed, a tool that is not there. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfleet/exec.h"
#include "kfleet/strbuf.h"

static int sh(const char *script, const struct kf_exec_opts *o, struct kf_strbuf *out)
{
    char *const argv[] = { "/bin/sh", "-c", (char *)script, NULL };

    kf_strbuf_reset(out);
    return kf_exec_capture(argv, o, out);
}

static void test_status_and_output(void **state)
{
    struct kf_strbuf out = KF_STRBUF_INIT;
    struct kf_exec_opts o = { .timeout_ms = 10000, .output_max = 1024 };

    (void)state;
    assert_int_equal(sh("echo out; echo err >&2; exit 3", &o, &out), 3);
    assert_string_equal(out.buf, "out\n");
    o.with_stderr = true;
    assert_int_equal(sh("echo out; echo err >&2", &o, &out), 0);
    assert_non_null(strstr(out.buf, "out\n"));
    assert_non_null(strstr(out.buf, "err\n"));
    /* the cap: the rest is read (the tool is not blocked) and dropped */
    o.output_max = 10;
    assert_int_equal(sh("head -c 100000 /dev/zero | tr '\\0' x; exit 0", &o, &out), 0);
    assert_int_equal(out.len, 10);
    kf_strbuf_release(&out);
}

static void test_environment(void **state)
{
    static char *const envp[] = { "KF_EXEC_TEST=given", NULL };
    struct kf_strbuf out = KF_STRBUF_INIT;
    struct kf_exec_opts o = { .timeout_ms = 10000, .output_max = 1024 };

    (void)state;
    setenv("KF_EXEC_LEAK", "caller", 1);
    assert_int_equal(sh("echo \"[$KF_EXEC_TEST][$KF_EXEC_LEAK]\"", &o, &out), 0);
    assert_string_equal(out.buf, "[][]\n");
    o.envp = envp;
    assert_int_equal(sh("echo \"[$KF_EXEC_TEST][$KF_EXEC_LEAK]\"", &o, &out), 0);
    assert_string_equal(out.buf, "[given][]\n");
    kf_strbuf_release(&out);
}

static void test_deadline_and_missing(void **state)
{
    struct kf_strbuf out = KF_STRBUF_INIT;
    struct kf_exec_opts o = { .timeout_ms = 200, .output_max = 1024 };
    char *const missing[] = { "/nonexistent/kf-tool", NULL };

    (void)state;
    /* past its deadline the tool is killed: 128 + SIGKILL */
    assert_int_equal(sh("echo started; exec sleep 30", &o, &out), 128 + 9);
    assert_string_equal(out.buf, "started\n");
    assert_int_equal(kf_exec_capture(missing, &o, &out), -ENOENT);
    kf_strbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_and_output),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_deadline_and_missing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
