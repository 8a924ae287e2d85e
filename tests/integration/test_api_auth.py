"""test_api_auth.py: bearer tokens and roles. 401 without a valid token,
403 outside the role with a message naming the role needed, what each of
admin / editor / viewer / agent may do (an agent token bound to a host:
its own Host and heartbeats only), open health endpoints, SIGHUP
reloading the token file, and kfleetd refusing a non-loopback address
without a token file."""

import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import API, path, sample  # noqa: E402

ADMIN = kftest.ADMIN_TOKEN
EDITOR = "editor-token-0123456789"
VIEWER = "viewer-token-0123456789"
AGENT = "agent-token-0123456789"

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(tokens=True).start()
        for kind in ("Region", "Host", "ControlPlaneMember"):
            r = kd.post(path(kftest.PLURALS[kind]), sample(kind, "seed"), token=ADMIN)
            assert r.status == 201, r
    return kd


def assert_code(r, code, reason):
    assert r.status == code, r
    assert r.json["kind"] == "Status" and r.json["reason"] == reason, r
    return r.json


def test_unauthenticated():
    setup()
    for p in (path("regions"), API, "/apis", "/openapi/v3", "/metrics", path("regions", "seed")):
        r = kd.request("GET", p, token="")
        st = assert_code(r, 401, "Unauthorized")
        assert "bearer token" in st["message"], st
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers
    st = assert_code(kd.get(path("regions"), token="not-a-token-at-all"), 401, "Unauthorized")
    assert "not valid" in st["message"], st
    r = kd.request("GET", path("regions"), token="",
                   headers={"Authorization": "Basic YWxpY2U6cGFzcw=="})
    assert_code(r, 401, "Unauthorized")
    # a write without a token is refused before its body is read
    assert_code(kd.post(path("regions"), sample("Region", "anon"), token=""), 401,
                "Unauthorized")
    assert kd.get(path("regions", "anon")).status == 404
    for p in ("/healthz", "/livez", "/readyz", "/version"):
        assert kd.request("GET", p, token="").status == 200, p


def test_viewer():
    setup()
    assert kd.get(path("regions"), token=VIEWER).status == 200
    assert kd.get(path("regions", "seed"), token=VIEWER).status == 200
    w = kd.watch(path("regions"), token=VIEWER)
    assert w.status == 200
    w.close()
    assert kd.get("/metrics", token=VIEWER).status == 200
    st = assert_code(kd.post(path("regions"), sample("Region", "v1"), token=VIEWER), 403,
                     "Forbidden")
    assert st["message"] == ('user "victor" (role viewer) may not create regions.kfleet.io: '
                             "that needs role editor or admin"), st
    st = assert_code(kd.patch(path("regions", "seed"), {"spec": {}}, token=VIEWER), 403,
                     "Forbidden")
    assert '"seed"' in st["message"], st
    assert_code(kd.delete(path("regions", "seed"), token=VIEWER), 403, "Forbidden")
    assert kd.get(path("regions", "seed")).status == 200


def test_editor():
    setup()
    assert kd.post(path("regions"), sample("Region", "ed-1"), token=EDITOR).status == 201
    assert kd.patch(path("regions", "ed-1"), {"spec": {"displayName": "E"}},
                    token=EDITOR).status == 200
    assert kd.patch(path("regions", "ed-1", "status"), {"status": {"units": 1}},
                    token=EDITOR).status == 200
    assert kd.delete(path("regions", "ed-1"), token=EDITOR).status == 200
    # Events are kfleetd's; only admin may delete them
    st = assert_code(kd.delete(path("events", "x"), token=EDITOR), 403, "Forbidden")
    assert "needs role admin" in st["message"], st
    assert kd.delete(path("events", "x"), token=ADMIN).status == 404


def test_agent():
    setup()
    assert kd.get(path("guestclusters"), token=AGENT).status == 200
    assert kd.post(path("hosts"), sample("Host", "agent-h1"), token=AGENT).status == 201
    assert kd.patch(path("hosts", "agent-h1", "status"), {"status": {"ready": True}},
                    token=AGENT).status == 200
    assert kd.patch(path("controlplanemembers", "seed", "status"),
                    {"status": {"phase": "Running"}}, token=AGENT).status == 200
    st = assert_code(kd.patch(path("controlplanemembers", "seed"), {"spec": {"args": ["x"]}},
                              token=AGENT), 403, "Forbidden")
    assert "role agent" in st["message"], st
    assert_code(kd.post(path("regions"), sample("Region", "ag"), token=AGENT), 403, "Forbidden")
    assert_code(kd.delete(path("hosts", "agent-h1"), token=AGENT), 403, "Forbidden")


def test_agent_bound_to_a_host():
    """An agent token whose user is host:h-a changes Host h-a and sends its
    heartbeats only (the certificate bundles: test_agents_cluster)."""
    setup()
    bound = "host-a-token-0123456789"
    for name in ("h-a", "h-b"):
        assert kd.post(path("hosts"), sample("Host", name), token=ADMIN).status == 201
    assert kd.patch(path("hosts", "h-a", "status"), {"status": {"ready": True}},
                    token=bound).status == 200
    st = assert_code(kd.patch(path("hosts", "h-b", "status"), {"status": {"ready": True}},
                              token=bound), 403, "Forbidden")
    assert 'may change host "h-a" only, not "h-b"' in st["message"], st
    assert_code(kd.patch(path("hosts", "h-b"), {"metadata": {"labels": {"x": "y"}}}, token=bound),
                403, "Forbidden")
    assert kd.post(path("hosts", "h-a", "heartbeat"), {}, token=bound).status == 200
    st = assert_code(kd.post(path("hosts", "h-b", "heartbeat"), {}, token=bound), 403, "Forbidden")
    assert 'heartbeats for host "h-a" only' in st["message"], st
    r = kd.post(API + "/heartbeats", {"hosts": ["h-a"]}, token=bound)
    assert r.status == 200 and r.json["renewed"] == 1, r
    st = assert_code(kd.post(API + "/heartbeats", {"hosts": ["h-a", "h-b"]}, token=bound),
                     403, "Forbidden")
    assert st["message"].startswith("hosts[1]:"), st
    # an agent token of any other user keeps every host
    assert kd.post(API + "/heartbeats", {"hosts": ["h-a", "h-b"]}, token=AGENT).status == 200
    assert kd.patch(path("hosts", "h-b", "status"), {"status": {"ready": True}},
                    token=AGENT).status == 200


def test_admin_deletecollection():
    setup()
    for i in range(2):
        assert kd.post(path("templates"), sample("Template", f"adm-{i}"), token=EDITOR
                       ).status == 201
    assert_code(kd.delete(path("templates"), token=VIEWER), 403, "Forbidden")
    r = kd.delete(path("templates"), token=ADMIN)
    assert r.status == 200 and len(r.json["items"]) == 2, r


def test_sighup_reloads_tokens():
    setup()
    new = dict(kftest.TOKENS)
    del new[VIEWER]
    new["late-token-0123456789"] = ("late", "viewer")
    kftest.write_token_file(kd.token_file, new)
    os.kill(kd.pid, signal.SIGHUP)
    kftest.eventually(lambda: kd.get(path("regions"), token="late-token-0123456789").status
                      == 200, msg="the new token was not accepted after SIGHUP")
    assert_code(kd.get(path("regions"), token=VIEWER), 401, "Unauthorized")
    # a broken file keeps the old tokens
    with open(kd.token_file, "w") as f:
        f.write("only-one-field\n")
    os.kill(kd.pid, signal.SIGHUP)
    kftest.eventually(lambda: "token file not reloaded" in kd.log())
    assert kd.get(path("regions"), token="late-token-0123456789").status == 200


def run_kfleetd(*args, timeout=30):
    tmp = tempfile.mkdtemp(prefix="kftest-auth-")
    p = subprocess.run([os.path.join(kftest.BIN_DIR, "kfleetd"), "--store", "memory:",
                        "--data-dir", tmp, *args], capture_output=True, text=True,
                       timeout=timeout * kftest.SLOW)
    return p


def test_refuses_non_loopback_without_tokens():
    p = run_kfleetd("--listen", f"0.0.0.0:{kftest.free_port()}")
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "refusing to listen" in p.stderr and "--token-file" in p.stderr, p.stderr
    # with a token file it serves
    port = kftest.free_port()
    with kftest.Kfleetd(tokens=True, store="memory", port=port,
                        args=["--listen", f"0.0.0.0:{port}",
                              "--insecure-allow-plaintext"]) as k2:
        assert k2.get(path("regions")).status == 200
        assert k2.get(path("regions"), token="").status == 401


def test_bad_token_file():
    tmp = tempfile.mkdtemp(prefix="kftest-auth-")
    bad = os.path.join(tmp, "tokens")
    for content, words in (("tok-12345678,bob,superuser\n", "unknown role"),
                           ("short,bob,admin\n", "shorter than"),
                           ("tok-12345678,bob\n", "token,user,role"),
                           ("tok-12345678,a,admin\ntok-12345678,b,viewer\n", "twice"),
                           ("tok-12345678,host:,agent\n", "needs role agent and a host name"),
                           ("tok-12345678,host:h-a,admin\n", "needs role agent"),
                           ("tok-12345678,host:H_A,agent\n", "a host name")):
        with open(bad, "w") as f:
            f.write(content)
        os.chmod(bad, 0o600)
        p = run_kfleetd("--token-file", bad, "--listen", f"127.0.0.1:{kftest.free_port()}")
        assert p.returncode == 2 and words in p.stderr, (content, p.returncode, p.stderr)
        assert f"{bad}:" in p.stderr, p.stderr  # says where
    p = run_kfleetd("--token-file", os.path.join(tmp, "missing"))
    assert p.returncode == 2 and "cannot read token file" in p.stderr, p.stderr


def test_zz_clean_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    kftest.main(globals(), shared=("kd",))
