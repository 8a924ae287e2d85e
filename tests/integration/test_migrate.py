"""test_migrate.py: live migration of a guest cluster's control plane
between two units of one region (docs/internals/migration.md).

Real processes throughout: kfleetd (placement, lifecycle, endpoints and the
replace controller, which drives migrations), units ua and ub of region
local with three meta agents each (one per zone), and a guest running
upstream Kubernetes (three etcd members, two apiservers, controller
managers and schedulers) placed on ua. What a user sees is asserted:

- `kfleet migrate` refused with the reason: an editor (admin only), a
  unit of another region, a unit without Ready hosts, the unit it runs on;
- ConfigMaps written through the endpoint with kubectl before the move;
- `kfleet migrate web --unit ub` while a client creates and reads
  ConfigMaps through the endpoint over HTTPS without pause: the phase
  says Migrating with the Migrated condition naming each member's step;
  a second migration meanwhile is refused;
- kfleetd SIGKILLed and started again right after the first member was
  rebound (it resumes from the records), and the agent asked to change
  etcd's membership SIGKILLed as soon as the request is seen on its member
  (before, between or after its etcdctl runs) and started again: the
  change is done once, never twice;
- etcd's membership, looked at every 0.3 s through the cluster's etcd
  endpoints: never more than three members, never two started members of
  one name (slot), never fewer than two voting members (a quorum of
  three: one member moves at a time);
- afterwards: every member bound to a host of ub and Ready, the cluster
  Running on unit ub with its endpoint there, three etcd members (three
  member IDs gone, three new, every endpoint healthy), every old member
  process gone (by PID), Events for each step, the ConfigMaps written
  before read back, and the client's own ConfigMaps all readable.
The client's failures and longest gap between successful requests are
printed (and written to KF_MIGRATE_BENCH=FILE for bench/migrate/run, which
also skips the kfleetd and agent kills); nothing here asserts a time.
"""

import base64
import http.client
import json
import os
import ssl
import subprocess
import threading
import time

import kftest
import lifecycle_fixture as lf
from kftest import eventually, path

CONTROLLERS = "profiles,host-lifecycle,unit-status,placement,lifecycle,replace,endpoints"
EDITOR = "editor-token-0123456789"
ZONES = ("a", "b", "c")
BENCH = os.environ.get("KF_MIGRATE_BENCH")


def kfleet(kd, *args, token=None):
    return subprocess.run([os.path.join(kftest.BIN_DIR, "kfleet")] + list(args),
                          env=dict(os.environ, KFLEET_SERVER=kd.url,
                                   KFLEET_TOKEN=token or kd.admin_token, HOME="/nonexistent"),
                          capture_output=True, text=True, timeout=60)


def cluster(kd):
    r = kd.get(path("guestclusters", "web"))
    assert r.status == 200, r
    return r.json


def condition(c, kind):
    for cond in c.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return cond
    return None


def events(kd):
    r = kd.get(path("events"), params={"fieldSelector": "spec.involvedObject.name=web"})
    assert r.status == 200, r
    return [e["spec"] for e in r.json["items"]]


def record(m):
    v = m["metadata"].get("annotations", {}).get("kfleet.io/replacement")
    return json.loads(v) if v else None


class Client(threading.Thread):
    """Creates a ConfigMap and reads it back through the endpoint, again
    and again, each request on a new TLS connection with the kubeconfig's
    client certificate. Records when each request ended and whether it
    succeeded."""

    def __init__(self, kc_path, directory):
        super().__init__(daemon=True)
        data = {}
        with open(kc_path) as fh:
            for line in fh:
                k, _, v = line.strip().partition(": ")
                data.setdefault(k, v.strip('"'))
        server = data["server"][len("https://"):]
        self.host, _, port = server.rpartition(":")
        self.port = int(port)
        files = {}
        for k in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
            files[k] = os.path.join(directory, k)
            with open(files[k], "wb") as fh:
                fh.write(base64.b64decode(data[k]))
        self.ctx = ssl.create_default_context(cafile=files["certificate-authority-data"])
        self.ctx.load_cert_chain(files["client-certificate-data"], files["client-key-data"])
        self.log = []  # (monotonic end, ok, what)
        self.created = []
        self.stop_at = None
        self.halt = threading.Event()

    def request(self, method, url, body=None):
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=5)
        try:
            conn.request(method, url, body=json.dumps(body) if body else None,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException) as e:
            return str(e) or type(e).__name__
        finally:
            conn.close()

    def run(self):
        base = "/api/v1/namespaces/kfleet-test/configmaps"
        i = 0
        while not self.halt.is_set():
            name = f"load-{i}"
            st = self.request("POST", base, {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": name}, "data": {"n": str(i)}})
            # a create whose answer was lost may have been done: 409 then
            ok = st in (201, 409)
            self.log.append((time.monotonic(), ok, f"create {name}: {st}"))
            if ok:
                self.created.append(name)
                i += 1
                st = self.request("GET", f"{base}/{name}")
                self.log.append((time.monotonic(), st == 200, f"get {name}: {st}"))
            self.halt.wait(0.1)

    def summary(self, start, end):
        """Failed requests and the longest time without a successful one
        between start and end."""
        oks = [start] + [t for t, ok, _ in self.log if ok and start <= t <= end] + [end]
        failed = [w for t, ok, w in self.log if not ok and start <= t <= end]
        gap, at = max((b - a, a) for a, b in zip(oks, oks[1:]))
        return {"requests": len([1 for t, _, _ in self.log if start <= t <= end]),
                "failed": len(failed), "longest_gap_s": round(gap, 2),
                "longest_gap_from_s": round(at - start, 2),
                "failures": sorted(set(failed))[:10]}


class VoterWatch(threading.Thread):
    """etcd's membership seen through the cluster's own etcd endpoints (as
    status.endpoints.etcd names them at each look) every 0.3 s: the fewest
    voting members, the most members, and any name two members had."""

    def __init__(self, kd, ec):
        super().__init__(daemon=True)
        self.kd, self.ec = kd, ec
        self.min_voters, self.max_members, self.looks = None, 0, 0
        self.twice = []
        self.halt = threading.Event()

    def look(self):
        # its own connection (the test's is not shared across threads); none
        # while kfleetd is killed and started again
        try:
            cl = self.kd.client()
            r = cl.get(path("guestclusters", "web"))
            cl.close()
        except (OSError, http.client.HTTPException):
            return
        eps = (r.json.get("status", {}).get("endpoints", {}).get("etcd", [])
               if r.status == 200 else [])
        for ep in eps:
            p = self.ec.run(ep, "member", "list", "-w", "json", timeout="2s")
            if p.returncode == 0:
                ms = json.loads(p.stdout)["members"]
                voters = len([m for m in ms if not m.get("isLearner")])
                self.min_voters = voters if self.min_voters is None else min(self.min_voters,
                                                                             voters)
                self.max_members = max(self.max_members, len(ms))
                names = [m["name"] for m in ms if m.get("name")]  # "": added, not started
                self.twice += [n for n in set(names) if names.count(n) > 1]
                self.looks += 1
                return

    def run(self):
        while not self.halt.is_set():
            self.look()
            self.halt.wait(0.3)


def own_pids(f, unit):
    """(agent, member name, pid, start) of every member process the
    unit's agents run."""
    out = []
    for n, ag in f.agents.items():
        if n.startswith(unit + "-"):
            for name, pid, pst, _k, _ks in kftest.runner_processes(ag.data_dir, ("members",)):
                if kftest.pid_alive(pid, pst):
                    out.append((n, name, pid, pst))
    return out


def member_ids(ec):
    for ep in ec.endpoints:
        p = ec.run(ep, "member", "list", "-w", "json")
        if p.returncode == 0:
            return sorted((m.get("name", ""), tuple(m.get("peerURLs", [])), m.get("ID"))
                          for m in json.loads(p.stdout)["members"])
    return None


def migrated(kd):
    c = cluster(kd)
    done = c["metadata"].get("annotations", {}).get("kfleet.io/migrated")
    return c if done and c["status"].get("phase") == "Running" else None


def interrupt(f, kd):
    """kfleetd killed right after the first rebind, then the agent asked to
    change etcd's membership killed as soon as the request is seen."""
    eventually(lambda: any(record(m) for m in lf.members(kd, "web")), timeout=60 * kftest.SLOW,
               interval=0.05, msg="no member moved")
    kd.kill()
    kd.start()
    helper = eventually(lambda: next((r["helper"] for m in lf.members(kd, "web")
                                      for r in [record(m)]
                                      if r and r.get("step") == "Changing"), None),
                        timeout=90 * kftest.SLOW, interval=0.02,
                        msg="no etcd membership change asked")
    host = next(m["spec"]["host"] for m in lf.members(kd, "web")
                if m["metadata"]["name"] == helper)
    ag = f.agents[host]
    ag.kill()
    unit, _, zone = host.rpartition("-")
    f.start_agent(host, zone, unit, data_dir=ag.data_dir)
    return host


def test_migrate_between_units_under_load():
    with lf.TwoUnits(CONTROLLERS, "migrate") as f:
        kd = f.kd
        f.start_unit("ua")
        lf.k8s_profile(kd)
        lf.create_cluster(kd, "web", profile="k8s-test")
        lf.wait_phase(kd, "web", "Running", timeout=120 * kftest.SLOW)
        assert cluster(kd)["status"]["unit"] == "ua"
        f.start_unit("ub")

        p = lf.kfleet(kd, "get", "kubeconfig", "web")
        kc = os.path.join(f.tmp, "web.kubeconfig")
        with open(kc, "w") as fh:
            fh.write(p.stdout)
        lf.kubectl(kc, "create", "namespace", "kfleet-test")
        for i in range(5):
            lf.kubectl(kc, "create", "configmap", f"before-{i}", "-n", "kfleet-test",
                       f"--from-literal=n={i}")

        # refused, with the reason; nothing starts
        p = kfleet(kd, "migrate", "web", "--unit", "ub", token=EDITOR)
        assert p.returncode == 1 and "needs role admin" in p.stderr, p
        p = kfleet(kd, "migrate", "web", "--unit", "far-u")
        assert p.returncode == 1 and "moves only within its region" in p.stderr, p
        p = kfleet(kd, "migrate", "web", "--unit", "uc")
        assert p.returncode == 1 and "does not fit on unit uc" in p.stderr, p
        assert "no ready, schedulable host" in p.stderr, p
        p = kfleet(kd, "migrate", "web", "--unit", "ua")
        assert p.returncode == 1 and "runs on unit ua already" in p.stderr, p
        p = kfleet(kd, "migrate", "web", "--unit", "nosuch")
        assert p.returncode == 1 and "does not exist" in p.stderr, p
        assert "kfleet.io/migrate" not in cluster(kd)["metadata"].get("annotations", {})

        ec = lf.EtcdClient(kd, "web", os.path.join(f.tmp, "etcd-client"))
        ids_before = member_ids(ec)
        assert ids_before and len(ids_before) == 3, ids_before
        old = own_pids(f, "ua")
        assert len(old) == len(lf.members(kd, "web")), (old, lf.members(kd, "web"))
        endpoint = cluster(kd)["status"]["endpoints"]["apiServer"]

        voters = VoterWatch(kd, ec)
        voters.start()
        client = Client(kc, f.tmp)
        client.start()
        eventually(lambda: client.created, timeout=30, msg="the client never wrote")
        t0 = time.monotonic()
        p = kfleet(kd, "migrate", "web", "--unit", "ub")
        assert p.returncode == 0, p
        assert "migrates from unit ua to unit ub" in p.stdout, p
        c = eventually(lambda: (lambda c: c if c["status"].get("phase") == "Migrating" else None)(
            cluster(kd)), timeout=30, interval=0.1, msg="never Migrating")
        p = kfleet(kd, "migrate", "web", "--unit", "ub")
        assert p.returncode == 1 and "already migrating" in p.stderr, p
        helper_host = None
        if not BENCH:
            helper_host = interrupt(f, kd)
            cond = condition(cluster(kd), "Migrated")
            assert cond and cond["reason"] == "InProgress" and "from unit ua to unit ub" in \
                cond["message"], cond

        c = eventually(lambda: migrated(kd), timeout=240 * kftest.SLOW, interval=0.2,
                       msg=f"web not migrated: {cluster(kd)['status']}")
        t1 = time.monotonic()
        # the client goes on writing through the endpoint after the move
        n0 = len(client.created)
        eventually(lambda: len(client.created) >= n0 + 5, timeout=60 * kftest.SLOW,
                   msg=f"the client no longer writes: {client.log[-5:]}")
        client.halt.set()
        voters.halt.set()
        client.join(timeout=20)
        voters.join(timeout=20)
        stats = client.summary(t0, time.monotonic())
        stats["migrate_s"] = round(t1 - t0, 2)
        print(f"client through the endpoint during the migration: {json.dumps(stats)}")

        # etcd, whenever it was looked at: one member moving at a time (two
        # voting members at least: the quorum of three), never a fourth, never
        # two started members of one slot
        print(f"etcd membership during the migration: {voters.looks} looks, at least "
              f"{voters.min_voters} voting members, at most {voters.max_members} members")
        assert voters.looks > 0 and voters.min_voters >= 2, vars(voters)
        assert voters.max_members <= 3 and voters.twice == [], vars(voters)
        stats.update(etcd_looks=voters.looks, etcd_min_voters=voters.min_voters,
                     etcd_max_members=voters.max_members)

        # where everything runs now
        assert c["status"]["unit"] == "ub", c["status"]
        cond = condition(c, "Migrated")
        assert cond["status"] == "True" and cond["reason"] == "Completed", cond
        ms = lf.members(kd, "web")
        for m in ms:
            assert m["spec"]["host"].startswith("ub-"), m["spec"]
            assert m["status"]["phase"] == "Ready" and m["status"]["host"] == m["spec"]["host"], \
                m["status"]
        etcd_zones = sorted(m["spec"]["zone"] for m in ms if m["spec"]["component"] == "etcd")
        assert etcd_zones == list(ZONES), etcd_zones
        reasons = [e["reason"] for e in events(kd)]
        for want in ("MigrationStarted", "MemberMigrating", "EtcdMemberReplaced",
                     "MemberMigrated", "EndpointMoved", "Migrated"):
            assert want in reasons, (want, reasons)
        moved = {e["message"].split()[1] for e in events(kd) if e["reason"] == "MemberMigrated"}
        assert moved == {m["metadata"]["name"] for m in ms}, (moved, reasons)
        new_endpoint = c["status"]["endpoints"]["apiServer"]
        print(f"endpoint before {endpoint}, after {new_endpoint}")

        # the old members are stopped: no process of them runs on ua
        eventually(lambda: not any(kftest.pid_alive(pid, st) for _a, _n, pid, st in old),
                   timeout=30, msg=f"old member processes still run: {old}")
        assert own_pids(f, "ua") == [], own_pids(f, "ua")

        # etcd: three members, all new (new IDs), all healthy
        ec = lf.EtcdClient(kd, "web", os.path.join(f.tmp, "etcd-client-2"))
        now = eventually(lambda: (lambda m: m if m and len(m) == 3 and all(n for n, _, _ in m)
                                  else None)(member_ids(ec)), timeout=30,
                         msg=f"etcd member list: {member_ids(ec)}")
        assert {i for _, _, i in now}.isdisjoint({i for _, _, i in ids_before}), (now, ids_before)
        for ep in ec.endpoints:
            eventually(lambda ep=ep: ec.run(ep, "endpoint", "health").returncode == 0,
                       timeout=30, msg=f"etcd at {ep} not healthy")

        # the data, through the endpoint the cluster has now
        if new_endpoint != endpoint:
            p = lf.kfleet(kd, "get", "kubeconfig", "web")
            with open(kc, "w") as fh:
                fh.write(p.stdout)
        out = lf.kubectl(kc, "get", "configmaps", "-n", "kfleet-test", "-o", "json").stdout
        got = {i["metadata"]["name"]: i.get("data", {}).get("n")
               for i in json.loads(out)["items"]}
        for i in range(5):
            assert got.get(f"before-{i}") == str(i), got
        missing = [n for n in client.created if n not in got]
        assert missing == [], missing
        assert len(client.created) > 0
        lf.kubectl(kc, "create", "configmap", "after", "-n", "kfleet-test", "--from-literal=n=x")

        if helper_host:
            assert f.agents[helper_host].running()
        if BENCH:
            with open(BENCH, "w") as fh:
                json.dump(stats, fh)


if __name__ == "__main__":
    kftest.main(globals())
