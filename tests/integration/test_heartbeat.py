"""test_heartbeat.py: host heartbeats through the API with a real kfleetd
and its controllers. Agents (and admins) may beat, other roles get 403; a
name without a Host gets 404 with what to do; the batch form renews many
and lists the unknown; heartbeats write nothing to the store (the Host's
resourceVersion stays while it beats); a host that stops beating is
NotReady after the grace (--host-grace) with an Event, and Ready again on
its next heartbeat."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import API, path, sample  # noqa: E402

ADMIN = kftest.ADMIN_TOKEN
EDITOR = "editor-token-0123456789"
VIEWER = "viewer-token-0123456789"
AGENT = "agent-token-0123456789"
GRACE = 1.0 * kftest.SLOW

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(tokens=True, controllers=True,
                            args=["--host-grace", f"{int(GRACE * 1000)}ms"]).start()
        for name in ("h1", "h2", "h3"):
            r = kd.post(path("hosts"), sample("Host", name), token=ADMIN)
            assert r.status == 201, r
    return kd


def beat(name, token=AGENT):
    return kd.post(path("hosts", name, "heartbeat"), token=token)


def ready(name):
    return kd.get(path("hosts", name), token=ADMIN).json.get("status", {}).get("ready")


def test_roles():
    setup()
    assert beat("h1").status == 200
    r = beat("h1", token=ADMIN)
    assert r.status == 200 and r.json["kind"] == "Heartbeat" and r.json["host"] == "h1", r
    for tok, role in ((EDITOR, "editor"), (VIEWER, "viewer")):
        r = beat("h1", token=tok)
        assert r.status == 403, r
        assert f"(role {role})" in r.json["message"] and "agent or admin" in r.json["message"], r
    r = kd.post(path("hosts", "h1", "heartbeat"), token="nope")
    assert r.status == 401, r
    # the method is checked too
    r = kd.get(path("hosts", "h1", "heartbeat"), token=AGENT)
    assert r.status == 405, r


def test_unknown_host_is_404():
    setup()
    r = beat("ghost")
    assert r.status == 404, r
    assert r.json["reason"] == "NotFound", r
    assert 'host "ghost" is not registered: create its Host object first' in r.json["message"], r


def test_batch():
    setup()
    r = kd.post(API + "/heartbeats", {"hosts": ["h1", {"name": "h2"}, "ghost"]}, token=AGENT)
    assert r.status == 200, r
    assert r.json["renewed"] == 2 and r.json["unknown"] == ["ghost"], r
    r = kd.post(API + "/heartbeats", {"hosts": "h1"}, token=AGENT)
    assert r.status == 400 and "send {\"hosts\"" in r.json["message"], r
    r = kd.post(API + "/heartbeats", {"hosts": [{"nom": "h1"}]}, token=AGENT)
    assert r.status == 400 and "hosts[0]" in r.json["message"], r
    r = kd.post(API + "/heartbeats", b"{not json", token=AGENT, content_type="application/json")
    assert r.status == 400 and "not valid JSON" in r.json["message"], r
    r = kd.post(API + "/heartbeats", {"hosts": ["h1"]}, token=VIEWER)
    assert r.status == 403, r


def test_heartbeats_write_nothing_and_grace():
    setup()
    assert beat("h3").status == 200
    kftest.eventually(lambda: ready("h3") is True, timeout=10 * kftest.SLOW, msg="h3 Ready")
    rv = kd.get(path("hosts", "h3"), token=ADMIN).json["metadata"]["resourceVersion"]
    end = time.monotonic() + 2 * GRACE
    while time.monotonic() < end:
        assert beat("h3").status == 200
        time.sleep(GRACE / 5)
    h = kd.get(path("hosts", "h3"), token=ADMIN).json
    assert h["metadata"]["resourceVersion"] == rv, h
    assert h["status"]["ready"] is True, h
    assert h["metadata"]["labels"]["kfleet.io/unit"] == "hz-u1", h

    # silence: NotReady after the grace, an Event says why
    kftest.eventually(lambda: ready("h3") is False, timeout=10 * kftest.SLOW, msg="h3 NotReady")
    h = kd.get(path("hosts", "h3"), token=ADMIN).json
    cond = h["status"]["conditions"][0]
    assert cond["type"] == "Ready" and cond["status"] == "False", h
    assert cond["reason"] == "HeartbeatMissed" and "no heartbeat for" in cond["message"], h

    def event_recorded():
        evs = kd.get(path("events"), token=ADMIN).json["items"]
        return any(e["spec"]["involvedObject"]["name"] == "h3"
                   and e["spec"]["reason"] == "HostNotReady" for e in evs)
    kftest.eventually(event_recorded, timeout=10 * kftest.SLOW, msg="HostNotReady event")
    # nothing else happened to it: still there, same spec
    assert h["spec"]["unit"] == "hz-u1"

    assert beat("h3").status == 200
    kftest.eventually(lambda: ready("h3") is True, timeout=10 * kftest.SLOW, msg="h3 Ready again")


def test_zz_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    kftest.main(globals())
