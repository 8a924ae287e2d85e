"""test_sec_crosssite.py: a web page cannot use kfleetd through a browser
(docs/security.md, "Cross-site requests").

kfleetd as `make run` starts it has no token file: it trusts loopback. A
page may still make the browser send simple requests there (POST with
text/plain or no type, any Origin), and with DNS rebinding read answers
under a name of its own. Every writing route refuses a body without a JSON
type (415), a foreign Origin (403), and every route a Host that is not one
of kfleetd's names (421); kubectl-like clients, the CLI and agents are not
affected."""

import http.client
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402
from kftest import API, path, sample  # noqa: E402

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(args=["--server-name", "kfleet.example.org"]).start()
    return kd


def raw(method, target, body=None, headers=None):
    """A request with exactly these headers (http.client adds Host only
    when not given, and Content-Length for a body)."""
    c = http.client.HTTPConnection("127.0.0.1", kd.port, timeout=10)
    h = {"Host": f"127.0.0.1:{kd.port}"}
    h.update(headers or {})
    c.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    for k, v in h.items():
        c.putheader(k, v)
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    if data is not None:
        c.putheader("Content-Length", str(len(data)))
    c.endheaders(data)
    r = c.getresponse()
    out = kftest.Response(r.status, dict(r.getheaders()), r.read())
    c.close()
    return out


def test_body_needs_json_type():
    setup()
    region = sample("Region", "csrf-1")
    for ctype in (None, "text/plain", "application/x-www-form-urlencoded",
                  "multipart/form-data; boundary=x"):
        h = {"Content-Type": ctype} if ctype else {}
        r = raw("POST", path("regions"), region, h)
        assert r.status == 415, (ctype, r)
        assert "Content-Type application/json" in r.json["message"], r
    assert kd.get(path("regions", "csrf-1")).status == 404
    # actions too: a plan (POST) and heartbeats
    r = raw("POST", API + "/heartbeats", {"hosts": ["x"]}, {"Content-Type": "text/plain"})
    assert r.status == 415, r
    # with the type it is created
    r = raw("POST", path("regions"), region, {"Content-Type": "application/json"})
    assert r.status == 201, r
    # PUT and PATCH as well
    r = raw("PATCH", path("regions", "csrf-1"), {"metadata": {"labels": {"a": "b"}}},
            {"Content-Type": "text/plain"})
    assert r.status == 415, r


def test_foreign_origin_refused():
    setup()
    h = {"Content-Type": "application/json", "Origin": "http://evil.example.com"}
    r = raw("POST", path("regions"), sample("Region", "csrf-2"), h)
    assert r.status == 403 and "origin" in r.json["message"], r
    r = raw("DELETE", path("regions", "csrf-1"), None, {"Origin": "null"})
    assert r.status == 403, r
    # kfleetd's own origin may write
    h["Origin"] = f"http://127.0.0.1:{kd.port}"
    r = raw("POST", path("regions"), sample("Region", "csrf-2"), h)
    assert r.status == 201, r
    # reads with a foreign Origin are answered (nothing changes; no CORS
    # headers, so the page cannot read them)
    r = raw("GET", path("regions"), None, {"Origin": "http://evil.example.com"})
    assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers, r


def test_rebound_host_refused():
    setup()
    for host in ("evil.example.com", f"evil.example.com:{kd.port}", "127.0.0.1.nip.io"):
        r = raw("GET", path("regions"), None, {"Host": host})
        assert r.status == 421, (host, r)
        assert "--server-name" in r.text, r
    # a 404 under a foreign name says nothing about the kinds
    r = raw("GET", API + "/nothing", None, {"Host": "evil.example.com"})
    assert r.status == 421 and "guestclusters" not in r.text, r
    for host in (f"127.0.0.1:{kd.port}", f"localhost:{kd.port}", "[::1]:1",
                 f"kfleet.example.org:{kd.port}", "KFLEET.example.org."):
        r = raw("GET", path("regions"), None, {"Host": host})
        assert r.status == 200, (host, r)


def test_clients_still_work():
    setup()
    env = dict(os.environ, KFLEET_SERVER=kd.url, HOME=kd.data_dir)
    kfleet = os.path.join(kftest.BIN_DIR, "kfleet")
    f = os.path.join(kd.data_dir, "r.json")
    with open(f, "w") as out:
        json.dump(sample("Region", "csrf-cli"), out)
    p = subprocess.run([kfleet, "apply", "-f", f], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and "created" in p.stdout, (p.stdout, p.stderr)
    p = subprocess.run([kfleet, "delete", "region", "csrf-cli"], env=env, capture_output=True,
                       text=True)
    assert p.returncode == 0, (p.stdout, p.stderr)


def test_zz_clean_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    try:
        kftest.main(globals())
    finally:
        if kd:
            kd.close()
