/* fleet-registry.c: reading and writing API objects with the API's rules
 * (contract in kfleet/registry.h).
 *
 * Every write is read-modify-write with compare-and-swap on the key's
 * mod_rev: the registry reads the stored object, builds the new one (server
 * metadata from the old, user fields from the request), admits it, and puts
 * it only if nobody wrote in between. Writes without a resourceVersion
 * precondition retry a conflict a few times; writes with one report it.
 *
 * LIST never parses an object it does not have to: without selectors it
 * returns stored bytes as they are; with a label selector it parses only
 * metadata.labels (kf_obj_labels_from_bytes); only field selectors parse
 * whole objects. Pages read at the revision of the first page, named in an
 * opaque continue token.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/registry.h"
#include "kfleet/selector.h"
#include "kfleet/store.h"
#include "kfleet/strbuf.h"
#include "kfleet/versions.h"
#include "fleet/fleet-internal.h"

/* A write that raced another one is retried this many times before the
 * conflict is reported (only for writes without a precondition). */
#define KF_REGISTRY_RETRIES 16
/* Continue tokens are short; anything longer is not one of ours. */
#define KF_CONTINUE_MAX 1024
/* With a selector, LIST reads the store in chunks of this many keys. */
#define KF_LIST_CHUNK 512

struct kf_registry {
    struct kf_store *store;
};

struct kf_registry *kf_registry_new(struct kf_store *store)
{
    struct kf_registry *r = kf_xcalloc(1, sizeof(*r));

    r->store = store;
    return r;
}

void kf_registry_free(struct kf_registry *r)
{
    free(r);
}

struct kf_store *kf_registry_store(struct kf_registry *r)
{
    return r->store;
}

/* --- helpers ----------------------------------------------------------------------- */

static void set_rv(json_t *obj, int64_t rev)
{
    json_t *meta = json_object_get(obj, "metadata");
    char buf[24];

    if (!json_is_object(meta))
        return;
    snprintf(buf, sizeof(buf), "%lld", (long long)rev);
    json_object_set_new(meta, "resourceVersion", json_string(buf));
}

static void now_rfc3339(char buf[32])
{
    kf_time_format_rfc3339(kf_now_ms(), buf, 32);
}

static int not_found(const struct kf_kind *k, const char *name, struct kf_strbuf *err)
{
    return kf_err(err, -KF_ENOTFOUND, "%s \"%.253s\" not found", k->plural, name);
}

static int conflict(const struct kf_kind *k, const char *name, struct kf_strbuf *err)
{
    return kf_err(err, -KF_ECONFLICT,
                  "Operation cannot be fulfilled on %s \"%.253s\": the object has been "
                  "modified; please apply your changes to the latest version and try again",
                  k->plural, name);
}

/* Reads and decodes name. */
static int load(struct kf_registry *r, const struct kf_kind *k, const char *name, struct kf_kv *kv,
                json_t **ret)
{
    char *key = kf_obj_key(k, name);
    int rc = kf_store_get(r->store, key, kv);

    free(key);
    if (rc < 0)
        return rc;
    rc = kf_obj_decode(kv->value, kv->value_len, kv->mod_rev, ret);
    if (rc < 0)
        kf_kv_release(kv);
    return rc;
}

static int parse_rv(const json_t *obj, int64_t *ret, struct kf_strbuf *err)
{
    json_t *v = kf_json_path(obj, "metadata.resourceVersion");
    int64_t rv;

    *ret = 0;
    if (!v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v)))
        return 0;
    if (!json_is_string(v) || kf_parse_int64(json_string_value(v), &rv) < 0 || rv <= 0)
        return kf_err(err, -KF_EBADREQUEST,
                      "metadata.resourceVersion must be a resourceVersion the server returned "
                      "(a string of digits)");
    *ret = rv;
    return 0;
}

/* --- create --------------------------------------------------------------------------- */

static bool generate_name(json_t *meta, struct kf_causes *causes)
{
    static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    const char *prefix = kf_json_str(meta, "generateName", NULL);
    unsigned char rnd[5];
    char suffix[6];
    char *name;

    if (!prefix)
        return false;
    if (strlen(prefix) > KF_NAME_MAX - 5 || strlen(prefix) == 0) {
        kf_causes_add(causes, "FieldValueInvalid", "metadata.generateName",
                      "must be 1 to %d characters", KF_NAME_MAX - 5);
        return false;
    }
    kf_random_bytes(rnd, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++)
        suffix[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
    suffix[5] = '\0';
    name = kf_xasprintf("%s%s", prefix, suffix);
    json_object_set_new(meta, "name", json_string(name));
    free(name);
    return true;
}

/* Admission that reads other objects: a GuestCluster's new or changed
 * spec.version must not be one its Profile (spec.profile, else its
 * template's, else "standard") expired or stopped supporting. Going back
 * to the version that runs (a rollback) is always allowed. */
static int admit_version_lifecycle(struct kf_registry *r, const struct kf_kind *k,
                                   const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    const char *v = kf_json_str(obj, "spec.version", NULL), *pname;
    json_t *tpl = NULL, *profile = NULL;
    enum kf_version_state st;

    if (k != &kf_kind_guestcluster || !v)
        return 0;
    if (old && (kf_streq(v, kf_json_str(old, "spec.version", NULL)) ||
                kf_streq(v, kf_json_str(old, "status.version", NULL))))
        return 0;
    pname = kf_json_str(obj, "spec.profile", NULL);
    if (!pname && kf_json_str(obj, "spec.template", NULL) &&
        kf_registry_get(r, &kf_kind_template, kf_json_str(obj, "spec.template", ""), &tpl) == 0)
        pname = kf_json_str(tpl, "spec.profile", NULL);
    if (kf_registry_get(r, &kf_kind_profile, pname ? pname : "standard", &profile) < 0) {
        json_decref(tpl);
        return 0; /* placement says the profile is missing */
    }
    st = kf_version_state(profile, v, time(NULL));
    if (st == KF_VERSION_EXPIRED || st == KF_VERSION_UNSUPPORTED)
        kf_causes_add(causes, "FieldValueNotSupported", "spec.version",
                      "Unsupported value: \"%s\": profile %s marks it %s: choose one of its "
                      "supported versions",
                      v, kf_obj_name(profile), kf_version_state_name(st));
    json_decref(profile);
    json_decref(tpl);
    return st == KF_VERSION_EXPIRED || st == KF_VERSION_UNSUPPORTED ? -KF_EINVALID : 0;
}

/* Fills what the server owns into a new object, drops what the creator may
 * not set, and admits it. */
static int create_prepare(struct kf_registry *r, const struct kf_kind *k, json_t *obj,
                          bool *ret_generated, struct kf_causes *causes, struct kf_strbuf *err)
{
    json_t *meta;
    char ts[32], uid[37];
    int rc;

    *ret_generated = false;
    if (!json_is_object(obj))
        return kf_err(err, -KF_EBADREQUEST, "the body must be a JSON object");
    meta = json_object_get(obj, "metadata");
    if (json_is_object(meta)) {
        json_t *name = json_object_get(meta, "name");

        if (!name || json_is_null(name) || (json_is_string(name) && !*json_string_value(name)))
            *ret_generated = generate_name(meta, causes);
        kf_uuid(uid);
        now_rfc3339(ts);
        json_object_set_new(meta, "uid", json_string(uid));
        json_object_set_new(meta, "creationTimestamp", json_string(ts));
        json_object_set_new(meta, "generation", json_integer(1));
        json_object_del(meta, "resourceVersion");
        json_object_del(meta, "deletionTimestamp");
        json_object_del(meta, "deletionGracePeriodSeconds");
    }
    /* With a status subresource, status is not the creator's to set. */
    if (k->has_status)
        json_object_del(obj, "status");
    rc = kf_kind_admit(k, obj, NULL, false, causes);
    if (rc == 0)
        rc = admit_version_lifecycle(r, k, obj, NULL, causes);
    if (rc < 0) {
        struct kf_strbuf msg = KF_STRBUF_INIT;

        kf_causes_format(causes, &msg);
        kf_err(err, rc, "%s \"%.253s\" is invalid: %s", k->kind,
               kf_json_str(obj, "metadata.name", ""), msg.buf);
        kf_strbuf_release(&msg);
    }
    return rc;
}

/* The kind's checks against other stored objects (a Release's selector
 * must match some GuestCluster), after its own admission passed. */
static int admit_stored(struct kf_registry *r, const struct kf_kind *k, const json_t *obj,
                        const json_t *old, struct kf_causes *causes, struct kf_strbuf *err)
{
    struct kf_strbuf msg = KF_STRBUF_INIT;
    size_t before = causes->n;

    if (!k->admit_stored)
        return 0;
    k->admit_stored(r, obj, old, causes);
    if (causes->n == before)
        return 0;
    kf_causes_format(causes, &msg);
    kf_err(err, -KF_EINVALID, "%s \"%.253s\" is invalid: %s", k->kind,
           kf_json_str(obj, "metadata.name", ""), msg.buf);
    kf_strbuf_release(&msg);
    return -KF_EINVALID;
}

static int encode_checked(const json_t *obj, struct kf_strbuf *bytes, struct kf_strbuf *err)
{
    int rc;

    kf_strbuf_reset(bytes);
    rc = kf_obj_encode(obj, bytes);
    if (rc == 0 && bytes->len > KF_STORE_MAX_VALUE)
        rc = kf_err(err, -KF_ETOOLARGE, "the object is larger than %d bytes", KF_STORE_MAX_VALUE);
    return rc;
}

int kf_registry_create(struct kf_registry *r, const struct kf_kind *k, json_t *obj, json_t **ret,
                       struct kf_causes *causes, struct kf_strbuf *err)
{
    struct kf_strbuf bytes = KF_STRBUF_INIT;
    bool generated;
    int64_t rev = 0;
    char *key;
    int rc;

    rc = create_prepare(r, k, obj, &generated, causes, err);
    if (rc == 0)
        rc = admit_stored(r, k, obj, NULL, causes, err);
    if (rc < 0)
        return rc;
    for (int attempt = 0;; attempt++) {
        rc = encode_checked(obj, &bytes, err);
        if (rc < 0)
            break;
        key = kf_obj_key(k, kf_obj_name(obj));
        rc = kf_store_put(r->store, key, bytes.buf, bytes.len, 0, &rev);
        free(key);
        if (rc == -KF_EEXISTS && generated && attempt < 8) {
            generate_name(json_object_get(obj, "metadata"), causes);
            continue;
        }
        if (rc == -KF_EEXISTS)
            kf_err(err, rc, "%s \"%.253s\" already exists", k->plural, kf_obj_name(obj));
        break;
    }
    kf_strbuf_release(&bytes);
    if (rc < 0)
        return rc;
    if (ret) {
        *ret = json_deep_copy(obj);
        set_rv(*ret, rev);
    }
    return 0;
}

/* The ops of a batch and the bytes they point into. */
struct batch {
    struct kf_op ops[KF_STORE_MAX_TXN_OPS];
    struct kf_strbuf bytes[KF_STORE_MAX_TXN_OPS];
    char *keys[KF_STORE_MAX_TXN_OPS];
    size_t idx[KF_STORE_MAX_TXN_OPS]; /* which input each op came from */
    size_t n;
};

static void batch_release(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        kf_strbuf_release(&b->bytes[i]);
        free(b->keys[i]);
    }
    b->n = 0;
}

/* Adds an op; the key is taken over, the bytes (for a PUT) copied. */
static void batch_add(struct batch *b, enum kf_op_type type, char *key, const struct kf_strbuf *val,
                      int64_t expect, size_t idx)
{
    size_t i = b->n++;

    kf_strbuf_init(&b->bytes[i], 0);
    if (val)
        kf_strbuf_add(&b->bytes[i], val->buf, val->len);
    b->keys[i] = key;
    b->idx[i] = idx;
    b->ops[i] = (struct kf_op){ .type = type, .key = key, .expect_mod_rev = expect };
}

/* Commits b; on a failed condition *ret_failed is the input's index. */
static int batch_commit(struct kf_registry *r, const struct kf_kind *k, struct batch *b,
                        int64_t *ret_rev, size_t *ret_failed, struct kf_strbuf *err)
{
    size_t failed = 0;
    int rc;

    for (size_t i = 0; i < b->n; i++) {
        b->ops[i].value = b->ops[i].type == KF_OP_PUT ? b->bytes[i].buf : NULL;
        b->ops[i].value_len = b->ops[i].type == KF_OP_PUT ? b->bytes[i].len : 0;
    }
    rc = kf_store_txn(r->store, b->ops, b->n, ret_rev, &failed);
    if (rc < 0 && failed < b->n) {
        const char *name = b->keys[failed];
        char *prefix = kf_obj_prefix(k);

        if (kf_str_has_prefix(name, prefix))
            name += strlen(prefix);
        free(prefix);
        if (ret_failed)
            *ret_failed = b->idx[failed];
        if (rc == -KF_EEXISTS)
            kf_err(err, rc, "%s \"%.253s\" already exists", k->plural, name);
        else if (rc == -KF_ECONFLICT || rc == -KF_ENOTFOUND)
            conflict(k, name, err);
        else
            kf_err(err, rc, "the store refused the batch: %s", strerror(-rc));
    } else if (rc < 0) {
        kf_err(err, rc, "the store refused the batch: %s", strerror(-rc));
    }
    return rc;
}

int kf_registry_create_batch(struct kf_registry *r, const struct kf_kind *k, json_t *const *objs,
                             size_t n, int64_t *ret_rev, size_t *ret_failed,
                             struct kf_causes *causes, struct kf_strbuf *err)
{
    struct batch *b;
    struct kf_strbuf bytes = KF_STRBUF_INIT;
    int64_t rev = 0;
    int rc = 0;

    if (n == 0 || n > KF_STORE_MAX_TXN_OPS)
        return kf_err(err, -EINVAL, "a batch has 1 to %d objects (got %zu)", KF_STORE_MAX_TXN_OPS,
                      n);
    b = kf_xcalloc(1, sizeof(*b));
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool generated;

        rc = create_prepare(r, k, objs[i], &generated, causes, err);
        if (rc == 0)
            rc = encode_checked(objs[i], &bytes, err);
        if (rc < 0) {
            if (ret_failed)
                *ret_failed = i;
            break;
        }
        batch_add(b, KF_OP_PUT, kf_obj_key(k, kf_obj_name(objs[i])), &bytes, 0, i);
    }
    if (rc == 0)
        rc = batch_commit(r, k, b, &rev, ret_failed, err);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            set_rv(objs[i], rev);
        if (ret_rev)
            *ret_rev = rev;
    }
    batch_release(b);
    free(b);
    kf_strbuf_release(&bytes);
    return rc;
}

/* --- get ---------------------------------------------------------------------------------- */

int kf_registry_get(struct kf_registry *r, const struct kf_kind *k, const char *name, json_t **ret)
{
    struct kf_kv kv = { 0 };
    json_t *obj;
    int rc;

    if (!name || !*name)
        return -KF_ENOTFOUND;
    rc = load(r, k, name, &kv, &obj);
    if (rc < 0)
        return rc;
    kf_kv_release(&kv);
    *ret = obj;
    return 0;
}

int kf_registry_get_raw(struct kf_registry *r, const struct kf_kind *k, const char *name,
                        struct kf_kv *ret)
{
    char *key;
    int rc;

    if (!name || !*name)
        return -KF_ENOTFOUND;
    key = kf_obj_key(k, name);
    rc = kf_store_get(r->store, key, ret);
    free(key);
    return rc;
}

/* --- list ---------------------------------------------------------------------------------- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64url_encode(const char *in, size_t len)
{
    struct kf_strbuf out = KF_STRBUF_INIT;
    const unsigned char *p = (const unsigned char *)in;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t n = KF_MIN(len - i, (size_t)3);

        if (n > 1)
            v |= (uint32_t)p[i + 1] << 8;
        if (n > 2)
            v |= p[i + 2];
        kf_strbuf_addch(&out, b64url[(v >> 18) & 63]);
        kf_strbuf_addch(&out, b64url[(v >> 12) & 63]);
        if (n > 1)
            kf_strbuf_addch(&out, b64url[(v >> 6) & 63]);
        if (n > 2)
            kf_strbuf_addch(&out, b64url[v & 63]);
    }
    return kf_strbuf_detach(&out, NULL);
}

static int b64url_decode(const char *in, struct kf_strbuf *out)
{
    uint32_t acc = 0;
    int bits = 0;

    for (const char *p = in; *p; p++) {
        const char *c = strchr(b64url, *p);

        if (*p == '=')
            break; /* tolerate padding */
        if (!c)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)(c - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            kf_strbuf_addch(out, (char)((acc >> bits) & 0xff));
        }
    }
    return 0;
}

char *kf_registry_continue_encode(int64_t rev, const char *name)
{
    struct kf_strbuf js = KF_STRBUF_INIT;
    char *tok;

    kf_strbuf_addf(&js, "{\"v\":1,\"rv\":%lld,\"start\":", (long long)rev);
    kf_strbuf_add_json_str(&js, name);
    kf_strbuf_addch(&js, '}');
    tok = b64url_encode(js.buf, js.len);
    kf_strbuf_release(&js);
    return tok;
}

int kf_registry_continue_decode(const char *tok, int64_t *ret_rev, char **ret_name,
                                struct kf_strbuf *err)
{
    struct kf_strbuf raw = KF_STRBUF_INIT;
    json_t *v = NULL;
    const char *name;
    int rc = -KF_EBADREQUEST;

    if (strlen(tok) > KF_CONTINUE_MAX || b64url_decode(tok, &raw) < 0 ||
        kf_json_parse(raw.buf, raw.len, &v, NULL) < 0 || !json_is_object(v) ||
        kf_json_int(v, "v", 0) != 1 || kf_json_int(v, "rv", 0) <= 0 ||
        !(name = kf_json_str(v, "start", NULL)) || !kf_name_valid(name)) {
        kf_err(err, rc,
               "invalid continue token: pass back the \"continue\" value of the "
               "previous page unchanged, or list again without it");
        goto free_raw;
    }
    *ret_rev = kf_json_int(v, "rv", 0);
    *ret_name = kf_xstrdup(name);
    rc = 0;
free_raw:
    json_decref(v);
    kf_strbuf_release(&raw);
    return rc;
}

static bool kv_matches(const struct kf_kv *kv, const struct kf_list_opts *o)
{
    bool ok = true;

    if (!kf_selector_is_empty(o->labels)) {
        json_t *labels = NULL;
        int rc = kf_obj_labels_from_bytes(kv->value, kv->value_len, &labels);

        if (rc < 0) {
            json_t *obj;

            if (kf_obj_decode(kv->value, kv->value_len, kv->mod_rev, &obj) < 0)
                return false;
            ok = kf_selector_matches(o->labels, obj);
            json_decref(obj);
        } else {
            ok = kf_selector_matches_labels(o->labels, labels);
            json_decref(labels);
        }
        if (!ok)
            return false;
    }
    if (!kf_selector_is_empty(o->fields)) {
        /* Build a sparse object with only the paths the selector reads. */
        json_t *sparse = json_object();
        const char *path;

        for (size_t i = 0; ok && (path = kf_selector_key(o->fields, i)); i++) {
            json_t *v = NULL;
            int rc;

            if (!strcmp(path, "metadata.resourceVersion")) {
                kf_json_set(sparse, path, json_sprintf("%lld", (long long)kv->mod_rev));
                continue;
            }
            rc = kf_obj_path_from_bytes(kv->value, kv->value_len, path, &v);
            if (rc < 0)
                ok = false;
            else if (rc == 1)
                kf_json_set(sparse, path, v);
        }
        ok = ok && kf_selector_matches(o->fields, sparse);
        json_decref(sparse);
    }
    return ok;
}

static int range_error(int rc, int64_t rev, bool from_token, struct kf_strbuf *err)
{
    if (rc == -KF_ECOMPACTED)
        return kf_err(err, rc,
                      from_token ? "the continue token is too old: revision %lld was compacted; "
                                   "list again without continue"
                                 : "resourceVersion %lld is too old: it was compacted; list "
                                   "again without resourceVersion",
                      (long long)rev);
    if (rc == -EINVAL && rev > 0)
        return kf_err(err, -KF_EBADREQUEST, "resourceVersion %lld is newer than the store",
                      (long long)rev);
    return kf_err(err, rc, "cannot read the store");
}

/* A page of a filtered list: reads chunks at one revision until the page is
 * full and one more match is known to exist (so a continue token never leads
 * to an empty page), or the kind is exhausted. */
static int list_filtered(struct kf_registry *r, const struct kf_list_opts *o, struct kf_range *q,
                         const char *start_key, const char *name_key, int64_t rev, bool from_token,
                         struct kf_kv_list *out, struct kf_strbuf *err)
{
    char *after = start_key ? kf_xstrdup(start_key) : NULL;
    int rc = 0;

    out->rev = rev;
    for (;;) {
        struct kf_kv_list chunk = { 0 };
        bool full = false, more;

        q->start_after = after;
        q->limit = o->limit ? KF_MAX(o->limit, (size_t)KF_LIST_CHUNK) : 0;
        q->rev = out->rev;
        rc = kf_store_range(r->store, q, &chunk);
        if (rc < 0) {
            rc = range_error(rc, rev, from_token, err);
            break;
        }
        out->rev = chunk.rev; /* later chunks read at the first one's revision */
        /* where the next chunk starts, before matches are moved out */
        more = chunk.more && chunk.n > 0;
        if (more) {
            free(after);
            after = kf_xstrdup(chunk.items[chunk.n - 1].key);
        }
        for (size_t i = 0; i < chunk.n && !full; i++) {
            struct kf_kv *kv = &chunk.items[i];

            if (name_key && strcmp(kv->key, name_key) != 0)
                continue;
            if (!kv_matches(kv, o))
                continue;
            if (o->limit && out->n == o->limit) {
                out->more = full = true;
                break;
            }
            KF_GROW(out->items, out->alloc, out->n);
            out->items[out->n++] = *kv;
            memset(kv, 0, sizeof(*kv));
        }
        kf_kv_list_release(&chunk);
        if (full || !more)
            break;
    }
    free(after);
    return rc;
}

int kf_registry_list_raw(struct kf_registry *r, const struct kf_kind *k,
                         const struct kf_list_opts *o, struct kf_kv_list *ret, char **ret_continue,
                         struct kf_strbuf *err)
{
    static const struct kf_list_opts none = { 0 };
    char *prefix = kf_obj_prefix(k), *start_key = NULL, *start_name = NULL, *name_key = NULL;
    char *narrow = NULL;
    struct kf_kv_list out = { 0 };
    struct kf_range q = { 0 };
    bool filter, from_token = false;
    const char *only_name;
    int64_t rev;
    int rc = 0;

    if (!o)
        o = &none;
    rev = o->rev;
    if (o->continue_token && *o->continue_token) {
        int64_t trev;

        rc = kf_registry_continue_decode(o->continue_token, &trev, &start_name, err);
        if (rc < 0)
            goto free_list;
        if (rev > 0 && rev != trev) {
            rc = kf_err(err, -KF_EBADREQUEST,
                        "resourceVersion cannot be combined with a continue token");
            goto free_list;
        }
        rev = trev;
        from_token = true;
        start_key = kf_xasprintf("%s%s", prefix, start_name);
    }
    filter = !kf_selector_is_empty(o->labels) || !kf_selector_is_empty(o->fields);
    only_name = kf_selector_name_equals(o->fields);
    q.prefix = prefix;
    if (only_name) {
        /* "metadata.name=x": read that key's range only. */
        name_key = kf_xasprintf("%s%s", prefix, only_name);
        q.prefix = name_key;
    } else if (kf_selector_name_prefix(o->fields)) {
        /* "metadata.name^=p": read the keys starting with p only */
        narrow = kf_xasprintf("%s%s", prefix, kf_selector_name_prefix(o->fields));
        q.prefix = narrow;
    } else if (k->name_prefix && !kf_selector_is_empty(o->fields)) {
        /* the kind knows which names can match: read only those (the
         * selector still filters them) */
        char *np = k->name_prefix(o->fields);

        if (np) {
            narrow = kf_xasprintf("%s%s", prefix, np);
            q.prefix = narrow;
            free(np);
        }
    }
    q.start_after = start_key;
    q.rev = rev;
    if (!filter) {
        q.limit = o->limit;
        rc = kf_store_range(r->store, &q, &out);
        if (rc < 0) {
            rc = range_error(rc, rev, from_token, err);
            goto free_list;
        }
    } else {
        rc = list_filtered(r, o, &q, start_key, name_key, rev, from_token, &out, err);
        if (rc < 0)
            goto free_list;
    }
    if (ret_continue)
        *ret_continue = NULL;
    if (out.more && out.n > 0 && ret_continue)
        *ret_continue =
            kf_registry_continue_encode(out.rev, out.items[out.n - 1].key + strlen(prefix));
    *ret = out;
    memset(&out, 0, sizeof(out));
free_list:
    kf_kv_list_release(&out);
    free(prefix);
    free(start_key);
    free(start_name);
    free(name_key);
    free(narrow);
    return rc;
}

int kf_registry_list(struct kf_registry *r, const struct kf_kind *k, const struct kf_list_opts *o,
                     json_t **ret_items, int64_t *ret_rev, char **ret_continue,
                     struct kf_strbuf *err)
{
    struct kf_kv_list l = { 0 };
    json_t *items;
    int rc = kf_registry_list_raw(r, k, o, &l, ret_continue, err);

    if (rc < 0)
        return rc;
    items = json_array();
    for (size_t i = 0; i < l.n; i++) {
        json_t *obj;

        if (kf_obj_decode(l.items[i].value, l.items[i].value_len, l.items[i].mod_rev, &obj) == 0)
            json_array_append_new(items, obj);
    }
    if (ret_rev)
        *ret_rev = l.rev;
    kf_kv_list_release(&l);
    *ret_items = items;
    return 0;
}

/* --- update ---------------------------------------------------------------------------- */

static const char *const server_meta[] = {
    "uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds",
};

/* Whether new differs from old in what generation counts: spec for kinds
 * with a status subresource, everything but metadata for the others. */
static bool spec_changed(const struct kf_kind *k, const json_t *old, const json_t *new)
{
    const char *key;
    json_t *v;

    if (k->has_status)
        return !json_equal(json_object_get(old, "spec"), json_object_get(new, "spec"));
    json_object_foreach((json_t *)new, key, v)
    {
        if (strcmp(key, "metadata") && !json_equal(v, json_object_get(old, key)))
            return true;
    }
    json_object_foreach((json_t *)old, key, v)
    {
        if (strcmp(key, "metadata") && !json_object_get(new, key))
            return true;
    }
    return false;
}

/* Builds the object to store from the request (obj) and the stored one
 * (old, decoded). New reference, or NULL with the error in *rc. */
static json_t *build_update(const struct kf_kind *k, const json_t *obj, const json_t *old,
                            bool status_only, int *rc, struct kf_strbuf *err)
{
    json_t *new, *meta, *old_meta = json_object_get(old, "metadata");
    const char *uid;

    if (status_only) {
        json_t *status = json_object_get(obj, "status");

        new = json_deep_copy(old);
        if (status && !json_is_null(status))
            json_object_set_new(new, "status", json_deep_copy(status));
        else
            json_object_del(new, "status");
        return new;
    }
    uid = kf_json_str(obj, "metadata.uid", NULL);
    if (uid && *uid && !kf_streq(uid, kf_obj_uid(old))) {
        *rc = kf_err(err, -KF_ECONFLICT,
                     "Precondition failed: metadata.uid is \"%.64s\" but the stored object's is "
                     "\"%s\" (it was deleted and created again)",
                     uid, kf_obj_uid(old));
        return NULL;
    }
    new = json_deep_copy(obj);
    meta = json_object_get(new, "metadata");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(new, "metadata", meta);
    }
    for (size_t i = 0; i < KF_ARRAY_SIZE(server_meta); i++) {
        json_t *v = json_object_get(old_meta, server_meta[i]);

        if (v)
            json_object_set(meta, server_meta[i], v);
        else
            json_object_del(meta, server_meta[i]);
    }
    json_object_del(meta, "resourceVersion");
    if (k->has_status) {
        json_t *status = json_object_get(old, "status");

        if (status)
            json_object_set(new, "status", status);
        else
            json_object_del(new, "status");
    }
    return new;
}

/* What an update of the stored kv to obj writes. */
enum update_write {
    UPDATE_NONE,   /* nothing changed */
    UPDATE_PUT,    /* bytes replace the object */
    UPDATE_DELETE, /* the last finalizer went: the deletion completes */
};

/* What an update takes from the request: metadata and spec (the main
 * resource), status only (the status subresource), or both (a controller
 * that commits a finalizer and the status it guards in one write). */
enum update_mode {
    UPDATE_MAIN,
    UPDATE_STATUS,
    UPDATE_ALL,
};

/* Builds the object of an UPDATE_ALL write: the main resource's rules, then
 * the request's status admitted as the status subresource's. */
static json_t *build_update_all(const struct kf_kind *k, const json_t *obj, const json_t *old,
                                int *rc, struct kf_causes *causes, struct kf_strbuf *err)
{
    json_t *new = build_update(k, obj, old, false, rc, err), *status;

    if (!new)
        return NULL;
    *rc = kf_kind_admit(k, new, old, false, causes);
    status = json_object_get(obj, "status");
    if (*rc == 0 && status && !json_is_null(status)) {
        json_object_set_new(new, "status", json_deep_copy(status));
        *rc = kf_kind_admit(k, new, old, true, causes);
    }
    return new;
}

/* Builds and admits the object an update stores. *ret_new is the new
 * object (new reference) on success. `decoded`, when not NULL, is kv's
 * value as kf_obj_decode made it (a patch has decoded it already: it is
 * not parsed twice); it is only read. */
static int update_prepare(struct kf_registry *r, const struct kf_kind *k, const json_t *obj,
                          enum update_mode mode, const struct kf_kv *kv, json_t *decoded,
                          json_t **ret_new, json_t **ret_old, struct kf_strbuf *bytes,
                          enum update_write *ret_write, struct kf_causes *causes,
                          struct kf_strbuf *err)
{
    bool status_only = mode == UPDATE_STATUS;
    json_t *old = NULL, *new = NULL, *fin;
    int rc = 0;

    if (decoded)
        old = json_incref(decoded);
    else
        rc = kf_obj_decode(kv->value, kv->value_len, kv->mod_rev, &old);
    if (rc < 0)
        return kf_err(err, rc, "the stored object \"%s\" cannot be read", kv->key);
    if (mode == UPDATE_ALL) {
        new = build_update_all(k, obj, old, &rc, causes, err);
    } else {
        new = build_update(k, obj, old, status_only, &rc, err);
        if (new)
            rc = kf_kind_admit(k, new, old, status_only, causes);
    }
    if (!new)
        goto free_objs;
    if (rc == 0 && mode == UPDATE_MAIN)
        rc = admit_version_lifecycle(r, k, new, old, causes);
    if (rc < 0) {
        struct kf_strbuf msg = KF_STRBUF_INIT;

        kf_causes_format(causes, &msg);
        kf_err(err, rc, "%s \"%.253s\" is invalid: %s", k->kind, kf_obj_name(old), msg.buf);
        kf_strbuf_release(&msg);
        goto free_objs;
    }
    fin = kf_json_path(new, "metadata.finalizers");
    if (kf_obj_deleting(old) && json_array_size(fin) == 0) {
        *ret_write = UPDATE_DELETE;
        *ret_new = new;
        *ret_old = old;
        return 0;
    }
    if (!status_only && spec_changed(k, old, new))
        json_object_set_new(json_object_get(new, "metadata"), "generation",
                            json_integer(kf_obj_generation(old) + 1));
    rc = encode_checked(new, bytes, err);
    if (rc < 0)
        goto free_objs;
    if (bytes->len == kv->value_len && memcmp(bytes->buf, kv->value, bytes->len) == 0)
        *ret_write = UPDATE_NONE;
    else
        *ret_write = UPDATE_PUT;
    *ret_new = new;
    *ret_old = old;
    return 0;
free_objs:
    json_decref(old);
    json_decref(new);
    return rc;
}

/* One attempt: kv is the current stored object (decoded: its value decoded,
 * or NULL). -KF_ECONFLICT when the CAS lost a race. */
static int update_once(struct kf_registry *r, const struct kf_kind *k, const json_t *obj,
                       bool status_only, const struct kf_write_check *check, const struct kf_kv *kv,
                       json_t *decoded, json_t **ret, struct kf_causes *causes,
                       struct kf_strbuf *err)
{
    struct kf_strbuf bytes = KF_STRBUF_INIT;
    json_t *old = NULL, *new = NULL;
    enum update_write w = UPDATE_NONE;
    int64_t rev = 0;
    int rc;

    rc = update_prepare(r, k, obj, status_only ? UPDATE_STATUS : UPDATE_MAIN, kv, decoded, &new,
                        &old, &bytes, &w, causes, err);
    if (rc == 0 && !status_only && w == UPDATE_PUT)
        rc = admit_stored(r, k, new, old, causes, err);
    if (rc < 0)
        goto free_objs;
    /* the caller's check sees exactly what would replace what: the write
     * below is conditional on kv's revision, so nothing slips in between */
    if (check && check->fn) {
        rc = check->fn(check, old, new, err);
        if (rc < 0)
            goto free_objs;
    }
    switch (w) {
    case UPDATE_NONE:
        /* Nothing changed: no write, no watch event, same resourceVersion. */
        if (ret)
            *ret = json_incref(old);
        goto free_objs;
    case UPDATE_DELETE:
        rc = kf_store_delete(r->store, kv->key, kv->mod_rev, &rev);
        break;
    case UPDATE_PUT:
        rc = kf_store_put(r->store, kv->key, bytes.buf, bytes.len, kv->mod_rev, &rev);
        break;
    }
    if (rc < 0)
        goto free_objs;
    set_rv(new, rev);
    if (ret)
        *ret = json_incref(new);
free_objs:
    kf_strbuf_release(&bytes);
    json_decref(old);
    json_decref(new);
    return rc;
}

static int update_batch(struct kf_registry *r, const struct kf_kind *k, json_t *const *objs,
                        size_t n, enum update_mode mode, int64_t *ret_rev, size_t *ret_failed,
                        struct kf_causes *causes, struct kf_strbuf *err)
{
    bool status_only = mode != UPDATE_MAIN;
    struct batch *b;
    struct kf_strbuf bytes = KF_STRBUF_INIT;
    json_t *news[KF_STORE_MAX_TXN_OPS] = { 0 };
    int64_t rev = 0;
    int rc = 0;

    if (n == 0 || n > KF_STORE_MAX_TXN_OPS)
        return kf_err(err, -EINVAL, "a batch has 1 to %d objects (got %zu)", KF_STORE_MAX_TXN_OPS,
                      n);
    if (status_only && !k->has_status)
        return kf_err(err, -KF_ENOTFOUND, "%s have no status subresource", k->plural);
    b = kf_xcalloc(1, sizeof(*b));
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *name = kf_obj_name(objs[i]);
        struct kf_kv kv = { 0 };
        enum update_write w = UPDATE_NONE;
        json_t *old = NULL;
        int64_t want = 0;
        char *key;

        if (!json_is_object(objs[i]) || !name || !*name)
            rc = kf_err(err, -KF_EBADREQUEST, "every object of a batch needs metadata.name");
        else if ((rc = parse_rv(objs[i], &want, err)) == 0 && want == 0)
            rc = kf_err(err, -KF_EBADREQUEST,
                        "every object of a batch update needs metadata.resourceVersion");
        if (rc < 0) {
            if (ret_failed)
                *ret_failed = i;
            break;
        }
        key = kf_obj_key(k, name);
        rc = kf_store_get(r->store, key, &kv);
        if (rc == -KF_ENOTFOUND)
            not_found(k, name, err);
        else if (rc == 0 && kv.mod_rev != want)
            rc = conflict(k, name, err);
        if (rc == 0)
            rc = update_prepare(r, k, objs[i], mode, &kv, NULL, &news[i], &old, &bytes, &w, causes,
                                err);
        kf_kv_release(&kv);
        json_decref(old);
        if (rc < 0) {
            free(key);
            if (ret_failed)
                *ret_failed = i;
            break;
        }
        if (w == UPDATE_PUT)
            batch_add(b, KF_OP_PUT, key, &bytes, want, i);
        else if (w == UPDATE_DELETE)
            batch_add(b, KF_OP_DELETE, key, NULL, want, i);
        else
            free(key);
    }
    if (rc == 0 && b->n)
        rc = batch_commit(r, k, b, &rev, ret_failed, err);
    if (rc == 0) {
        /* the unchanged keep their resourceVersion */
        for (size_t i = 0; i < b->n; i++)
            set_rv(news[b->idx[i]], rev);
        for (size_t i = 0; i < n; i++) {
            json_object_clear(objs[i]);
            json_object_update(objs[i], news[i]);
        }
        if (ret_rev)
            *ret_rev = rev;
    }
    for (size_t i = 0; i < n; i++)
        json_decref(news[i]);
    batch_release(b);
    free(b);
    kf_strbuf_release(&bytes);
    return rc;
}

int kf_registry_update_batch(struct kf_registry *r, const struct kf_kind *k, json_t *const *objs,
                             size_t n, bool status_only, int64_t *ret_rev, size_t *ret_failed,
                             struct kf_causes *causes, struct kf_strbuf *err)
{
    return update_batch(r, k, objs, n, status_only ? UPDATE_STATUS : UPDATE_MAIN, ret_rev,
                        ret_failed, causes, err);
}

int kf_registry_update_batch_all(struct kf_registry *r, const struct kf_kind *k,
                                 json_t *const *objs, size_t n, int64_t *ret_rev,
                                 size_t *ret_failed, struct kf_causes *causes,
                                 struct kf_strbuf *err)
{
    return update_batch(r, k, objs, n, UPDATE_ALL, ret_rev, ret_failed, causes, err);
}

int kf_registry_update(struct kf_registry *r, const struct kf_kind *k, json_t *obj,
                       bool status_only, json_t **ret, struct kf_causes *causes,
                       struct kf_strbuf *err)
{
    return kf_registry_update_checked(r, k, obj, status_only, NULL, ret, causes, err);
}

int kf_registry_update_checked(struct kf_registry *r, const struct kf_kind *k, json_t *obj,
                               bool status_only, const struct kf_write_check *check, json_t **ret,
                               struct kf_causes *causes, struct kf_strbuf *err)
{
    const char *name = kf_obj_name(obj);
    int64_t want_rv;
    int rc;

    if (!json_is_object(obj))
        return kf_err(err, -KF_EBADREQUEST, "the body must be a JSON object");
    if (!name || !*name) {
        kf_causes_add(causes, "FieldValueRequired", "metadata.name", "Required value");
        return kf_err(err, -KF_EINVALID, "metadata.name is required");
    }
    if (status_only && !k->has_status)
        return kf_err(err, -KF_ENOTFOUND, "%s have no status subresource", k->plural);
    rc = parse_rv(obj, &want_rv, err);
    if (rc < 0)
        return rc;
    for (int attempt = 0;; attempt++) {
        struct kf_kv kv = { 0 };
        char *key = kf_obj_key(k, name);

        rc = kf_store_get(r->store, key, &kv);
        free(key);
        if (rc == -KF_ENOTFOUND)
            return not_found(k, name, err);
        if (rc < 0)
            return kf_err(err, rc, "cannot read the store");
        if (want_rv && kv.mod_rev != want_rv) {
            kf_kv_release(&kv);
            return conflict(k, name, err);
        }
        rc = update_once(r, k, obj, status_only, check, &kv, NULL, ret, causes, err);
        kf_kv_release(&kv);
        if (rc == -KF_ECONFLICT && !want_rv && attempt < KF_REGISTRY_RETRIES)
            continue;
        if (rc == -KF_ECONFLICT && (!err || !err->len))
            conflict(k, name, err);
        if (rc == -KF_ENOTFOUND)
            not_found(k, name, err);
        return rc;
    }
}

/* --- patch -------------------------------------------------------------------------------- */

/* The patch document, parsed and checked against its type: *ret (a new
 * reference) on success. */
static int patch_parse(enum kf_patch_type type, const char *patch, size_t len, json_t **ret,
                       struct kf_strbuf *err)
{
    struct kf_strbuf perr = KF_STRBUF_INIT;
    json_t *p = NULL;
    int rc;

    rc = kf_json_parse(patch, len, &p, &perr);
    if (rc < 0)
        kf_err(err, -KF_EBADREQUEST, "the patch is not JSON: %s", perr.buf);
    kf_strbuf_release(&perr);
    if (rc < 0)
        return -KF_EBADREQUEST;
    if (type == KF_PATCH_MERGE && !json_is_object(p))
        rc = kf_err(err, -KF_EBADREQUEST, "a merge patch must be a JSON object");
    else if (type == KF_PATCH_JSON && !json_is_array(p))
        rc = kf_err(err, -KF_EBADREQUEST, "a JSON patch must be an array of operations");
    else if (type != KF_PATCH_MERGE && type != KF_PATCH_JSON)
        rc = kf_err(err, -KF_EMEDIATYPE, "unsupported patch type");
    if (rc < 0) {
        json_decref(p);
        return rc;
    }
    *ret = p;
    return 0;
}

/* The stored object old with the patch p applied: *ret_patched (a new
 * reference) on success. */
static int patch_apply(enum kf_patch_type type, json_t *old, json_t *p, json_t **ret_patched,
                       struct kf_causes *causes, struct kf_strbuf *err)
{
    struct kf_strbuf perr = KF_STRBUF_INIT;
    int rc;

    if (type == KF_PATCH_MERGE) {
        *ret_patched = kf_json_merge_patch(old, p);
        return 0;
    }
    rc = kf_json_patch(old, p, ret_patched, &perr);
    if (rc == -EBADMSG) {
        kf_err(err, -KF_EBADREQUEST, "invalid JSON patch: %s", perr.buf);
        rc = -KF_EBADREQUEST;
    } else if (rc < 0) {
        kf_causes_add(causes, "FieldValueInvalid", "", "%s", perr.buf);
        kf_err(err, -KF_EINVALID, "the JSON patch cannot be applied: %s", perr.buf);
        rc = -KF_EINVALID;
    }
    kf_strbuf_release(&perr);
    return rc;
}

int kf_registry_patch(struct kf_registry *r, const struct kf_kind *k, const char *name,
                      enum kf_patch_type type, const char *patch, size_t len, bool status_only,
                      json_t **ret, struct kf_causes *causes, struct kf_strbuf *err)
{
    return kf_registry_patch_checked(r, k, name, type, patch, len, status_only, NULL, ret, causes,
                                     err);
}

int kf_registry_patch_checked(struct kf_registry *r, const struct kf_kind *k, const char *name,
                              enum kf_patch_type type, const char *patch, size_t len,
                              bool status_only, const struct kf_write_check *check, json_t **ret,
                              struct kf_causes *causes, struct kf_strbuf *err)
{
    json_t *p = NULL;
    int rc;

    if (status_only && !k->has_status)
        return kf_err(err, -KF_ENOTFOUND, "%s have no status subresource", k->plural);
    rc = patch_parse(type, patch, len, &p, err);
    if (rc < 0)
        return rc;
    for (int attempt = 0;; attempt++) {
        struct kf_kv kv = { 0 };
        json_t *old = NULL, *patched = NULL;
        const char *old_rv, *new_rv;
        bool explicit_rv;

        rc = load(r, k, name, &kv, &old);
        if (rc == -KF_ENOTFOUND) {
            rc = not_found(k, name, err);
            break;
        }
        if (rc < 0) {
            kf_err(err, rc, "cannot read the store");
            break;
        }
        rc = patch_apply(type, old, p, &patched, causes, err);
        if (rc < 0) {
            json_decref(old);
            kf_kv_release(&kv);
            break;
        }
        if (!json_is_object(patched) || !kf_streq(kf_obj_name(patched), name)) {
            kf_causes_add(causes, "FieldValueInvalid", "metadata.name",
                          "the patch changes the name of the object (\"%.253s\") to \"%.253s\"; "
                          "names cannot change",
                          name,
                          json_is_object(patched) ? kf_json_str(patched, "metadata.name", "") : "");
            rc = kf_err(err, -KF_EINVALID, "a patch cannot change metadata.name");
            json_decref(patched);
            json_decref(old);
            kf_kv_release(&kv);
            break;
        }
        old_rv = kf_json_str(old, "metadata.resourceVersion", "");
        new_rv = kf_json_str(patched, "metadata.resourceVersion", "");
        explicit_rv = !kf_streq(old_rv, new_rv) && *new_rv;
        if (explicit_rv) {
            /* The patch named a resourceVersion: it is a precondition. */
            int64_t want;

            rc = parse_rv(patched, &want, err);
            if (rc == 0 && want != kv.mod_rev)
                rc = conflict(k, name, err);
        }
        if (rc == 0)
            rc = update_once(r, k, patched, status_only, check, &kv, old, ret, causes, err);
        json_decref(patched);
        json_decref(old);
        kf_kv_release(&kv);
        if (rc == -KF_ECONFLICT && !explicit_rv && attempt < KF_REGISTRY_RETRIES) {
            if (err)
                kf_strbuf_reset(err);
            continue;
        }
        if (rc == -KF_ECONFLICT && (!err || !err->len))
            conflict(k, name, err);
        break;
    }
    json_decref(p);
    return rc;
}

/* --- delete -------------------------------------------------------------------------------- */

int kf_registry_delete(struct kf_registry *r, const struct kf_kind *k, const char *name,
                       int64_t precondition_rv, json_t **ret, bool *ret_deleted)
{
    for (int attempt = 0;; attempt++) {
        struct kf_kv kv = { 0 };
        json_t *old = NULL;
        int64_t rev = 0;
        int rc;

        rc = load(r, k, name ? name : "", &kv, &old);
        if (rc < 0)
            return rc;
        if (precondition_rv > 0 && kv.mod_rev != precondition_rv) {
            json_decref(old);
            kf_kv_release(&kv);
            return -KF_ECONFLICT;
        }
        if (json_array_size(kf_json_path(old, "metadata.finalizers")) > 0) {
            struct kf_strbuf bytes = KF_STRBUF_INIT;
            char ts[32];

            if (kf_obj_deleting(old)) {
                /* Already being deleted: nothing more to do. */
                kf_kv_release(&kv);
                if (ret_deleted)
                    *ret_deleted = false;
                if (ret)
                    *ret = old;
                else
                    json_decref(old);
                return 0;
            }
            now_rfc3339(ts);
            json_object_set_new(json_object_get(old, "metadata"), "deletionTimestamp",
                                json_string(ts));
            json_object_set_new(json_object_get(old, "metadata"), "deletionGracePeriodSeconds",
                                json_integer(0));
            rc = kf_obj_encode(old, &bytes);
            if (rc == 0)
                rc = kf_store_put(r->store, kv.key, bytes.buf, bytes.len, kv.mod_rev, &rev);
            kf_strbuf_release(&bytes);
            if (rc == 0) {
                set_rv(old, rev);
                if (ret_deleted)
                    *ret_deleted = false;
            }
        } else {
            rc = kf_store_delete(r->store, kv.key, kv.mod_rev, &rev);
            if (rc == 0 && ret_deleted)
                *ret_deleted = true;
        }
        kf_kv_release(&kv);
        if (rc == 0) {
            if (ret)
                *ret = old;
            else
                json_decref(old);
            return 0;
        }
        json_decref(old);
        if ((rc == -KF_ECONFLICT || rc == -KF_ENOTFOUND) && precondition_rv <= 0 &&
            attempt < KF_REGISTRY_RETRIES)
            continue;
        return rc;
    }
}

int kf_registry_delete_batch(struct kf_registry *r, const struct kf_kind *k,
                             const char *const *names, const int64_t *rvs, size_t n,
                             int64_t *ret_rev, size_t *ret_failed, struct kf_strbuf *err)
{
    struct batch *b;
    struct kf_strbuf bytes = KF_STRBUF_INIT;
    int rc = 0;
    int deleted = 0;

    if (n > KF_STORE_MAX_TXN_OPS)
        return kf_err(err, -EINVAL, "a batch has at most %d objects (got %zu)",
                      KF_STORE_MAX_TXN_OPS, n);
    b = kf_xcalloc(1, sizeof(*b));
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct kf_kv kv = { 0 };
        json_t *old = NULL;
        int64_t want = rvs ? rvs[i] : 0;
        int lr = load(r, k, names[i] ? names[i] : "", &kv, &old);

        if (lr == -KF_ENOTFOUND && want <= 0)
            continue;
        if (lr == 0 && want > 0 && kv.mod_rev != want)
            lr = -KF_ECONFLICT;
        if (lr < 0) {
            rc = lr == -KF_ECONFLICT || lr == -KF_ENOTFOUND
                     ? conflict(k, names[i], err)
                     : kf_err(err, lr, "cannot read the store");
            if (ret_failed)
                *ret_failed = i;
        } else if (json_array_size(kf_json_path(old, "metadata.finalizers")) > 0) {
            /* as kf_registry_delete: mark it, the finalizers' owners finish */
            if (!kf_obj_deleting(old)) {
                char ts[32];

                now_rfc3339(ts);
                json_object_set_new(json_object_get(old, "metadata"), "deletionTimestamp",
                                    json_string(ts));
                json_object_set_new(json_object_get(old, "metadata"), "deletionGracePeriodSeconds",
                                    json_integer(0));
                rc = encode_checked(old, &bytes, err);
                if (rc == 0)
                    batch_add(b, KF_OP_PUT, kf_xstrdup(kv.key), &bytes, kv.mod_rev, i);
            }
        } else {
            batch_add(b, KF_OP_DELETE, kf_xstrdup(kv.key), NULL, kv.mod_rev, i);
            deleted++;
        }
        kf_kv_release(&kv);
        json_decref(old);
    }
    if (rc == 0 && b->n)
        rc = batch_commit(r, k, b, ret_rev, ret_failed, err);
    batch_release(b);
    free(b);
    kf_strbuf_release(&bytes);
    return rc < 0 ? rc : deleted;
}

/* --- watch ---------------------------------------------------------------------------------- */

static bool bytes_match(const char *bytes, size_t len, int64_t rev,
                        const struct kf_selector *labels, const struct kf_selector *fields)
{
    struct kf_kv kv = { .value = (char *)bytes, .value_len = len, .mod_rev = rev };
    struct kf_list_opts o = { .labels = labels, .fields = fields };

    return bytes && kv_matches(&kv, &o);
}

const char *kf_registry_watch_type(const struct kf_event *ev, const struct kf_selector *labels,
                                   const struct kf_selector *fields)
{
    bool filter = !kf_selector_is_empty(labels) || !kf_selector_is_empty(fields);
    bool now, before;

    if (ev->type == KF_EVENT_DELETE) {
        if (!filter)
            return "DELETED";
        return bytes_match(ev->kv.value, ev->kv.value_len, ev->prev_mod_rev, labels, fields)
                   ? "DELETED"
                   : NULL;
    }
    if (!filter)
        return ev->prev_value ? "MODIFIED" : "ADDED";
    now = bytes_match(ev->kv.value, ev->kv.value_len, ev->kv.mod_rev, labels, fields);
    before = ev->prev_value &&
             bytes_match(ev->prev_value, ev->prev_len, ev->prev_mod_rev, labels, fields);
    if (now && before)
        return "MODIFIED";
    if (now)
        return "ADDED";
    if (before)
        return "DELETED";
    return NULL;
}
