"""kfleet-agent against a real kfleetd: registration, members run from
ControlPlaneMember objects, status reported back, crash restarts, adoption
after the agent is killed, kfleetd going away and coming back, deletion
(process and data gone), a missing binary, /metrics, and --simulate.

Every member here is a real process (python3's http.server, probed over
HTTP); every process is stopped by PID at the end, even on failure.
"""

import json
import os
import signal
import subprocess
import time

import kftest
from kftest import API, eventually, path


def member(name, host, port=None, binary="python3", args=None, cluster="c1",
           component="web"):
    spec = {"cluster": cluster, "component": component, "host": host, "zone": "a",
            "binary": binary}
    if args is None:
        args = ["-m", "http.server", str(port), "--bind", "127.0.0.1"]
    spec["args"] = args
    if port:
        spec["probe"] = {"port": port, "path": "/", "scheme": "http"}
    return {"apiVersion": "kfleet.io/v1", "kind": "ControlPlaneMember",
            "metadata": {"name": name, "finalizers": ["kfleet.io/agent"]}, "spec": spec}


def get(kd, plural, name):
    r = kd.get(path(plural, name))
    return r.json if r.status == 200 else None


def status(kd, name):
    obj = get(kd, "controlplanemembers", name)
    return (obj or {}).get("status", {})


def ready(kd, name):
    st = status(kd, name)
    return st if st.get("phase") == "Ready" and st.get("ready") else None


def finish_deletion(kd, name):
    """Deletes a member and plays the cluster controller's part: once the
    agent says released, the finalizer comes off."""
    kd.delete(path("controlplanemembers", name))
    eventually(lambda: status(kd, name).get("released"), timeout=20,
               msg=f"agent did not release {name}")
    r = kd.patch(path("controlplanemembers", name), {"metadata": {"finalizers": None}})
    assert r.status in (200, 404), r
    eventually(lambda: get(kd, "controlplanemembers", name) is None)


def test_register_and_run():
    with kftest.Kfleetd(store="sqlite", tokens=True, controllers="host-lifecycle",
                        args=["--host-grace", "3s"]) as kd, \
            kftest.Agent(kd, "h1", args=["--capacity-cpu", "8", "--capacity-memory",
                                         "32Gi"]) as ag:
        # registered: created, then its status (agent version, node info) written
        host = eventually(lambda: (lambda h: h if h and h.get("status", {}).get("agentVersion")
                                   else None)(get(kd, "hosts", "h1")),
                          msg="host not registered")
        labels = host["metadata"]["labels"]
        assert labels == {"kfleet.io/role": "meta", "kfleet.io/zone": "a",
                          "kfleet.io/unit": "u1"}, labels
        assert host["spec"]["capacity"] == {"cpu": "8", "memory": "32Gi"}, host["spec"]
        assert host["metadata"]["annotations"]["monitoring.kfleet.io/agent"] == \
            f"127.0.0.1:{ag.metrics_port}"
        assert host["status"]["agentVersion"]
        # heartbeats make it Ready
        eventually(lambda: get(kd, "hosts", "h1")["status"].get("ready") is True, timeout=15,
                   msg="host never Ready")
        assert ag.metric("kfleet_agent_heartbeats_total", {"result": "ok"}) > 0

        port = kftest.free_port()
        assert kd.post(path("controlplanemembers"), member("m1", "h1", port)).status == 201
        st = eventually(lambda: ready(kd, "m1"), timeout=20, msg="member never Ready")
        pid = st["pid"]
        assert kftest.pid_alive(pid) and st["host"] == "h1" and st["restarts"] == 0, st
        # the process answers where the probe looked
        c = kftest.connect(port, 2)
        c.request("GET", "/")
        assert c.getresponse().status == 200
        c.close()

        # a crash: restarted with back-off, the exit reported
        os.kill(pid, signal.SIGKILL)
        st = eventually(lambda: (lambda s: s if s.get("restarts") == 1 and s.get("ready")
                                 else None)(status(kd, "m1")), timeout=20)
        assert st["lastExitCode"] == -signal.SIGKILL and st["pid"] != pid, st
        assert ag.metric("kfleet_member_restarts_total",
                         {"cluster": "c1", "component": "web", "member": "m1"}) == 1
        assert ag.metric("kfleet_member_ready",
                         {"cluster": "c1", "component": "web", "member": "m1"}) == 1
        assert ag.metric("kfleet_member_memory_bytes",
                         {"cluster": "c1", "component": "web", "member": "m1"}) > 0

        # deletion: the process stops, its directory goes, status says released
        pid = st["pid"]
        mdir = os.path.join(ag.data_dir, "members", "m1")
        assert os.path.isdir(mdir)
        finish_deletion(kd, "m1")
        eventually(lambda: not kftest.pid_alive(pid), msg="member process still runs")
        assert not os.path.exists(mdir)


def test_agent_restart_adopts():
    with kftest.Kfleetd(store="sqlite", tokens=True) as kd:
        ag = kftest.Agent(kd, "h2", data_dir=None).start()
        try:
            port = kftest.free_port()
            assert kd.post(path("controlplanemembers"), member("m2", "h2", port)).status == 201
            pid = eventually(lambda: ready(kd, "m2"), timeout=20)["pid"]
            ag.kill()  # SIGKILL: nothing is stopped
            time.sleep(0.5)
            assert kftest.pid_alive(pid)
            ag2 = kftest.Agent(kd, "h2", data_dir=ag.data_dir).start()
            try:
                # the same process, not a new one
                eventually(lambda: ag2.metric("kfleet_member_up", {"cluster": "c1",
                                                                   "component": "web",
                                                                   "member": "m2"}) == 1,
                           msg="the new agent does not run m2")
                st = eventually(lambda: ready(kd, "m2"), timeout=20)
                assert st["pid"] == pid and st["restarts"] == 0, st
                assert kftest.pid_alive(pid)
                # SIGTERM without --stop-members-on-exit leaves it running too
                ag2.stop()
                assert kftest.pid_alive(pid)
            finally:
                ag2.close()
            assert not kftest.pid_alive(pid)
        finally:
            ag.close()


def test_kfleetd_away_and_back():
    with kftest.Kfleetd(store="sqlite", tokens=True) as kd, kftest.Agent(kd, "h3") as ag:
        port = kftest.free_port()
        assert kd.post(path("controlplanemembers"), member("m3", "h3", port)).status == 201
        pid = eventually(lambda: ready(kd, "m3"), timeout=20)["pid"]
        kd.kill()
        time.sleep(2)
        # nothing is stopped because kfleetd is gone
        assert kftest.pid_alive(pid)
        assert ag.running()
        kd.start()
        # the agent finds kfleetd again: a change is acted on
        finish_deletion(kd, "m3")
        eventually(lambda: not kftest.pid_alive(pid), msg="member still runs after deletion")
        assert "answers again" in ag.log() or "lost the watch" in ag.log()


def test_binary_not_installed_and_stop_on_exit():
    with kftest.Kfleetd(store="sqlite", tokens=True) as kd, \
            kftest.Agent(kd, "h4", args=["--stop-members-on-exit"]) as ag:
        obj = member("m4", "h4", binary="/usr/lib/kfleet-test/kube-apiserver", args=[])
        assert kd.post(path("controlplanemembers"), obj).status == 201
        st = eventually(lambda: (lambda s: s if s.get("phase") == "BinaryNotInstalled"
                                 else None)(status(kd, "m4")), timeout=20)
        assert "kube-apiserver" in st["message"] and st["ready"] is False, st
        # no command line yet: it waits, and says so
        obj = member("m5", "h4", port=kftest.free_port())
        del obj["spec"]["binary"]
        assert kd.post(path("controlplanemembers"), obj).status == 201
        st = eventually(lambda: status(kd, "m5").get("phase") == "Pending" and status(kd, "m5"))
        assert "command line" in st["message"], st
        # with one, it runs; SIGTERM with --stop-members-on-exit stops it
        port = kftest.free_port()
        assert kd.patch(path("controlplanemembers", "m5"),
                        {"spec": {"binary": "python3",
                                  "args": ["-m", "http.server", str(port), "--bind",
                                           "127.0.0.1"],
                                  "probe": {"port": port, "scheme": "http", "path": "/"}}}
                        ).status == 200
        pid = eventually(lambda: ready(kd, "m5"), timeout=20)["pid"]
        ag.stop()
        assert not kftest.pid_alive(pid)
        assert status(kd, "m5")["phase"] == "Stopped"


def test_simulate():
    with kftest.Kfleetd(store="sqlite", tokens=True) as kd, \
            kftest.Agent(kd, "sim", zone="a,b,c", simulate=30) as ag:
        eventually(lambda: ag.metric("kfleet_agent_state", {"what": "hosts_registered"}) == 30,
                   timeout=20, msg="30 simulated hosts did not register")
        hosts = kd.get(path("hosts"), params={"labelSelector": "kfleet.io/unit=u1"}).json
        names = sorted(h["metadata"]["name"] for h in hosts["items"])
        assert len(names) == 30 and names[0] == "sim-01", names
        zones = {h["spec"]["zone"] for h in hosts["items"]}
        assert zones == {"a", "b", "c"}, zones
        for i in range(6):
            assert kd.post(path("controlplanemembers"),
                           member(f"s{i}", f"sim-{i + 1:02d}", port=1000 + i)).status == 201
        for i in range(6):
            st = eventually(lambda i=i: ready(kd, f"s{i}"), timeout=20)
            # simulated pids can never be mistaken for real ones
            assert st["pid"] > 4194304, st
        kd.delete(path("controlplanemembers", "s0"))
        eventually(lambda: status(kd, "s0").get("released"))


def test_bad_server_list_is_a_usage_error():
    """Every URL of --server must be http(s); the error names the bad one."""
    agent = os.path.join(kftest.BIN_DIR, "kfleet-agent")
    for bad, part in (("http://127.0.0.1:1,127.0.0.1:2", "127.0.0.1:2"),
                      ("http://127.0.0.1:1,", ""), ("ftp://x", "ftp://x")):
        p = subprocess.run([agent, "--server", bad, "--role", "meta", "--name", "h1",
                            "--zone", "a", "--unit", "u1"], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2, (bad, p.returncode, p.stderr)
        assert f'("{part}" is neither)' in p.stderr, p.stderr


if __name__ == "__main__":
    kftest.main(globals())
