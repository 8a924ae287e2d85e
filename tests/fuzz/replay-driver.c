/* replay-driver.c: runs a libFuzzer target over its corpus without libFuzzer,
 * so that every test build (release and ASan) replays each parser's corpus.
 * Usage: fuzz-X DIR|FILE... */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kfleet/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long len;

    if (!f) {
        fprintf(stderr, "replay: cannot open \"%s\"\n", path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = kf_xmalloc(len > 0 ? (size_t)len : 1);
    if (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        fprintf(stderr, "replay: cannot read \"%s\"\n", path);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len > 0 ? (size_t)len : 0);
    free(buf);
    return 0;
}

static int run_path(const char *path, int *count)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    int r = 0;

    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: no corpus at \"%s\"\n", path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    d = opendir(path);
    if (!d)
        return 1;
    while ((de = readdir(d))) {
        char *child;

        if (de->d_name[0] == '.')
            continue;
        child = kf_xasprintf("%s/%s", path, de->d_name);
        r |= run_path(child, count);
        free(child);
    }
    closedir(d);
    return r;
}

int main(int argc, char **argv)
{
    int r = 0, count = 0;

    for (int i = 1; i < argc; i++)
        r |= run_path(argv[i], &count);
    if (count == 0) {
        fprintf(stderr, "replay: the corpus is empty; add seed inputs\n");
        return 1;
    }
    printf("replayed %d inputs\n", count);
    return r;
}
