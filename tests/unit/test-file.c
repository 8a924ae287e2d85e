/* test-file.c: the one copy of each small file and string helper in base:
 * kf_mkdir_p, kf_write_file_atomic and kf_remove_tree (file.h), FNV-1a,
 * kf_file_sha256 (file.h), {{placeholder}} filling and the monotonic clock in ms (base.h). */
#include <dirent.h>
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

#include "kfleet/base.h"
#include "kfleet/file.h"
#include "kfleet/strbuf.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char buf[256];
    size_t n;

    if (!f)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return kf_xstrdup(buf);
}

static void test_files(void **state)
{
    char root[] = "/tmp/kf-test-file-XXXXXX";
    struct kf_strbuf err = KF_STRBUF_INIT;
    struct stat st;
    char *deep, *file, *text, *link;
    (void)state;

    assert_non_null(mkdtemp(root));
    deep = kf_xasprintf("%s/a/b/c", root);
    file = kf_xasprintf("%s/a/b/f.txt", root);

    /* mkdir -p: every missing parent, idempotent, a file in the way */
    assert_int_equal(kf_mkdir_p(deep, 0700), 0);
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(kf_mkdir_p(deep, 0755), 0);
    assert_int_equal(kf_write_file_atomic(file, "x", 1, 0644, false, NULL), 0);
    assert_int_equal(kf_mkdir_p(file, 0700), -ENOTDIR);

    /* write-then-rename: content and mode replaced, no temporary left */
    assert_int_equal(kf_write_file_atomic(file, "hello\n", 6, 0600, true, &err), 0);
    text = slurp(file);
    assert_string_equal(text, "hello\n");
    free(text);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(kf_write_file_atomic(file, "", 0, 0644, false, NULL), 0);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    {
        char *b = kf_xasprintf("%s/a/b", root);
        DIR *d = opendir(b);
        struct dirent *de;
        int n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
            n += de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."));
        closedir(d);
        assert_int_equal(n, 2); /* c/ and f.txt */
        free(b);
    }
    /* a missing folder: an error with the path, nothing written */
    {
        char *bad = kf_xasprintf("%s/nope/f", root);

        assert_int_equal(kf_write_file_atomic(bad, "x", 1, 0644, true, &err), -ENOENT);
        assert_non_null(strstr(err.buf, "nope/f"));
        free(bad);
    }

    /* rm -r: links are removed, not followed; a missing path is fine */
    link = kf_xasprintf("%s/a/b/c/link", root);
    assert_int_equal(symlink(file, link), 0);
    {
        char *a = kf_xasprintf("%s/a/b/c", root);

        assert_int_equal(kf_remove_tree(a), 0);
        assert_int_equal(stat(file, &st), 0); /* the link's target stays */
        assert_int_equal(stat(a, &st), -1);
        free(a);
    }
    assert_int_equal(kf_remove_tree(root), 0);
    assert_int_equal(stat(root, &st), -1);
    assert_int_equal(kf_remove_tree(root), 0);
    free(link);
    free(deep);
    free(file);
    kf_strbuf_release(&err);
}

/* The SHA-256 a Backup records and a restore checks: known digests, a file
 * longer than one read, the size, and a missing file. */
static void test_file_sha256(void **state)
{
    char path[] = "/tmp/kf-test-sha-XXXXXX", sum[KF_SHA256_TEXT_SIZE] = "untouched";
    int64_t size = -1;
    char *big;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    close(fd);
    assert_int_equal(kf_file_sha256(path, sum, &size), 0);
    assert_string_equal(sum,
                        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(size, 3);
    /* 200,000 'a's: more than one read of the loop */
    big = kf_xmalloc(200000);
    memset(big, 'a', 200000);
    assert_int_equal(kf_write_file_atomic(path, big, 200000, 0600, false, NULL), 0);
    free(big);
    assert_int_equal(kf_file_sha256(path, sum, NULL), 0);
    assert_string_equal(sum,
                        "sha256:2287d207f24a941ff3b56c04c8a25ad56b63e3023207b3bb5b4ac0c9869d74be");
    unlink(path);
    assert_int_equal(kf_file_sha256(path, sum, &size), -ENOENT);
}

static void test_fnv1a(void **state)
{
    (void)state;
    /* the published FNV-1a 64 test vectors */
    assert_true(kf_fnv1a_str(KF_FNV1A_BASIS, "") == 0xcbf29ce484222325ull);
    assert_true(kf_fnv1a_str(KF_FNV1A_BASIS, "a") == 0xaf63dc4c8601ec8cull);
    assert_true(kf_fnv1a_str(KF_FNV1A_BASIS, "foobar") == 0x85944171f73967e8ull);
    /* bytes and strings agree, and feeding in pieces is feeding the whole */
    assert_true(kf_fnv1a(KF_FNV1A_BASIS, "foobar", 6) == 0x85944171f73967e8ull);
    assert_true(kf_fnv1a_str(kf_fnv1a_str(KF_FNV1A_BASIS, "foo"), "bar") == 0x85944171f73967e8ull);
    assert_true(kf_fnv1a(KF_FNV1A_BASIS_V0, "x", 0) == KF_FNV1A_BASIS_V0);
}

static const char *lookup(void *ctx, const char *key, size_t len)
{
    (void)ctx;
    if (len == 3 && !strncmp(key, "dir", 3))
        return "/var/lib/m";
    if (len == 0)
        return "EMPTY";
    return NULL;
}

static void test_fill(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "", "" },
        { "plain", "plain" },
        { "{{dir}}/data", "/var/lib/m/data" },
        { "--a={{dir}} --b={{dir}}", "--a=/var/lib/m --b=/var/lib/m" },
        { "{{unknown}}/x", "{{unknown}}/x" },
        { "{{}}", "EMPTY" },
        { "open {{dir", "open {{dir" },
        { "{{dir}}{{", "/var/lib/m{{" },
        { "}}{{dir}}", "}}/var/lib/m" },
    };
    (void)state;

    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        char *s = kf_fill_placeholders(cases[i].in, lookup, NULL);

        assert_string_equal(s, cases[i].out);
        free(s);
    }
}

static void test_mono_ms(void **state)
{
    int64_t a = kf_mono_ms(), b;
    (void)state;

    assert_true(a >= 0);
    usleep(2000);
    b = kf_mono_ms();
    assert_true(b >= a + 1);
    assert_true(b - (int64_t)(kf_mono_ns() / 1000000u) <= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files),   cmocka_unit_test(test_file_sha256),
        cmocka_unit_test(test_fnv1a),   cmocka_unit_test(test_fill),
        cmocka_unit_test(test_mono_ms),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
