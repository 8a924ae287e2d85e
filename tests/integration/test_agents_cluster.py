"""A guest cluster's life with real processes: three agents in zones a, b
and c, a cluster placed one etcd member per zone, kfleetd filling in ports,
certificates and command lines, the agents running a real 3-member etcd
over TLS, the cluster Running; etcdctl with `kfleet get etcdclient`; a
cluster whose kube-apiserver is not installed reports it (Degraded,
BinaryNotInstalled) and still hands out a kubeconfig; deleting a cluster
leaves no process, port, directory or certificate of it.
"""

import json
import os
import subprocess
import tempfile

import kftest
import lifecycle_fixture as lf
from kftest import eventually, path


def test_etcd_cluster_lifecycle():
    with lf.Fleet() as f:
        kd = f.kd
        lf.etcd_profile(kd)
        lf.create_cluster(kd, "g1")
        c = lf.wait_phase(kd, "g1", "Running", timeout=40)
        st = c["status"]
        assert "kfleet.io/lifecycle" in c["metadata"]["finalizers"]
        conds = {x["type"]: x for x in st["conditions"]}
        assert conds["EtcdQuorum"]["status"] == "True", conds
        assert conds["Ready"]["status"] == "True", conds
        assert conds["ComponentsReady"]["message"] == "3 of 3 members ready", conds
        assert len(st["endpoints"]["etcd"]) == 3

        ms = lf.members(kd, "g1")
        ports = set()
        for m in ms:
            spec = m["spec"]
            assert spec["binary"] == "/usr/bin/etcd", spec
            assert "--client-cert-auth=true" in spec["args"]
            assert "--heartbeat-interval=50" in spec["args"]  # the profile's flag
            assert spec["probe"]["path"] == "/health"
            assert m["metadata"]["annotations"]["kfleet.io/pki-hash"]
            assert "kfleet.io/agent" in m["metadata"]["finalizers"]
            assert m["status"]["phase"] == "Ready" and m["status"]["ready"], m["status"]
            ports |= set(spec["ports"].values())
            # the key never leaves kfleetd and the agent's directory: 0600 there
            ag = f.agents[spec["zone"]]
            key = os.path.join(ag.data_dir, "members", m["metadata"]["name"], "pki", "etcd",
                               "server.key")
            assert os.stat(key).st_mode & 0o777 == 0o600
        assert len(ports) == 9, ports  # three members on one address: nine distinct ports

        # etcd over TLS with the client certificate kfleet hands to admins
        cli = lf.EtcdClient(kd, "g1", os.path.join(f.tmp, "g1-etcd"))
        cli.put(0, "/hello", "world")
        cli.wait_get(2, "/hello", "world")
        p = cli.run(",".join(cli.endpoints), "endpoint", "health")
        assert p.returncode == 0 and p.stderr.count("is healthy") + p.stdout.count(
            "is healthy") == 3, p
        # without a client certificate etcd refuses
        p = subprocess.run([lf.ETCDCTL, f"--endpoints={cli.endpoints[0]}",
                            f"--cacert={cli.dir}/ca.crt", "--command-timeout=2s", "get", "/x"],
                           env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True)
        assert p.returncode != 0
        # only admins get the certificates
        r = kd.get(path("guestclusters", "g1", "etcdclient"), token="viewer-token-0123456789")
        assert r.status == 403, r
        # the agent's metrics know the members
        assert f.agents["a"].metric("kfleet_member_ready", {
            "cluster": "g1", "component": "etcd", "member": "g1-etcd-0"}) == 1

        # delete: processes, ports, directories and certificates go
        pids = [m["status"]["pid"] for m in ms]
        dirs = [os.path.join(f.agents[m["spec"]["zone"]].data_dir, "members",
                             m["metadata"]["name"]) for m in ms]
        assert all(kftest.pid_alive(p) for p in pids)
        assert kd.delete(path("guestclusters", "g1")).status in (200, 202)
        eventually(lambda: lf.cluster(kd, "g1") is None, timeout=40,
                   msg="g1 was not deleted: " + json.dumps(lf.cluster(kd, "g1")))
        lf.wait_gone(pids)
        assert lf.members(kd, "g1") == []
        for d in dirs:
            assert not os.path.exists(d), d
        for p in ports:
            assert not lf.port_open(p), p
        assert not os.path.exists(os.path.join(kd.data_dir, "pki", "g1"))
        r = kd.get(path("guestclusters", "g1", "kubeconfig"))
        assert r.status == 404, r


def test_kubernetes_binaries_not_installed():
    with lf.Fleet() as f:
        kd = f.kd
        # an apiserver whose program is not on the hosts (an operator's
        # build that never reached them): the members say so
        missing = "/opt/kfleet/kubernetes/{{version}}/bin/kube-apiserver-not-installed"
        body = {"apiVersion": "kfleet.io/v1", "kind": "Profile",
                "metadata": {"name": "etcd-apiserver"},
                "spec": {"versions": [lf.K8S_VERSION], "defaultVersion": lf.K8S_VERSION,
                         "components": [{"name": "etcd"},
                                        {"name": "kube-apiserver", "binary": missing}],
                         "flags": {"etcd.heartbeat-interval": "50",
                                   "etcd.election-timeout": "500"}}}
        r = kd.post(path("profiles"), body)
        assert r.status == 201, r
        lf.create_cluster(kd, "g2", profile="etcd-apiserver")
        # Degraded once etcd is all healthy and only the missing binaries are left
        def degraded_with_healthy_etcd():
            st = (lf.cluster(kd, "g2") or {}).get("status", {})
            conds = {x["type"]: x for x in st.get("conditions", [])}
            return (st.get("phase") == "Degraded" and
                    conds.get("EtcdQuorum", {}).get("reason") == "Healthy" and
                    lf.cluster(kd, "g2"))
        c = eventually(degraded_with_healthy_etcd, timeout=40)
        st = c["status"]
        conds = {x["type"]: x for x in st["conditions"]}
        assert conds["EtcdQuorum"]["status"] == "True", conds
        assert conds["ComponentsReady"]["reason"] == "BinaryNotInstalled", conds
        assert "kube-apiserver" in st["message"] and "BinaryNotInstalled" in st["message"], st
        api = [m for m in lf.members(kd, "g2") if m["spec"]["component"] == "kube-apiserver"]
        assert {m["status"]["phase"] for m in api} == {"BinaryNotInstalled"}, api
        assert api[0]["spec"]["binary"] == missing.replace("{{version}}", lf.K8S_VERSION)
        assert any(a.startswith("--etcd-servers=https://") for a in api[0]["spec"]["args"])
        assert api[0]["spec"]["ports"]["metrics"] == api[0]["spec"]["ports"]["https"]
        # a kubeconfig for the endpoint, with the cluster's CA and an admin certificate
        p = lf.kfleet(kd, "get", "kubeconfig", "g2")
        kc = os.path.join(f.tmp, "g2.kubeconfig")
        with open(kc, "w") as fh:
            fh.write(p.stdout)
        assert st["endpoints"]["apiServer"] in p.stdout
        if os.access("/usr/bin/kubectl", os.X_OK):
            v = subprocess.run(["kubectl", "--kubeconfig", kc, "config", "view", "-o", "json"],
                               capture_output=True, text=True, timeout=20)
            assert v.returncode == 0, v
            assert json.loads(v.stdout)["clusters"][0]["cluster"]["server"] == \
                st["endpoints"]["apiServer"]
        # the bundle of an etcd member never carries a CA key
        r = kd.get(path("controlplanemembers", "g2-etcd-0", "bundle"),
                   token="agent-token-0123456789")
        assert r.status == 200, r
        names = [x["path"] for x in r.json["files"]]
        assert "etcd/server.key" in names and not any(n.endswith("ca.key") for n in names), names
        # an agent token bound to host h-a gets the keys of h-a's members only
        etcd = [m for m in lf.members(kd, "g2") if m["spec"]["component"] == "etcd"]
        mine = next(m["metadata"]["name"] for m in etcd if m["spec"]["host"] == "h-a")
        other = next(m for m in etcd if m["spec"]["host"] != "h-a")
        r = kd.get(path("controlplanemembers", mine, "bundle"), token="host-a-token-0123456789")
        assert r.status == 200 and r.json["member"] == mine, r
        r = kd.get(path("controlplanemembers", other["metadata"]["name"], "bundle"),
                   token="host-a-token-0123456789")
        assert r.status == 403, r
        assert (f'member "{other["metadata"]["name"]}" is on "{other["spec"]["host"]}"'
                in r.json["message"]), r.json


if __name__ == "__main__":
    kftest.main(globals())
