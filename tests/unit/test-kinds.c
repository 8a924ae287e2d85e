/* test-kinds.c: admission of every kind as a user meets it: metadata
 * rules, apiVersion/kind, each kind's required fields, defaults and
 * cross-field rules, with the field path and message the API returns; plus
 * lookup by name, columns and the OpenAPI document. */
#include "fleet-test.h"

#include "kfleet/kind.h"
#include "kfleet/obj.h"
#include "kfleet/schema.h"

/* Admits text as a create of kind; returns the causes (caller releases). */
static int admit(const struct kf_kind *k, const char *text, const char *old_text,
                 struct kf_causes *causes, json_t **ret)
{
    json_t *obj = J(text), *old = old_text ? J(old_text) : NULL;
    int rc = kf_kind_admit(k, obj, old, false, causes);

    if (ret)
        *ret = obj;
    else
        json_decref(obj);
    json_decref(old);
    return rc;
}

/* One admission as a table row: the object (and, for an update, the stored
 * one) and what the API answers: rc 0, or -KF_EINVALID with these causes,
 * each a field, its type and a part of its message. A row whose type is
 * NULL says the field has no cause. */
struct admit_case {
    const struct kf_kind *kind;
    const char *text;
    const char *old;
    int rc;
    struct {
        const char *field, *type, *text;
    } causes[10];
};

static void run_cases(const struct admit_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct admit_case *t = &cases[i];
        struct kf_causes causes = KF_CAUSES_INIT;
        int rc = admit(t->kind, t->text, t->old, &causes, NULL);

        if (rc != t->rc) {
            struct kf_strbuf all = KF_STRBUF_INIT;

            kf_causes_format(&causes, &all);
            print_error("case %zu (%s): admit returned %d, expected %d; causes: %s\n", i,
                        t->kind->kind, rc, t->rc, all.buf);
            fail();
        }
        for (size_t j = 0; j < KF_ARRAY_SIZE(t->causes) && t->causes[j].field; j++) {
            if (t->causes[j].type)
                assert_cause(&causes, t->causes[j].field, t->causes[j].type, t->causes[j].text);
            else
                assert_null(find_cause(&causes, t->causes[j].field));
        }
        kf_causes_release(&causes);
    }
}

#define RUN_CASES(cases) run_cases((cases), KF_ARRAY_SIZE(cases))

static void test_lookup(void **state)
{
    size_t n;
    const struct kf_kind *const *all = kf_kinds(&n);

    assert_int_equal(n, 16);
    assert_ptr_equal(kf_kind_find("rel"), &kf_kind_release);
    assert_ptr_equal(kf_kind_find("Releases"), &kf_kind_release);
    assert_ptr_equal(kf_kind_find("bk"), &kf_kind_backup);
    assert_ptr_equal(kf_kind_find("BackupLocations"), &kf_kind_backuplocation);
    assert_ptr_equal(kf_kind_find("arcv"), &kf_kind_alertreceiver);
    assert_ptr_equal(kf_kind_find("AlertRoutes"), &kf_kind_alertroute);
    assert_ptr_equal(kf_kind_find("gc"), &kf_kind_guestcluster);
    assert_ptr_equal(kf_kind_find("GuestClusters"), &kf_kind_guestcluster);
    assert_ptr_equal(kf_kind_find("guestcluster"), &kf_kind_guestcluster);
    assert_ptr_equal(kf_kind_find("cpm"), &kf_kind_controlplanemember);
    assert_ptr_equal(kf_kind_find("ev"), &kf_kind_event);
    assert_ptr_equal(kf_kind_find("IPPool"), &kf_kind_ippool);
    assert_null(kf_kind_find("pods"));
    assert_null(kf_kind_find(""));
    /* names never collide across kinds */
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(kf_kind_find(all[i]->plural), all[i]);
    assert_true(kf_kind_event.system);
}

static const struct admit_case metadata_cases[] = {
    { &kf_kind_region,
      "{'apiVersion':'kfleet.io/v2','kind':'Unit','metadata':{'name':'Bad_Name',"
      "'labels':{'-x':'y','ok':'not ok','n':5},'finalizers':['a b','kfleet.io/x',"
      "'kfleet.io/x'],'colour':'red'},'spec':{'zones':['a']}}",
      NULL,
      -KF_EINVALID,
      { { "apiVersion", "FieldValueInvalid", "must be \"kfleet.io/v1\"" },
        { "kind", "FieldValueInvalid", "must be \"Region\"" },
        { "metadata.name", "FieldValueInvalid",
          "invalid value \"Bad_Name\": a Region name must be a DNS label" },
        { "metadata.labels[-x]", "FieldValueInvalid", "invalid key \"-x\"" },
        { "metadata.labels[ok]", "FieldValueInvalid", "invalid value \"not ok\"" },
        { "metadata.labels[n]", "FieldValueTypeInvalid", "must be a string" },
        { "metadata.finalizers[0]", "FieldValueInvalid", "qualified name" },
        { "metadata.finalizers[2]", "FieldValueDuplicate", "kfleet.io/x" },
        { "metadata.colour", "FieldValueUnknown", "unknown field \"colour\"" } } },
    /* missing name */
    { &kf_kind_region,
      "{'metadata':{},'spec':{'zones':['a']}}",
      NULL,
      -KF_EINVALID,
      { { "metadata.name", "FieldValueRequired", "Required value" } } },
    /* unknown top-level members; status on a kind without one */
    { &kf_kind_template,
      "{'metadata':{'name':'t'},'spec':{'profile':'standard'},"
      "'status':{'phase':'x'},'specs':{}}",
      NULL,
      -KF_EINVALID,
      { { "status", "FieldValueUnknown", "this kind has no status" },
        { "specs", "FieldValueUnknown", "unknown field \"specs\"" } } },
    /* names with dots only where the kind allows them */
    { &kf_kind_guestcluster,
      "{'metadata':{'name':'web.prod'},'spec':{'region':'r','network':{'vpc':'v'}}}",
      NULL,
      -KF_EINVALID,
      { { "metadata.name", "FieldValueInvalid", "a GuestCluster name must be a DNS label" } } },
    /* subdomain names for kinds that allow dots */
    { &kf_kind_host,
      "{'metadata':{'name':'h1.hz.example.com'},'spec':{'role':'meta','unit':'u1','zone':'a'}}",
      NULL,
      0,
      { { NULL } } },
};

static void test_metadata(void **state)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *obj = NULL;

    RUN_CASES(metadata_cases);

    /* apiVersion and kind filled in when absent; namespace dropped */
    assert_int_equal(admit(&kf_kind_region,
                           "{'metadata':{'name':'cn-hz','namespace':'default'},"
                           "'spec':{'zones':['a']}}",
                           NULL, &causes, &obj),
                     0);
    assert_string_equal(kf_json_str(obj, "apiVersion", ""), "kfleet.io/v1");
    assert_string_equal(kf_json_str(obj, "kind", ""), "Region");
    assert_null(kf_json_path(obj, "metadata.namespace"));
    json_decref(obj);

    /* kubectl's "status: {}" on a kind without status, null metadata members */
    assert_int_equal(admit(&kf_kind_template,
                           "{'metadata':{'name':'t','labels':null,'creationTimestamp':null},"
                           "'spec':{'profile':'standard'},'status':{}}",
                           NULL, &causes, &obj),
                     0);
    assert_null(json_object_get(obj, "status"));
    assert_null(kf_json_path(obj, "metadata.labels"));
    assert_null(kf_json_path(obj, "metadata.creationTimestamp"));
    json_decref(obj);

    /* bounds: 64 labels, 256 KiB of annotations, 32 finalizers, owners */
    {
        json_t *o = J("{'metadata':{'name':'cn-hz','labels':{},'annotations':{},"
                      "'finalizers':[],'ownerReferences':[{'apiVersion':'kfleet.io/v1',"
                      "'kind':'Unit','name':'Bad Name'}]},'spec':{'zones':['a']}}");
        char *big = kf_xmalloc(200 * 1024);

        memset(big, 'x', 200 * 1024 - 1);
        big[200 * 1024 - 1] = '\0';
        for (int i = 0; i < 65; i++) {
            char key[16];

            snprintf(key, sizeof(key), "k%d", i);
            kf_json_set_str(kf_json_path(o, "metadata"), key, "v");
            json_object_set_new(kf_json_path(o, "metadata.labels"), key, json_string("v"));
            if (i < 33)
                json_array_append_new(kf_json_path(o, "metadata.finalizers"),
                                      json_sprintf("kfleet.io/f%d", i));
        }
        json_object_set_new(kf_json_path(o, "metadata.annotations"), "a", json_string(big));
        json_object_set_new(kf_json_path(o, "metadata.annotations"), "b", json_string(big));
        free(big);
        /* the stray metadata keys k0.. are unknown fields too */
        assert_int_equal(kf_kind_admit(&kf_kind_region, o, NULL, false, &causes), -KF_EINVALID);
        assert_cause(&causes, "metadata.labels", "FieldValueTooMany", "at most 64 labels (got 65)");
        assert_cause(&causes, "metadata.annotations", "FieldValueTooLong",
                     "may not be larger than 262144 bytes in total");
        assert_cause(&causes, "metadata.finalizers", "FieldValueTooMany", "at most 32 items");
        assert_cause(&causes, "metadata.ownerReferences[0].uid", "FieldValueRequired",
                     "Required value");
        assert_cause(&causes, "metadata.ownerReferences[0].name", "FieldValueInvalid",
                     "DNS subdomain");
        assert_cause(&causes, "metadata.k0", "FieldValueUnknown", "unknown field \"k0\"");
        kf_causes_release(&causes);
        json_decref(o);
    }
}

static const struct admit_case region_unit_cases[] = {
    { &kf_kind_unit,
      "{'metadata':{'name':'hz-u1'},'spec':{'region':'cn-hangzhou',"
      "'zones':['a','b','c'],'waterlevel':0.5}}",
      NULL,
      -KF_EINVALID,
      { { "spec.waterlevel", "FieldValueUnknown",
          "unknown field \"waterlevel\": did you mean \"waterLevel\"?" } } },
    { &kf_kind_unit,
      "{'metadata':{'name':'hz-u1'},'spec':{'region':'cn-hangzhou',"
      "'zones':[],'waterLevel':1,'gradeRatio':{'G7':0.1,'G4':2},"
      "'quota':{'maxClusters':-1}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.zones", "FieldValueRequired", "must have at least 1 item" },
        { "spec.waterLevel", "FieldValueInvalid", "must be greater than 0 and less than 1, got 1" },
        { "spec.gradeRatio[G7]", "FieldValueNotSupported", "unsupported key" },
        { "spec.gradeRatio[G4]", "FieldValueInvalid", "at most 1" },
        { "spec.quota.maxClusters", "FieldValueInvalid", "at least 0" } } },
    /* region is immutable */
    { &kf_kind_unit,
      "{'metadata':{'name':'u'},'spec':{'region':'b','zones':['a']}}",
      "{'metadata':{'name':'u'},'spec':{'region':'a','zones':['a']}}",
      -KF_EINVALID,
      { { "spec.region", "FieldValueInvalid", "field is immutable" } } },
    /* the endpoint address: one address, not every one or a group */
    { &kf_kind_unit,
      "{'metadata':{'name':'u'},'spec':{'region':'r','zones':['a','b','c'],"
      "'endpointAddress':'0.0.0.0'}}",
      NULL,
      -KF_EINVALID,
      { { "spec.endpointAddress", "FieldValueInvalid", "means every address" } } },
    { &kf_kind_unit,
      "{'metadata':{'name':'u'},'spec':{'region':'r','zones':['a','b','c'],"
      "'endpointAddress':'ff02::1'}}",
      NULL,
      -KF_EINVALID,
      { { "spec.endpointAddress", "FieldValueInvalid", "multicast" } } },
    { &kf_kind_unit,
      "{'metadata':{'name':'u'},'spec':{'region':'r','zones':['a','b','c'],"
      "'endpointAddress':'10.1.2.3'}}",
      NULL,
      0,
      { { NULL } } },
};

static void test_region_unit(void **state)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *obj = NULL;

    assert_int_equal(admit(&kf_kind_region,
                           "{'metadata':{'name':'eu'},'spec':{'zones':['a','b','a'],"
                           "'complianceTags':['GDPR']}}",
                           NULL, &causes, &obj),
                     -KF_EINVALID);
    assert_cause(&causes, "spec.zones[2]", "FieldValueDuplicate", "Duplicate value: \"a\"");
    assert_cause(&causes, "spec.complianceTags[0]", "FieldValueInvalid", "DNS label");
    kf_causes_release(&causes);
    /* defaults went into the object even though it was rejected */
    assert_string_equal(kf_json_str(obj, "spec.monitoring.scrapeInterval", ""), "30s");
    json_decref(obj);

    RUN_CASES(region_unit_cases);

    assert_int_equal(admit(&kf_kind_unit,
                           "{'metadata':{'name':'hz-u1'},'spec':{'region':'cn-hangzhou',"
                           "'zones':['a','b','c']}}",
                           NULL, &causes, &obj),
                     0);
    /* no default: absent means the region's mark (else 0.60), decided by placement */
    assert_null(kf_json_path(obj, "spec.waterLevel"));
    assert_false(kf_json_bool(obj, "spec.cordoned", true));
    json_decref(obj);
}

static const struct admit_case host_cases[] = {
    { &kf_kind_host,
      "{'metadata':{'name':'h'},'spec':{'role':'meta','zone':'a','cluster':'c'}}",
      NULL,
      -KF_EINVALID,
      { { "spec.unit", "FieldValueRequired", "a meta host belongs to a unit" },
        { "spec.cluster", "FieldValueForbidden", "not a cluster" } } },
    { &kf_kind_host,
      "{'metadata':{'name':'h'},'spec':{'role':'worker','zone':'a'}}",
      NULL,
      -KF_EINVALID,
      { { "spec.cluster", "FieldValueRequired", "node of a guest cluster" } } },
    { &kf_kind_host,
      "{'metadata':{'name':'h'},'spec':{'role':'boss','zone':'a',"
      "'capacity':{'cpu':'lots'},'taints':[{'key':'k','effect':'Never'}],"
      "'address':'10.0.0.300'}}",
      NULL,
      -KF_EINVALID,
      { { "spec.role", "FieldValueNotSupported", "supported values: \"meta\", \"worker\"" },
        { "spec.capacity[cpu]", "FieldValueInvalid", "must be a quantity" },
        { "spec.taints[0].effect", "FieldValueNotSupported", "NoSchedule" },
        { "spec.address", "FieldValueInvalid",
          "\"10.0.0.300\" is not an IPv4 or IPv6 address" } } },
};

static void test_host(void **state)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *obj = NULL;

    RUN_CASES(host_cases);
    /* quantities given as numbers become strings */
    assert_int_equal(admit(&kf_kind_host,
                           "{'metadata':{'name':'h'},'spec':{'role':'meta','unit':'u',"
                           "'zone':'a','capacity':{'cpu':64,'memory':'256Gi','x.io/gpu':0.5}}}",
                           NULL, &causes, &obj),
                     0);
    assert_string_equal(kf_json_str(obj, "spec.capacity.cpu", ""), "64");
    assert_string_equal(kf_json_str(obj, "spec.capacity.x.io/gpu", ""), "");
    assert_string_equal(
        json_string_value(json_object_get(kf_json_path(obj, "spec.capacity"), "x.io/gpu")), "500m");
    json_decref(obj);
    /* where a host answers: the operator's address, else its agent's */
    obj = J("{'spec':{'address':'10.0.0.5'},'status':{'address':'10.9.9.9'}}");
    assert_string_equal(kf_host_address(obj, "127.0.0.1"), "10.0.0.5");
    json_object_del(json_object_get(obj, "spec"), "address");
    assert_string_equal(kf_host_address(obj, "127.0.0.1"), "10.9.9.9");
    json_object_del(json_object_get(obj, "status"), "address");
    assert_string_equal(kf_host_address(obj, "127.0.0.1"), "127.0.0.1");
    assert_null(kf_host_address(obj, NULL));
    json_decref(obj);
}

static const char gc_ok[] = "{'metadata':{'name':'web'},'spec':{'region':'cn-hz',"
                            "'network':{'vpc':'vpc-1','podCIDR':'10.64.0.0/16',"
                            "'serviceCIDR':'172.21.0.0/20','nodeCIDR':'10.0.0.0/22'}}}";

static const struct admit_case guestcluster_cases[] = {
    { &kf_kind_guestcluster, gc_ok, NULL, 0, { { NULL } } },
    { &kf_kind_guestcluster,
      "{'metadata':{'name':'web'},'spec':{}}",
      NULL,
      -KF_EINVALID,
      { { "spec.region", "FieldValueRequired", "Required value" },
        { "spec.network", "FieldValueRequired", "Required value" } } },
    /* overlapping ranges within the cluster name both */
    { &kf_kind_guestcluster,
      "{'metadata':{'name':'web'},'spec':{'region':'cn-hz',"
      "'network':{'vpc':'v','nodeCIDR':'10.0.0.0/16',"
      "'podCIDR':'10.0.128.0/17','serviceCIDR':'172.16.0.0/20'}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.network.podCIDR", "FieldValueInvalid",
          "\"10.0.128.0/17\" overlaps spec.network.nodeCIDR \"10.0.0.0/16\"" } } },
    /* a pod range too small for the size asked for */
    { &kf_kind_guestcluster,
      "{'metadata':{'name':'web'},'spec':{'region':'cn-hz',"
      "'expectedNodes':100,'network':{'vpc':'v','podCIDR':'10.0.0.0/24'}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.network.podCIDR", "FieldValueInvalid", "needs 11000: use a shorter prefix" } } },
    /* versions, grades, windows */
    { &kf_kind_guestcluster,
      "{'metadata':{'name':'web'},'spec':{'region':'cn-hz','version':'v1.30',"
      "'grade':'G6','expectedNodes':9000,'network':{'vpc':'v'},"
      "'maintenanceWindow':{'days':['Sat','Caturday'],'start':'25:00'}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.version", "FieldValueInvalid", "such as \"1.30\"" },
        { "spec.grade", "FieldValueNotSupported", "\"G5\"" },
        { "spec.expectedNodes", "FieldValueInvalid", "at most 5000, got 9000" },
        { "spec.maintenanceWindow.days[1]", "FieldValueNotSupported", "\"Sun\"" },
        { "spec.maintenanceWindow.start", "FieldValueInvalid", "HH:MM" } } },
    /* a well-formed version the catalog does not run; a patch release of one
     * it runs is fine; too many simulated nodes */
    { &kf_kind_guestcluster,
      "{'metadata':{'name':'web'},'spec':{'region':'cn-hz','version':'1.31',"
      "'network':{'vpc':'v'}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.version", "FieldValueNotSupported",
          "\"1.31\": the component catalog runs Kubernetes \"1.36\", \"1.37\"" } } },
    /* ... unless it was already stored so: the cluster stays editable */
    { &kf_kind_guestcluster,
      "{'metadata':{'name':'web'},'spec':{'region':'cn-hz','version':'1.31',"
      "'expectedNodes':5,'network':{'vpc':'v'}}}",
      "{'metadata':{'name':'web'},'spec':{'region':'cn-hz','version':'1.31',"
      "'network':{'vpc':'v'}}}",
      0,
      { { NULL } } },
    { &kf_kind_guestcluster,
      "{'metadata':{'name':'web'},'spec':{'region':'cn-hz','version':'1.37',"
      "'simulatedNodes':1001,'network':{'vpc':'v'}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.simulatedNodes", "FieldValueInvalid", "at most 1000" } } },
    { &kf_kind_guestcluster,
      "{'metadata':{'name':'web'},'spec':{'region':'cn-hz','version':'1.37.2',"
      "'simulatedNodes':3,'network':{'vpc':'v'}}}",
      NULL,
      0,
      { { NULL } } },
    { &kf_kind_guestcluster,
      "{'metadata':{'name':'web'},'spec':{'region':'cn-hz',"
      "'network':{'vpc':'v'},'maintenanceWindow':{'start':'02:00','duration':'30m'}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.maintenanceWindow.duration", "FieldValueInvalid", "between 1h and 7d" } } },
    /* podCIDR and serviceCIDR immutable, nodeCIDR may change */
    { &kf_kind_guestcluster,
      "{'metadata':{'name':'web'},'spec':{'region':'cn-hz',"
      "'network':{'vpc':'vpc-1','podCIDR':'10.65.0.0/16','nodeCIDR':'10.0.4.0/22'}}}",
      gc_ok,
      -KF_EINVALID,
      { { "spec.network.podCIDR", "FieldValueInvalid", "field is immutable" },
        { "spec.network.serviceCIDR", "FieldValueInvalid", "field is immutable" },
        { "spec.network.nodeCIDR", NULL, NULL } } },
};

static void test_guestcluster(void **state)
{
    RUN_CASES(guestcluster_cases);
}

#define CPM_OK                                                                                  \
    "{'metadata':{'name':'web-etcd-0'},'spec':{'cluster':'web','component':'etcd','host':'h1'," \
    "'resources':{'requests':{'cpu':'200m'}},'ports':{'client':2379}}}"

static const struct admit_case cpm_ippool_event_profile_cases[] = {
    { &kf_kind_controlplanemember, CPM_OK, NULL, 0, { { NULL } } },
    /* a replacement rebinds a member to another host */
    { &kf_kind_controlplanemember,
      "{'metadata':{'name':'web-etcd-0'},'spec':{'cluster':'web','component':'etcd','host':'h2'}}",
      CPM_OK,
      0,
      { { NULL } } },
    { &kf_kind_controlplanemember,
      CPM_OK,
      "{'metadata':{'name':'web-etcd-0'},'spec':{'cluster':'web','component':'etcd'}}",
      0,
      { { NULL } } },
    { &kf_kind_controlplanemember,
      "{'metadata':{'name':'x'},'spec':{'cluster':'web','component':'etcd',"
      "'ports':{'client':70000}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.ports[client]", "FieldValueInvalid", "at most 65535" } } },
    { &kf_kind_ippool,
      "{'metadata':{'name':'vpc-1-a'},'spec':{'vpc':'vpc-1','cidrs':['10.0.0.0/12'],"
      "'serviceCIDRs':['172.16.0.0/16','172.16.0.0/20']}}",
      NULL,
      0,
      { { NULL } } },
    { &kf_kind_ippool,
      "{'metadata':{'name':'p'},'spec':{'vpc':'v','cidrs':['10.0.0.0/8',"
      "'10.1.0.0/16'],'serviceCIDRs':['10.2.0.0/20']}}",
      NULL,
      -KF_EINVALID,
      { { "spec.cidrs[1]", "FieldValueInvalid",
          "\"10.1.0.0/16\" overlaps spec.cidrs[0] \"10.0.0.0/8\"" },
        { "spec.serviceCIDRs[0]", "FieldValueInvalid", "overlaps spec.cidrs[0]" } } },
    { &kf_kind_event,
      "{'metadata':{'name':'e'},'spec':{'involvedObject':{'kind':'Unit',"
      "'name':'u'},'type':'Info','reason':'no headroom'}}",
      NULL,
      -KF_EINVALID,
      { { "spec.type", "FieldValueNotSupported", "\"Normal\", \"Warning\"" },
        { "spec.reason", "FieldValueInvalid", "CamelCase by convention" } } },
    { &kf_kind_profile,
      "{'metadata':{'name':'standard'},'spec':{'versions':['1.29','1.30'],"
      "'defaultVersion':'1.31','etcd':{'members':4},'components':["
      "{'name':'etcd'},{'name':'etcd'}]}}",
      NULL,
      -KF_EINVALID,
      { { "spec.defaultVersion", "FieldValueInvalid", "not one of spec.versions" },
        /* versions the component catalog does not run, with the ones it does */
        { "spec.versions[0]", "FieldValueNotSupported",
          "Unsupported value: \"1.29\": the component catalog runs Kubernetes \"1.36\", \"1.37\"" },
        { "spec.versions[1]", "FieldValueNotSupported", "\"1.30\"" },
        { "spec.etcd.members", "FieldValueInvalid", "must be odd" },
        { "spec.components[1].name", "FieldValueDuplicate", "etcd" } } },
};

static void test_cpm_ippool_event_profile(void **state)
{
    RUN_CASES(cpm_ippool_event_profile_cases);
}

static const struct admit_case alert_cases[] = {
    /* the section must match the type; a secret in plain text is an unknown field */
    { &kf_kind_alertreceiver,
      "{'metadata':{'name':'ops'},'spec':{'type':'sms','webhook':{'url':'http://x/'}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.sms", "FieldValueRequired", "type sms needs spec.sms" },
        { "spec.webhook", "FieldValueForbidden", "only type webhook has" } } },
    { &kf_kind_alertreceiver,
      "{'metadata':{'name':'ops'},'spec':{'type':'dingtalk','dingtalk':"
      "{'url':'https://d/','secret':'SECabc'}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.dingtalk.secret", "FieldValueUnknown", "unknown" } } },
    { &kf_kind_alertreceiver,
      "{'metadata':{'name':'ops'},'spec':{'type':'dingtalk','dingtalk':"
      "{'secretFile':'rel/path','secretRef':{'name':'x'}}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.dingtalk.url", "FieldValueRequired", "url or urlFile" },
        { "spec.dingtalk.secretFile", "FieldValueInvalid", "absolute path" },
        { "spec.dingtalk.secretRef", "FieldValueForbidden", "not both" } } },
    { &kf_kind_alertreceiver,
      "{'metadata':{'name':'mail'},'spec':{'type':'email','email':"
      "{'to':['oncall@example.com','not-an-address']}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.email.to[1]", "FieldValueInvalid", "not an email address" } } },
    { &kf_kind_alertreceiver,
      "{'metadata':{'name':'pager'},'spec':{'type':'sms','sms':{'url':"
      "'https://sms.example.com/send','phones':['+8613800000000'],"
      "'body':'text={{message}}&key={{secret}}','secretFile':'/etc/k'}}}",
      NULL,
      0,
      { { NULL } } },
    /* a secret named after another receiver; {{secret}} in a URL */
    { &kf_kind_alertreceiver,
      "{'metadata':{'name':'pager'},'spec':{'type':'sms','sms':{'url':"
      "'https://sms.example.com/send?key={{secret}}','phones':['+86138'],"
      "'secretRef':{'name':'ops'}}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.sms.secretRef.name", "FieldValueForbidden", "named after it" },
        { "spec.sms.url", "FieldValueForbidden", "{{secret}}" } } },
    /* routes */
    { &kf_kind_alertroute,
      "{'metadata':{'name':'top'},'spec':{'receiver':'ops','root':true,"
      "'parent':'top','matchers':[{'name':'0bad','value':'x'}],'groupInterval':'soon'}}",
      NULL,
      -KF_EINVALID,
      { { "spec.groupInterval", "FieldValueInvalid", "duration" } } },
    { &kf_kind_alertroute,
      "{'metadata':{'name':'top'},'spec':{'receiver':'ops','root':true,"
      "'parent':'top','matchers':[{'name':'0bad','value':'x'}]}}",
      NULL,
      -KF_EINVALID,
      { { "spec.parent", "FieldValueForbidden", "the root route has no parent" },
        { "spec.matchers", "FieldValueForbidden", "every alert" },
        { "spec.matchers.name", "FieldValueInvalid", "not a label name" } } },
    { &kf_kind_alertroute,
      "{'metadata':{'name':'loop'},'spec':{'receiver':'ops','parent':'loop'}}",
      NULL,
      -KF_EINVALID,
      { { "spec.parent", "FieldValueInvalid", "its own parent" } } },
};

static const struct admit_case backup_cases[] = {
    /* a location is an absolute directory without ".." */
    { &kf_kind_backuplocation,
      "{'metadata':{'name':'hz'},'spec':{'region':'cn-hangzhou','path':'/srv/../etc'}}",
      NULL,
      -KF_EINVALID,
      { { "spec.path", "FieldValueInvalid", "an absolute directory" } } },
    { &kf_kind_backuplocation,
      "{'metadata':{'name':'hz'},'spec':{'region':'cn-hangzhou','path':'backups'}}",
      NULL,
      -KF_EINVALID,
      { { "spec.path", "FieldValueInvalid", "an absolute directory" } } },
    { &kf_kind_backuplocation,
      "{'metadata':{'name':'hz'},'spec':{'region':'cn-hangzhou','path':'/srv/b',"
      "'retention':{'maxAge':'400d'}}}",
      NULL,
      -KF_EINVALID,
      { { "spec.retention.maxAge", "FieldValueInvalid", "at most" } } },
    { &kf_kind_backuplocation,
      "{'metadata':{'name':'hz'},'spec':{'region':'cn-hangzhou','path':'/srv/b',"
      "'type':'S3'}}",
      NULL,
      -KF_EINVALID,
      { { "spec.type", "FieldValueNotSupported", "Filesystem" } } },
    /* a backup names its cluster */
    { &kf_kind_backup,
      "{'metadata':{'name':'web-1'},'spec':{}}",
      NULL,
      -KF_EINVALID,
      { { "spec.cluster", "FieldValueRequired", "" } } },
};

static void test_backup_kinds(void **state)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *obj = NULL;

    assert_int_equal(admit(&kf_kind_backuplocation,
                           "{'metadata':{'name':'hz'},'spec':{'region':'cn-hangzhou',"
                           "'path':'/srv/kfleet/backups','complianceTags':['gdpr']}}",
                           NULL, &causes, &obj),
                     0);
    assert_string_equal(kf_json_str(obj, "spec.type", ""), "Filesystem");
    json_decref(obj);
    RUN_CASES(backup_cases);
    kf_causes_release(&causes);
    (void)state;
}

static void test_alert_kinds(void **state)
{
    struct kf_causes causes = KF_CAUSES_INIT;
    json_t *obj = NULL;

    /* a signed DingTalk robot with its secret by reference; defaults filled */
    assert_int_equal(admit(&kf_kind_alertreceiver,
                           "{'metadata':{'name':'ops'},'spec':{'type':'dingtalk','dingtalk':"
                           "{'url':'https://oapi.dingtalk.com/robot/send?access_token=x',"
                           "'secretRef':{'name':'ops.dingtalk'}}}}",
                           NULL, &causes, &obj),
                     0);
    assert_true(json_is_true(kf_json_path(obj, "spec.sendResolved")));
    json_decref(obj);
    RUN_CASES(alert_cases);
    assert_int_equal(admit(&kf_kind_alertroute,
                           "{'metadata':{'name':'crit'},'spec':{'receiver':'ops','matchers':"
                           "[{'name':'severity','value':'critical'},{'name':'region','op':'=~',"
                           "'value':'cn-.*'}],'groupBy':['alertname','...'],'groupWait':'10s',"
                           "'continue':true}}",
                           NULL, &causes, &obj),
                     0);
    assert_string_equal(
        kf_json_str(json_array_get(kf_json_path(obj, "spec.matchers"), 0), "op", ""), "=");
    json_decref(obj);
}

static void test_columns_and_openapi(void **state)
{
    json_t *gc = J("{'metadata':{'name':'web'},'spec':{'region':'cn-hz','expectedNodes':40,"
                   "'version':'1.30'},'status':{'unit':'hz-u1','grade':'G1','phase':'Running'}}");
    json_t *unit = J("{'spec':{'zones':['a','b','c'],'waterLevel':0.6},'status':{'clusters':12,"
                     "'waterLevel':{'cpu':0.42,'memory':0.515}}}");
    const char *want_gc[] = { "cn-hz", "hz-u1", "G1", "1.30", "Running", "40" };
    const char *want_unit[] = { "", "3", "12", "42%", "52%", "60%" };
    json_t *api, *wl;

    for (size_t i = 0; i < KF_ARRAY_SIZE(want_gc); i++) {
        struct kf_strbuf sb = KF_STRBUF_INIT;

        kf_column_value(&kf_kind_guestcluster.columns[i], gc, &sb);
        assert_string_equal(sb.buf, want_gc[i]);
        kf_strbuf_release(&sb);
    }
    assert_string_equal(kf_kind_guestcluster.columns[2].header, "GRADE");
    for (size_t i = 0; i < KF_ARRAY_SIZE(want_unit); i++) {
        struct kf_strbuf sb = KF_STRBUF_INIT;

        kf_column_value(&kf_kind_unit.columns[i], unit, &sb);
        assert_string_equal(sb.buf, want_unit[i]);
        kf_strbuf_release(&sb);
    }
    assert_string_equal(kf_kind_unit.columns[3].header, "CPU%");

    api = kf_kind_openapi_schema(&kf_kind_unit);
    wl = kf_json_path(api, "properties.spec.properties.waterLevel");
    assert_string_equal(kf_json_str(wl, "type", ""), "number");
    assert_null(json_object_get(wl, "default")); /* the region's mark applies */
    assert_true(json_is_false(
        kf_json_path(api, "properties.spec.properties.cordoned.default"))); /* defaults show */
    assert_true(kf_json_bool(wl, "exclusiveMaximum", false));
    assert_non_null(strstr(kf_json_str(wl, "description", ""), "40 % headroom"));
    assert_string_equal(
        json_string_value(json_array_get(kf_json_path(api, "properties.spec.required"), 0)),
        "region");
    assert_string_equal(
        kf_json_str(json_array_get(json_object_get(api, "x-kubernetes-group-version-kind"), 0),
                    "group", ""),
        "kfleet.io");
    json_decref(api);
    json_decref(gc);
    json_decref(unit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),       cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_region_unit),  cmocka_unit_test(test_host),
        cmocka_unit_test(test_guestcluster), cmocka_unit_test(test_cpm_ippool_event_profile),
        cmocka_unit_test(test_alert_kinds),  cmocka_unit_test(test_columns_and_openapi),
        cmocka_unit_test(test_backup_kinds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
