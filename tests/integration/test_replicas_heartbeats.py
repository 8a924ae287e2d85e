"""test_replicas_heartbeats.py: host heartbeats with two kfleetd replicas on
a real 3-member etcd, the host-lifecycle controller running on the leader.

What an operator relies on once agents may talk to either replica:
  - hosts whose heartbeats all land on the follower stay Ready on the
    leader (the replicas share what they hear, every few hundred ms here);
  - kill -9 of the leader while heartbeats go on to the survivor: it takes
    over and no host flaps NotReady (every Host's Ready history, read from
    a watch on the survivor, and the Events: no NotReady), hosts of the dead
    leader included once their agents move;
  - a host that really stopped beating before the failover goes NotReady
    after the grace, on the new leader, once: one Ready -> NotReady
    transition and one HostNotReady Event;
  - a deleted Host's heartbeats are refused (404) by both replicas;
  - a leader frozen (SIGSTOP) past its lease wakes up with a stale view of
    every host's heartbeats: whatever its controller then tries is fenced,
    so the host that stopped beating is still written NotReady exactly once
    and no beating host is written NotReady at all;
  - a real kfleet-agent given both replicas (--server A,B) loses the one it
    talks to (kill -9, the leader): its host never goes NotReady, and a
    BroadcastJob created after the failover reaches it over the watch and
    its result comes back through the survivor.
Heartbeats are sent through the API (the batch endpoint), as agents do.
Skipped only when /usr/bin/etcd is not installed."""

import http.client
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import API, path, sample  # noqa: E402
import test_replicas as tr  # noqa: E402

GRACE = 4.0 if kftest.SANITIZE else 2.0  # --host-grace, seconds
BEAT = GRACE / 5  # the agents' heartbeat period
setup = tr.setup  # one 3-member etcd for the tests of this process


def replica(e, prefix, controllers="host-lifecycle"):
    return kftest.Kfleetd(store=e.url(prefix), controllers=controllers, args=[
        "--leader-ttl", "1s", "--host-grace", f"{int(GRACE * 1000)}ms",
        "--heartbeat-report-interval", "200ms"])


class Beater:
    """An agent for a few hosts: every BEAT, one batch heartbeat to its
    replica (which the test may change, as an agent fails over)."""

    def __init__(self, kd, names):
        self.kd = kd
        self.names = list(names)
        self.failed = 0
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def beat(self):
        names = list(self.names)
        if not names:
            return
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.kd.port, timeout=5)
            c.request("POST", API + "/heartbeats", json.dumps({"hosts": names}),
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            body = json.loads(r.read() or b"{}")
            c.close()
            if r.status == 200 and not body.get("unknown"):
                self.sent += 1
            else:
                self.failed += 1
        except OSError:
            self.failed += 1  # the replica is gone: the next beat goes elsewhere

    def run(self):
        while not self.stop.is_set():
            self.beat()
            self.stop.wait(BEAT)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


class ReadyHistory:
    """Every Host's status.ready as a watch on one replica sees it change."""

    def __init__(self, kd, rv):
        self.w = kd.watch(path("hosts"), {"resourceVersion": rv}, timeout=120)
        assert self.w.status == 200, self.w.status
        self.ready = {}  # name -> last status.ready seen
        self.changes = {}  # name -> [True, False, ...]
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.w.ended.is_set() or not self.w.events.empty():
            ev = self.w.next(0.2)
            if not ev or ev.get("type") not in ("ADDED", "MODIFIED"):
                continue
            obj = ev["object"]
            name = obj["metadata"]["name"]
            ready = obj.get("status", {}).get("ready")
            with self.lock:
                if ready is not None and ready != self.ready.get(name):
                    self.changes.setdefault(name, []).append(ready)
                self.ready[name] = ready

    def history(self, name):
        with self.lock:
            return list(self.changes.get(name, []))

    def close(self):
        self.w.close()


def ready_on(kd, name):
    r = kd.get(path("hosts", name))
    return r.status == 200 and r.json.get("status", {}).get("ready")


def not_ready_events(kd, name):
    """The count of HostNotReady Events about host name (repeats fold into
    one Event's count)."""
    items = kd.get(path("events")).json["items"]
    return sum(e["spec"].get("count", 1) for e in items
               if e["spec"]["involvedObject"]["name"] == name
               and e["spec"]["reason"] == "HostNotReady")


def create_hosts(kd, names):
    for n in names:
        r = kd.post(path("hosts"), sample("Host", n))
        assert r.status == 201, r
    return kd.get(path("hosts")).json["metadata"]["resourceVersion"]


def hold(seconds, check):
    """Calls check() every BEAT for seconds."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        check()
        time.sleep(BEAT)


def test_follower_heartbeats_and_kill_leader():
    e = setup()
    prefix = "/fleet-hb-kill"
    on_follower = ["f-1", "f-2", "f-3"]
    with replica(e, prefix) as a, replica(e, prefix) as b:
        leader = tr.the_leader([a, b])
        follower = b if leader is a else a
        rv = create_hosts(leader, on_follower + ["l-1", "dying"])
        hist = ReadyHistory(follower, rv)
        try:
            with Beater(follower, on_follower + ["dying"]) as bf, Beater(leader, ["l-1"]) as bl:
                for n in on_follower + ["l-1", "dying"]:
                    kftest.eventually(lambda n=n: ready_on(leader, n) is True, timeout=20,
                                      msg=f"{n} did not become Ready on the leader")

                def all_ready():
                    for n in on_follower + ["l-1", "dying"]:
                        assert ready_on(leader, n) is True, f"{n} is not Ready on the leader"
                # heartbeats only on the follower for two graces: still Ready
                hold(2 * GRACE, all_ready)
                assert leader.metric("kfleet_heartbeat_share_imports_total") > 0
                assert follower.metric("kfleet_heartbeat_share_reported_hosts") == 4
                assert leader.metric("kfleet_heartbeat_share_peers") == 1

                # "dying" stops; half a grace later the leader is killed, and
                # l-1's agent moves to the survivor
                bf.names.remove("dying")
                time.sleep(GRACE / 2)
                t_kill = time.monotonic()
                leader.kill()
                bl.kd = follower
                kftest.eventually(lambda: tr.leads(follower), timeout=15,
                                  msg="the survivor did not take over")
                took = time.monotonic() - t_kill
                kftest.eventually(lambda: ready_on(follower, "dying") is False,
                                  timeout=3 * GRACE + 10,
                                  msg="the host that stopped beating did not go NotReady")
                print(f"  kill -9 -> new leader {took:.2f} s; the silent host NotReady "
                      f"{time.monotonic() - t_kill:.2f} s after the kill (grace {GRACE:.0f} s)",
                      flush=True)

                # a grace after that, everything that beats is still Ready
                def others_ready():
                    for n in on_follower + ["l-1"]:
                        assert ready_on(follower, n) is True, f"{n} is not Ready"
                hold(GRACE, others_ready)
                assert bf.failed == 0, bf.failed
        finally:
            time.sleep(0.5)  # the watch catches up
            hist.close()
        for n in on_follower + ["l-1"]:
            assert hist.history(n) == [True], (n, hist.history(n))
            assert not_ready_events(follower, n) == 0, n
        assert hist.history("dying") == [True, False], hist.history("dying")
        assert not_ready_events(follower, "dying") == 1
        h = follower.get(path("hosts", "dying")).json
        cond = h["status"]["conditions"][0]
        assert cond["type"] == "Ready" and cond["status"] == "False", h
        assert cond["reason"] == "HeartbeatMissed", h


def test_deleted_host_is_refused_by_every_replica():
    e = setup()
    prefix = "/fleet-hb-delete"
    with replica(e, prefix) as a, replica(e, prefix) as b:
        leader = tr.the_leader([a, b])
        follower = b if leader is a else a
        create_hosts(leader, ["h-1"])
        for kd in (leader, follower):
            r = kd.post(API + "/heartbeats", {"hosts": ["h-1"]})
            assert r.status == 200 and r.json["renewed"] == 1, r
        assert leader.delete(path("hosts", "h-1")).status == 200

        def refused(kd):
            r = kd.post(path("hosts", "h-1", "heartbeat"))
            return r.status == 404
        for kd in (leader, follower):
            kftest.eventually(lambda kd=kd: refused(kd), timeout=10,
                              msg="a replica still takes heartbeats of a deleted Host")


def test_real_agent_moves_to_the_survivor():
    e = setup()
    prefix = "/fleet-hb-agent"
    ctrls = "host-lifecycle,broadcastjob"
    with replica(e, prefix, ctrls) as a, replica(e, prefix, ctrls) as b:
        leader = tr.the_leader([a, b])
        follower = b if leader is a else a
        # the leader first in the agent's list: the replica it uses is the one killed
        ag = kftest.Agent(leader, "w-1", role="worker", cluster="c1",
                          heartbeat=f"{int(BEAT * 1000)}ms",
                          args=["--server", f"{leader.url},{follower.url}"])
        with ag:
            kftest.eventually(lambda: ready_on(follower, "w-1") is True, timeout=20,
                              msg="the agent's host did not become Ready")
            rv = follower.get(path("hosts")).json["metadata"]["resourceVersion"]
            hist = ReadyHistory(follower, rv)
            try:
                leader.kill()
                kftest.eventually(lambda: tr.leads(follower), timeout=15,
                                  msg="the survivor did not take over")

                def still_ready():
                    assert ready_on(follower, "w-1") is True, "w-1 went NotReady:\n" + \
                        ag.log_tail()
                hold(2 * GRACE, still_ready)

                job = {"apiVersion": "kfleet.io/v1", "kind": "BroadcastJob",
                       "metadata": {"name": "after-failover"},
                       "spec": {"selector": {"matchLabels": {"kfleet.io/cluster": "c1"}},
                                "template": {"command": ["/bin/true"],
                                             "restartPolicy": "Never"}}}
                assert follower.post(path("broadcastjobs"), job).status == 201

                def completed():
                    r = follower.get(path("broadcastjobs", "after-failover"))
                    st = r.json.get("status", {}) if r.status == 200 else {}
                    return st if st.get("phase") == "completed" else None
                st = kftest.eventually(completed, timeout=30,
                                       msg="the job did not complete on the survivor")
                assert (st["desired"], st["succeeded"], st["failed"]) == (1, 1, 0), st
                t = follower.get(path("broadcasttasks", "after-failover.w-1"))
                assert t.status == 200 and t.json["status"]["exitCode"] == 0, t
            finally:
                time.sleep(0.5)  # the watch catches up
                hist.close()
            assert False not in hist.history("w-1"), hist.history("w-1")
            assert not_ready_events(follower, "w-1") == 0
            log = ag.log_tail(200)
            assert f"next: {follower.url}" in log, log


def test_frozen_leader_is_fenced():
    e = setup()
    prefix = "/fleet-hb-freeze"
    with replica(e, prefix) as a, replica(e, prefix) as b:
        leader = tr.the_leader([a, b])
        follower = b if leader is a else a
        rv = create_hosts(leader, ["beating", "dying"])
        hist = ReadyHistory(follower, rv)
        try:
            with Beater(follower, ["beating", "dying"]) as bf:
                for n in ("beating", "dying"):
                    kftest.eventually(lambda n=n: ready_on(leader, n) is True, timeout=20)
                # "dying" stops; the leader freezes before its grace is out,
                # and wakes up well after the survivor wrote it NotReady
                bf.names.remove("dying")
                time.sleep(GRACE / 2)
                os.kill(leader.pid, signal.SIGSTOP)
                try:
                    kftest.eventually(lambda: tr.leads(follower), timeout=15)
                    kftest.eventually(lambda: ready_on(follower, "dying") is False,
                                      timeout=3 * GRACE + 10)
                    time.sleep(GRACE / 2)
                finally:
                    os.kill(leader.pid, signal.SIGCONT)
                # the old leader, awake, has heard nothing for a while
                kftest.eventually(lambda: not tr.leads(leader), timeout=10)
                hold(GRACE, lambda: None)
                fenced = leader.metric("kfleet_leader_fenced_writes_total")
                print(f"  writes the woken leader tried and the fence refused: {fenced:.0f}",
                      flush=True)
                assert ready_on(follower, "beating") is True
        finally:
            time.sleep(0.5)
            hist.close()
        assert hist.history("beating") == [True], hist.history("beating")
        assert not_ready_events(follower, "beating") == 0
        assert hist.history("dying") == [True, False], hist.history("dying")
        assert not_ready_events(follower, "dying") == 1


if __name__ == "__main__":
    kftest.main(globals(), shared=("tr.etcd",))
