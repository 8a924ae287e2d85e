/* base-argv.c: a growable, NULL-terminated argv, the one way kfleet builds
 * a command line (the runner's specs, the catalog's etcd argv, the
 * monitoring stack's instances). Declared in base.h. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kfleet/base.h"

void kf_argv_add(struct kf_argv *a, const char *s)
{
    KF_GROW(a->v, a->alloc, a->n + 1);
    a->v[a->n++] = kf_xstrdup(s);
    a->v[a->n] = NULL;
}

void kf_argv_addf(struct kf_argv *a, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = kf_xvasprintf(fmt, ap);
    va_end(ap);
    KF_GROW(a->v, a->alloc, a->n + 1);
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

void kf_argv_release(struct kf_argv *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof(*a));
}
