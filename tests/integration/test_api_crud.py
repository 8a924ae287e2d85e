"""test_api_crud.py: kfleetd's object API as a client sees it: discovery and
OpenAPI, create / get / list / update / patch / delete of every kind,
conflicts (409), validation (422 with causes), generateName, finalizers, the
status subresource, patch types, Tables for kubectl and Status errors."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import API, path, sample  # noqa: E402

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd().start()
    return kd


def assert_status(r, code, reason):
    assert r.status == code, r
    st = r.json
    assert st and st["kind"] == "Status" and st["apiVersion"] == "v1", r
    assert st["status"] == "Failure" and st["code"] == code and st["reason"] == reason, r
    assert st["message"], r
    return st


def test_discovery():
    setup()
    r = kd.get("/api")
    assert r.status == 200 and r.json["kind"] == "APIVersions", r
    r = kd.get("/apis")
    assert r.json["kind"] == "APIGroupList", r
    groups = r.json["groups"]
    assert [g["name"] for g in groups] == ["kfleet.io"], r
    assert groups[0]["preferredVersion"]["groupVersion"] == "kfleet.io/v1", r
    r = kd.get("/apis/kfleet.io")
    assert r.json["kind"] == "APIGroup" and r.json["name"] == "kfleet.io", r

    r = kd.get(API)
    assert r.status == 200 and r.json["kind"] == "APIResourceList", r
    assert r.json["groupVersion"] == "kfleet.io/v1", r
    res = {x["name"]: x for x in r.json["resources"]}
    for kind, plural in kftest.PLURALS.items():
        assert plural in res, f"{plural} not in discovery"
        x = res[plural]
        assert x["kind"] == kind and x["namespaced"] is False, x
        assert x["singularName"] == kind.lower(), x
        assert set(x["verbs"]) >= {"create", "get", "list", "watch", "update", "patch",
                                   "delete"}, x
        assert "kfleet" in x["categories"], x
    assert res["guestclusters"].get("shortNames"), res["guestclusters"]
    assert "guestclusters/status" in res, "status subresource not listed"
    assert set(res["guestclusters/status"]["verbs"]) == {"get", "patch", "update"}
    # Event is written by kfleetd only
    assert "create" not in res["events"]["verbs"] and "delete" in res["events"]["verbs"]

    r = kd.get("/version")
    assert r.status == 200 and r.json["gitVersion"].startswith("v"), r
    assert kd.get("/healthz").text == "ok\n"
    assert kd.get("/readyz").status == 200


def test_openapi():
    setup()
    r = kd.get("/openapi/v3")
    assert r.status == 200, r
    url = r.json["paths"]["apis/kfleet.io/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/kfleet.io/v1?hash="), url
    doc = kd.get(url).json
    assert doc["openapi"].startswith("3."), doc.keys()
    patch_op = doc["paths"]["/apis/kfleet.io/v1/guestclusters/{name}"]["patch"]
    ctypes = set(patch_op["requestBody"]["content"])
    # kubectl apply sends what the PATCH operation lists: never a strategic merge patch
    assert ctypes == {"application/merge-patch+json", "application/json-patch+json"}, ctypes
    assert patch_op["x-kubernetes-group-version-kind"] == {
        "group": "kfleet.io", "version": "v1", "kind": "GuestCluster"}
    assert "fieldValidation" in [p["name"] for p in patch_op["parameters"]]
    schema = doc["components"]["schemas"]["io.kfleet.v1.GuestCluster"]
    assert schema["x-kubernetes-group-version-kind"][0]["kind"] == "GuestCluster"
    assert "spec" in schema.get("properties", {}), schema.keys()

    r = kd.get("/openapi/v2")
    assert r.status == 200 and r.json["swagger"] == "2.0", r
    assert "io.kfleet.v1.Region" in r.json["definitions"]
    # as protocol buffers for kubectl up to 1.26 (explain, apply's validation)
    r = kd.get("/openapi/v2", headers={
        "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert r.status == 200, r
    assert r.headers["Content-Type"] == \
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", r.headers
    assert r.data.startswith(b"\x0a\x032.0") and b"io.kfleet.v1.Region" in r.data, r.data[:40]
    r = kd.get("/openapi/v2", headers={"Accept": "text/html"})
    assert_status(r, 406, "NotAcceptable")

    # aggregated discovery (kubectl 1.30 on): every resource in one answer
    agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    r = kd.get("/apis", headers={"Accept": agg + ",application/json"})
    assert r.status == 200 and r.headers["Content-Type"] == agg, r.headers
    assert r.headers["Vary"] == "Accept", r.headers
    group = r.json["items"][0]
    assert group["metadata"]["name"] == "kfleet.io", group
    res = {x["resource"]: x for x in group["versions"][0]["resources"]}
    assert res["guestclusters"]["responseKind"]["kind"] == "GuestCluster", res["guestclusters"]
    assert res["guestclusters"]["subresources"][0]["subresource"] == "status"
    r = kd.get("/api", headers={"Accept": agg})
    assert r.status == 200 and r.json["items"][0]["versions"][0]["resources"] == [], r
    r = kd.get("/apis", headers={"Accept": "application/json," + agg})
    assert r.headers["Content-Type"] == "application/json" and r.json["kind"] == "APIGroupList"


def test_not_found_paths():
    setup()
    st = assert_status(kd.get("/apis/kfleet.io/v1/widgets"), 404, "NotFound")
    assert "guestclusters" in st["message"], st  # says what is served
    assert_status(kd.get("/nope"), 404, "NotFound")
    assert_status(kd.get(path("regions", "no-such-region")), 404, "NotFound")
    st = assert_status(kd.get(path("profiles", "p", "status")), 404, "NotFound")
    assert "status" in st["message"], st
    st = assert_status(kd.request("POST", path("regions", "x")), 405, "MethodNotAllowed")
    assert "allowed" in st["message"], st


def test_crud_every_kind():
    setup()
    for kind, plural in kftest.PLURALS.items():
        name = f"crud-{plural}"
        obj = sample(kind, name, labels={"test": "crud"})
        r = kd.post(path(plural), obj)
        assert r.status == 201, (kind, r)
        made = r.json
        meta = made["metadata"]
        assert made["kind"] == kind and made["apiVersion"] == "kfleet.io/v1", made
        assert meta["name"] == name and meta["uid"] and meta["creationTimestamp"], meta
        assert meta["generation"] == 1 and int(meta["resourceVersion"]) > 0, meta

        r = kd.get(path(plural, name))
        assert r.status == 200 and r.json == made, (kind, r, made)

        r = kd.get(path(plural), params={"labelSelector": "test=crud"})
        assert r.status == 200 and r.json["kind"] == f"{kind}List", r
        assert [i["metadata"]["name"] for i in r.json["items"]] == [name], r
        assert int(r.json["metadata"]["resourceVersion"]) >= int(meta["resourceVersion"])

        # update: a label change is not a spec change
        upd = dict(made)
        upd["metadata"] = dict(meta, labels={"test": "crud", "step": "put"})
        r = kd.put(path(plural, name), upd)
        assert r.status == 200, (kind, r)
        assert r.json["metadata"]["labels"]["step"] == "put"
        assert r.json["metadata"]["generation"] == 1, r
        assert int(r.json["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

        # a JSON patch and a merge patch
        r = kd.patch(path(plural, name), [{"op": "add", "path": "/metadata/annotations",
                                           "value": {"note": "json-patch"}}],
                     content_type="application/json-patch+json")
        assert r.status == 200 and r.json["metadata"]["annotations"]["note"] == "json-patch", r
        r = kd.patch(path(plural, name), {"metadata": {"labels": {"step": None}}})
        assert r.status == 200 and "step" not in r.json["metadata"]["labels"], r

        r = kd.delete(path(plural, name))
        assert r.status == 200 and r.json["metadata"]["name"] == name, (kind, r)
        st = assert_status(kd.get(path(plural, name)), 404, "NotFound")
        assert st["message"] == f'{plural}.kfleet.io "{name}" not found', st
        assert st["details"] == {"name": name, "group": "kfleet.io", "kind": plural}, st


def test_generation_and_status_subresource():
    setup()
    r = kd.post(path("guestclusters"), sample("GuestCluster", "gen-1"))
    assert r.status == 201, r
    obj = r.json
    obj["spec"]["expectedNodes"] = 20
    obj["status"] = {"phase": "Running"}  # ignored by a normal update
    r = kd.put(path("guestclusters", "gen-1"), obj)
    assert r.status == 200, r
    assert r.json["metadata"]["generation"] == 2, r
    assert "phase" not in r.json.get("status", {}), r

    obj = r.json
    obj["status"] = {"phase": "Pending"}
    obj["spec"]["expectedNodes"] = 99  # ignored by a status update
    r = kd.put(path("guestclusters", "gen-1", "status"), obj)
    assert r.status == 200, r
    assert r.json["status"]["phase"] == "Pending", r
    assert r.json["spec"]["expectedNodes"] == 20 and r.json["metadata"]["generation"] == 2, r

    r = kd.patch(path("guestclusters", "gen-1", "status"), {"status": {"phase": "Scheduled"}})
    assert r.status == 200 and r.json["status"]["phase"] == "Scheduled", r
    r = kd.get(path("guestclusters", "gen-1", "status"))
    assert r.status == 200 and r.json["status"]["phase"] == "Scheduled", r
    assert kd.get(path("guestclusters", "gen-1")).json["metadata"]["generation"] == 2


def test_conflicts():
    setup()
    r = kd.post(path("regions"), sample("Region", "conflict-1"))
    assert r.status == 201, r
    first = r.json
    st = assert_status(kd.post(path("regions"), sample("Region", "conflict-1")), 409,
                       "AlreadyExists")
    assert st["message"] == 'regions.kfleet.io "conflict-1" already exists', st

    fresh = kd.patch(path("regions", "conflict-1"), {"spec": {"displayName": "one"}}).json
    stale = dict(first, spec=dict(first["spec"], displayName="two"))
    st = assert_status(kd.put(path("regions", "conflict-1"), stale), 409, "Conflict")
    assert "modified" in st["message"], st
    # a patch carrying a stale resourceVersion is a precondition
    st = assert_status(
        kd.patch(path("regions", "conflict-1"),
                 {"metadata": {"resourceVersion": first["metadata"]["resourceVersion"]},
                  "spec": {"displayName": "three"}}), 409, "Conflict")
    # a delete with a stale precondition
    assert_status(kd.delete(path("regions", "conflict-1"),
                            {"preconditions": {"resourceVersion":
                                               first["metadata"]["resourceVersion"]}}),
                  409, "Conflict")
    st = assert_status(kd.delete(path("regions", "conflict-1"),
                                 {"preconditions": {"uid": "not-the-uid"}}), 409, "Conflict")
    assert "UID" in st["message"], st
    # nothing of the above changed the object
    now = kd.get(path("regions", "conflict-1")).json
    assert now == fresh, (now, fresh)
    r = kd.delete(path("regions", "conflict-1"),
                  {"preconditions": {"uid": fresh["metadata"]["uid"],
                                     "resourceVersion": fresh["metadata"]["resourceVersion"]}})
    assert r.status == 200, r


def test_validation_causes():
    setup()
    bad = sample("GuestCluster", "bad-1", expectedNodes="many", bogus=1)
    del bad["spec"]["network"]
    st = assert_status(kd.post(path("guestclusters"), bad), 422, "Invalid")
    causes = {c["field"]: c for c in st["details"]["causes"]}
    assert causes["spec.expectedNodes"]["reason"] == "FieldValueTypeInvalid", causes
    assert causes["spec.bogus"]["reason"] == "FieldValueUnknown", causes
    assert causes["spec.network"]["reason"] == "FieldValueRequired", causes
    assert st["details"]["kind"] == "GuestCluster" and st["details"]["name"] == "bad-1", st
    assert st["message"].startswith('GuestCluster.kfleet.io "bad-1" is invalid: '), st
    assert "spec.expectedNodes" in st["message"], st
    assert_status(kd.get(path("guestclusters", "bad-1")), 404, "NotFound")

    st = assert_status(kd.post(path("regions"), sample("Region", "Bad_Name")), 422, "Invalid")
    assert any(c["field"] == "metadata.name" for c in st["details"]["causes"]), st


def test_generate_name():
    setup()
    obj = sample("Region", "x")
    obj["metadata"] = {"generateName": "gen-"}
    r = kd.post(path("regions"), obj)
    assert r.status == 201, r
    name = r.json["metadata"]["name"]
    assert name.startswith("gen-") and len(name) > 4, name
    assert kd.get(path("regions", name)).status == 200


def test_finalizers():
    setup()
    obj = sample("Region", "fin-1")
    obj["metadata"]["finalizers"] = ["kfleet.io/test"]
    assert kd.post(path("regions"), obj).status == 201
    r = kd.delete(path("regions", "fin-1"))
    assert r.status == 202 and r.json["metadata"].get("deletionTimestamp"), r
    r = kd.get(path("regions", "fin-1"))
    assert r.status == 200 and r.json["metadata"]["deletionTimestamp"], r
    r = kd.patch(path("regions", "fin-1"), {"metadata": {"finalizers": None}})
    assert r.status == 200, r
    assert_status(kd.get(path("regions", "fin-1")), 404, "NotFound")


def test_patch_types():
    setup()
    assert kd.post(path("regions"), sample("Region", "patch-1")).status == 201
    # kubectl's strategic merge patch: a merge patch for kfleet kinds
    r = kd.patch(path("regions", "patch-1"), {"spec": {"displayName": "smp"}},
                 content_type="application/strategic-merge-patch+json")
    assert r.status == 200 and r.json["spec"]["displayName"] == "smp", r
    st = assert_status(kd.patch(path("regions", "patch-1"),
                                {"spec": {"$patch": "replace", "zones": ["a"]}},
                                content_type="application/strategic-merge-patch+json"),
                       415, "UnsupportedMediaType")
    assert "$patch" in st["message"] and "--type merge" in st["message"], st
    st = assert_status(kd.patch(path("regions", "patch-1"), "spec: {}",
                                content_type="application/apply-patch+yaml"),
                       415, "UnsupportedMediaType")
    assert "server-side apply" in st["message"], st
    assert_status(kd.patch(path("regions", "patch-1"), {"a": 1}, content_type="text/plain"),
                  415, "UnsupportedMediaType")
    st = assert_status(kd.patch(path("regions", "patch-1"), [{"op": "jump", "path": "/spec"}],
                                content_type="application/json-patch+json"), 400, "BadRequest")
    assert_status(kd.patch(path("regions", "patch-1"), b"{not json",
                           content_type="application/merge-patch+json"), 400, "BadRequest")
    # a patch that makes the object invalid is refused with causes
    st = assert_status(kd.patch(path("regions", "patch-1"), {"spec": {"zones": "one"}}),
                       422, "Invalid")
    assert st["details"]["causes"][0]["field"] == "spec.zones", st
    assert kd.get(path("regions", "patch-1")).json["spec"]["displayName"] == "smp"
    assert_status(kd.patch(path("regions", "no-such"), {"spec": {}}), 404, "NotFound")


def test_table():
    setup()
    assert kd.post(path("guestclusters"), sample("GuestCluster", "tbl-1")).status == 201
    r = kd.get(path("guestclusters"), accept=kftest.TABLE_ACCEPT)
    assert r.status == 200 and r.json["kind"] == "Table", r
    assert r.json["apiVersion"] == "meta.k8s.io/v1", r
    cols = [c["name"] for c in r.json["columnDefinitions"]]
    assert cols[0] == "Name" and cols[-1] == "Age", cols
    assert "REGION" in cols and "PHASE" in cols, cols
    rows = {row["cells"][0]: row for row in r.json["rows"]}
    row = rows["tbl-1"]
    assert row["cells"][cols.index("REGION")] == "cn-hangzhou", row
    assert row["object"]["kind"] == "PartialObjectMetadata", row
    assert row["object"]["metadata"]["name"] == "tbl-1", row
    assert row["cells"][-1].endswith("s"), row  # an age such as "0s"
    r = kd.get(path("guestclusters", "tbl-1"), accept=kftest.TABLE_ACCEPT,
               params={"includeObject": "Object"})
    assert r.json["kind"] == "Table" and len(r.json["rows"]) == 1, r
    assert r.json["rows"][0]["object"]["spec"]["region"] == "cn-hangzhou", r


def test_deletecollection():
    setup()
    for i in range(3):
        assert kd.post(path("templates"),
                       sample("Template", f"dc-{i}", labels={"batch": "dc" if i < 2 else "x"})
                       ).status == 201
    r = kd.delete(path("templates"), params={"labelSelector": "batch=dc"})
    assert r.status == 200 and r.json["kind"] == "TemplateList", r
    assert sorted(i["metadata"]["name"] for i in r.json["items"]) == ["dc-0", "dc-1"], r
    names = [i["metadata"]["name"] for i in kd.get(path("templates")).json["items"]]
    assert "dc-2" in names and "dc-0" not in names and "dc-1" not in names, names


def test_system_kind_is_read_only():
    setup()
    st = assert_status(kd.post(path("events"), {"metadata": {"name": "e"}}), 405,
                       "MethodNotAllowed")
    assert "kfleetd only" in st["message"], st
    assert kd.get(path("events")).status == 200


def test_bad_bodies():
    setup()
    st = assert_status(kd.post(path("regions"), b"{\"metadata\": ", content_type="application/json"),
                       400, "BadRequest")
    assert "not valid JSON" in st["message"], st
    assert_status(kd.post(path("regions"), b"[1,2]", content_type="application/json"), 400,
                  "BadRequest")
    # a body without a type is refused (a web page could send it: test_sec_crosssite.py)
    assert_status(kd.post(path("regions"), b"[1,2]"), 415, "UnsupportedMediaType")
    assert_status(kd.post(path("regions"), None), 400, "BadRequest")
    assert_status(kd.post(path("regions"), b"a: b", content_type="application/yaml"), 415,
                  "UnsupportedMediaType")
    assert kd.post(path("regions"), sample("Region", "put-1")).status == 201
    obj = kd.get(path("regions", "put-1")).json
    obj["metadata"]["name"] = "put-2"
    st = assert_status(kd.put(path("regions", "put-1"), obj), 400, "BadRequest")
    assert "does not match" in st["message"], st
    st = assert_status(kd.post(path("regions"), sample("Region", "dry"), params={"dryRun": "All"}),
                       400, "BadRequest")
    assert "dryRun" in st["message"], st
    assert_status(kd.get(path("regions", "dry")), 404, "NotFound")


def test_zz_clean_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    kftest.main(globals(), shared=("kd",))
