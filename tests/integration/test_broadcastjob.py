"""BroadcastJobs run by real kfleet-agent processes against a real kfleetd.

Three worker agents run real commands: /bin/true, /bin/false, a command
that sleeps past its timeout, output and exit codes captured, no shell
unless the command is one, the environment given and nothing else,
FailFast stopping the tasks that still run (their processes gone), a
result reported exactly once across an agent killed with SIGKILL, and the
task record of a NotReady host. Then 2,000 simulated hosts in one
`kfleet-agent --simulate` process, with a share of simulated failures.
Every process is stopped by PID at the end, even on failure.
"""

import os
import shutil
import subprocess
import tempfile
import time

import kftest
from kftest import eventually, path

CONTROLLERS = "host-lifecycle,broadcastjob"


def job(name, command, cluster="c1", **spec):
    s = {"selector": {"matchLabels": {"kfleet.io/cluster": cluster}},
         "template": {"command": command, "restartPolicy": spec.pop("restartPolicy", "Never")}}
    for k in ("timeoutSeconds", "env"):
        if k in spec:
            s["template"][k] = spec.pop(k)
    s.update(spec)
    return {"apiVersion": "kfleet.io/v1", "kind": "BroadcastJob", "metadata": {"name": name},
            "spec": s}


def get(kd, plural, name):
    r = kd.get(path(plural, name))
    return r.json if r.status == 200 else None


def finished(kd, name, timeout=30):
    def done():
        j = get(kd, "broadcastjobs", name)
        st = (j or {}).get("status", {})
        return st if st.get("phase") in ("completed", "failed") else None
    return eventually(done, timeout=timeout, msg=f"job {name} did not finish")


def tasks(kd, name):
    r = kd.get(path("broadcasttasks"), params={"fieldSelector": f"spec.job={name}"})
    assert r.status == 200, r
    return {t["spec"]["host"]: t for t in r.json["items"]}


def ready_hosts(kd, n, cluster="c1"):
    ready_hosts_of(kd, f"kfleet.io/cluster={cluster}", n)


def ready_hosts_of(kd, selector, n):
    def ready():
        r = kd.get(path("hosts"), params={"labelSelector": selector})
        items = r.json["items"] if r.status == 200 else []
        up = [h for h in items if h.get("status", {}).get("ready") is True]
        return len(up) >= n
    eventually(ready, timeout=30, msg=f"{n} hosts of {selector} never Ready")


def kfleet(kd, *args, timeout=60):
    """Runs the kfleet CLI against kd; returns (exit code, stdout)."""
    env = dict(os.environ, KFLEET_SERVER=kd.url, KFLEET_TOKEN=kd.admin_token or "",
               KFLEET_CONFIG=os.path.join(kd.data_dir, "no-config"))
    p = subprocess.run([os.path.join(kftest.BIN_DIR, "kfleet"), *args], env=env,
                       capture_output=True, text=True, timeout=timeout * kftest.SLOW)
    return p.returncode, p.stdout + p.stderr


def alive_tasks(agent):
    """The task processes of an agent that run now."""
    return [p for p in kftest.runner_processes(agent.data_dir, ("tasks",))
            if kftest.pid_alive(p[1], p[2])]


class Workers:
    """n worker agents h1..hn of cluster c1, data directories named after them."""

    def __init__(self, kd, n=3):
        self.root = tempfile.mkdtemp(prefix="kftest-bcj-")
        self.agents = []
        for i in range(1, n + 1):
            d = os.path.join(self.root, f"h{i}")
            os.mkdir(d)
            self.agents.append(kftest.Agent(kd, f"h{i}", role="worker", cluster="c1",
                                            data_dir=d))

    def __enter__(self):
        for a in self.agents:
            a.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        for a in self.agents:
            a.__exit__(exc_type, exc, tb)
        shutil.rmtree(self.root, ignore_errors=True)
        return False


def test_real_commands():
    with kftest.Kfleetd(store="sqlite", tokens=True, controllers=CONTROLLERS,
                        args=["--host-grace", "3s"]) as kd, Workers(kd):
        ready_hosts(kd, 3)

        # /bin/true everywhere, followed with kfleet watch until it ends (exit 0)
        assert kd.post(path("broadcastjobs"), job("ok", ["/bin/true"])).status == 201
        code, out = kfleet(kd, "watch", "bcj", "ok")
        assert code == 0, out
        assert out.splitlines()[-1] == "broadcastjob ok completed: 3 succeeded, 0 failed of 3", out
        assert "ok [##############################] 3/3 succeeded" in out, out
        st = finished(kd, "ok")
        assert (st["phase"], st["desired"], st["succeeded"], st["failed"], st["active"]) == \
            ("completed", 3, 3, 0, 0), st
        cond = st["conditions"][0]
        assert cond["type"] == "Complete" and cond["status"] == "True", cond
        assert cond["message"] == "Job completed, 3 tasks succeeded, 0 tasks failed", cond
        for t in tasks(kd, "ok").values():
            assert t["status"]["phase"] == "Succeeded" and t["status"]["exitCode"] == 0, t

        # /bin/false: Continue runs it everywhere and completes with failures
        assert kd.post(path("broadcastjobs"),
                       job("bad", ["/bin/false"], failurePolicy={"type": "Continue"})).status == 201
        st = finished(kd, "bad")
        assert (st["phase"], st["succeeded"], st["failed"]) == ("completed", 0, 3), st
        code, out = kfleet(kd, "watch", "bcj", "bad")  # over already: says how at once
        assert code == 6, out
        code, out = kfleet(kd, "describe", "bcj", "bad")
        assert code == 0, out
        assert "Hosts:            3 desired: 0 succeeded, 3 failed, 0 active" in out, out
        for h in ("h1", "h2", "h3"):
            assert f"  {h}     Failed   1      " in out, out
        assert "Failures:" in out, out
        for t in tasks(kd, "bad").values():
            assert (t["status"]["phase"], t["status"]["reason"], t["status"]["exitCode"]) == \
                ("Failed", "Error", 1), t

        # past its timeout: the process group is stopped, reason Timeout
        assert kd.post(path("broadcastjobs"),
                       job("slow", ["/bin/sleep", "60"], timeoutSeconds=1,
                           failurePolicy={"type": "Continue"})).status == 201
        st = finished(kd, "slow", timeout=40)
        assert (st["phase"], st["failed"]) == ("completed", 3), st
        for t in tasks(kd, "slow").values():
            assert t["status"]["reason"] == "Timeout", t
            assert t["status"].get("signal") in (9, 15), t

        # output and exit code; no shell unless the command is one; the
        # environment is what the template says plus the task's names
        script = "echo out; echo err >&2; exit 3"
        assert kd.post(path("broadcastjobs"),
                       job("sh", ["/bin/sh", "-c", script],
                           failurePolicy={"type": "Continue"})).status == 201
        assert kd.post(path("broadcastjobs"),
                       job("noshell", ["echo", "$HOME;", "exit", "7"])).status == 201
        assert kd.post(path("broadcastjobs"),
                       job("env", ["/usr/bin/env"], env={"A": "1"})).status == 201
        finished(kd, "sh")
        finished(kd, "noshell")
        finished(kd, "env")
        for t in tasks(kd, "sh").values():
            assert t["status"]["exitCode"] == 3, t
            assert t["status"]["output"] == "out\nerr\n", t
        for t in tasks(kd, "noshell").values():
            assert t["status"]["phase"] == "Succeeded", t
            assert t["status"]["output"] == "$HOME; exit 7\n", t
        for host, t in tasks(kd, "env").items():
            assert sorted(t["status"]["output"].splitlines()) == \
                ["A=1", "KFLEET_HOST=" + host, "KFLEET_JOB=env", "KFLEET_TASK=env." + host], t


def test_failfast_stops_running_tasks():
    with kftest.Kfleetd(store="sqlite", tokens=True, controllers=CONTROLLERS,
                        args=["--host-grace", "3s"]) as kd, Workers(kd) as w:
        ready_hosts(kd, 3)
        # h1 fails at once; h2 and h3 would sleep a minute
        script = 'if [ "$KFLEET_HOST" = h1 ]; then sleep 1; exit 4; fi; exec sleep 60'
        assert kd.post(path("broadcastjobs"), job("ff", ["/bin/sh", "-c", script])).status == 201
        code, out = kfleet(kd, "watch", "bcj", "nosuchjob")
        assert code == 4, out
        code, out = kfleet(kd, "watch", "bcj", "ff")
        assert code == 5, out
        st = finished(kd, "ff", timeout=30)
        assert st["phase"] == "failed" and st["failed"] == 3 and st["active"] == 0, st
        cond = st["conditions"][0]
        assert (cond["type"], cond["reason"]) == ("Failed", "FailedTaskFound"), cond
        assert "h1 (exit code 4)" in cond["message"], cond
        ts = tasks(kd, "ff")
        assert ts["h1"]["status"]["exitCode"] == 4, ts["h1"]
        for h in ("h2", "h3"):
            assert ts[h]["status"]["reason"] == "Stopped", ts[h]
        # and their processes are gone: the agents stopped them
        for a in w.agents[1:]:
            eventually(lambda: not alive_tasks(a), timeout=20,
                       msg=f"the stopped task still runs on {a.name}")


def test_result_once_across_agent_restart():
    with kftest.Kfleetd(store="sqlite", tokens=True, controllers=CONTROLLERS,
                        args=["--host-grace", "30s"]) as kd, Workers(kd, n=1) as w:
        ready_hosts(kd, 1)
        ag = w.agents[0]

        def running(name):
            return tasks(kd, name).get("h1", {}).get("status", {}).get("phase") == "Running"

        # killed while the task runs (it says Running after 2 s), back before
        # it ends: the new agent adopts the process and reads its output
        assert kd.post(path("broadcastjobs"),
                       job("long", ["/bin/sh", "-c", "sleep 4; echo done"])).status == 201
        eventually(lambda: running("long"), timeout=20, msg="task never Running")
        assert alive_tasks(ag), "no task process"
        ag.kill()  # SIGKILL: the task keeps running
        ag = kftest.Agent(kd, "h1", role="worker", cluster="c1", data_dir=ag.data_dir).start()
        try:
            st = finished(kd, "long")
            assert (st["phase"], st["succeeded"], st["failed"]) == ("completed", 1, 0), st
            t = tasks(kd, "long")["h1"]
            assert t["status"]["output"] == "done\n", t

            # killed, and the task ends before the next agent starts: its
            # result waits on disk and is reported once
            assert kd.post(path("broadcastjobs"),
                           job("gone", ["/bin/sh", "-c", "sleep 3; exit 5"],
                               failurePolicy={"type": "Continue"})).status == 201
            eventually(lambda: running("gone"), timeout=20, msg="task never Running")
            ag.kill()
            time.sleep(2.5)
            assert get(kd, "broadcastjobs", "gone")["status"]["active"] == 1
            ag = kftest.Agent(kd, "h1", role="worker", cluster="c1", data_dir=ag.data_dir).start()
            st = finished(kd, "gone")
            assert (st["phase"], st["succeeded"], st["failed"]) == ("completed", 0, 1), st
            t = tasks(kd, "gone")["h1"]
            assert t["status"]["exitCode"] == 5, t
            rv = t["metadata"]["resourceVersion"]
            eventually(lambda: "reported" in ag.log(), msg="the new agent did not report")
            assert ag.log().count('task "gone.h1": Failed') == 1, ag.log_tail()
            # nothing is left to report: the next agent sends nothing
            ag.stop()
            ag = kftest.Agent(kd, "h1", role="worker", cluster="c1", data_dir=ag.data_dir).start()
            time.sleep(2)
            assert tasks(kd, "gone")["h1"]["metadata"]["resourceVersion"] == rv
            left = os.listdir(os.path.join(ag.data_dir, "runner", "tasks"))
            assert not [f for f in left if f.endswith(".result")], left
        finally:
            ag.close()


def test_examples():
    """Both examples apply cleanly; the health check runs for real on a meta
    host of unit hz-u1 (its verdict depends on this machine, its output does
    not)."""
    examples = os.path.join(kftest.SOURCE_DIR, "examples")
    with kftest.Kfleetd(store="sqlite", tokens=True, controllers=CONTROLLERS,
                        args=["--host-grace", "5s"]) as kd, \
            kftest.Agent(kd, "m1", role="meta", unit="hz-u1"):
        ready_hosts_of(kd, "kfleet.io/unit=hz-u1", 1)
        for f in ("broadcastjob-healthcheck.yaml", "broadcastjob-agent-upgrade.yaml"):
            code, out = kfleet(kd, "apply", "-f", os.path.join(examples, f))
            assert code == 0 and "created" in out, (f, out)
        up = get(kd, "broadcastjobs", "agent-upgrade-web-1")
        assert up["spec"]["parallelism"] == "10%" and \
            up["spec"]["failurePolicy"] == {"type": "Pause", "restartLimit": 2}, up["spec"]
        st = finished(kd, "healthcheck-hz-u1", timeout=60)
        assert st["phase"] == "completed" and st["desired"] == 1, st
        t = tasks(kd, "healthcheck-hz-u1")["m1"]
        out = t["status"].get("output", "")
        assert t["status"]["phase"] == "Failed" or out.startswith("host m1\n"), t
        # no worker of web-1 exists: the upgrade waits for one
        assert get(kd, "broadcastjobs", "agent-upgrade-web-1")["status"]["desired"] == 0
        # applying again changes nothing
        for f in ("broadcastjob-healthcheck.yaml", "broadcastjob-agent-upgrade.yaml"):
            code, out = kfleet(kd, "apply", "-f", os.path.join(examples, f))
            assert code == 0 and "unchanged" in out, (f, out)


def test_simulated_fleet():
    n = 2000
    with kftest.Kfleetd(store="sqlite", tokens=True, controllers=CONTROLLERS,
                        args=["--host-grace", "20s"]) as kd, \
            kftest.Agent(kd, "sim", role="worker", cluster="big", simulate=n, heartbeat="2s",
                         args=["--sim-task-duration", "300ms",
                               "--sim-task-failures", "5%"]):
        ready_hosts(kd, n, cluster="big")
        assert kd.post(path("broadcastjobs"),
                       job("sweep", ["/usr/bin/true"], cluster="big", parallelism="50%",
                           failurePolicy={"type": "Continue"})).status == 201
        st = finished(kd, "sweep", timeout=120)
        assert st["phase"] == "completed" and st["desired"] == n, st
        assert st["succeeded"] + st["failed"] == n and st["active"] == 0, st
        # about 5 % fail (which ones follows from the task's uid)
        assert 0 < st["failed"] < n * 0.1, st


def test_simulated_results_across_kfleetd_restart():
    """kfleetd is killed while a simulated fleet's tasks run and comes back
    after they ended: the results the agent could not post (its requests in
    flight fail, the others wait) are posted again, and each counts once."""
    n = 600
    with kftest.Kfleetd(store="sqlite", tokens=True, controllers=CONTROLLERS,
                        args=["--host-grace", "60s"]) as kd, \
            kftest.Agent(kd, "sim", role="worker", cluster="big", simulate=n, heartbeat="2s",
                         args=["--sim-task-duration", "1500ms",
                               "--sim-task-failures", "5%"]) as ag:
        ready_hosts(kd, n, cluster="big")
        assert kd.post(path("broadcastjobs"),
                       job("flap", ["/usr/bin/true"], cluster="big",
                           failurePolicy={"type": "Continue"})).status == 201

        def dispatched():
            st = (get(kd, "broadcastjobs", "flap") or {}).get("status", {})
            return st.get("desired") == n and \
                st.get("active", 0) + st.get("succeeded", 0) + st.get("failed", 0) == n
        eventually(dispatched, timeout=30, msg="the job never had a task on every host")
        kd.kill()
        time.sleep(2.5)  # every task ends while kfleetd is away
        kd.start()
        st = finished(kd, "flap", timeout=120)
        assert st["phase"] == "completed" and st["desired"] == n, st
        assert st["succeeded"] + st["failed"] == n and st["active"] == 0, st
        ts = tasks(kd, "flap")
        assert len(ts) == n, len(ts)
        phases = [t["status"].get("phase") for t in ts.values()]
        assert phases.count("Failed") == st["failed"], (phases.count("Failed"), st)
        assert phases.count("Succeeded") == st["succeeded"], (phases.count("Succeeded"), st)
        assert "does not answer" in ag.log(), ag.log_tail()


if __name__ == "__main__":
    kftest.main(globals())
