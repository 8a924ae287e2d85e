"""test_sec_agents.py: a host-bound agent token (user host:NAME) touches its
own host only (docs/security.md, "Host-bound agents").

It registers Host NAME and no other (another name would lock that host's
agent out), reports its capacity and address but not the operator's fields
(cordon, taints, reserved: a taken-over host could otherwise attract
members and fetch their keys), writes its own Host's status, and the
status of members bound to its own host only."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402

ADMIN = kftest.ADMIN_TOKEN
HOST_A = "host-a-token-0123456789"  # user host:h-a
UNBOUND = "agent-token-0123456789"

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(tokens=True).start()
        for name, host in (("m-a", "h-a"), ("m-b", "h-b")):
            m = sample("ControlPlaneMember", name)
            m["spec"]["host"] = host
            r = kd.post(path("controlplanemembers"), m, token=ADMIN)
            assert r.status == 201, r
    return kd


def test_registers_own_host_only():
    setup()
    r = kd.post(path("hosts"), sample("Host", "h-b"), token=HOST_A)
    assert r.status == 403 and "h-a" in r.json["message"], r
    assert kd.get(path("hosts", "h-b"), token=ADMIN).status == 404
    for spec in ({"unschedulable": True}, {"taints": []}, {"reserved": {"cpu": "1"}}):
        h = sample("Host", "h-a", **spec)
        r = kd.post(path("hosts"), h, token=HOST_A)
        assert r.status == 403 and "operator" in r.json["message"], (spec, r)
    r = kd.post(path("hosts"), sample("Host", "h-a"), token=HOST_A)
    assert r.status == 201, r


def test_operator_fields_of_own_host():
    setup()
    r = kd.patch(path("hosts", "h-a"),
                 {"spec": {"unschedulable": True,
                           "taints": [{"key": "bad", "effect": "NoSchedule"}]}}, token=ADMIN)
    assert r.status == 200, r
    for patch in ({"spec": {"unschedulable": False}}, {"spec": {"taints": None}},
                  {"spec": {"reserved": {"cpu": "0"}}}):
        r = kd.patch(path("hosts", "h-a"), patch, token=HOST_A)
        assert r.status == 403 and "operator" in r.json["message"], (patch, r)
    r = kd.patch(path("hosts", "h-a"), [{"op": "remove", "path": "/spec/taints"}],
                 content_type="application/json-patch+json", token=HOST_A)
    assert r.status == 403, r
    cur = kd.get(path("hosts", "h-a"), token=ADMIN).json
    del cur["spec"]["taints"]
    r = kd.put(path("hosts", "h-a"), cur, token=HOST_A)
    assert r.status == 403, r
    got = kd.get(path("hosts", "h-a"), token=ADMIN).json["spec"]
    assert got["unschedulable"] is True and got["taints"], got
    # what the agent reports it may change, and its status
    r = kd.patch(path("hosts", "h-a"), {"spec": {"capacity": {"cpu": "8", "memory": "16Gi"},
                                                 "address": "127.0.0.2"}}, token=HOST_A)
    assert r.status == 200, r
    r = kd.patch(path("hosts", "h-a", "status"), {"status": {"agentVersion": "x"}}, token=HOST_A)
    assert r.status == 200, r


def test_member_status_of_own_host_only():
    setup()
    st = {"status": {"phase": "Running"}}
    r = kd.patch(path("controlplanemembers", "m-b", "status"), st, token=HOST_A)
    assert r.status == 403 and "h-a" in r.json["message"], r
    r = kd.patch(path("controlplanemembers", "m-a", "status"), st, token=HOST_A)
    assert r.status == 200, r
    # an unbound agent (simulation) still writes every host's
    r = kd.patch(path("controlplanemembers", "m-b", "status"), st, token=UNBOUND)
    assert r.status == 200, r


def test_zz_clean_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    try:
        kftest.main(globals())
    finally:
        if kd:
            kd.close()
