"""test_sec_exhaustion.py: kfleetd can hold the connections it promises,
and no one client or user takes them all (docs/security.md, "Exhaustion").

kfleetd raises its soft open-file limit to --max-connections plus room for
its own files (or to the hard limit, with a warning), so that the usual
soft limit of 1024 does not make accept() fail for every client long
before --max-connections. One client address holds at most
--max-connections-per-client connections (the next gets 429 and is
closed), one user at most --max-watches-per-user watches (429), and the
alert receiver route answers 401 before it reads a body."""

import http.client
import json
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402
from kftest import path  # noqa: E402


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc")


def test_file_limit_raised():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = 4000 + 1024
    # start it with a small soft limit, as most shells give
    env_limit = min(1024, hard)
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (env_limit, hard))
    try:
        with kftest.Kfleetd(store="memory", args=["--max-connections", "4000"]) as k:
            got = soft_nofile(k.proc.pid)
            expect = want if hard == resource.RLIM_INFINITY else min(want, hard)
            assert got >= expect, (got, expect, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def raw_get(port, target="/healthz", token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * kftest.SLOW)
    h = {"Authorization": f"Bearer {token}"} if token else {}
    c.request("GET", target, headers=h)
    r = c.getresponse()
    out = kftest.Response(r.status, dict(r.getheaders()), r.read())
    return c, out


def served_again(port):
    """Whether a new connection is served: until kfleetd has seen the
    client's closes, a new one may still be refused at accept (a reset)."""
    try:
        c, r = raw_get(port)
    except ConnectionError:
        return False
    c.close()
    return r.status == 200


def test_connections_per_client():
    with kftest.Kfleetd(store="memory", args=["--max-connections-per-client", "4"]) as k:
        held = []
        for _ in range(4):
            c, r = raw_get(k.port)
            assert r.status == 200, r
            held.append(c)  # kept alive, still counted
        c, r = raw_get(k.port)
        assert r.status == 429, r
        assert "too many connections from 127.0.0.1" in r.json["message"], r.json
        assert "--max-connections-per-client" in r.json["message"], r.json
        assert r.headers.get("Connection", "").lower() == "close", r.headers
        c.close()
        held.pop().close()

        kftest.eventually(lambda: served_again(k.port), timeout=10 * kftest.SLOW,
                          msg="a connection freed")
        for c in held:
            c.close()


def closed_soon(sock, seconds):
    """Whether the server closed sock (EOF or reset) within seconds."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_idle_connections_past_limit_refused_at_accept():
    """Connections that never send a request: past the limit plus the one
    told 429, kfleetd closes them as it accepts them instead of holding them
    until --connection-timeout (here 120 s)."""
    with kftest.Kfleetd(store="memory", args=["--max-connections-per-client", "2",
                                              "--connection-timeout", "120s"]) as k:
        time.sleep(1.0 * kftest.SLOW)  # the harness's readiness probes are closed
        idle = []
        for _ in range(3):  # the limit, and the one that would be told 429
            idle.append(socket.create_connection(("127.0.0.1", k.port)))
        time.sleep(1.0 * kftest.SLOW)  # accepted and counted
        assert not any(closed_soon(s, 0.2) for s in idle), "a connection within the limit closed"
        extra = [socket.create_connection(("127.0.0.1", k.port)) for _ in range(3)]
        for s in extra:
            assert closed_soon(s, 5 * kftest.SLOW), "an idle connection past the limit was held"
            s.close()
        for s in idle:
            s.close()
        # the client is served again once its connections are gone
        kftest.eventually(lambda: served_again(k.port), timeout=10 * kftest.SLOW,
                          msg="connections freed")


def test_watches_per_user():
    viewer = "viewer-token-0123456789"
    with kftest.Kfleetd(store="memory", tokens=True,
                        args=["--max-watches-per-user", "2"]) as k:
        w1 = k.watch(path("regions"), token=viewer)
        w2 = k.watch(path("hosts"), token=viewer)
        assert w1.status == 200 and w2.status == 200
        w3 = k.watch(path("units"), token=viewer)
        assert w3.status == 429, (w3.status, w3.body)
        msg = json.loads(w3.body)["message"]
        assert 'user "victor"' in msg and "--max-watches-per-user 2" in msg, msg
        # another user is not held by victor's watches
        w4 = k.watch(path("units"), token=kftest.ADMIN_TOKEN)
        assert w4.status == 200
        w1.close()

        def again():
            w = k.watch(path("units"), token=viewer)
            w.close()
            return w.status == 200
        kftest.eventually(again, timeout=10 * kftest.SLOW, msg="a watch slot freed")
        for w in (w2, w4):
            w.close()


def test_alert_route_token_before_body():
    with kftest.Kfleetd(store="memory", args=["--monitoring", "external"]) as k:
        s = socket.create_connection(("127.0.0.1", k.port), timeout=10 * kftest.SLOW)
        # headers of a 500 KB body, and no body: the token is checked first
        s.sendall(b"POST /alerts/v1/receivers/oncall HTTP/1.1\r\n"
                  b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 500000\r\n\r\n")
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        s.close()
        assert data.startswith(b"HTTP/1.1 401"), data[:200]


if __name__ == "__main__":
    kftest.main(globals())
