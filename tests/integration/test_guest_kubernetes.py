"""test_guest_kubernetes.py: guest clusters that run upstream Kubernetes.

Real processes throughout: kfleetd (placement, lifecycle, the endpoints
controller with HAProxy), three meta agents in zones a, b and c, and for
each guest cluster three etcd members, kube-apiservers, controller
managers and schedulers built by scripts/install-kubernetes, KWOK for the
simulated nodes, and the built kubectl as the user's client. What a user
sees is asserted: the cluster's phase and conditions, kubectl's answers
through the cluster's endpoint, pods Running on simulated nodes, processes
and ports that exist or are gone.
"""

import json
import os
import signal
import subprocess
import threading
import time

import kftest
import lifecycle_fixture as lf
from kftest import eventually, path


def kubectl(kubeconfig, *args, timeout=30, check=True, stdin=None):
    p = subprocess.run([lf.KUBECTL, "--kubeconfig", kubeconfig, "--request-timeout", "10s"]
                       + list(args), capture_output=True, text=True, timeout=timeout,
                       input=stdin)
    if check:
        assert p.returncode == 0, f"kubectl {' '.join(args)}: {p.stderr or p.stdout}"
    return p


def kubectl_json(kubeconfig, *args):
    return json.loads(kubectl(kubeconfig, *args, "-o", "json").stdout)


def write_kubeconfig(f, name):
    p = lf.kfleet(f.kd, "get", "kubeconfig", name)
    kc = os.path.join(f.tmp, f"{name}.kubeconfig")
    with open(kc, "w") as fh:
        fh.write(p.stdout)
    return kc


def endpoint(kd, name):
    return lf.cluster(kd, name)["status"]["endpoints"]["apiServer"]


def endpoint_port(kd, name):
    return int(endpoint(kd, name).rsplit(":", 1)[1])


def member_processes(f, cluster):
    """{member name: (pid, start, zone)} of the cluster's running members."""
    out = {}
    for z, ag in f.agents.items():
        for name, pid, start, _, _ in ag.processes():
            if name.startswith(cluster + "-") and kftest.pid_alive(pid, start):
                out[name] = (pid, start, z)
    return out


def ready_nodes(kc):
    nodes = kubectl_json(kc, "get", "nodes")["items"]
    return sorted(n["metadata"]["name"] for n in nodes
                  if any(c["type"] == "Ready" and c["status"] == "True"
                         for c in n["status"].get("conditions", [])))


def running_pods(kc, ns, selector):
    pods = kubectl_json(kc, "get", "pods", "-n", ns, "-l", selector)["items"]
    return [p for p in pods if p["status"].get("phase") == "Running" and p["spec"].get("nodeName")]


class RetryingClient(threading.Thread):
    """A client that asks the apiserver again and again, as a controller
    would, through the endpoint; a failed request is retried once, and a
    request that fails twice in a row is what the test counts."""

    def __init__(self, kc):
        super().__init__(daemon=True)
        self.kc = kc
        self.stop_ev = threading.Event()
        self.ok = 0
        self.failures = []

    def run(self):
        while not self.stop_ev.is_set():
            for attempt in (1, 2):
                p = kubectl(self.kc, "get", "configmap", "-n", "kfleet-test", "settings",
                            "-o", "name", check=False, timeout=40)
                if p.returncode == 0:
                    self.ok += 1
                    break
                if attempt == 2:
                    self.failures.append(p.stderr.strip())
                time.sleep(0.2)
            time.sleep(0.1)

    def finish(self):
        self.stop_ev.set()
        self.join(timeout=60)


def test_guest_runs_kubernetes():
    with lf.Fleet(kubernetes=True) as f:
        kd = f.kd
        lf.k8s_profile(kd)
        # created the way a user would: kfleet apply of a GuestCluster
        spec = os.path.join(f.tmp, "web.yaml")
        with open(spec, "w") as fh:
            fh.write("apiVersion: kfleet.io/v1\nkind: GuestCluster\nmetadata: {name: web}\n"
                     "spec:\n  region: local\n  profile: k8s-test\n"
                     f"  version: \"{lf.K8S_VERSION}\"\n  expectedNodes: 3\n"
                     "  simulatedNodes: 3\n  network: {vpc: local}\n")
        lf.kfleet(kd, "apply", "-f", spec)
        c = lf.wait_phase(kd, "web", "Running", timeout=120 * kftest.SLOW)
        st = c["status"]
        conds = {x["type"]: x for x in st["conditions"]}
        assert conds["EndpointReady"]["status"] == "True", conds
        assert conds["EtcdQuorum"]["reason"] == "Healthy", conds
        # kfleetd learns that the endpoint serves from the unit's HAProxy
        # (its /readyz checks of each apiserver, read from its stats socket),
        # not from a probe of its own for every cluster
        def endpoint_message():
            cs = lf.cluster(kd, "web")["status"]["conditions"]
            return {x["type"]: x for x in cs}["EndpointReady"]["message"]
        eventually(lambda: "its HAProxy finds 2 of 2 apiservers ready" in endpoint_message(),
                   timeout=60, msg="EndpointReady never said the unit's HAProxy finds both "
                   "apiservers ready")
        # every member Ready on its real probe, etcd one per zone, the
        # apiserver's flags all accepted by the release (it runs)
        ms = lf.members(kd, "web")
        comps = sorted(m["spec"]["component"] for m in ms)
        assert comps.count("etcd") == 3 and comps.count("kube-apiserver") == 2, comps
        assert "kube-controller-manager" in comps and "kube-scheduler" in comps, comps
        assert comps.count("kwok") == 1, comps
        assert all(m["status"]["phase"] == "Ready" for m in ms), [
            (m["metadata"]["name"], m["status"]) for m in ms]
        assert len({m["spec"]["zone"] for m in ms if m["spec"]["component"] == "etcd"}) == 3

        # the endpoint is the unit's HAProxy, not a member's port
        ep = endpoint(kd, "web")
        api_ports = {m["spec"]["ports"]["https"] for m in ms
                     if m["spec"]["component"] == "kube-apiserver"}
        assert endpoint_port(kd, "web") not in api_ports, (ep, api_ports)
        kc = write_kubeconfig(f, "web")
        with open(kc) as fh:
            assert f"server: \"{ep}\"" in fh.read()

        # the built kubectl through the endpoint: the server's version,
        # three Ready simulated nodes
        v = json.loads(kubectl(kc, "version", "-o", "json").stdout)
        assert v["serverVersion"]["gitVersion"].startswith(f"v{lf.K8S_VERSION}."), v
        eventually(lambda: len(ready_nodes(kc)) == 3, timeout=60 * kftest.SLOW,
                   msg="3 simulated nodes not Ready: " + str(lf.cluster(kd, "web")["status"]))
        eventually(lambda: (lf.cluster(kd, "web")["status"].get("nodes") or {}).get("ready") == 3,
                   timeout=30 * kftest.SLOW, msg="status.nodes.ready != 3")

        # the controller manager and the scheduler hold their leases
        leases = kubectl_json(kc, "get", "leases", "-n", "kube-system")["items"]
        holders = {x["metadata"]["name"]: x["spec"].get("holderIdentity") for x in leases}
        assert holders.get("kube-controller-manager") and holders.get("kube-scheduler"), holders

        # a namespace, a ConfigMap and a Deployment whose pods run on the nodes
        kubectl(kc, "create", "namespace", "kfleet-test")
        kubectl(kc, "create", "configmap", "settings", "-n", "kfleet-test",
                "--from-literal=colour=blue")
        kubectl(kc, "create", "deployment", "hello", "-n", "kfleet-test",
                "--image=registry.example/hello:1", "--replicas=3")
        pods = eventually(lambda: (lambda p: p if len(p) == 3 else None)(
            running_pods(kc, "kfleet-test", "app=hello")), timeout=90 * kftest.SLOW,
            msg="the Deployment's pods are not Running")
        assert {p["spec"]["nodeName"] for p in pods} <= set(ready_nodes(kc)), pods

        # kill one apiserver: a client that retries once keeps working, and
        # the agent starts the member again
        client = RetryingClient(kc)
        client.start()
        eventually(lambda: client.ok >= 2, timeout=30, msg="the client never got an answer")
        procs = member_processes(f, "web")
        victim = sorted(n for n in procs if "-kube-apiserver-" in n)[0]
        pid, start, _ = procs[victim]
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: (lambda m: m if m["status"].get("restarts", 0) >= 1 and
                            m["status"].get("phase") == "Ready" else None)(
            next(m for m in lf.members(kd, "web") if m["metadata"]["name"] == victim)),
            timeout=60 * kftest.SLOW, msg=f"{victim} was not restarted and Ready")
        seen = client.ok
        eventually(lambda: client.ok >= seen + 3, timeout=30, msg="the client stopped")
        client.finish()
        assert not client.failures, client.failures

        # a host's agent and every member it runs die: the cluster serves
        # from the other zones and stays Running, saying what it lacks
        lost = "c"
        procs = member_processes(f, "web")
        gone = [p for n, (p, s, z) in procs.items() if z == lost]
        assert gone, procs
        f.agents[lost].kill()
        for p in gone:
            os.kill(p, signal.SIGKILL)
        lf.wait_gone(gone)
        c = eventually(lambda: (lambda c: c if c["status"]["phase"] == "Running" and {
            x["type"]: x for x in c["status"]["conditions"]}["EtcdQuorum"]["reason"] ==
            "MemberUnhealthy" else None)(lf.cluster(kd, "web")), timeout=60 * kftest.SLOW,
            msg="not Running with an unhealthy etcd member: " + str(lf.cluster(kd, "web")))
        assert "reduced redundancy" in c["status"]["message"], c["status"]["message"]
        assert kubectl(kc, "get", "configmap", "-n", "kfleet-test", "settings", "-o",
                       "jsonpath={.data.colour}").stdout == "blue"
        kubectl(kc, "create", "configmap", "during-loss", "-n", "kfleet-test")
        # the zone comes back: its members run again, full health
        f.start_agent(lost)
        eventually(lambda: lf.cluster(kd, "web")["status"]["message"].startswith("etcd healthy"),
                   timeout=90 * kftest.SLOW, msg="not back to full health: "
                   + str(lf.cluster(kd, "web")["status"]))

        # delete: every process, port, file and HAProxy entry goes
        procs = member_processes(f, "web")
        pids = [p for p, _, _ in procs.values()]
        ports = {port for m in lf.members(kd, "web") for port in m["spec"]["ports"].values()}
        ports.add(endpoint_port(kd, "web"))
        lf.kfleet(kd, "delete", "gc", "web")
        eventually(lambda: lf.cluster(kd, "web") is None, timeout=90 * kftest.SLOW,
                   msg="web is not gone: " + str(lf.cluster(kd, "web")))
        lf.wait_gone(pids)
        assert not lf.members(kd, "web")
        eventually(lambda: not [p for p in ports if lf.port_open(p)], timeout=30,
                   msg="ports still open: " + str([p for p in ports if lf.port_open(p)]))
        for z, ag in f.agents.items():
            left = [d for d in os.listdir(os.path.join(ag.data_dir, "members"))
                    if d.startswith("web-")] if os.path.isdir(
                os.path.join(ag.data_dir, "members")) else []
            assert not left, (z, left)
        assert not os.path.exists(os.path.join(kd.data_dir, "pki", "web"))
        cfg_dir = os.path.join(kd.data_dir, "endpoints")
        for root, _, files in os.walk(cfg_dir):
            for fn in files:
                with open(os.path.join(root, fn), errors="replace") as fh:
                    assert "web" not in fh.read().split(), (root, fn)


def test_version_outside_the_catalog_is_refused():
    with lf.Fleet() as f:
        kd = f.kd
        body = {"apiVersion": "kfleet.io/v1", "kind": "GuestCluster",
                "metadata": {"name": "old"},
                "spec": {"region": "local", "version": "1.31", "network": {"vpc": "local"}}}
        r = kd.post(path("guestclusters"), body)
        assert r.status == 422, r
        causes = r.json["details"]["causes"]
        assert causes[0]["field"] == "spec.version", causes
        assert f'"{lf.K8S_VERSION}"' in causes[0]["message"], causes
        assert lf.cluster(kd, "old") is None


if __name__ == "__main__":
    kftest.main(globals())
