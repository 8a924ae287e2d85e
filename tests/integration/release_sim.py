"""release_sim.py: a Release over simulated guest clusters with the real
upgrade engine, shared by tests/integration/test_release_sim.py (60
clusters) and bench/release/run (10,000).

The fleet: kfleetd with the profiles, host-lifecycle, unit-status,
placement, lifecycle and release controllers on a private window of member
ports; Region "local" with UNITS units of zones a, b, c; one
`kfleet-agent --simulate HOSTS` process per unit (its hosts spread over
the three zones, all on one address of 127.0.0.0/8 a unit: kfleetd gives
member ports per host address, and 10,000 clusters' members need more than
one address has), whose simulated members become Ready shortly after they
start and bind nothing (so the member ports need no window of their own); a Profile "small" whose control plane is three etcd members, in
1.36 and 1.37. The clusters are created on 1.36, placed, provisioned and
Running through the controllers and agents as real ones are; a Release
then takes them to 1.37 and the lifecycle controller's upgrade engine moves
every member (status.upgrade, status.version, the Upgraded condition).

Recorder watches the GuestClusters from before the Release and keeps, in
the store's order, the moments each cluster starts (spec.version becomes
the target: the release wrote it) and ends (status.version is the target:
the engine's postcheck passed); check() says, from that record alone,
whether a wave ever had more than its maxConcurrency clusters upgrading at
once, and whether a cluster's upgrade started outside its window.
"""

import datetime
import json
import math
import os
import threading
import time

import kftest
from kftest import eventually, path

OLD, TARGET = "1.36", "1.37"
ZONES = ("a", "b", "c")
PROFILE = "small"
CONTROLLERS = "profiles,host-lifecycle,unit-status,placement,lifecycle,release"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def hhmm(t):
    return t.strftime("%H:%M")


def open_window(now=None, hours=4):
    """A daily UTC window that opened more than half its duration ago: the
    starts it spreads over its first half are all past, so every cluster
    may start now, and it stays open hours/2 - 10 minutes more."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(hours=hours / 2, minutes=10)
    return {"start": hhmm(start), "duration": f"{hours}h", "timeZone": "UTC"}


def closed_window(now=None):
    """A daily UTC window that opens in two hours and lasts one."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return {"start": hhmm(now + datetime.timedelta(hours=2)), "duration": "1h",
            "timeZone": "UTC"}


def _hours(d):
    if d.endswith("h"):
        return float(d[:-1])
    if d.endswith("m"):
        return float(d[:-1]) / 60
    if d.endswith("d"):
        return float(d[:-1]) * 24
    raise ValueError(d)


def window_open_at(w, t):
    """Whether UTC window w (daily, no exclusions: the only kind these
    clusters have) is open at datetime t."""
    if not w:
        return True
    assert w.get("timeZone", "UTC") == "UTC" and "days" not in w and "exclusions" not in w, w
    h, m = (int(x) for x in w["start"].split(":"))
    dur = datetime.timedelta(hours=_hours(w["duration"]))
    for back in (0, 1, 2, 3, 4, 5, 6, 7):
        day = (t - datetime.timedelta(days=back)).date()
        opens = datetime.datetime(day.year, day.month, day.day, h, m,
                                  tzinfo=datetime.timezone.utc)
        if opens <= t < opens + dur:
            return True
    return False


def parse_time(s):
    return datetime.datetime.strptime(s.replace("Z", "+00:00")[:19], "%Y-%m-%dT%H:%M:%S") \
        .replace(tzinfo=datetime.timezone.utc)


class SimFleet:
    """kfleetd, UNITS simulated agents of HOSTS hosts each, the Profile."""

    def __init__(self, units=2, hosts=6, heartbeat="2s", host_grace="20s",
                 health_period="2s", ready_delay="100ms", log_level="info", args=()):
        self.units = [f"u{i + 1}" for i in range(units)]
        self.hosts = hosts
        self.heartbeat = heartbeat
        self.ready_delay = ready_delay
        self.kd = kftest.Kfleetd(
            store="sqlite", tokens=True, controllers=CONTROLLERS, log_level=log_level,
            args=["--member-ports", "30000-39999", "--host-grace", host_grace,
                  "--cluster-health-period", health_period] + list(args))
        self.agents = []

    def start(self):
        kd = self.kd.start()
        objs = [{"kind": "Region", "metadata": {"name": "local"},
                 "spec": {"zones": list(ZONES)}},
                {"kind": "IPPool", "metadata": {"name": "local"},
                 "spec": {"vpc": "local", "cidrs": ["10.0.0.0/8"]}},
                {"kind": "Profile", "metadata": {"name": PROFILE},
                 "spec": {"versions": [OLD, TARGET], "defaultVersion": TARGET,
                          "components": [{"name": "etcd"}]}}]
        objs += [{"kind": "Unit", "metadata": {"name": u},
                  "spec": {"region": "local", "zones": list(ZONES)}} for u in self.units]
        for body in objs:
            body["apiVersion"] = "kfleet.io/v1"
            r = kd.post(path(kftest.PLURALS[body["kind"]]), body)
            assert r.status == 201, r
        for i, u in enumerate(self.units):
            ag = kftest.Agent(kd, u, zone=",".join(ZONES), unit=u, simulate=self.hosts,
                              heartbeat=self.heartbeat, log_level="warning",
                              args=["--capacity-cpu", "256", "--capacity-memory", "1Ti",
                                    "--address", f"127.0.{1 + i // 250}.{1 + i % 250}",
                                    "--sim-ready-delay", self.ready_delay])
            self.agents.append(ag.start())
        want = len(self.units) * self.hosts
        eventually(lambda: len(kd.get(path("hosts"), params={
            "fieldSelector": "status.ready=true"}).json["items"]) == want,
            timeout=60, msg=f"{want} simulated hosts not Ready")
        return self

    def close(self):
        for ag in self.agents:
            ag.close()
        self.kd.close()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            import sys
            sys.stderr.write("--- kfleetd log (tail) ---\n" + self.kd.log_tail(60) + "\n")
            for ag in self.agents:
                sys.stderr.write(f"--- agent {ag.name} (tail) ---\n" + ag.log_tail(20) + "\n")
            self.close()
            return False
        try:
            for ag in self.agents:
                ag.stop()
            self.kd.stop()
        finally:
            self.close()
        return False


def cluster_body(name, window=None, labels=None):
    body = {"apiVersion": "kfleet.io/v1", "kind": "GuestCluster",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"region": "local", "profile": PROFILE, "version": OLD,
                     "expectedNodes": 3, "network": {"vpc": "local"}}}
    if window:
        body["spec"]["maintenanceWindow"] = window
    return body


def create_clusters(kd, bodies, clients=4):
    """POSTs the GuestClusters over `clients` keep-alive connections."""
    errors = []

    def run(part):
        c = kd.client()
        for b in part:
            r = c.post(path("guestclusters"), b)
            if r.status != 201:
                errors.append(r)
        c.close()
    threads = [threading.Thread(target=run, args=(bodies[i::clients],)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def list_all(kd, plural, params=None):
    c = kd.client()
    out, cont = [], None
    while True:
        p = dict(params or {}, limit="500")
        if cont:
            p["continue"] = cont
        r = c.get(path(plural), params=p)
        assert r.status == 200, r
        out += r.json["items"]
        cont = r.json["metadata"].get("continue")
        if not cont:
            break
    c.close()
    return out, r.json["metadata"]["resourceVersion"]


def phases(kd):
    items, _ = list_all(kd, "guestclusters")
    n = {}
    for gc in items:
        ph = gc.get("status", {}).get("phase", "None")
        n[ph] = n.get(ph, 0) + 1
    return n


def wait_running(kd, n, timeout, log=None, period=1.0):
    """Waits until the n clusters are Running on 1.36, looking every
    period seconds (each look is a LIST of every cluster)."""
    last = [None]

    def all_running():
        p = phases(kd)
        if log and p != last[0]:
            log(f"  phases: {p}")
        last[0] = p
        return p.get("Running", 0) == n
    deadline = time.monotonic() + timeout * kftest.SLOW
    while not all_running():
        assert time.monotonic() < deadline, f"not every cluster Running: {last[0]}"
        time.sleep(period)


class Recorder:
    """Every GuestCluster event from resourceVersion rv, in order; for each
    cluster the start (spec.version became the target) and end
    (status.version became the target) as store revisions and wall times,
    and per wave the most clusters upgrading at once."""

    def __init__(self, kd, rv, wave_of):
        self.wave_of = wave_of  # name, object -> wave name
        self.lock = threading.Lock()
        self.start = {}  # name -> (rv, time, object)
        self.end = {}
        self.moving = {}  # wave -> set of names
        self.peak = {}
        self.events = 0
        self.stop = False
        self.kd = kd
        self.rv = int(rv)  # the last revision seen
        self.rewatches = 0  # watches ended by kfleetd (its timeout) and opened again
        self.watch = self.open()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def open(self):
        w = kftest.Watch(self.kd.port, path("guestclusters"),
                         params={"watch": "true", "resourceVersion": str(self.rv)},
                         token=self.kd.admin_token, timeout=7200)
        assert w.status == 200, w.status
        return w

    def next_event(self):
        """The next event, None after a quiet 0.5 s; a watch that kfleetd
        ended (its watch timeout, 30 to 60 minutes) is opened again from
        the last revision seen, so a long run misses nothing."""
        ev = self.watch.next(timeout=0.5)
        if not ev and self.watch.ended.is_set() and self.watch.events.empty() and not self.stop:
            self.rewatches += 1
            self.watch = self.open()
        return ev

    def run(self):
        while not self.stop:
            ev = self.next_event()
            if not ev:
                continue
            o = ev.get("object") or {}
            if o.get("metadata", {}).get("resourceVersion"):
                self.rv = max(self.rv, int(o["metadata"]["resourceVersion"]))
            if ev.get("type") not in ("ADDED", "MODIFIED"):
                continue
            name = o["metadata"]["name"]
            rv = int(o["metadata"]["resourceVersion"])
            now = time.time()
            started = o["spec"].get("version") == TARGET
            done = o.get("status", {}).get("version") == TARGET
            with self.lock:
                self.events += 1
                wave = self.wave_of(name, o)
                if started and name not in self.start:
                    self.start[name] = (rv, now, o)
                    if not done:
                        s = self.moving.setdefault(wave, set())
                        s.add(name)
                        self.peak[wave] = max(self.peak.get(wave, 0), len(s))
                if done and name not in self.end:
                    self.end[name] = (rv, now, o)
                    self.moving.get(wave, set()).discard(name)

    def close(self):
        self.stop = True
        try:
            self.watch.conn.sock.close()
        except OSError:
            pass


def max_concurrency(wave, size):
    mc = wave.get("maxConcurrency")
    if mc is None:
        return size
    if isinstance(mc, str) and mc.endswith("%"):
        return max(1, math.ceil(size * float(mc[:-1]) / 100))
    return int(mc)


def check(rec, release, clusters):
    """What the record says against the release's waves and each
    cluster's window: a list of problems (empty: none)."""
    problems = []
    st = release["status"]
    for w, ws in zip(release["spec"]["waves"], st["waves"]):
        limit = max_concurrency(w, ws["clusters"])
        peak = rec.peak.get(w["name"], 0)
        ws["peak"] = peak
        if peak > limit:
            problems.append(f"wave {w['name']}: {peak} clusters upgrading at once, "
                            f"maxConcurrency {limit}")
    for gc in clusters:
        name = gc["metadata"]["name"]
        if name not in rec.start:
            problems.append(f"{name}: never started")
            continue
        _, _, at_start = rec.start[name]
        window = at_start["spec"].get("maintenanceWindow")
        started = gc.get("status", {}).get("upgrade", {}).get("startedAt")
        if not started:
            problems.append(f"{name}: no status.upgrade.startedAt")
            continue
        if not window_open_at(window, parse_time(started)):
            problems.append(f"{name}: upgrade started at {started} outside its window "
                            f"{json.dumps(window)}")
    return problems


def release_body(name, waves):
    return {"apiVersion": "kfleet.io/v1", "kind": "Release", "metadata": {"name": name},
            "spec": {"version": TARGET, "waves": waves}}
