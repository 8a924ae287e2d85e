"""Failures of a local fleet with real processes: a zone lost (its agent
and its etcd member killed) while the guest cluster keeps its quorum and
loses nothing, then the zone coming back; an agent restarted under running
members (adopted, not restarted); kfleetd killed with SIGKILL while a
cluster is provisioning (it converges after the restart); a cluster deleted
while one zone's agent is down (the deletion completes after the release
timeout, and the agent removes what was left once it is back). Every
process is checked and stopped by PID.
"""

import os
import signal

import kftest
import lifecycle_fixture as lf
from kftest import eventually, path


def running_cluster(f, name="g1"):
    lf.etcd_profile(f.kd)
    lf.create_cluster(f.kd, name)
    lf.wait_phase(f.kd, name, "Running", timeout=40)
    return {m["spec"]["zone"]: m for m in lf.members(f.kd, name)}


def member_pid(f, zone, member):
    """The member's pid from the agent's own records (not only from what
    kfleetd says), so that a test never signals a stranger."""
    for name, pid, _pst, _kpid, _kst in f.agents[zone].processes():
        if name == member and kftest.pid_alive(pid):
            return pid
    return None


def test_zone_loss_keeps_quorum():
    with lf.Fleet() as f:
        kd = f.kd
        ms = running_cluster(f)
        cli = lf.EtcdClient(kd, "g1", os.path.join(f.tmp, "etcd"))
        cli.put(0, "/before", "1")

        # zone c goes away: its agent and its etcd member die
        victim = ms["c"]["metadata"]["name"]
        pid = member_pid(f, "c", victim)
        assert pid and pid == ms["c"]["status"]["pid"], (pid, ms["c"]["status"])
        f.agents["c"].kill()
        os.kill(pid, signal.SIGKILL)
        lf.wait_gone([pid])

        # the two other zones keep a quorum: writes go on (after an election
        # if the dead member led), nothing is lost
        cli.put_eventually(0, "/during", "2")
        cli.wait_get(1, "/during", "2")
        assert cli.get(1, "/before") == "1"
        # it still serves: Running, with what it lacks in its conditions
        def running_with_member_down():
            c = lf.cluster(kd, "g1")
            st = (c or {}).get("status", {})
            conds = {x["type"]: x for x in st.get("conditions", [])}
            q = conds.get("EtcdQuorum", {})
            return (st.get("phase") == "Running" and q.get("status") == "True" and
                    q.get("reason") == "MemberUnhealthy" and c)
        c = eventually(running_with_member_down, timeout=20,
                       msg="not Running with a member down: " + str(lf.cluster(kd, "g1")))
        assert "reduced redundancy" in c["status"]["message"], c["status"]["message"]
        assert victim in c["status"]["message"], c["status"]["message"]

        # the zone comes back: the member runs again, catches up, full health
        f.start_agent("c")
        eventually(lambda: lf.cluster(kd, "g1")["status"]["message"].startswith("etcd healthy"),
                   timeout=40, msg="not back to full health: " + str(lf.cluster(kd, "g1")))
        cli.wait_get(2, "/during", "2")
        assert cli.get(2, "/before") == "1"
        st = eventually(lambda: (lambda s: s if s.get("ready") and s.get("pid") != pid else None)(
            lf.members(kd, "g1")[2]["status"]), timeout=20)
        assert st["restarts"] >= 1 and st["lastExitCode"] == -signal.SIGKILL, st


def test_agent_restart_adopts_running_etcd():
    with lf.Fleet() as f:
        kd = f.kd
        ms = running_cluster(f)
        name = ms["b"]["metadata"]["name"]
        pid = member_pid(f, "b", name)
        assert pid
        f.agents["b"].stop()  # SIGTERM: the agent goes, its members stay
        assert kftest.pid_alive(pid)
        f.start_agent("b")
        eventually(lambda: f.agents["b"].metric("kfleet_member_ready", {
            "cluster": "g1", "component": "etcd", "member": name}) == 1, timeout=20,
            msg="the new agent does not have the member ready")
        assert member_pid(f, "b", name) == pid  # adopted: the same process
        st = lf.members(kd, "g1")[1]["status"]
        assert st["pid"] == pid and st["restarts"] == 0, st
        lf.wait_phase(kd, "g1", "Running", timeout=20)


def test_kfleetd_killed_while_provisioning():
    with lf.Fleet() as f:
        kd = f.kd
        lf.etcd_profile(kd)
        lf.create_cluster(kd, "g3")
        seen = eventually(lambda: lf.phase(kd, "g3") in ("Scheduled", "Provisioning") and
                          lf.phase(kd, "g3"), timeout=20, interval=0.005)
        kd.kill()
        assert seen in ("Scheduled", "Provisioning"), seen
        kd.start()
        c = lf.wait_phase(kd, "g3", "Running", timeout=60)
        ports = [p for m in lf.members(kd, "g3") for p in m["spec"]["ports"].values()]
        assert len(ports) == len(set(ports)) == 9, ports
        conds = {x["type"]: x for x in c["status"]["conditions"]}
        assert conds["ComponentsReady"]["message"] == "3 of 3 members ready", conds
        cli = lf.EtcdClient(kd, "g3", os.path.join(f.tmp, "etcd"))
        cli.put(2, "/after-restart", "ok")
        cli.wait_get(0, "/after-restart", "ok")


def test_delete_while_a_zone_is_down():
    with lf.Fleet() as f:
        kd = f.kd
        ms = running_cluster(f)
        pids = {z: member_pid(f, z, m["metadata"]["name"]) for z, m in ms.items()}
        ports = [p for m in ms.values() for p in m["spec"]["ports"].values()]
        f.agents["a"].kill()  # its etcd keeps running, nobody tells it to stop
        assert kd.delete(path("guestclusters", "g1")).status in (200, 202)
        # b and c stop theirs at once; a's is let go after the release timeout
        lf.wait_gone([pids["b"], pids["c"]])
        eventually(lambda: lf.cluster(kd, "g1") is None, timeout=40,
                   msg="the cluster was not deleted")
        assert kftest.pid_alive(pids["a"])
        r = kd.get(path("events"), params={"fieldSelector": "spec.involvedObject.name=g1"})
        reasons = {e["spec"]["reason"] for e in r.json["items"]}
        assert "MemberAbandoned" in reasons, reasons
        # zone a's agent comes back: it removes what nobody wants any more
        f.start_agent("a")
        lf.wait_gone([pids["a"]])
        mdir = os.path.join(f.agents["a"].data_dir, "members", ms["a"]["metadata"]["name"])
        eventually(lambda: not os.path.exists(mdir), msg=f"{mdir} is still there")
        for p in ports:
            assert not lf.port_open(p), p
        assert lf.members(kd, "g1") == []


if __name__ == "__main__":
    kftest.main(globals())
