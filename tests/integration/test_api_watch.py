"""test_api_watch.py: watch streams: ADDED / MODIFIED / DELETED in order with
their resourceVersions, selectors (an object that stops matching is
DELETED), resuming from a resourceVersion (also across a restart on
SQLite), BOOKMARKs, sendInitialEvents, timeoutSeconds, 410 for a compacted
revision, many watchers, clean-up after clients go away, Tables for
kubectl, and shutdown ending every stream."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(args=["--bookmark-interval", "200ms"]).start()
    return kd


def rv(obj):
    return int(obj["metadata"]["resourceVersion"])


def test_added_modified_deleted():
    setup()
    assert kd.post(path("regions"), sample("Region", "w-old")).status == 201
    w = kd.watch(path("regions"))
    assert w.status == 200 and w.headers.get("Content-Type") == "application/json", w.status
    ev = w.next()
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "w-old", ev
    made = kd.post(path("regions"), sample("Region", "w-1")).json
    changed = kd.patch(path("regions", "w-1"), {"spec": {"displayName": "W1"}}).json
    gone = kd.delete(path("regions", "w-1")).json
    evs = [w.next() for _ in range(3)]
    assert [e["type"] for e in evs] == ["ADDED", "MODIFIED", "DELETED"], evs
    assert evs[0]["object"] == made, (evs[0], made)
    assert evs[1]["object"] == changed, evs[1]
    assert evs[1]["object"]["spec"]["displayName"] == "W1"
    # a DELETED event carries the last state at the revision of the delete
    assert evs[2]["object"]["metadata"]["name"] == "w-1"
    assert rv(evs[2]["object"]) > rv(changed) and rv(evs[2]["object"]) >= rv(gone), evs[2]
    assert kd.post(path("units"), sample("Unit", "other-kind")).status == 201
    assert w.next(timeout=0.5) is None  # another kind's change is not sent
    w.close()


def test_selectors():
    setup()
    w = kd.watch(path("templates"), {"labelSelector": "team=a", "resourceVersion":
                                     str(kftest_rev())})
    assert kd.post(path("templates"), sample("Template", "sel-1", labels={"team": "a"})
                   ).status == 201
    assert kd.post(path("templates"), sample("Template", "sel-2", labels={"team": "b"})
                   ).status == 201
    ev = w.next()
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "sel-1", ev
    # sel-1 stops matching: DELETED (with its state before the change); sel-2 starts: ADDED
    assert kd.patch(path("templates", "sel-1"), {"metadata": {"labels": {"team": "b"}}}
                    ).status == 200
    ev = w.next()
    assert ev["type"] == "DELETED" and ev["object"]["metadata"]["labels"]["team"] == "a", ev
    assert kd.patch(path("templates", "sel-2"), {"metadata": {"labels": {"team": "a"}}}
                    ).status == 200
    ev = w.next()
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "sel-2", ev
    assert w.next(timeout=0.3) is None
    w.close()

    # a field selector on the name (what kubectl get NAME -w sends)
    w = kd.watch(path("templates"), {"fieldSelector": "metadata.name=sel-2"})
    ev = w.next()
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "sel-2", ev
    assert kd.patch(path("templates", "sel-1"), {"spec": {"description": "x"}}).status in (
        200, 422)
    assert kd.delete(path("templates", "sel-2")).status == 200
    ev = w.next()
    assert ev["type"] == "DELETED" and ev["object"]["metadata"]["name"] == "sel-2", ev
    w.close()

    r = kd.get(path("templates"), params={"watch": "true", "labelSelector": "a in ("})
    assert r.status == 400 and r.json["reason"] == "BadRequest", r


def kftest_rev():
    return int(kd.get(path("regions")).json["metadata"]["resourceVersion"])


def test_resume_from_resource_version():
    setup()
    start = kftest_rev()
    made = [kd.post(path("hosts"), sample("Host", f"h{i}")).json for i in range(5)]
    # from the revision of the second create: the three after it, in order
    w = kd.watch(path("hosts"), {"resourceVersion": made[1]["metadata"]["resourceVersion"]})
    evs = [w.next() for _ in range(3)]
    assert [e["object"]["metadata"]["name"] for e in evs] == ["h2", "h3", "h4"], evs
    assert [rv(e["object"]) for e in evs] == [rv(m) for m in made[2:]], evs
    assert w.next(timeout=0.3) is None
    w.close()
    w = kd.watch(path("hosts"), {"resourceVersion": str(start)})
    assert len([w.next() for _ in range(5)]) == 5
    w.close()
    r = kd.get(path("hosts"), params={"watch": "1", "resourceVersion": "x1"})
    assert r.status == 400, r


def test_bookmarks_and_initial_events():
    setup()
    w = kd.watch(path("profiles"), {"allowWatchBookmarks": "true"})
    ev = w.next(timeout=3)
    assert ev["type"] == "BOOKMARK", ev
    assert ev["object"]["kind"] == "Profile" and ev["object"]["apiVersion"] == "kfleet.io/v1"
    assert rv(ev["object"]) >= 0, ev
    w.close()
    w = kd.watch(path("profiles"))
    assert w.next(timeout=1) is None  # no bookmarks unless asked
    w.close()

    assert kd.post(path("profiles"), sample("Profile", "p-init")).status == 201
    w = kd.watch(path("profiles"), {"sendInitialEvents": "true", "allowWatchBookmarks": "true",
                                    "resourceVersionMatch": "NotOlderThan"})
    ev = w.next()
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "p-init", ev
    ev = w.next()
    assert ev["type"] == "BOOKMARK", ev
    assert ev["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true", ev
    w.close()


def test_timeout_seconds_ends_the_stream():
    setup()
    w = kd.watch(path("regions"), {"timeoutSeconds": "1", "resourceVersion": str(kftest_rev())})
    assert w.ended.wait(10 * kftest.SLOW), "the watch did not end after timeoutSeconds"
    assert w.error is None and w.lines == [], (w.error, w.lines)


def test_table_watch():
    setup()
    w = kd.watch(path("guestclusters"), {"resourceVersion": str(kftest_rev())},
                 accept=kftest.TABLE_ACCEPT)
    assert kd.post(path("guestclusters"), sample("GuestCluster", "tw-1")).status == 201
    ev = w.next()
    assert ev["type"] == "ADDED" and ev["object"]["kind"] == "Table", ev
    assert ev["object"]["rows"][0]["cells"][0] == "tw-1", ev
    w.close()


def test_many_watchers_and_cleanup():
    setup()
    n = 100 if kftest.SANITIZE else 300
    # kfleetd's own controllers watch the store through informers
    own = kd.metric("kfleet_store_watchers")
    start = str(kftest_rev())
    ws = [kd.watch(path("ippools"), {"resourceVersion": start}) for _ in range(n)]
    assert all(w.status == 200 for w in ws)
    assert kd.metric("kfleet_api_watchers", {"resource": "ippools"}) == n
    made = kd.post(path("ippools"), sample("IPPool", "fan-1")).json
    for w in ws:
        ev = w.next(timeout=10)
        assert ev and ev["type"] == "ADDED" and ev["object"] == made, ev
    for w in ws:
        w.close()
    # a suspended watch notices its client left
    kftest.eventually(lambda: kd.metric("kfleet_api_watchers", {"resource": "ippools"}) == 0,
                      timeout=10, msg="watchers were not cleaned up after clients left")
    kftest.eventually(lambda: kd.metric("kfleet_store_watchers") <= own, timeout=10,
                      msg="store watches outlived the API watchers")


def test_compacted_revision_is_410():
    with kftest.Kfleetd(args=["--compact-interval", "100ms", "--compact-retention", "0",
                              "--compact-keep-revisions", "1"]) as k2:
        first = k2.post(path("regions"), sample("Region", "c0")).json
        for i in range(1, 5):
            assert k2.post(path("regions"), sample("Region", f"c{i}")).status == 201
        kftest.eventually(lambda: (k2.metric("kfleet_store_compacted_revision") or 0) > rv(first))
        w = k2.watch(path("regions"), {"resourceVersion": first["metadata"]["resourceVersion"]})
        assert w.status == 200
        ev = w.next()
        assert ev["type"] == "ERROR", ev
        st = ev["object"]
        assert st["kind"] == "Status" and st["code"] == 410 and st["reason"] == "Expired", st
        assert "too old resource version" in st["message"], st
        assert w.ended.wait(5 * kftest.SLOW)


def test_resume_across_restart():
    kftest.require(kftest.default_store() == "sqlite", "needs the sqlite store")
    with kftest.Kfleetd() as k2:
        seen = k2.post(path("regions"), sample("Region", "before")).json
        w = k2.watch(path("regions"), {"resourceVersion": seen["metadata"]["resourceVersion"]})
        after1 = k2.post(path("regions"), sample("Region", "after-1")).json
        assert w.next()["object"] == after1
        w.close()
        k2.restart()
        after2 = k2.post(path("regions"), sample("Region", "after-2")).json
        # a client that saw `seen` before the restart resumes from it
        w = k2.watch(path("regions"), {"resourceVersion": seen["metadata"]["resourceVersion"]})
        evs = [w.next(), w.next()]
        assert [e["object"] for e in evs] == [after1, after2], evs
        w.close()


def test_shutdown_ends_every_watch():
    with kftest.Kfleetd() as k2:
        ws = [k2.watch(path("regions"), {"resourceVersion": "1"}) for _ in range(20)]
        ws.append(k2.watch(path("regions"), {"allowWatchBookmarks": "true"}))
        time.sleep(0.2)
        t0 = time.monotonic()
        assert k2.stop() == 0
        assert time.monotonic() - t0 < 10 * kftest.SLOW
        for w in ws:
            assert w.ended.wait(5), "a watch stream did not end at shutdown"
            assert w.error is None, w.error  # a clean end of the chunked stream


def test_zz_clean_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    kftest.main(globals(), shared=("kd",))
