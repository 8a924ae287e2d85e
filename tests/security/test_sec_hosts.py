"""test_sec_hosts.py: an editor is not root on the hosts, and a token line
cannot silently become an agent of every host (docs/security.md, "Who
runs code on hosts").

What runs on a host is written by kfleetd's controllers (ControlPlaneMember
specs from the catalog and Profiles, BroadcastTasks from BroadcastJobs) or
by an admin: an editor may not create BroadcastJobs or BroadcastTasks, nor
write a ControlPlaneMember's binary, args or env, nor a Profile's; nobody
creates BroadcastTasks through the API. A host-bound agent records its own
host's task results only (test-broadcast: test_record_own_host_only)."""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402

ADMIN = kftest.ADMIN_TOKEN
EDITOR = "editor-token-0123456789"

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(tokens=True).start()
        for kind in ("Region", "Host", "ControlPlaneMember"):
            r = kd.post(path(kftest.PLURALS[kind]), sample(kind, "seed"), token=ADMIN)
            assert r.status == 201, r
    return kd


def bcj(name):
    return {"apiVersion": "kfleet.io/v1", "kind": "BroadcastJob", "metadata": {"name": name},
            "spec": {"template": {"command": ["/bin/sh", "-c", "id > /tmp/owned"],
                                  "restartPolicy": "Never"}}}


def bct(name):
    return {"apiVersion": "kfleet.io/v1", "kind": "BroadcastTask",
            "metadata": {"name": f"{name}.seed"},
            "spec": {"job": name, "host": "seed", "command": ["/bin/sh", "-c", "id"],
                     "restartPolicy": "Never"}}


def test_editor_runs_nothing_on_hosts():
    setup()
    r = kd.post(path("broadcastjobs"), bcj("ed"), token=EDITOR)
    assert r.status == 403 and "admin" in r.json["message"], r
    r = kd.post(path("broadcasttasks"), bct("ed"), token=EDITOR)
    assert r.status in (403, 405), r
    for patch in ({"spec": {"binary": "/bin/sh"}}, {"spec": {"args": ["-c", "id"]}},
                  {"spec": {"env": {"LD_PRELOAD": "/tmp/x.so"}}}):
        r = kd.patch(path("controlplanemembers", "seed"), patch, token=EDITOR)
        assert r.status == 403, (patch, r)
    r = kd.post(path("controlplanemembers"), sample("ControlPlaneMember", "ed"), token=EDITOR)
    assert r.status == 403, r
    prof = sample("Profile", "ed-prof")
    prof["spec"]["components"] = [{"name": "x", "binary": "/bin/sh", "args": ["-c", "id"]}]
    r = kd.post(path("profiles"), prof, token=EDITOR)
    assert r.status == 403, r
    # the editor still writes what it is for
    assert kd.post(path("templates"), sample("Template", "ed-t"), token=EDITOR).status == 201
    # an admin may run a job; BroadcastTasks come from the controller only
    assert kd.post(path("broadcastjobs"), bcj("adm"), token=ADMIN).status == 201
    r = kd.post(path("broadcasttasks"), bct("adm"), token=ADMIN)
    assert r.status == 405 and "kfleetd only" in r.json["message"], r


def test_misspelt_host_binding_refused():
    tmp = tempfile.mkdtemp(prefix="kftest-sec-")
    bad = os.path.join(tmp, "tokens")
    for user in ("hosts:h1", "Host:h1", "host;h1:x"):
        with open(bad, "w") as f:
            f.write(f"tok-1234567890,{user},agent\n")
        os.chmod(bad, 0o600)
        p = subprocess.run([os.path.join(kftest.BIN_DIR, "kfleetd"), "--token-file", bad,
                            "--store", "memory:", "--listen",
                            f"127.0.0.1:{kftest.free_port()}"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and "host:NAME" in p.stderr, (user, p.returncode, p.stderr)


def test_zz_clean_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    try:
        kftest.main(globals())
    finally:
        if kd:
            kd.close()
