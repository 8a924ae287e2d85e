/* kind-alertreceiver.c: AlertReceiver, one destination of alert
 * notifications: a plain webhook, a DingTalk robot (signed), an SMS gateway
 * (an HTTP request template) or email. Alertmanager sends webhook, DingTalk
 * and SMS receivers' notifications to kfleetd's receiver adapter, which
 * holds the destination and its secrets; email goes through Alertmanager's
 * own SMTP settings.
 *
 * Secrets are never part of the object: a DingTalk signing secret or a
 * gateway key is named by reference, either an absolute file on kfleetd's
 * machine (secretFile) or a name under <data-dir>/secrets/ (secretRef), read
 * when a notification is delivered. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/schema.h"
#include "kfleet/strbuf.h"
#include "fleet/fleet-internal.h"

static const char *const receiver_types[] = { "webhook", "dingtalk", "sms", "email", NULL };
static const char *const http_methods[] = { "POST", "PUT", "GET", NULL };

#define SECRET_FIELDS                                                                          \
    KF_STRING("secretFile",                                                                    \
              "Absolute path of a file on kfleetd's machine holding the secret, inside "       \
              "/etc/kfleet/ or a folder of --monitoring-config secretDirs, readable by its "   \
              "owner only; read at each delivery.",                                            \
              .max_len = 1024),                                                                \
        KF_OBJECT("secretRef",                                                                 \
                  "The secret by name: the file <data-dir>/secrets/<name> of kfleetd (0600); " \
                  "the name is the receiver's, or starts with it and a dot.",                  \
                  KF_FIELDS(KF_STRING("name", "File name under <data-dir>/secrets/.",          \
                                      .flags = KF_F_REQUIRED, .format = KF_FMT_DNS_SUBDOMAIN)))

#define HEADERS_FIELD                                                                            \
    KF_MAP("headers", "Extra request headers (no secrets here: they are stored in the object).", \
           KF_ITEM_STRING(.max_len = 1024), .max_len = 16)

static const struct kf_field receiver_spec_fields[] = {
    KF_STRING("type", "webhook, dingtalk, sms or email.", .flags = KF_F_REQUIRED,
              .enum_values = receiver_types),
    KF_BOOL("sendResolved", "Also notify when the alerts resolve.", .dflt = "true"),
    KF_OBJECT("webhook", "A plain webhook: the Alertmanager payload (version 4) is POSTed.",
              KF_FIELDS(KF_STRING("url", "Where to POST.", .flags = KF_F_REQUIRED,
                                  .format = KF_FMT_URL, .max_len = 2048),
                        HEADERS_FIELD,
                        KF_INT("maxAlerts", "Alerts per payload at most (0: all).",
                               .flags = KF_F_MIN | KF_F_MAX, .min = 0, .max = 1000))),
    KF_OBJECT(
        "dingtalk", "A DingTalk robot: one markdown message per notification.",
        KF_FIELDS(KF_STRING("url",
                            "The robot URL (https://oapi.dingtalk.com/robot/send?access_token="
                            "...); the access token in it is a credential, so prefer urlFile.",
                            .format = KF_FMT_URL, .max_len = 2048),
                  KF_STRING("urlFile",
                            "Absolute path of a file on kfleetd's machine holding the robot URL.",
                            .max_len = 1024),
                  SECRET_FIELDS,
                  KF_ARRAY("atMobiles", "Phone numbers to @mention.", KF_ITEM_STRING(.max_len = 32),
                           .max_len = 32),
                  KF_BOOL("atAll", "@mention everyone in the group.", .dflt = "false"))),
    KF_OBJECT(
        "sms", "An SMS gateway called with an HTTP request template.",
        KF_FIELDS(KF_STRING("method", "POST, PUT or GET.", .enum_values = http_methods,
                            .dflt = "\"POST\""),
                  KF_STRING("url",
                            "The gateway URL; may hold placeholders ({{message}}, {{phone}}, "
                            "...), but not {{secret}} (put it in a header or the body).",
                            .flags = KF_F_REQUIRED, .max_len = 2048),
                  HEADERS_FIELD,
                  KF_STRING("body", "The request body template (JSON or form).", .max_len = 8192),
                  KF_STRING("contentType", "Content-Type of the body.", .max_len = 128),
                  KF_ARRAY("phones", "Who gets the message.", KF_ITEM_STRING(.max_len = 32),
                           .flags = KF_F_REQUIRED | KF_F_UNIQUE, .min_len = 1, .max_len = 64),
                  KF_INT("maxChars", "Length cap of {{message}} in characters.",
                         .flags = KF_F_MIN | KF_F_MAX, .min = 16, .max = 4096),
                  SECRET_FIELDS)),
    KF_OBJECT(
        "email", "Email through Alertmanager's SMTP settings (kfleetd --monitoring-config).",
        KF_FIELDS(KF_ARRAY("to", "Recipients.", KF_ITEM_STRING(.max_len = 254),
                           .flags = KF_F_REQUIRED | KF_F_UNIQUE, .min_len = 1, .max_len = 32))),
    KF_END,
};

static const struct kf_schema receiver_spec = {
    .description = "Desired state of an AlertReceiver.",
    .fields = receiver_spec_fields,
};

static const struct kf_field receiver_status_fields[] = {
    KF_INT("observedGeneration", "The generation the status reflects.", .flags = KF_F_MIN,
           .min = 0),
    KF_CONDITIONS,
    KF_END,
};

static const struct kf_schema receiver_status = {
    .description = "Observed state of an AlertReceiver, written by kfleetd.",
    .fields = receiver_status_fields,
    .open = true,
};

static void check_secret_file(const json_t *obj, const char *path, struct kf_causes *causes)
{
    const char *f = kf_json_str(obj, path, NULL);

    if (f && f[0] != '/')
        kf_causes_add(causes, "FieldValueInvalid", path,
                      "Invalid value: must be an absolute path on kfleetd's machine");
}

/* A receiver may use only the secrets named after it: <receiver> or
 * <receiver>.<anything> under <data-dir>/secrets/ (docs/security.md,
 * "Secrets"), so that one receiver cannot send another's secret. */
static void check_secret_ref(const json_t *obj, const char *path, struct kf_causes *causes)
{
    const char *ref = kf_json_str(obj, path, NULL), *name = kf_obj_name(obj);
    size_t n = name ? strlen(name) : 0;

    if (ref && (!name || strncmp(ref, name, n) != 0 || (ref[n] != '\0' && ref[n] != '.')))
        kf_causes_add(causes, "FieldValueForbidden", path,
                      "Forbidden: a receiver may use only the secrets named after it "
                      "(\"%s\" or \"%s.<suffix>\")",
                      name ? name : "", name ? name : "");
}

/* Whether an SMS URL template holds {{secret}} (spaces allowed inside the
 * braces, as the template engine allows them). */
static bool secret_in_url(const char *url)
{
    for (const char *p = strstr(url, "{{"); p; p = strstr(p + 2, "{{")) {
        const char *q = p + 2;

        while (*q == ' ')
            q++;
        if (strncmp(q, "secret", 6) != 0)
            continue;
        q += 6;
        while (*q == ' ')
            q++;
        if (strncmp(q, "}}", 2) == 0)
            return true;
    }
    return false;
}

static void receiver_validate(const json_t *obj, const json_t *old, struct kf_causes *causes)
{
    static const char *const sections[] = { "webhook", "dingtalk", "sms", "email" };
    const char *type = kf_json_str(obj, "spec.type", "");
    (void)old;

    for (size_t i = 0; i < KF_ARRAY_SIZE(sections); i++) {
        char path[32];
        bool has;

        snprintf(path, sizeof(path), "spec.%s", sections[i]);
        has = json_is_object(kf_json_path(obj, path));
        if (strcmp(type, sections[i]) == 0 && !has)
            kf_causes_add(causes, "FieldValueRequired", path,
                          "Required value: type %s needs spec.%s", type, sections[i]);
        else if (strcmp(type, sections[i]) != 0 && has)
            kf_causes_add(causes, "FieldValueForbidden", path,
                          "Forbidden: only type %s has spec.%s", sections[i], sections[i]);
    }
    if (strcmp(type, "dingtalk") == 0) {
        bool url = kf_json_str(obj, "spec.dingtalk.url", NULL) != NULL;
        bool file = kf_json_str(obj, "spec.dingtalk.urlFile", NULL) != NULL;

        if (url == file)
            kf_causes_add(causes, url ? "FieldValueForbidden" : "FieldValueRequired",
                          "spec.dingtalk.url", "%s",
                          url ? "Forbidden: give url or urlFile, not both"
                              : "Required value: the robot URL (url or urlFile)");
    }
    for (size_t i = 1; i < 3; i++) {
        char a[48], b[48];

        snprintf(a, sizeof(a), "spec.%s.secretFile", sections[i]);
        snprintf(b, sizeof(b), "spec.%s.secretRef", sections[i]);
        check_secret_file(obj, a, causes);
        if (kf_json_path(obj, a) && kf_json_path(obj, b))
            kf_causes_add(causes, "FieldValueForbidden", b,
                          "Forbidden: give secretFile or secretRef, not both");
    }
    check_secret_file(obj, "spec.dingtalk.urlFile", causes);
    check_secret_ref(obj, "spec.dingtalk.secretRef.name", causes);
    check_secret_ref(obj, "spec.sms.secretRef.name", causes);
    if (secret_in_url(kf_json_str(obj, "spec.sms.url", "")))
        kf_causes_add(causes, "FieldValueForbidden", "spec.sms.url",
                      "Forbidden: {{secret}} may not be in the URL (URLs are logged by gateways "
                      "and proxies); put it in a header or the body");
    {
        json_t *to = kf_json_path(obj, "spec.email.to");
        size_t i;
        json_t *v;

        json_array_foreach(to, i, v)
        {
            const char *s = json_string_value(v);
            const char *at = s ? strchr(s, '@') : NULL;

            if (!s || !at || at == s || !at[1] || strchr(at + 1, '@') || strpbrk(s, " \t\r\n,<>")) {
                char path[48];

                snprintf(path, sizeof(path), "spec.email.to[%zu]", i);
                kf_causes_add(causes, "FieldValueInvalid", path,
                              "Invalid value: not an email address (user@domain)");
            }
        }
    }
}

static void col_target(const json_t *obj, struct kf_strbuf *out)
{
    const char *type = kf_json_str(obj, "spec.type", "");

    if (strcmp(type, "webhook") == 0) {
        /* scheme://host/path only: the query may hold tokens */
        const char *u = kf_json_str(obj, "spec.webhook.url", "");
        size_t n = strcspn(u, "?#");

        kf_strbuf_add(out, u, n);
    } else if (strcmp(type, "email") == 0) {
        kf_fleet_col_count(obj, "spec.email.to", out);
    } else if (strcmp(type, "sms") == 0) {
        kf_fleet_col_count(obj, "spec.sms.phones", out);
    }
}

static const struct kf_column receiver_columns[] = {
    { .header = "TYPE", .path = "spec.type", .type = "string" },
    { .header = "TARGET", .fn = col_target, .type = "string" },
    { .header = "RESOLVED", .path = "spec.sendResolved", .type = "string", .wide = true },
};

static const char *const receiver_short[] = { "arcv", NULL };

const struct kf_kind kf_kind_alertreceiver = {
    .kind = "AlertReceiver",
    .plural = "alertreceivers",
    .singular = "alertreceiver",
    .short_names = receiver_short,
    .description = "Where alert notifications go: a webhook, a DingTalk robot (signed "
                   "markdown), an SMS gateway (an HTTP request template) or email. AlertRoutes "
                   "name receivers. Secrets are referenced (a file or <data-dir>/secrets/<name>), "
                   "never stored in the object.",
    .has_status = true,
    .name_is_label = true,
    .spec_schema = &receiver_spec,
    .status_schema = &receiver_status,
    .validate = receiver_validate,
    .columns = receiver_columns,
    .n_columns = KF_ARRAY_SIZE(receiver_columns),
};
