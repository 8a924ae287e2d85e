/* etcd.h: a small etcd v3 client over etcd's JSON gateway, for the etcd
 * store backend (store-etcd.c) and for leader election on etcd leases.
 *
 * Why the gateway and not gRPC: etcd's native API is gRPC, and gRPC is not
 * available as a usable C library in Debian: the packaged libgrpc is gRPC's
 * C core, the low-level engine under the C++ bindings, with no code
 * generator for C, so every etcd RPC and stream would be hand-written
 * protobuf and completion-queue plumbing. Every etcd v3 server (3.4 here)
 * serves the same API as JSON over HTTP at /v3/... (keys and values base64,
 * 64-bit integers as strings), and libcurl and jansson are already kfleet
 * dependencies, so the client is a thin layer.
 *
 * What it does:
 *   - endpoints: a list of http:// or https:// URLs; requests go to the
 *     current endpoint and move to the next one when it cannot be reached
 *     (connection refused, TLS failure, timeout, "no leader");
 *   - TLS: a CA file, a client certificate and key;
 *   - authentication: etcd users (user + password read from a file); the
 *     client fetches a token and fetches a new one when etcd says it expired;
 *   - retries: a request that is safe to repeat (KF_ETCD_IDEMPOTENT: reads,
 *     lease keep-alives, compaction) is retried on the other endpoints; any
 *     request is retried when it provably never reached etcd; otherwise the
 *     caller gets -KF_ETIMEOUT, meaning "it may or may not have applied";
 *   - streams (watch, lease keep-alive): one streaming request at a time per
 *     struct kf_etcd_stream, interruptible from another thread;
 *   - a timeout on every request.
 *
 * Threading: a struct kf_etcd may be used by any number of threads at once
 * (it keeps a pool of connections). A struct kf_etcd_stream is used by one
 * thread at a time, except kf_etcd_stream_interrupt (any thread).
 */
#ifndef KF_ETCD_H
#define KF_ETCD_H

#include <jansson.h>

#include "kfleet/base.h"

struct kf_strbuf;
struct kf_etcd;
struct kf_etcd_stream;

#define KF_ETCD_DEFAULT_PREFIX     "/kfleet"
#define KF_ETCD_DEFAULT_TIMEOUT_MS 10000
/* Largest response body accepted (a LIST of many big objects stays well
 * below; etcd's own default limit on a response is 2 GiB). */
#define KF_ETCD_MAX_RESPONSE (1024u * 1024 * 1024)

/* What "etcd:" URLs say. Parsed by kf_etcd_config_parse from
 *
 *   ENDPOINT[,ENDPOINT...][?OPTION=VALUE[&OPTION=VALUE...]]
 *
 * with ENDPOINT http://host:port or https://host:port and OPTIONs
 *   cacert=FILE         CA certificate(s) to verify the servers (PEM)
 *   cert=FILE, key=FILE client certificate and key (PEM), both or neither
 *   user=NAME           etcd user; needs password-file
 *   password-file=FILE  the user's password (first line of the file)
 *   prefix=/PATH        key prefix, so that several fleets share one etcd
 *                       (default "/kfleet"; "prefix=" for none)
 *   timeout=DURATION    per-request timeout ("5s", "500ms"; default 10s)
 * Values may be percent-encoded (%26 for '&'). Example:
 *   https://10.0.0.1:2379,https://10.0.0.2:2379?cacert=/etc/kf/ca.pem&
 *       cert=/etc/kf/c.pem&key=/etc/kf/c-key.pem&prefix=/fleet-a
 */
struct kf_etcd_config {
    char **endpoints; /* without a trailing '/' */
    size_t n_endpoints;
    char *cacert, *cert, *key; /* NULL: not set */
    char *user, *password;
    char *prefix; /* never NULL, never ends with '/' ("" for none) */
    int timeout_ms;
};

/* Parses spec (an "etcd:" URL without the scheme) into *ret (which the
 * caller releases). Reads the password file. -EINVAL with a message in err
 * for anything malformed or unreadable; *ret untouched then. */
int kf_etcd_config_parse(const char *spec, struct kf_etcd_config *ret, struct kf_strbuf *err);
void kf_etcd_config_release(struct kf_etcd_config *cfg); /* NULL is fine */

/* A client for cfg (copied). Does not contact etcd. */
int kf_etcd_new(const struct kf_etcd_config *cfg, struct kf_etcd **ret, struct kf_strbuf *err);
void kf_etcd_free(struct kf_etcd *c); /* NULL is fine */
const struct kf_etcd_config *kf_etcd_config(const struct kf_etcd *c);
/* The endpoint requests go to now. */
const char *kf_etcd_endpoint(struct kf_etcd *c);
/* Highest revision seen in any response header (0 before the first). */
int64_t kf_etcd_seen_rev(struct kf_etcd *c);

#define KF_ETCD_IDEMPOTENT 1u /* the request may be repeated (on another endpoint) */

/* POSTs req (not stolen) to path ("/v3/kv/range") and returns the parsed
 * response in *ret (caller decrefs). Errors:
 *   an error etcd returned, mapped: -KF_ECOMPACTED (revision compacted),
 *     -EINVAL (future revision, duplicate key in a txn, bad request),
 *     -KF_ETOOLARGE (request too large, too many ops), -KF_ENOTFOUND
 *     (lease not found), -EPERM (permission denied, authentication failed),
 *     -EIO (anything else); etcd's message in err;
 *   -KF_EUNAVAILABLE  no endpoint could be reached, or every one refused
 *                     before applying anything: the request did not apply;
 *   -KF_ETIMEOUT      the request was sent but no answer came (only for
 *                     requests without KF_ETCD_IDEMPOTENT): it may have
 *                     applied.
 */
int kf_etcd_call(struct kf_etcd *c, const char *path, json_t *req, unsigned flags, json_t **ret,
                 struct kf_strbuf *err);

/* kf_etcd_call, but a successful answer's body is moved into *ret_body
 * (replacing what it held) as etcd sent it, for kf_etcd_scan_range; the
 * caller notes the answer's header revision with kf_etcd_note_rev. Errors
 * as kf_etcd_call's. */
int kf_etcd_call_raw(struct kf_etcd *c, const char *path, json_t *req, unsigned flags,
                     struct kf_strbuf *ret_body, struct kf_strbuf *err);
/* Records that etcd was seen at revision rev (kf_etcd_seen_rev). */
void kf_etcd_note_rev(struct kf_etcd *c, int64_t rev);

/* JSON helpers for the gateway's encoding. */
json_t *kf_etcd_bytes(const void *data, size_t len); /* base64 string, new reference */
json_t *kf_etcd_str(const char *s);                  /* kf_etcd_bytes of a C string */
json_t *kf_etcd_int(int64_t v);                      /* a 64-bit integer as a string */
/* Reads an int64 that the gateway wrote as a string (or a number); dflt when
 * the field is missing (the gateway omits zero values). */
int64_t kf_etcd_get_int(const json_t *obj, const char *field, int64_t dflt);
/* Appends the base64-decoded bytes of obj[field] to out (nothing when the
 * field is missing). -EBADMSG when it is not base64. */
int kf_etcd_get_bytes(const json_t *obj, const char *field, struct kf_strbuf *out);

/* --- reading a range answer without a JSON tree (store-etcd-scan.c) ------
 *
 * kf_etcd_scan_range reads the body of a 200 answer to /v3/kv/range and
 * calls on_kv(arg, kv) for each kv in order; kv's strings point into body
 * (or into a buffer of the scanner's) and live until on_kv returns. Its key
 * and value are still base64, as the gateway sent them; a field the answer
 * leaves out is "" or 0. on_kv returns 0 to go on or a negative error,
 * which scan returns. *ret (written on success): the header's revision,
 * `more` and `count`. -EBADMSG when the body is not JSON, not an object,
 * has a field of the wrong type, carries an "error", or nests values
 * deeper than KF_ETCD_SCAN_MAX_DEPTH (the top object's members are at
 * depth 1). It does not check that strings are valid UTF-8.
 */
#define KF_ETCD_SCAN_MAX_DEPTH 32
struct kf_etcd_scanned_kv {
    const char *key, *value; /* base64 text */
    size_t key_len, value_len;
    int64_t create_rev, mod_rev;
};
struct kf_etcd_scanned_range {
    int64_t header_rev, count;
    size_t n_kvs;
    bool more;
};
int kf_etcd_scan_range(const char *body, size_t len,
                       int (*on_kv)(void *arg, const struct kf_etcd_scanned_kv *kv), void *arg,
                       struct kf_etcd_scanned_range *ret);

/* --- streams -----------------------------------------------------------
 *
 * kf_etcd_stream_run POSTs req to path and calls on_message(arg, result)
 * for every message of the streamed response, in order, in the calling
 * thread. on_message returns 0 to go on, 1 to end the stream (run returns
 * 0), or a negative error, which run returns. run also returns:
 *   1                 idle_ms (> 0) passed without a message;
 *   -KF_ETIMEOUT      timeout_ms (> 0) passed;
 *   -EINTR            kf_etcd_stream_interrupt was called (since the last
 *                     run that returned -EINTR);
 *   -KF_EUNAVAILABLE  the endpoint could not be reached or the stream broke;
 *                     the client moves to the next endpoint, so the caller
 *                     just runs again (after a back-off);
 *   an error etcd returned in the stream, mapped as by kf_etcd_call.
 */
struct kf_etcd_stream *kf_etcd_stream_new(struct kf_etcd *c);
void kf_etcd_stream_free(struct kf_etcd_stream *st); /* NULL is fine; not while running */
int kf_etcd_stream_run(struct kf_etcd_stream *st, const char *path, json_t *req,
                       int (*on_message)(void *arg, json_t *result), void *arg, int idle_ms,
                       int timeout_ms, struct kf_strbuf *err);
void kf_etcd_stream_interrupt(struct kf_etcd_stream *st);

/* --- leases ------------------------------------------------------------ */

/* Grants a lease of ttl_s seconds; its id in *ret_id, the TTL etcd chose
 * in *ret_ttl (may be NULL). */
int kf_etcd_lease_grant(struct kf_etcd *c, int64_t ttl_s, int64_t *ret_id, int64_t *ret_ttl,
                        struct kf_strbuf *err);
/* Renews lease id once. Its new TTL in *ret_ttl (may be NULL);
 * -KF_ENOTFOUND when the lease has expired or was revoked. */
int kf_etcd_lease_keepalive(struct kf_etcd *c, int64_t id, int64_t *ret_ttl, struct kf_strbuf *err);
/* Revokes lease id (deleting the keys attached to it). -KF_ENOTFOUND when
 * it no longer exists. */
int kf_etcd_lease_revoke(struct kf_etcd *c, int64_t id, struct kf_strbuf *err);

/* One event of a watch response (result.events[i], as etcd's gateway sent
 * it) as a store event with prefix cut off its key; NULL for a key outside
 * prefix, a key with a NUL byte, or bytes that are not base64. Reads any
 * JSON value without failing; fuzzed by tests/fuzz/fuzz-etcd-watch.c. */
struct kf_event;
struct kf_event *kf_etcd_watch_event(const char *prefix, size_t prefix_len, const json_t *ev);

#endif
