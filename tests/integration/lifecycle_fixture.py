"""lifecycle_fixture.py: a local fleet for the lifecycle and reliability
tests: kfleetd with the controllers that take a guest cluster from a
GuestCluster object to running processes (profiles, host-lifecycle,
unit-status, placement, lifecycle; with kubernetes=True also the
endpoints controller running HAProxy) on a private window of member ports,
Region "local" with Unit u1 and an IPPool, three meta agents (zones a, b,
c), and guest clusters of a Profile whose control plane is etcd alone, or
the real upstream Kubernetes control plane (k8s_profile: the programs that
scripts/install-kubernetes builds into /opt/kfleet).
"""

import os
import shutil
import subprocess
import tempfile
import time

import kftest
from kftest import eventually, path

ZONES = ("a", "b", "c")
ETCDCTL = "/usr/bin/etcdctl"
K8S_VERSION = "1.37"
K8S_BIN = f"/opt/kfleet/kubernetes/{K8S_VERSION}/bin"
KUBECTL = os.path.join(K8S_BIN, "kubectl")
KWOK = "/opt/kfleet/kwok/v0.8.0/bin/kwok"
HAPROXY = "/usr/sbin/haproxy"


def require_kubernetes():
    """Skips (loudly) where scripts/install-kubernetes has not run."""
    for prog in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"):
        kftest.require(os.access(os.path.join(K8S_BIN, prog), os.X_OK),
                       f"{K8S_BIN}/{prog} is not installed (scripts/install-kubernetes)")
    kftest.require(os.access(KWOK, os.X_OK), f"{KWOK} is not installed")
    kftest.require(os.access(HAPROXY, os.X_OK), "haproxy is not installed")


class FleetProcesses:
    """What the fleets below share: kfleetd (self.kd), the agents they
    started (self.agents; self.retired: ones replaced by an agent started
    again on their directory) and a directory (self.tmp). Used as a context
    manager: on a clean exit every process is stopped and must exit 0 (ASan
    leaks included); on a failure the logs' tails are printed first."""

    def stop_agents(self):
        for ag in self.agents.values():
            ag.stop()

    def close(self):
        for ag in list(self.agents.values()) + getattr(self, "retired", []):
            ag.close()
        self.kd.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def report(self):
        import sys
        sys.stderr.write("--- kfleetd log (tail) ---\n" + self.kd.log_tail(120) + "\n")
        for n, ag in self.agents.items():
            sys.stderr.write(f"--- agent {n} (tail) ---\n" + ag.log_tail(20) + "\n")

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            # __exit__ is not called when __enter__ fails: report and clean up here
            self.report()
            self.close()
            raise

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.stop_agents()
                self.kd.stop()
            finally:
                self.close()
            return False
        self.report()
        self.close()
        return False


class Fleet(FleetProcesses):
    def __init__(self, controllers="profiles,host-lifecycle,unit-status,placement,lifecycle",
                 extra_args=(), kubernetes=False):
        kftest.require(os.access("/usr/bin/etcd", os.X_OK), "etcd is not installed")
        if kubernetes:
            require_kubernetes()
            controllers += ",endpoints"
            extra_args = ["--endpoints", "local"] + list(extra_args)
        lo, hi = kftest.port_window()
        self.kd = kftest.Kfleetd(
            store="sqlite", tokens=True, controllers=controllers,
            args=["--member-ports", f"{lo}-{hi}", "--host-grace", "2s",
                  "--cluster-health-period", "500ms", "--member-release-timeout", "4s"]
            + list(extra_args))
        self.agents = {}
        self.tmp = tempfile.mkdtemp(prefix="kftest-fleet-")

    def start(self):
        self.kd.start()
        for body in ({"kind": "Region", "metadata": {"name": "local"},
                      "spec": {"zones": list(ZONES)}},
                     {"kind": "Unit", "metadata": {"name": "u1"},
                      "spec": {"region": "local", "zones": list(ZONES)}},
                     {"kind": "IPPool", "metadata": {"name": "local"},
                      "spec": {"vpc": "local", "cidrs": ["10.0.0.0/8"]}}):
            body["apiVersion"] = "kfleet.io/v1"
            r = self.kd.post(path(kftest.PLURALS[body["kind"]]), body)
            assert r.status == 201, r
        for z in ZONES:
            self.start_agent(z)
        for z in ZONES:
            eventually(lambda z=z: self.agent_alive(z) and host_ready(self.kd, f"h-{z}"),
                       timeout=20, msg=f"host h-{z} not Ready")
        return self

    def agent_alive(self, zone):
        ag = self.agents[zone]
        assert ag.running(), f"agent {zone} exited with {ag.proc.returncode}:\n{ag.log_tail()}"
        return True

    def start_agent(self, zone, data_dir=None):
        old = self.agents.get(zone)
        # h-a's agent has a token bound to its host (kftest.TOKENS): a real
        # agent does all it does with one
        ag = kftest.Agent(self.kd, f"h-{zone}", zone=zone,
                          data_dir=data_dir or (old.data_dir if old else None),
                          token=self.kd.host_token(f"h-{zone}"),
                          args=["--capacity-cpu", "16", "--capacity-memory", "64Gi"])
        self.agents[zone] = ag.start()
        return ag


def host_ready(kd, name):
    r = kd.get(path("hosts", name))
    return r.status == 200 and r.json.get("status", {}).get("ready") is True


def kubectl(kc, *args, check=True):
    """kubectl against a guest through the kubeconfig file kc."""
    p = subprocess.run([KUBECTL, "--kubeconfig", kc, "--request-timeout", "10s"] + list(args),
                       capture_output=True, text=True, timeout=30)
    if check:
        assert p.returncode == 0, f"kubectl {' '.join(args)}: {p.stderr or p.stdout}"
    return p


class TwoUnits(FleetProcesses):
    """The fleet of the tests that move a guest between units (test_migrate,
    test_unitloss): kfleetd on SQLite with the given controllers, local
    endpoints and a private window of member ports; Region local with units
    ua, ub and uc (uc never gets hosts: nothing fits there), Region far with
    far-u, an IPPool, and with backups a BackupLocation under the test's
    directory. Each unit's three agents (zones a, b, c; 16 CPU, 64 GiB) start
    on demand: start_unit."""

    def __init__(self, controllers, prefix, args=(), backups=False):
        kftest.require(os.access("/usr/bin/etcd", os.X_OK), "etcd is not installed")
        require_kubernetes()
        lo, hi = kftest.port_window()
        self.kd = kftest.Kfleetd(
            store="sqlite", tokens=True, controllers=controllers,
            args=["--endpoints", "local", "--member-ports", f"{lo}-{hi}", "--host-grace", "2s",
                  "--cluster-health-period", "500ms", "--member-release-timeout", "4s",
                  *args])
        self.tmp = tempfile.mkdtemp(prefix=f"kftest-{prefix}-")
        self.backups = backups
        self.agents = {}
        self.retired = []  # agents replaced by one started again on their directory

    def start(self):
        kd = self.kd.start()
        bodies = [{"kind": "Region", "metadata": {"name": "local"},
                   "spec": {"zones": list(ZONES)}},
                  {"kind": "Region", "metadata": {"name": "far"},
                   "spec": {"zones": list(ZONES)}}]
        bodies += [{"kind": "Unit", "metadata": {"name": u},
                    "spec": {"region": "local", "zones": list(ZONES)}} for u in ("ua", "ub", "uc")]
        bodies += [{"kind": "Unit", "metadata": {"name": "far-u"},
                    "spec": {"region": "far", "zones": list(ZONES)}},
                   {"kind": "IPPool", "metadata": {"name": "local"},
                    "spec": {"vpc": "local", "cidrs": ["10.0.0.0/8"]}}]
        if self.backups:
            bodies.append({"kind": "BackupLocation", "metadata": {"name": "local"},
                           "spec": {"region": "local", "path": os.path.join(self.tmp, "backups")}})
        for body in bodies:
            body["apiVersion"] = "kfleet.io/v1"
            r = kd.post(path(body["kind"].lower() + "s"), body)
            assert r.status == 201, r
        return self

    def start_agent(self, name, zone, unit, data_dir=None):
        if name in self.agents:
            self.retired.append(self.agents[name])
        ag = kftest.Agent(self.kd, name, zone=zone, unit=unit, data_dir=data_dir,
                          args=["--capacity-cpu", "16", "--capacity-memory", "64Gi"])
        self.agents[name] = ag.start()
        return ag

    def start_unit(self, unit, dirs=None):
        for z in ZONES:
            self.start_agent(f"{unit}-{z}", z, unit, (dirs or {}).get(f"{unit}-{z}"))
        for z in ZONES:
            eventually(lambda n=f"{unit}-{z}": host_ready(self.kd, n), timeout=20,
                       msg=f"host {unit}-{z} not Ready")

    def unit_agents(self, unit):
        return [ag for n, ag in self.agents.items() if n.startswith(unit + "-")]

    def kill_unit(self, unit):
        """The unit's agents SIGKILLed, then every member process they ran
        (by PID): the whole unit gone at once."""
        for ag in self.unit_agents(unit):
            ag.kill()
        for ag in self.unit_agents(unit):
            kftest.kill_runner_processes(ag.data_dir)

    def stop_agents(self):
        for ag in self.agents.values():
            if ag.running():  # not the ones a test killed (kill_unit) on purpose
                ag.stop()


def etcd_profile(kd, name="etcd-only", components=("etcd",), versions=(K8S_VERSION,)):
    """A Profile whose control plane is `components` (etcd alone: every
    component is installed on this machine, so its clusters can be
    Running) in `versions` (the last is the default). Its flags make the
    test elections quick."""
    body = {"apiVersion": "kfleet.io/v1", "kind": "Profile", "metadata": {"name": name},
            "spec": {"versions": list(versions), "defaultVersion": versions[-1],
                     "components": [{"name": c} for c in components],
                     "flags": {"etcd.heartbeat-interval": "50",
                               "etcd.election-timeout": "500"}}}
    r = kd.post(path("profiles"), body)
    assert r.status in (201, 409), r


def k8s_profile(kd, name="k8s-test"):
    """A Profile whose control plane is upstream Kubernetes as production
    runs it (three etcd members one per zone, apiservers, controller
    managers and schedulers in pairs), without the optional cp-addons and
    with quick etcd elections for the tests."""
    etcd_profile(kd, name, components=("etcd", "kube-apiserver", "kube-controller-manager",
                                       "kube-scheduler"))


def create_cluster(kd, name, profile="etcd-only", simulated_nodes=0, version=K8S_VERSION):
    """A GuestCluster; placement puts it on unit u1, one etcd member per
    zone."""
    body = {"apiVersion": "kfleet.io/v1", "kind": "GuestCluster", "metadata": {"name": name},
            "spec": {"region": "local", "profile": profile, "version": version,
                     "expectedNodes": 3, "network": {"vpc": "local"}}}
    if simulated_nodes:
        body["spec"]["simulatedNodes"] = simulated_nodes
    r = kd.post(path("guestclusters"), body)
    assert r.status == 201, r


def cluster(kd, name):
    r = kd.get(path("guestclusters", name))
    return r.json if r.status == 200 else None


def phase(kd, name):
    return ((cluster(kd, name) or {}).get("status") or {}).get("phase")


def wait_phase(kd, name, want, timeout=30):
    """The cluster, from the one read whose phase is `want` (a second read
    could show a later status than the phase that was waited for)."""
    def got():
        c = cluster(kd, name)
        return c if ((c or {}).get("status") or {}).get("phase") == want else None
    return eventually(got, timeout=timeout,
                      msg=lambda: f"{name} not {want} (at the timeout: {phase(kd, name)}: "
                          f"{(cluster(kd, name) or {}).get('status', {}).get('message')})")


def members(kd, name):
    r = kd.get(path("controlplanemembers"), params={"fieldSelector": f"spec.cluster={name}"})
    assert r.status == 200, r
    return sorted(r.json["items"], key=lambda m: m["metadata"]["name"])


def kfleet(kd, *args, check=True):
    env = dict(os.environ, KFLEET_SERVER=kd.url, KFLEET_TOKEN=kd.admin_token)
    env.pop("HOME", None)
    env["HOME"] = tempfile.gettempdir()
    p = subprocess.run([os.path.join(kftest.BIN_DIR, "kfleet")] + list(args), env=env,
                       capture_output=True, text=True, timeout=30)
    if check:
        assert p.returncode == 0, p
    return p


class EtcdClient:
    """etcdctl against a guest cluster's etcd, with the client certificate
    `kfleet get etcdclient` wrote."""

    def __init__(self, kd, name, directory):
        kftest.require(os.access(ETCDCTL, os.X_OK), "etcdctl is not installed")
        self.dir = directory
        kfleet(kd, "get", "etcdclient", name, "--dir", directory)
        c = cluster(kd, name)
        self.endpoints = c["status"]["endpoints"]["etcd"]

    def run(self, endpoint, *args, timeout="5s"):
        cmd = [ETCDCTL, f"--endpoints={endpoint}", f"--cacert={self.dir}/ca.crt",
               f"--cert={self.dir}/client.crt", f"--key={self.dir}/client.key",
               f"--command-timeout={timeout}"] + list(args)
        return subprocess.run(cmd, env=dict(os.environ, ETCDCTL_API="3"), capture_output=True,
                              text=True, timeout=30)

    def put(self, i, key, value):
        p = self.run(self.endpoints[i], "put", key, value)
        assert p.returncode == 0 and p.stdout.strip() == "OK", p
        return p

    def put_eventually(self, i, key, value, timeout=15):
        """A write that may meet a leader election first (a member just
        died): retried until it is acknowledged."""
        def attempt():
            p = self.run(self.endpoints[i], "put", key, value)
            return p.returncode == 0 and p.stdout.strip() == "OK"
        eventually(attempt, timeout=timeout, interval=0.2,
                   msg=f"put {key} through member {i} never succeeded")

    def get(self, i, key, serializable=True):
        args = ["get", key, "--print-value-only"]
        if serializable:
            args.append("--consistency=s")
        p = self.run(self.endpoints[i], *args)
        return p.stdout.strip() if p.returncode == 0 else None

    def wait_get(self, i, key, want, timeout=20):
        return eventually(lambda: self.get(i, key) == want, timeout=timeout,
                          msg=f"{key} != {want!r} on member {i}")


def port_open(port):
    import socket
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_gone(pids, timeout=20):
    eventually(lambda: not any(kftest.pid_alive(p) for p in pids), timeout=timeout,
               msg=lambda: f"processes still running: {[p for p in pids if kftest.pid_alive(p)]}")


def now():
    return time.monotonic()
