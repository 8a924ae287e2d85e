/* api-auth.c: bearer tokens and roles.
 *
 * The token file has one "token,user,role" a line. Tokens are kept only as
 * SHA-256 digests in a sorted array: a lookup hashes the presented token and
 * binary-searches the digests, so neither the time taken nor the memory
 * kept reveals a token, and 100,000 agent tokens cost a few megabytes.
 *
 * What a role may do is one table (role_rules): a role allows a verb on a
 * class of kinds and subresources. Non-resource paths (discovery, OpenAPI,
 * /metrics) need any valid token; /healthz, /livez, /readyz and /version
 * need none (api-server.c decides that).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <openssl/evp.h>

#include "kfleet/error.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "api/api-internal.h"

#define TOKEN_MAX_LINE 4096
#define TOKEN_MIN_LEN  8
#define TOKENS_MAX     1000000

struct token {
    unsigned char digest[32];
    char *user;
    enum api_role role;
};

struct api_tokens {
    struct token *items;
    size_t n, alloc;
};

static const char *const role_names[API_ROLE_N] = {
    [API_ROLE_ADMIN] = "admin",
    [API_ROLE_EDITOR] = "editor",
    [API_ROLE_VIEWER] = "viewer",
    [API_ROLE_AGENT] = "agent",
};

const char *kf_api_role_name(enum api_role r)
{
    return r < API_ROLE_N ? role_names[r] : "?";
}

static void digest(const char *token, unsigned char out[32])
{
    unsigned int len = 32;

    if (!EVP_Digest(token, strlen(token), out, &len, EVP_sha256(), NULL))
        kf_abort("SHA-256 is not available");
}

static int cmp_token(const void *a, const void *b)
{
    return memcmp(((const struct token *)a)->digest, ((const struct token *)b)->digest, 32);
}

void kf_api_tokens_free(struct api_tokens *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->items[i].user);
    free(t->items);
    free(t);
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

/* Checks one "token,user,role" line (trimmed, not a comment): the token's
 * length and characters, the user, the role, and a host:NAME binding.
 * Sets *ret_token, *ret_user and *ret_role to parts of line. */
static int token_line(char *line, const char *path, unsigned int lineno, char **ret_token,
                      char **ret_user, enum api_role *ret_role, struct kf_strbuf *err)
{
    char *save = NULL, *s = strtok_r(line, ",", &save);
    char *user = strtok_r(NULL, ",", &save), *role = strtok_r(NULL, ",", &save);
    size_t host_len = strlen(KF_API_HOST_USER_PREFIX);
    enum api_role rl = API_ROLE_N;

    if (!s || !user || !role || strtok_r(NULL, ",", &save))
        return kf_err(err, -EINVAL, "%s:%u: expected \"token,user,role\"", path, lineno);
    s = trim(s);
    user = trim(user);
    role = trim(role);
    if (strlen(s) < TOKEN_MIN_LEN)
        return kf_err(err, -EINVAL, "%s:%u: token shorter than %d characters", path, lineno,
                      TOKEN_MIN_LEN);
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p > '~')
            return kf_err(err, -EINVAL, "%s:%u: token has a character that is not printable ASCII",
                          path, lineno);
    if (!*user)
        return kf_err(err, -EINVAL, "%s:%u: empty user name", path, lineno);
    for (int i = 0; i < API_ROLE_N; i++)
        if (strcmp(role, role_names[i]) == 0)
            rl = (enum api_role)i;
    if (rl == API_ROLE_N)
        return kf_err(err, -EINVAL,
                      "%s:%u: unknown role \"%s\" (roles: admin, editor, viewer, agent)", path,
                      lineno, role);
    if (!strncmp(user, KF_API_HOST_USER_PREFIX, host_len) &&
        (rl != API_ROLE_AGENT || !kf_name_valid(user + host_len)))
        /* a typo must not leave an agent token unbound, or bind another role */
        return kf_err(err, -EINVAL,
                      "%s:%u: user \"%s\": a user host:NAME binds an agent token to host NAME, "
                      "so it needs role agent and a host name (lower-case letters, digits, "
                      "'-' and '.')",
                      path, lineno, user);
    if (strchr(user, ':') && strncmp(user, KF_API_HOST_USER_PREFIX, host_len) != 0)
        /* "hosts:h1", "host;h1:": a misspelt binding must not become an
         * unbound agent that may write every host */
        return kf_err(err, -EINVAL,
                      "%s:%u: user \"%s\": ':' is only allowed in \"host:NAME\" (an agent "
                      "token bound to host NAME)",
                      path, lineno, user);
    *ret_token = s;
    *ret_user = user;
    *ret_role = rl;
    return 0;
}

int kf_api_tokens_load(const char *path, struct api_tokens **ret, struct kf_strbuf *err)
{
    struct api_tokens *t;
    char line[TOKEN_MAX_LINE + 2];
    FILE *f = fopen(path, "r");
    unsigned int lineno = 0;
    struct stat st;
    int r = 0;

    if (!f)
        return kf_err(err, -errno, "cannot read token file \"%s\": %s", path, strerror(errno));
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0027)) {
        /* tokens anybody on the machine may read, or a group may change */
        fclose(f);
        return kf_err(err, -EPERM,
                      "token file \"%s\" has mode %04o: it must not be readable by others nor "
                      "writable by its group (chmod 600 \"%s\")",
                      path, (unsigned)(st.st_mode & 07777), path);
    }
    t = kf_xcalloc(1, sizeof(*t));
    while (fgets(line, sizeof(line), f)) {
        char *s, *token = NULL, *user = NULL;
        enum api_role rl = API_ROLE_N;

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            r = kf_err(err, -EINVAL, "%s:%u: line longer than %d bytes", path, lineno,
                       TOKEN_MAX_LINE);
            goto close_file;
        }
        s = trim(line);
        if (!*s || *s == '#')
            continue;
        r = token_line(s, path, lineno, &token, &user, &rl, err);
        if (r < 0)
            goto close_file;
        if (t->n >= TOKENS_MAX) {
            r = kf_err(err, -EINVAL, "%s: more than %d tokens", path, TOKENS_MAX);
            goto close_file;
        }
        KF_GROW(t->items, t->alloc, t->n);
        digest(token, t->items[t->n].digest);
        t->items[t->n].user = kf_xstrdup(user);
        t->items[t->n].role = rl;
        t->n++;
    }
    if (ferror(f)) {
        r = kf_err(err, -EIO, "cannot read token file \"%s\"", path);
        goto close_file;
    }
    qsort(t->items, t->n, sizeof(*t->items), cmp_token);
    for (size_t i = 1; i < t->n; i++)
        if (memcmp(t->items[i].digest, t->items[i - 1].digest, 32) == 0) {
            r = kf_err(err, -EINVAL, "%s: the same token is given twice (users \"%s\" and \"%s\")",
                       path, t->items[i - 1].user, t->items[i].user);
            goto close_file;
        }
    fclose(f);
    *ret = t;
    return 0;

close_file:
    fclose(f);
    kf_api_tokens_free(t);
    return r;
}

bool kf_api_tokens_find(const struct api_tokens *t, const char *token, const char **ret_user,
                        enum api_role *ret_role)
{
    struct token key;
    const struct token *found;

    if (!token || !*token || strlen(token) > TOKEN_MAX_LINE)
        return false;
    digest(token, key.digest);
    found = bsearch(&key, t->items, t->n, sizeof(*t->items), cmp_token);
    if (!found)
        return false;
    *ret_user = found->user;
    *ret_role = found->role;
    return true;
}

size_t kf_api_tokens_count(const struct api_tokens *t)
{
    return t ? t->n : 0;
}

/* --- roles ---------------------------------------------------------------- */

#define VERB(v)    (1u << (v))
#define READ_VERBS (VERB(API_VERB_GET) | VERB(API_VERB_LIST) | VERB(API_VERB_WATCH))
#define WRITE_VERBS \
    (VERB(API_VERB_CREATE) | VERB(API_VERB_UPDATE) | VERB(API_VERB_PATCH) | VERB(API_VERB_DELETE))
#define ALL_VERBS (READ_VERBS | WRITE_VERBS | VERB(API_VERB_DELETECOLLECTION))

enum kind_class {
    ANY_KIND,   /* every kind */
    USER_KINDS, /* kinds users write (not system kinds such as Event, nor HOST_EXEC kinds),
                   and their status unless only kfleetd and agents write it */
    NAMED_KIND, /* the one kind named by plural */
};

/* Kinds whose spec says what programs run on hosts, with which arguments
 * and environment: writing them is running code as kfleet-agent on every
 * host they reach, meta hosts with guest CA keys included. Only admin
 * writes them (and kfleetd's controllers, through the registry): a
 * ControlPlaneMember's spec is filled by the lifecycle controller from the
 * catalog and the Profile, a BroadcastTask by the BroadcastJob controller
 * (BroadcastTask is a system kind: nobody writes it through the API). A
 * Release rewrites the version, and so the programs, of every cluster it
 * selects: admin's too. */
static const char *const host_exec_plurals[] = {
    "backuplocations", /* where agents write snapshot files on meta hosts */
    "broadcastjobs",   "controlplanemembers", "profiles", "releases",
};

/* Kinds whose status only kfleetd and agents write, because it is acted on:
 * a Backup's status names the snapshot file that a restore reads and a
 * deletion removes. An editor may create and delete a Backup (take one
 * now, drop one) but not point it at another file. */
static const char *const machine_status_plurals[] = { "backups" };

static bool machine_status(const struct kf_kind *k, const char *subresource)
{
    if (!subresource || strcmp(subresource, "status") != 0)
        return false;
    for (size_t i = 0; i < KF_ARRAY_SIZE(machine_status_plurals); i++)
        if (strcmp(k->plural, machine_status_plurals[i]) == 0)
            return true;
    return false;
}

static bool host_exec(const struct kf_kind *k)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(host_exec_plurals); i++)
        if (strcmp(k->plural, host_exec_plurals[i]) == 0)
            return true;
    return false;
}

struct role_rule {
    enum api_role role;
    unsigned int verbs;
    enum kind_class kinds;
    const char *plural;      /* NAMED_KIND */
    const char *subresource; /* NULL: the object itself; "status"; "*": both */
};

/* The whole authorization policy. System kinds (Event, BroadcastTask) are
 * written by kfleetd itself; admin may still delete them. Kinds that run
 * programs on hosts (host_exec_plurals) are admin's to write: an editor
 * may not run code on hosts (docs/security.md). */
static const struct role_rule role_rules[] = {
    { API_ROLE_ADMIN, ALL_VERBS, ANY_KIND, NULL, "*" },
    { API_ROLE_EDITOR, READ_VERBS, ANY_KIND, NULL, "*" },
    { API_ROLE_EDITOR, WRITE_VERBS | VERB(API_VERB_DELETECOLLECTION), USER_KINDS, NULL, "*" },
    { API_ROLE_VIEWER, READ_VERBS, ANY_KIND, NULL, "*" },
    { API_ROLE_AGENT, READ_VERBS, ANY_KIND, NULL, "*" },
    /* an agent registers and updates its own Host and reports status */
    { API_ROLE_AGENT, VERB(API_VERB_CREATE) | VERB(API_VERB_UPDATE) | VERB(API_VERB_PATCH),
      NAMED_KIND, "hosts", "*" },
    /* and reports the status of the control-plane members it runs */
    { API_ROLE_AGENT, VERB(API_VERB_UPDATE) | VERB(API_VERB_PATCH), NAMED_KIND,
      "controlplanemembers", "status" },
    /* and of the etcd snapshots its hosts take (agent-backup.c) */
    { API_ROLE_AGENT, VERB(API_VERB_UPDATE) | VERB(API_VERB_PATCH), NAMED_KIND, "backups",
      "status" },
};

static bool rule_matches(const struct role_rule *rule, enum api_verb verb, const struct kf_kind *k,
                         const char *subresource)
{
    if (!(rule->verbs & VERB(verb)))
        return false;
    switch (rule->kinds) {
    case ANY_KIND:
        break;
    case USER_KINDS:
        if (k->system || host_exec(k) || machine_status(k, subresource))
            return false;
        break;
    case NAMED_KIND:
        if (strcmp(k->plural, rule->plural) != 0)
            return false;
        break;
    }
    if (strcmp(rule->subresource, "*") == 0)
        return true;
    return subresource && strcmp(rule->subresource, subresource) == 0;
}

bool kf_api_role_allows(enum api_role role, enum api_verb verb, const struct kf_kind *k,
                        const char *subresource)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(role_rules); i++)
        if (role_rules[i].role == role && rule_matches(&role_rules[i], verb, k, subresource))
            return true;
    return false;
}

void kf_api_roles_allowing(enum api_verb verb, const struct kf_kind *k, const char *subresource,
                           struct kf_strbuf *out)
{
    size_t n = 0, count = 0;

    for (int r = 0; r < API_ROLE_N; r++)
        if (kf_api_role_allows((enum api_role)r, verb, k, subresource))
            count++;
    for (int r = API_ROLE_N - 1; r >= 0; r--) {
        if (!kf_api_role_allows((enum api_role)r, verb, k, subresource))
            continue;
        n++;
        kf_strbuf_addf(out, "%s%s", n == 1 ? "" : n == count ? " or " : ", ", role_names[r]);
    }
    if (!count)
        kf_strbuf_addstr(out, "no role");
}
