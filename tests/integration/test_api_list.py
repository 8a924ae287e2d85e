"""test_api_list.py: LIST as kubectl and controllers use it: label and field
selectors (and bad ones), limit + continue (page by page, a consistent
snapshot across writes, bad and expired tokens), and resourceVersion /
resourceVersionMatch."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402

kd = None
GCS = {
    "gc-a": {"env": "prod", "tier": "web"},
    "gc-b": {"env": "prod"},
    "gc-c": {"env": "dev", "tier": "db"},
    "gc-d": {"env": "staging"},
    "gc-e": {},
    "gc-f": {"env": "dev", "legacy": "true"},
}


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd().start()
        for name, labels in GCS.items():
            region = "eu-west" if name in ("gc-e", "gc-f") else "cn-hangzhou"
            r = kd.post(path("guestclusters"),
                        sample("GuestCluster", name, labels=labels or None, region=region))
            assert r.status == 201, r
    return kd


def names(r):
    assert r.status == 200, r
    return [i["metadata"]["name"] for i in r.json["items"]]


def lst(**params):
    return kd.get(path("guestclusters"), params=params)


def test_label_selectors():
    setup()
    cases = {
        "env=prod": ["gc-a", "gc-b"],
        "env==prod": ["gc-a", "gc-b"],
        "env!=prod": ["gc-c", "gc-d", "gc-e", "gc-f"],
        "env in (prod, staging)": ["gc-a", "gc-b", "gc-d"],
        "env notin (dev)": ["gc-a", "gc-b", "gc-d", "gc-e"],
        "tier": ["gc-a", "gc-c"],
        "!tier": ["gc-b", "gc-d", "gc-e", "gc-f"],
        "env=dev,!legacy": ["gc-c"],
        "env=nothing": [],
        "": sorted(GCS),
    }
    for sel, want in cases.items():
        got = names(lst(labelSelector=sel))
        assert got == want, (sel, got, want)


def test_field_selectors():
    setup()
    assert names(lst(fieldSelector="metadata.name=gc-c")) == ["gc-c"]
    assert names(lst(fieldSelector="spec.region=eu-west")) == ["gc-e", "gc-f"]
    assert names(lst(fieldSelector="spec.region!=eu-west,metadata.name!=gc-a")) == [
        "gc-b", "gc-c", "gc-d"]
    assert names(lst(fieldSelector="spec.region=eu-west", labelSelector="env=dev")) == ["gc-f"]
    assert names(lst(fieldSelector="metadata.name=none")) == []


def test_bad_selectors_are_400():
    setup()
    for params in ({"labelSelector": "env in (prod"}, {"labelSelector": "env in prod)"},
                   {"labelSelector": "a b c"}, {"labelSelector": "x" * 5000},
                   {"fieldSelector": "=x"}, {"fieldSelector": "metadata.name"}):
        r = lst(**params)
        assert r.status == 400 and r.json["reason"] == "BadRequest", (params, r)
        assert "unable to parse" in r.json["message"], r
    assert kd.get("/readyz").status == 200


def test_limit_and_continue():
    setup()
    pages, cont, rvs = [], None, set()
    while True:
        params = {"limit": "1"}
        if cont:
            params["continue"] = cont
        r = lst(**params)
        assert r.status == 200, r
        pages.append(names(r))
        rvs.add(r.json["metadata"]["resourceVersion"])
        cont = r.json["metadata"].get("continue")
        if not cont:
            break
    assert pages == [[n] for n in sorted(GCS)], pages
    assert len(rvs) == 1, rvs  # every page reads the same revision

    # limit with a selector still returns whole pages of matches
    r = lst(limit="1", labelSelector="env=prod")
    assert names(r) == ["gc-a"] and r.json["metadata"].get("continue"), r
    r = lst(limit="1", labelSelector="env=prod", **{"continue": r.json["metadata"]["continue"]})
    assert names(r) == ["gc-b"], r

    assert names(lst(limit="0")) == sorted(GCS)
    for bad in ("-1", "abc", "1.5"):
        r = lst(limit=bad)
        assert r.status == 400 and "limit" in r.json["message"], (bad, r)


def test_continue_is_a_snapshot():
    setup()
    r = lst(limit="2")
    assert names(r) == ["gc-a", "gc-b"], r
    cont = r.json["metadata"]["continue"]
    # writes after the first page: a new object and a deleted one
    assert kd.post(path("guestclusters"), sample("GuestCluster", "gc-bb")).status == 201
    assert kd.delete(path("guestclusters", "gc-d")).status == 200
    rest = []
    while cont:
        r = lst(limit="2", **{"continue": cont})
        rest += names(r)
        cont = r.json["metadata"].get("continue")
    assert rest == ["gc-c", "gc-d", "gc-e", "gc-f"], rest
    # a fresh list sees the writes
    assert names(lst()) == ["gc-a", "gc-b", "gc-bb", "gc-c", "gc-e", "gc-f"]
    # put the fixture back
    assert kd.delete(path("guestclusters", "gc-bb")).status == 200
    assert kd.post(path("guestclusters"),
                   sample("GuestCluster", "gc-d", labels=GCS["gc-d"])).status == 201


def test_bad_continue_token():
    setup()
    for tok in ("garbage", "%%%", "eyJ4IjoxfQ", "A" * 3000):
        r = lst(limit="1", **{"continue": tok})
        assert r.status == 400 and r.json["reason"] == "BadRequest", (tok, r)
    r = lst(limit="1", resourceVersion="5", **{"continue": lst(limit="1").json["metadata"]
                                               ["continue"]})
    assert r.status == 400 and "continue" in r.json["message"], r


def test_resource_version_params():
    setup()
    r = kd.post(path("templates"), sample("Template", "rv-1"))
    assert r.status == 201, r
    rv1 = r.json["metadata"]["resourceVersion"]
    assert kd.patch(path("templates", "rv-1"), {"metadata": {"labels": {"v": "2"}}}).status == 200
    assert lst(resourceVersion="0").status == 200
    assert lst(resourceVersion=rv1, resourceVersionMatch="NotOlderThan").status == 200
    # Exact: the list as it was at rv1
    r = kd.get(path("templates"), params={"resourceVersion": rv1,
                                          "resourceVersionMatch": "Exact"})
    assert r.status == 200, r
    (old,) = [i for i in r.json["items"] if i["metadata"]["name"] == "rv-1"]
    assert "labels" not in old["metadata"] and r.json["metadata"]["resourceVersion"] == rv1, r
    for bad in ({"resourceVersion": "abc"}, {"resourceVersion": "-3"},
                {"resourceVersionMatch": "Exact"}, {"resourceVersion": "1",
                                                    "resourceVersionMatch": "Sometimes"}):
        r = lst(**bad)
        assert r.status == 400, (bad, r)
    r = lst(resourceVersion="999999999")
    assert r.status == 504 and "Too large resource version" in r.json["message"], r


def test_expired_continue_and_exact_are_410():
    # a kfleetd that compacts everything but the last revision every 100 ms
    with kftest.Kfleetd(args=["--compact-interval", "100ms", "--compact-retention", "0",
                              "--compact-keep-revisions", "1"]) as k2:
        for i in range(4):
            assert k2.post(path("regions"), sample("Region", f"r{i}")).status == 201
        r = k2.get(path("regions"), params={"limit": "1"})
        cont, rv = r.json["metadata"]["continue"], r.json["metadata"]["resourceVersion"]
        for i in range(3):
            assert k2.post(path("regions"), sample("Region", f"later-{i}")).status == 201
        # rv itself stays readable while it is the compacted revision (what
        # was current at it is kept); only a compaction past it expires it.
        # Waiting for ">= rv" raced with the 100 ms ticks: a tick between
        # the writes above compacted to exactly rv, and rv still answered.
        kftest.eventually(
            lambda: (k2.metric("kfleet_store_compacted_revision") or 0) > int(rv),
            msg="no compaction past the list's revision happened")
        r = k2.get(path("regions"), params={"limit": "1", "continue": cont})
        assert r.status == 410 and r.json["reason"] == "Expired", r
        assert "continue" in r.json["message"], r
        r = k2.get(path("regions"), params={"resourceVersion": rv,
                                            "resourceVersionMatch": "Exact"})
        assert r.status == 410 and r.json["reason"] == "Expired", r


def test_zz_clean_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    kftest.main(globals(), shared=("kd",))
