/* api-table.c: the meta.k8s.io/v1 Table that kubectl asks for
 * (Accept: application/json;as=Table;v=v1;g=meta.k8s.io), built from the
 * kind's columns (struct kf_column) so that `kubectl get` shows what
 * `kfleet get` shows: NAME, the kind's columns (the wide ones with priority
 * 1, shown by -o wide), AGE. Ages are rendered here, as Kubernetes renders
 * them for custom resources ("45s", "3m12s", "5h", "12d"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kfleet/error.h"
#include "kfleet/json.h"
#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "api/api-internal.h"

bool kf_api_wants_table(struct api_request *req)
{
    const char *accept = kf_api_header(req, MHD_HTTP_HEADER_ACCEPT);
    struct api_media_range m;

    req->vary_accept = true;
    for (size_t n = 0; accept && n < API_ACCEPT_MAX_RANGES && kf_api_accept_next(&accept, &m); n++)
        if (!m.refused && strcasecmp(m.as, "Table") == 0 &&
            strcasecmp(m.group, "meta.k8s.io") == 0 &&
            (!m.version[0] || strcmp(m.version, "v1") == 0 || strcmp(m.version, "v1beta1") == 0))
            return true;
    return false;
}

int kf_api_table_include(struct api_request *req, enum kf_api_table_include *ret)
{
    const char *v = kf_api_query_get(&req->query, "includeObject");

    if (!v || !*v || strcmp(v, "Metadata") == 0)
        *ret = API_TABLE_METADATA;
    else if (strcmp(v, "Object") == 0)
        *ret = API_TABLE_OBJECT;
    else if (strcmp(v, "None") == 0)
        *ret = API_TABLE_NONE;
    else {
        kf_api_reply_statusf(req, -KF_EBADREQUEST,
                             "includeObject must be None, Metadata or Object, not \"%s\"", v);
        return -KF_EBADREQUEST;
    }
    return 0;
}

/* As Kubernetes prints durations: the two most significant units while
 * they say something, one after that. */
static void human_age(int64_t secs, struct kf_strbuf *out)
{
    int64_t m = secs / 60, h = secs / 3600, d = h / 24;

    if (secs < -1)
        kf_strbuf_addstr(out, "<invalid>");
    else if (secs < 0)
        kf_strbuf_addstr(out, "0s");
    else if (secs < 120)
        kf_strbuf_addf(out, "%llds", (long long)secs);
    else if (m < 10)
        secs % 60 ? kf_strbuf_addf(out, "%lldm%llds", (long long)m, (long long)(secs % 60))
                  : kf_strbuf_addf(out, "%lldm", (long long)m);
    else if (m < 180)
        kf_strbuf_addf(out, "%lldm", (long long)m);
    else if (h < 8)
        m % 60 ? kf_strbuf_addf(out, "%lldh%lldm", (long long)h, (long long)(m % 60))
               : kf_strbuf_addf(out, "%lldh", (long long)h);
    else if (h < 48)
        kf_strbuf_addf(out, "%lldh", (long long)h);
    else if (h < 24 * 8)
        h % 24 ? kf_strbuf_addf(out, "%lldd%lldh", (long long)d, (long long)(h % 24))
               : kf_strbuf_addf(out, "%lldd", (long long)d);
    else if (h < 24 * 365 * 2)
        kf_strbuf_addf(out, "%lldd", (long long)d);
    else if (h < 24 * 365 * 8)
        d % 365 ? kf_strbuf_addf(out, "%lldy%lldd", (long long)(d / 365), (long long)(d % 365))
                : kf_strbuf_addf(out, "%lldy", (long long)(d / 365));
    else
        kf_strbuf_addf(out, "%lldy", (long long)(d / 365));
}

static json_t *age_cell(const char *timestamp)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    int64_t ms;
    json_t *cell;

    if (!timestamp || kf_time_parse_rfc3339(timestamp, &ms) < 0)
        return json_null();
    human_age((kf_now_ms() - ms) / 1000, &sb);
    cell = json_string(sb.buf);
    kf_strbuf_release(&sb);
    return cell;
}

static json_t *column_def(const char *name, const char *type, const char *format,
                          const char *description, int priority)
{
    json_t *c = json_object();

    json_object_set_new(c, "name", json_string(name));
    json_object_set_new(c, "type", json_string(type));
    json_object_set_new(c, "format", json_string(format));
    json_object_set_new(c, "description", json_string(description));
    json_object_set_new(c, "priority", json_integer(priority));
    return c;
}

json_t *kf_api_table_new(const struct kf_kind *k, const char *rv, const char *cont)
{
    json_t *t = json_object(), *meta = json_object(), *cols = json_array();

    json_object_set_new(t, "kind", json_string("Table"));
    json_object_set_new(t, "apiVersion", json_string("meta.k8s.io/v1"));
    if (rv)
        json_object_set_new(meta, "resourceVersion", json_string(rv));
    if (cont)
        json_object_set_new(meta, "continue", json_string(cont));
    json_object_set_new(t, "metadata", meta);
    json_array_append_new(
        cols, column_def("Name", "string", "name", "Name must be unique within the kind.", 0));
    for (size_t i = 0; i < k->n_columns; i++) {
        const struct kf_column *c = &k->columns[i];
        const char *type = c->type ? c->type : "string";

        /* Ages and dates are rendered as text here. */
        if (strcmp(type, "date") == 0)
            type = "string";
        json_array_append_new(
            cols, column_def(c->header, type, "", c->path ? c->path : c->header, c->wide ? 1 : 0));
    }
    json_array_append_new(
        cols, column_def("Age", "string", "", "Time since metadata.creationTimestamp.", 0));
    json_object_set_new(t, "columnDefinitions", cols);
    json_object_set_new(t, "rows", json_array());
    return t;
}

static json_t *cell_value(const struct kf_column *c, const json_t *obj)
{
    struct kf_strbuf sb = KF_STRBUF_INIT;
    json_t *cell;

    kf_column_value(c, obj, &sb);
    if (sb.len == 0) {
        cell = json_null();
    } else if (c->type && strcmp(c->type, "date") == 0) {
        cell = age_cell(sb.buf);
    } else if (c->type && strcmp(c->type, "integer") == 0) {
        int64_t v;

        cell = kf_parse_int64(sb.buf, &v) == 0 ? json_integer(v) : json_string(sb.buf);
    } else if (c->type && strcmp(c->type, "number") == 0) {
        double v;

        cell = kf_parse_double(sb.buf, &v) == 0 ? json_real(v) : json_string(sb.buf);
    } else {
        cell = json_string(sb.buf);
    }
    kf_strbuf_release(&sb);
    return cell;
}

void kf_api_table_add_row(json_t *table, const struct kf_kind *k, const json_t *obj,
                          enum kf_api_table_include inc)
{
    json_t *row = json_object(), *cells = json_array();
    const char *name = kf_obj_name(obj);

    json_array_append_new(cells, json_string(name ? name : ""));
    for (size_t i = 0; i < k->n_columns; i++)
        json_array_append_new(cells, cell_value(&k->columns[i], obj));
    json_array_append_new(cells, age_cell(kf_json_str(obj, "metadata.creationTimestamp", NULL)));
    json_object_set_new(row, "cells", cells);
    if (inc == API_TABLE_OBJECT) {
        json_object_set(row, "object", (json_t *)obj);
    } else if (inc == API_TABLE_METADATA) {
        json_t *pom = json_object();
        json_t *meta = json_object_get(obj, "metadata");

        json_object_set_new(pom, "kind", json_string("PartialObjectMetadata"));
        json_object_set_new(pom, "apiVersion", json_string("meta.k8s.io/v1"));
        json_object_set_new(pom, "metadata", meta ? json_deep_copy(meta) : json_object());
        json_object_set_new(row, "object", pom);
    }
    json_array_append_new(json_object_get(table, "rows"), row);
}
