/* fleet-test.h: helpers shared by the unit tests of src/fleet (not a test
 * itself: CMake only builds test-*.c). */
#ifndef KF_FLEET_TEST_H
#define KF_FLEET_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/registry.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"

/* A registry on a memory store: a cmocka fixture whose state is a struct
 * regfx (cmocka_unit_test_setup_teardown(fn, regfx_setup, regfx_teardown)). */
struct regfx {
    struct kf_store *store;
    struct kf_registry *reg;
};

static inline int regfx_setup(void **state)
{
    struct regfx *f = kf_xcalloc(1, sizeof(*f));

    assert_int_equal(kf_store_open("memory:", &f->store, NULL), 0);
    f->reg = kf_registry_new(f->store);
    *state = f;
    return 0;
}

static inline int regfx_teardown(void **state)
{
    struct regfx *f = *state;

    kf_registry_free(f->reg);
    kf_store_close(f->store);
    free(f);
    return 0;
}

/* Parses JSON written in a test (single quotes allowed for readability:
 * every ' becomes "). Fails the test on a typo. */
static inline json_t *J(const char *text)
{
    char *s = kf_xstrdup(text);
    json_t *v = NULL;
    struct kf_strbuf err = KF_STRBUF_INIT;

    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    if (kf_json_parse(s, strlen(s), &v, &err) < 0) {
        print_error("test JSON does not parse: %s\n%s\n", err.buf, s);
        fail();
    }
    kf_strbuf_release(&err);
    free(s);
    return v;
}

/* The cause for field, or NULL. */
static inline const struct kf_cause *find_cause(const struct kf_causes *c, const char *field)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->items[i].field, field) == 0)
            return &c->items[i];
    return NULL;
}

/* Asserts a cause on field with this type whose message contains text. */
#define assert_cause(causes, fld, typ, text)                                                    \
    do {                                                                                        \
        const struct kf_cause *c_ = find_cause((causes), (fld));                                \
        if (!c_) {                                                                              \
            struct kf_strbuf all_ = KF_STRBUF_INIT;                                             \
            kf_causes_format((causes), &all_);                                                  \
            print_error("no cause for field \"%s\"; causes: %s\n", (fld), all_.buf);            \
            kf_strbuf_release(&all_);                                                           \
            fail();                                                                             \
        }                                                                                       \
        assert_string_equal(c_->type, (typ));                                                   \
        if (!strstr(c_->message, (text))) {                                                     \
            print_error("cause for \"%s\" says \"%s\", expected it to contain \"%s\"\n", (fld), \
                        c_->message, (text));                                                   \
            fail();                                                                             \
        }                                                                                       \
    } while (0)

#endif
