"""test_endpoints.py: a stable endpoint per guest cluster (the endpoints
controller and kfleetd --endpoints), with a real HAProxy.

kfleetd runs the endpoints controller alone; the test writes what the
lifecycle controller would (a GuestCluster's status.unit and
status.endpoints.apiServer, kube-apiserver ControlPlaneMembers with
spec.ports.https, Hosts with their address) and the cluster CA into
kfleetd's PKI working copy (<data-dir>/pki/<cluster>/ca.crt). The
"apiservers" are small HTTPS servers this file starts (it runs itself with
--backend), with certificates from a test CA for 127.0.0.1: they answer
/readyz with 200 "ok" and any other path with their own name, so a request
through the endpoint says which backend it reached. Real kube-apiservers
behind the endpoint are the lifecycle tests' business.

What a user sees: a TLS request through the endpoint, verified against the
cluster CA, reaches an apiserver; one apiserver down and requests still
succeed; a member added reloads HAProxy (same master pid) and a connection
established before the reload keeps working; a setting HAProxy refuses
keeps the last good file and says why in an Event; a deleted cluster's
port stops answering, and with the unit's last endpoint gone its HAProxy
(by pid) and its folder are gone; kfleetd's exit stops its HAProxies.
"""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import API, eventually  # noqa: E402

HAPROXY = "/usr/sbin/haproxy"


# --- the stand-in apiserver (this file run with --backend) --------------------

def backend_main(port, name, cert, key):
    import http.server
    import socketserver

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = b"ok" if self.path == "/readyz" else name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def handle_error(self, request, client_address):
            pass  # HAProxy's health checks hang up without a TLS close_notify

    srv = Server(("127.0.0.1", port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


# --- helpers -------------------------------------------------------------------

def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


class Pki:
    """A test CA and a serving certificate for 127.0.0.1 signed by it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kftest-ep-pki-")
        d = self.dir
        self.ca, self.ca_key = f"{d}/ca.crt", f"{d}/ca.key"
        self.cert, self.key = f"{d}/apiserver.crt", f"{d}/apiserver.key"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", self.ca_key, "-out", self.ca, "-days", "2",
                "-subj", "/CN=kfleet-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")
        openssl("req", *ec, "-keyout", self.key, "-out", f"{d}/apiserver.csr", "-subj",
                "/CN=kube-apiserver")
        with open(f"{d}/ext", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\n")
        openssl("x509", "-req", "-in", f"{d}/apiserver.csr", "-CA", self.ca, "-CAkey",
                self.ca_key, "-CAcreateserial", "-out", self.cert, "-days", "2", "-extfile",
                f"{d}/ext")
        self.context = ssl.create_default_context(cafile=self.ca)

    def close(self):
        subprocess.run(["rm", "-rf", self.dir], check=False)


class Backend:
    """One stand-in apiserver process, stopped by PID."""

    def __init__(self, pki, name):
        self.name = name
        self.port = kftest.free_port()
        self.proc = kftest.track(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--backend", str(self.port), name,
             pki.cert, pki.key]))
        eventually(lambda: self.answers(pki), timeout=15, msg=f"backend {name} did not start")

    def answers(self, pki):
        try:
            return get(self.port, "/readyz", pki, timeout=2) == "ok"
        except OSError:
            return False

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def get(port, path, pki, timeout=5):
    """One GET over a new TLS connection verified against the cluster CA."""
    c = http.client.HTTPSConnection("127.0.0.1", port, context=pki.context, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode()
        assert r.status == 200, (r.status, body)
        return body
    finally:
        c.close()


def answers(port, pki):
    try:
        return get(port, "/who", pki, timeout=3)
    except (OSError, AssertionError, http.client.HTTPException):
        return None


def refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def post(kd, plural, obj):
    r = kd.post(f"{API}/{plural}", obj)
    assert r.status == 201, r
    return r.json


def obj(kind, name, spec, labels=None, annotations=None):
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": kftest.API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


def events(kd, reason=None, name=None):
    r = kd.get(f"{API}/events")
    assert r.status == 200, r
    out = []
    for e in r.json["items"]:
        s = e["spec"]
        if reason and s.get("reason") != reason:
            continue
        if name and s.get("involvedObject", {}).get("name") != name:
            continue
        out.append(s)
    return out


class Fleet:
    """kfleetd with the endpoints controller, a unit u1 with two hosts."""

    def __init__(self, mode="local"):
        kftest.require(os.access(HAPROXY, os.X_OK), f"{HAPROXY} is not installed")
        self.pki = Pki()
        self.kd = kftest.Kfleetd(controllers="endpoints", args=["--endpoints", mode])
        self.kd.start()
        self.backends = {}
        post(self.kd, "units", kftest.sample("Unit", "u1"))
        for h in ("h-a", "h-b"):
            post(self.kd, "hosts", obj("Host", h, {
                "role": "meta", "unit": "u1", "zone": "cn-hangzhou-a", "address": "127.0.0.1",
                "capacity": {"cpu": "8", "memory": "16Gi"}}))

    @property
    def root(self):
        return os.path.join(self.kd.data_dir, "endpoints")

    def cfg(self, unit="u1"):
        try:
            with open(os.path.join(self.root, unit, "haproxy.cfg")) as f:
                return f.read()
        except OSError:
            return None

    def cluster(self, name, members=1):
        """A cluster on u1 with an endpoint and `members` apiservers; returns its port."""
        ca_dir = os.path.join(self.kd.data_dir, "pki", name)
        os.makedirs(ca_dir, exist_ok=True)
        with open(self.pki.ca) as src, open(os.path.join(ca_dir, "ca.crt"), "w") as dst:
            dst.write(src.read())
        post(self.kd, "guestclusters", kftest.sample("GuestCluster", name))
        port = kftest.free_port()
        r = self.kd.patch(f"{API}/guestclusters/{name}/status", {"status": {
            "unit": "u1", "endpoints": {"apiServer": f"https://127.0.0.1:{port}"}}})
        assert r.status == 200, r
        for i in range(members):
            self.member(name, i)
        return port

    def member(self, cluster, i):
        name = f"{cluster}-kube-apiserver-{i}"
        b = self.backends[name] = Backend(self.pki, name)
        post(self.kd, "controlplanemembers", obj("ControlPlaneMember", name, {
            "cluster": cluster, "component": "kube-apiserver", "host": ("h-a", "h-b")[i % 2],
            "ports": {"https": b.port}}, labels={"kfleet.io/cluster": cluster}))
        return b

    def haproxy_pid(self, unit="u1"):
        # the runner's state files, as the agents' (kftest.runner_processes)
        for name, pid, start, _kpid, _kst in kftest._runner_processes(
                os.path.join(self.root, ".local", "members")):
            if name == f"haproxy-{unit}" and kftest.pid_alive(pid, start):
                return pid
        return None

    def close(self):
        for b in self.backends.values():
            b.kill()
        self.pki.close()


def fleet(fn):
    """Runs fn(f) with a Fleet, stopping everything by PID afterwards."""
    def run():
        f = Fleet()
        try:
            with f.kd:
                fn(f)
        finally:
            f.close()
    run.__name__ = fn.__name__
    return run


# --- tests -------------------------------------------------------------------------

@fleet
def test_endpoint_reaches_apiservers_and_survives_one_down(f):
    port = f.cluster("c1", members=2)
    # through the endpoint, TLS verified against the cluster CA end to end
    seen = set()
    eventually(lambda: seen.add(answers(port, f.pki)) or {"c1-kube-apiserver-0",
                                                         "c1-kube-apiserver-1"} <= seen,
               timeout=30, msg=lambda: f"the endpoint did not reach both apiservers (saw {seen})")
    pid = eventually(f.haproxy_pid, timeout=10, msg="no HAProxy process for u1")
    text = f.cfg()
    assert "frontend c1\n    bind 127.0.0.1:%d\n" % port in text, text
    assert "option httpchk GET /readyz" in text and "check-ssl verify required" in text, text
    assert "timeout tunnel 1h" in text, text
    r = subprocess.run([HAPROXY, "-c", "-f", os.path.join(f.root, "u1", "haproxy.cfg")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert events(f.kd, "EndpointsStarted", "u1"), events(f.kd)

    # one apiserver down: every request still succeeds (redispatch before the
    # health check notices, the check after)
    f.backends["c1-kube-apiserver-0"].kill()
    for _ in range(20):
        assert get(port, "/who", f.pki) == "c1-kube-apiserver-1"

    # kfleetd's exit stops its HAProxy
    f.kd.stop()
    eventually(lambda: not kftest.pid_alive(pid), timeout=20,
               msg=f"HAProxy {pid} outlived kfleetd")
    assert refused(port)


@fleet
def test_member_added_reloads_and_keeps_connections(f):
    port = f.cluster("c1", members=1)
    eventually(lambda: answers(port, f.pki) == "c1-kube-apiserver-0", timeout=30)
    pid = eventually(f.haproxy_pid, timeout=10)
    # a keep-alive connection established before the reload (a kubectl watch)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=f.pki.context, timeout=10)
    conn.request("GET", "/before")
    r = conn.getresponse()
    assert r.read().decode() == "c1-kube-apiserver-0"

    f.member("c1", 1)
    eventually(lambda: "c1-kube-apiserver-1" in (f.cfg() or ""), timeout=20)
    eventually(lambda: events(f.kd, "EndpointsReloaded", "u1"), timeout=20,
               msg="no EndpointsReloaded event")
    # new connections reach the new apiserver ...
    eventually(lambda: answers(port, f.pki) == "c1-kube-apiserver-1", timeout=30,
               msg="the added apiserver gets no traffic")
    # ... the old one still works, on the same HAProxy master
    conn.request("GET", "/after")
    r = conn.getresponse()
    assert r.status == 200 and r.read().decode() == "c1-kube-apiserver-0"
    conn.close()
    assert f.haproxy_pid() == pid, "HAProxy was restarted, not reloaded"

    # a cluster whose name sorts first arrives: it is served after the next
    # reload too (the running HAProxy is probed on a frontend it has, not on
    # the new one, which it cannot answer on before it reloads)
    port0 = f.cluster("a0", members=1)
    eventually(lambda: answers(port0, f.pki) == "a0-kube-apiserver-0", timeout=30,
               msg="the cluster added first in name order is not served")
    assert answers(port, f.pki) in ("c1-kube-apiserver-0", "c1-kube-apiserver-1")
    assert f.haproxy_pid() == pid, "HAProxy was restarted, not reloaded"


@fleet
def test_refused_settings_keep_the_last_good_config(f):
    port = f.cluster("c1", members=1)
    eventually(lambda: answers(port, f.pki), timeout=30)
    good = f.cfg()
    pid = eventually(f.haproxy_pid, timeout=10)

    # within kfleet's grammar, beyond HAProxy's range: haproxy -c says why
    r = f.kd.patch(f"{API}/units/u1", {"metadata": {"annotations": {
        "endpoints.kfleet.io/timeout-tunnel": "30d"}}})
    assert r.status == 200, r
    ev = eventually(lambda: events(f.kd, "EndpointConfigRefused", "u1"), timeout=20)
    assert ev[0]["type"] == "Warning", ev
    assert "timer overflow in argument '30d' to 'timeout tunnel'" in ev[0]["message"], ev
    assert "last good one stays in force" in ev[0]["message"], ev
    assert f.cfg() == good
    assert not os.path.exists(os.path.join(f.root, "u1", ".haproxy.cfg.candidate"))
    assert answers(port, f.pki) and f.haproxy_pid() == pid

    # outside the grammar: refused before it reaches a file
    r = f.kd.patch(f"{API}/units/u1", {"metadata": {"annotations": {
        "endpoints.kfleet.io/timeout-tunnel": "1h\n    bind :1"}}})
    assert r.status == 200, r
    ev = eventually(lambda: events(f.kd, "EndpointSettingsInvalid", "u1"), timeout=20)
    assert "want an HAProxy time" in ev[0]["message"], ev
    assert f.cfg() == good

    # a good value goes live with a reload
    r = f.kd.patch(f"{API}/units/u1", {"metadata": {"annotations": {
        "endpoints.kfleet.io/timeout-tunnel": "2h"}}})
    assert r.status == 200, r
    eventually(lambda: "timeout tunnel 2h" in (f.cfg() or ""), timeout=20)
    eventually(lambda: events(f.kd, "EndpointsReloaded", "u1"), timeout=20)
    assert answers(port, f.pki) and f.haproxy_pid() == pid


@fleet
def test_deleted_clusters_leave_nothing(f):
    p1 = f.cluster("c1", members=1)
    p2 = f.cluster("c2", members=1)
    eventually(lambda: answers(p1, f.pki) and answers(p2, f.pki), timeout=30)
    pid = eventually(f.haproxy_pid, timeout=10)
    ca_dir = os.path.join(f.root, "u1", "ca")
    assert sorted(os.listdir(ca_dir)) == ["c1.crt", "c2.crt"]

    # one cluster gone: its port closes, the other keeps answering on the same HAProxy
    assert f.kd.delete(f"{API}/guestclusters/c1").status == 200
    eventually(lambda: refused(p1), timeout=30, msg=f"port {p1} of a deleted cluster answers")
    assert "frontend c1" not in f.cfg()
    assert sorted(os.listdir(ca_dir)) == ["c2.crt"]
    assert answers(p2, f.pki) == "c2-kube-apiserver-0"
    assert f.haproxy_pid() == pid

    # the last one gone: no process, no port, no file
    assert f.kd.delete(f"{API}/guestclusters/c2").status == 200
    eventually(lambda: not kftest.pid_alive(pid), timeout=30,
               msg=f"HAProxy {pid} of a unit without endpoints still runs")
    assert refused(p2)
    eventually(lambda: not os.path.exists(os.path.join(f.root, "u1")), timeout=10)
    assert events(f.kd, "EndpointsRemoved", "u1")


def test_external_mode_renders_and_checks_only():
    f = Fleet(mode="external")
    try:
        with f.kd:
            port = f.cluster("c1", members=1)
            eventually(lambda: "server c1-kube-apiserver-0" in (f.cfg() or ""), timeout=20,
                       msg="no haproxy.cfg with the apiserver rendered")
            ev = eventually(lambda: events(f.kd, "EndpointConfigRendered", "u1"), timeout=20)
            assert "reload the unit's HAProxy" in ev[0]["message"], ev
            assert refused(port)
            assert not os.path.exists(os.path.join(f.root, ".local"))
            # what an operator runs on the file works
            path = os.path.join(f.root, "u1", "haproxy.cfg")
            hp = kftest.track(subprocess.Popen([HAPROXY, "-W", "-db", "-f", path],
                                               stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
            try:
                eventually(lambda: answers(port, f.pki) == "c1-kube-apiserver-0", timeout=20)
            finally:
                os.kill(hp.pid, signal.SIGTERM)
                hp.wait(timeout=20)
    finally:
        f.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--backend":
        backend_main(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        kftest.main(globals())
