"""test_replicas.py: two active kfleetd replicas on a real 3-member etcd.

What an operator running two replicas relies on:
  - exactly one replica leads (kfleet_leader on /metrics, /readyz says who),
    and both serve reads, writes and watches;
  - kill -9 of the leader: the other one becomes the leader (within about
    the lease TTL; the time is printed, not asserted) and does the
    leader's work (here: the Event garbage collector deletes an expired
    Event after the failover); no write acknowledged with 201 by either
    replica is lost, although a writer hammered both through the kill;
  - a leader frozen past its lease (SIGSTOP) finds, when it wakes, that it
    no longer leads and stands by: never two leaders;
  - SIGTERM of the leader resigns: the other leads at once.
Skipped only when /usr/bin/etcd is not installed."""

import base64
import http.client
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402

TTL = "1s"
etcd = None


def setup():
    global etcd
    if etcd is None:
        etcd = kftest.Etcd(3).start()
    return etcd


def replica(e, prefix):
    return kftest.Kfleetd(store=e.url(prefix), args=[
        "--leader-ttl", TTL, "--event-gc-interval", "200ms", "--event-ttl", "1h"])


def leads(kd):
    try:
        return kd.metric("kfleet_leader") == 1
    except (OSError, AssertionError, http.client.HTTPException):
        return False


def the_leader(kds, timeout=20.0):
    """Waits until exactly one of kds leads; returns it."""
    found = []

    def one():
        found[:] = [kd for kd in kds if leads(kd)]
        return len(found) == 1
    kftest.eventually(one, timeout=timeout * kftest.SLOW, msg="no single leader")
    return found[0]


def etcd_put(e, key, value):
    """Writes a raw key into etcd through its JSON gateway."""
    c = http.client.HTTPConnection("127.0.0.1", e.client_ports[1], timeout=10)
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                       "value": base64.b64encode(value.encode()).decode()})
    c.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    assert r.status == 200, data


def leave_expired_event(e, prefix, name):
    """An Event last seen in 2020, as a previous kfleetd would have left it:
    only the leader's Event GC deletes it."""
    ev = {"apiVersion": "kfleet.io/v1", "kind": "Event",
          "metadata": {"name": name, "uid": f"uid-{name}",
                       "creationTimestamp": "2020-01-01T00:00:00Z"},
          "spec": {"involvedObject": {"kind": "Region", "name": "r1"}, "type": "Normal",
                   "reason": "Test", "message": "left over", "count": 1,
                   "firstTimestamp": "2020-01-01T00:00:00Z",
                   "lastTimestamp": "2020-01-01T00:00:00Z"}}
    etcd_put(e, f"{prefix}/events/{name}", json.dumps(ev, separators=(",", ":")))


def gone(kd, plural, name):
    return lambda: kd.get(path(plural, name)).status == 404


class Writer:
    """Creates Regions on both replicas in turn, as fast as they answer,
    and remembers every name acknowledged with 201."""

    def __init__(self, kds, tag):
        self.kds = kds
        self.tag = tag
        self.acked = []
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        i = 0
        while not self.stop.is_set() and i < 5000:
            kd = self.kds[i % len(self.kds)]
            name = f"{self.tag}-{i}"
            i += 1
            try:
                c = http.client.HTTPConnection("127.0.0.1", kd.port, timeout=10)
                c.request("POST", path("regions"), json.dumps(sample("Region", name)),
                          {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 201:
                    self.acked.append(name)
                else:
                    self.failed += 1
            except OSError:
                self.failed += 1  # the killed replica: not acknowledged
                time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def test_kill_leader():
    e = setup()
    prefix = "/fleet-kill"
    with replica(e, prefix) as a, replica(e, prefix) as b:
        leader = the_leader([a, b])
        other = b if leader is a else a
        ready = other.get("/readyz")
        assert ready.status == 200 and "leader: no" in ready.text, ready
        assert leader.get("/readyz").text.count("leader: yes") == 1
        # both serve writes, and each sees the other's
        assert leader.post(path("regions"), sample("Region", "via-leader")).status == 201
        assert other.post(path("regions"), sample("Region", "via-other")).status == 201
        assert other.get(path("regions", "via-leader")).status == 200
        # the leader does the leader's work
        leave_expired_event(e, prefix, "old-1")
        kftest.eventually(gone(other, "events", "old-1"), timeout=10 * kftest.SLOW)

        with Writer([leader, other], "w") as w:
            kftest.eventually(lambda: len(w.acked) >= 20, timeout=20 * kftest.SLOW)
            t0 = time.monotonic()
            leader.kill()
            kftest.eventually(lambda: leads(other), timeout=15 * kftest.SLOW,
                              msg="the survivor did not take over")
            took = time.monotonic() - t0
            n = len(w.acked)
            kftest.eventually(lambda: len(w.acked) >= n + 20, timeout=20 * kftest.SLOW)
        print(f"  leader failover (kill -9 to new leader) took {took:.2f} s with a {TTL} lease",
              flush=True)

        # every acknowledged write is there
        listed = {o["metadata"]["name"] for o in other.get(path("regions")).json["items"]}
        lost = [n for n in w.acked if n not in listed]
        assert not lost, f"{len(lost)} acknowledged writes lost: {lost[:10]}"
        # the new leader does the leader's work
        leave_expired_event(e, prefix, "old-2")
        kftest.eventually(gone(other, "events", "old-2"), timeout=10 * kftest.SLOW)
        assert other.metric("kfleet_leader_terms_total") >= 1
        assert "leader: yes" in other.get("/readyz").text


def test_frozen_leader_stands_down():
    e = setup()
    prefix = "/fleet-freeze"
    with replica(e, prefix) as a, replica(e, prefix) as b:
        leader = the_leader([a, b])
        other = b if leader is a else a
        token_before = other.metric("kfleet_leader_token")
        os.kill(leader.pid, signal.SIGSTOP)
        try:
            kftest.eventually(lambda: leads(other), timeout=15 * kftest.SLOW)
        finally:
            os.kill(leader.pid, signal.SIGCONT)
        assert other.metric("kfleet_leader_token") > token_before
        # the old leader wakes up, sees its lease is gone, and stands by
        kftest.eventually(lambda: not leads(leader), timeout=10 * kftest.SLOW)
        assert the_leader([a, b]) is other
        assert "leader: no" in leader.get("/readyz").text
        assert leader.metric("kfleet_leader_fenced_writes_total") is not None
        # the new leader does the work, the old one serves the API
        leave_expired_event(e, prefix, "old-3")
        kftest.eventually(gone(leader, "events", "old-3"), timeout=10 * kftest.SLOW)


def test_sigterm_resigns():
    e = setup()
    prefix = "/fleet-term"
    with replica(e, prefix) as a, replica(e, prefix) as b:
        leader = the_leader([a, b])
        other = b if leader is a else a
        t0 = time.monotonic()
        leader.stop()
        kftest.eventually(lambda: leads(other), timeout=10 * kftest.SLOW)
        print(f"  handover after SIGTERM took {time.monotonic() - t0:.2f} s", flush=True)
        assert "leader: yes" in other.get("/readyz").text


def test_single_writer_store_leads():
    with kftest.Kfleetd(store="memory") as kd:
        assert kd.metric("kfleet_leader") == 1
        assert kd.metric("kfleet_leader_token") == 0
        assert "leader: yes" in kd.get("/readyz").text


if __name__ == "__main__":
    kftest.main(globals(), shared=("etcd",))
