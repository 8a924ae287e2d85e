/*
 * A fixture for scripts/lint-source (tests/lint/test-lint-source.py): one of
 * each offence, each marked with the rule the lint must report on its line,
 * next to code the lint must accept. Never compiled.
 */
#include <stdlib.h>

struct thing;

int counter_without_prefix = 0; /* LINT: no-prefix */
int kf_fixture_counter = 0;
static int private_counter;
const char *kf_fixture_names[] = {
    "a",
    "b",
};

#define MAKE_FN(name)     \
    static int name(void) \
    {                     \
        return 1;         \
    }
MAKE_FN(made_one)
MAKE_FN(made_two)

int helper_without_prefix(int a) /* LINT: no-prefix */
{
    return a + private_counter;
}

static int long_function(int a) /* LINT: long-function */
{
    int b = 0;

    b += a;
    b += a;
    b += a;
    b += a;
    b += a;
    b += a;
    b += a;
    b += a;
    b += a;
    b += a;
    b += a;
    b += a;
    b += a;
    b += a;
    b += a;
    return b;
}

static int short_function(int a)
{
    return a + 1;
}

int kf_fixture_generic(int n)
{
    char *p = malloc(16);
    int rc = -1;

    if (!p)
        goto out;
    if (n < 0)
        goto free_p;
    rc = short_function(n);
free_p:
    free(p);
out: /* LINT: generic-label */
    return rc;
}

int kf_fixture_named(int n)
{
    char *p = malloc(16);
    int rc = 0;

    switch (n) {
    case 1:
        rc = 1;
        break;
    default:
        rc = 2;
    }
    free(p);
    return rc + made_one() + made_two();
}

int main(void)
{
    return kf_fixture_generic(1) + long_function(2);
}
