"""test_sec_bounds.py: every number a request or an object brings is
bounded before kfleetd sizes anything from it (docs/security.md, "Bounds").

A viewer's capacity plan with a huge maxUnitHosts once made kfleetd
allocate 4294967299 x 56 bytes and die; now it is a 400 that names the
bound, and kfleetd keeps serving. Objects get 422s naming the bound for
counts, quantities, durations and percentages."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402
from kftest import API, path, sample  # noqa: E402

ADMIN = kftest.ADMIN_TOKEN
VIEWER = "viewer-token-0123456789"
EDITOR = "editor-token-0123456789"

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(tokens=True, controllers="*,-lifecycle").start()
        for kind, name in (("Region", "cn-hangzhou"), ("Unit", "hz-u1")):
            r = kd.post(path(kftest.PLURALS[kind]), sample(kind, name), token=ADMIN)
            assert r.status == 201, r
    return kd


def plan(body, token=VIEWER):
    return kd.post(API + "/plan", body, token=token)


def plan_ready():
    r = plan({"region": "cn-hangzhou", "add": ["1xG0"]})
    return r.status == 200


def test_plan_bounds():
    setup()
    kftest.eventually(plan_ready, timeout=20 * kftest.SLOW, msg="plan served")
    # 4294967295 is the one that killed kfleetd (calloc of 2^32 + 3 hosts)
    for extra, words in (({"maxUnitHosts": 4294967295}, ("maxUnitHosts", "10000")),
                         ({"maxUnitHosts": 4294967299}, ("maxUnitHosts", "10000")),
                         ({"maxUnitHosts": -1}, ("maxUnitHosts",)),
                         ({"newUnitHosts": 10 ** 12}, ("newUnitHosts", "10000")),
                         ({"newUnitZones": 10 ** 6}, ("newUnitZones",)),
                         ({"hostMemory": "1Ei"}, ("hostMemory", "256Ti")),
                         ({"hostCPU": "99999999999"}, ("hostCPU", "cores")),
                         ({"add": ["1000000xG0"]}, ("count", "100000")),
                         ({"add": ["60000xG0", "60000xG1"]}, ("at most 100000",))):
        body = {"region": "cn-hangzhou", "add": ["1xG0"]}
        body.update(extra)
        r = plan(body)
        assert r.status == 400, (extra, r)
        for w in words:
            assert w in r.json["message"], (extra, r.json["message"])
        assert kd.proc.poll() is None, "kfleetd died on " + repr(extra)
        assert kd.get("/healthz").status == 200
    # a plan within the bounds still answers
    r = plan({"region": "cn-hangzhou", "add": ["3xG0"], "maxUnitHosts": 12})
    assert r.status == 200 and r.json["kind"] == "CapacityPlan", r


def test_object_bounds():
    setup()
    cases = (
        ("Unit", {"quota": {"maxClusters": 10 ** 12}}, "spec.quota.maxClusters", "at most"),
        ("Unit", {"costPerCore": 1e300}, "spec.costPerCore", "at most"),
        ("Host", {"capacity": {"cpu": "32", "memory": "64Ti"}}, "spec.capacity[memory]",
         "at most"),
        ("Region", {"monitoring": {"scrapeInterval": "100000h"}},
         "spec.monitoring.scrapeInterval", "at most 3600s"),
    )
    for kind, spec, field, words in cases:
        obj = sample(kind, "bounds-" + kind.lower(), **spec)
        r = kd.post(path(kftest.PLURALS[kind]), obj, token=EDITOR)
        assert r.status == 422, (kind, spec, r)
        causes = {c["field"]: c["message"] for c in r.json["details"]["causes"]}
        assert field in causes and words in causes[field], (field, causes)
    bcj = {"apiVersion": "kfleet.io/v1", "kind": "BroadcastJob", "metadata": {"name": "pct"},
           "spec": {"template": {"command": ["/bin/true"]}, "parallelism": "500%"}}
    r = kd.post(path("broadcastjobs"), bcj, token=ADMIN)
    assert r.status == 422 and "0% and 100%" in r.text, r


def test_zz_clean_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    try:
        kftest.main(globals())
    finally:
        if kd:
            kd.close()
