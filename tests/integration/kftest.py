"""kftest.py: the shared harness of kfleet's integration tests.

Integration tests are plain Python 3 scripts (standard library only) named
tests/integration/test_<area>.py; CTest runs each with KF_BIN_DIR (the
build's bin directory), KF_SOURCE_DIR and KF_SANITIZE (1 in the ASan build).
A test file defines test_* functions and ends with

    if __name__ == "__main__":
        kftest.main(globals())

which runs them in file order (or those named on the command line), prints
one line per test, stops every process the tests started (by PID, even on
failure) and exits non-zero if any failed.

What it offers:

  Kfleetd(store=..., tokens=..., args=[...], tls=False, controllers=False)
      start kfleetd on a free port with a temporary data directory (tls=True:
      HTTPS with a self-signed certificate, kd.cert_file; controllers: False
      runs the API server alone (--controllers none), so that tests of the
      API see only what they write; True runs every controller, a string is
      passed to --controllers); .start() waits for /readyz;
      .stop() sends SIGTERM and returns the exit code (checked: 0 unless
      told otherwise), .kill() sends SIGKILL, .restart() keeps the port and
      data directory. Use it as a context manager:

          with kftest.Kfleetd() as kd:
              r = kd.post("/apis/kfleet.io/v1/regions", kftest.sample("Region", "r1"))
              assert r.status == 201, r

  kd.request(method, path, body=None, token=..., headers=..., content_type=...)
      -> Response(status, headers, data, json); kd.get/post/put/patch/delete.
      A dict or list body is sent as JSON; bytes are sent as they are.
  kd.client(token) -> Client: the same calls over one keep-alive connection.
  kd.watch(path, params) -> Watch: a thread reads the event stream; .next(t)
      returns the next event (a dict) or None after t seconds; .wait_for(pred)
      returns the first event pred accepts; .ended tells the stream ended.
  kd.metrics() -> text of /metrics.
  sample(kind, name, **spec_overrides) -> a valid object of each kind.
  API = "/apis/kfleet.io/v1"; path(plural, name=None, sub=None).
  free_port(), eventually(fn, timeout), require(cond, msg) (raises Skip).

  Etcd(members=1): real etcd members (/usr/bin/etcd) on free loopback ports
      in a temporary directory, stopped by PID; .start() waits until every
      member is healthy; .url(prefix) -> "etcd:http://..,http://..?prefix=..";
      .kill(i) SIGKILLs member i; .stop(). shared_etcd() is one member per
      test process. Kfleetd(store="etcd") runs on shared_etcd() under a key
      prefix of its own, so KF_TEST_STORE=etcd runs any API test on etcd;
      Kfleetd(store=etcd.url("/p")) puts several kfleetd on one fleet.

  Monitoring helpers (real Prometheus, Alertmanager, node_exporter):
      NodeExporter(port) a test-owned prometheus-node-exporter (stop by PID);
      WebhookSink() / SmtpSink(): HTTP and SMTP receivers in threads that
      record what arrives (.events / .messages); prom_query(port, q) ->
      the result list of an instant query; kill_by_path(path) SIGKILLs, by
      PID, every process whose command line names path (the stack a crashed
      kfleetd left behind).

  Agent(kd, name, zone="a", unit="u1", args=[...], simulate=None): a
      kfleet-agent for kd (its agent token, its CA) with a temporary data
      directory and /metrics on a free port (.metric(name, labels)); .start(),
      .stop() (SIGTERM, exit code checked), .kill() (SIGKILL: its members keep
      running), .close() also SIGKILLs, by PID (checked against the process
      start time), every member and keeper the agent left
      (runner_processes(data_dir) reads them from the runner's state files);
      the same happens at exit for every agent a test started.
  pid_alive(pid, start=None); free_port(), free_port_block(n): ports for
      the servers a test starts, from windows of ports this test process
      owns (below the kernel's ephemeral range, so neither another test nor
      an outgoing connection takes them first); port_window() -> (lo, hi):
      member ports no other concurrently running test uses (kfleetd
      --member-ports).
  lifecycle_fixture.py builds a whole local fleet on these (kfleetd with the
      placement and lifecycle controllers, three agents in zones a, b, c).

Timeouts are generous under ASan (KF_SANITIZE=1), where everything is slower.
"""

import atexit
import http.client
import json
import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

SOURCE_DIR = os.environ.get(
    "KF_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
BIN_DIR = os.environ.get("KF_BIN_DIR", os.path.join(SOURCE_DIR, "build", "bin"))
SANITIZE = os.environ.get("KF_SANITIZE", "").lower() in ("1", "on", "true", "yes")
SLOW = 4.0 if SANITIZE else 1.0  # multiply timeouts by this

API = "/apis/kfleet.io/v1"
GROUP = "kfleet.io"
API_VERSION = "kfleet.io/v1"
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

ADMIN_TOKEN = "admin-token-0123456789"
# Tokens of a test token file: token -> (user, role).
TOKENS = {
    ADMIN_TOKEN: ("alice", "admin"),
    "editor-token-0123456789": ("erin", "editor"),
    "viewer-token-0123456789": ("victor", "viewer"),
    "agent-token-0123456789": ("agent-h1", "agent"),
    "host-a-token-0123456789": ("host:h-a", "agent"),  # bound to host h-a
}


class Skip(Exception):
    """Raised to skip a test whose prerequisite is missing."""


def require(cond, msg):
    if not cond:
        raise Skip(msg)


# --- processes ---------------------------------------------------------------

_procs = []  # every process started, stopped at exit


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
    # after the agents: members they left running (not our children)
    _cleanup_agents()


atexit.register(_cleanup)


def _on_signal(signum, frame):
    _cleanup()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)


def track(proc):
    """Registers a process (subprocess.Popen) to be killed at exit."""
    _procs.append(proc)
    return proc


# Ports. Every server a test starts listens on a port the harness handed
# out. Two things can take a port between the moment it was found free and
# the moment the server binds it: another test process handing out the
# same one, and an outgoing connection given it as its local port (the
# kernel's ephemeral range, 32768-60999 by default). So ports come from
# windows below the ephemeral range, and a test process owns a window
# while it runs: a lock file per window in the temporary directory, held
# (flock) until the process exits. tests/unit/test-ports.h does the same
# for the C tests, with the same lock files, so the two never collide.
LISTEN_PORTS = (10000, 19000, 100)  # first, end, window size: listeners
MEMBER_PORTS = (20000, 30000, 200)  # kfleetd --member-ports windows
# (`make run` uses 30000-30999 and 19090 upwards, above both.)

_window_locks = []
_listen = {"next": 0, "end": 0}


def _lock_windows(first, end, size, count=1):
    """(lo, hi) of `count` adjacent windows of `size` ports in [first, end)
    that no other test process holds; they stay held until this process
    exits."""
    import fcntl
    for lo in range(first, end - size * count + 1, size):
        held = []
        for w in range(lo, lo + size * count, size):
            f = open(os.path.join(tempfile.gettempdir(), f"kftest-ports-{w}.lock"), "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                break
            held.append(f)
        if len(held) == count:
            _window_locks.extend(held)
            return lo, lo + size * count - 1
        for f in held:
            f.close()
    raise AssertionError(f"no free window of {size * count} ports in {first}-{end - 1}")


def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_block(n):
    """A base port p: p .. p+n-1 belong to this test process (never handed
    out twice) and were free on 127.0.0.1 a moment ago."""
    first, end, size = LISTEN_PORTS
    while True:
        if _listen["next"] + n > _listen["end"]:
            lo, hi = _lock_windows(first, end, size, count=-(-n // size))
            _listen["next"], _listen["end"] = lo, hi + 1
        base = _listen["next"]
        busy = next((p for p in range(base, base + n) if not _bindable(p)), None)
        _listen["next"] = base + n if busy is None else busy + 1
        if busy is None:
            return base


def free_port():
    """A port of this test process that was free on 127.0.0.1 a moment ago."""
    return free_port_block(1)


def port_window():
    """(lo, hi): a range of ports no other test process holds at the same
    time, for kfleetd --member-ports: tests running in parallel never hand
    out the same member ports."""
    return _lock_windows(*MEMBER_PORTS)


def eventually(fn, timeout=10.0, interval=0.05, msg=None):
    """Calls fn until it returns a true value (returned) or timeout passes.
    msg may be a callable, called at the timeout: the state then, not at
    the start of the wait."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    if callable(msg):
        msg = msg()
    raise AssertionError(msg or f"condition not met within {timeout * SLOW:.0f}s (last: {last!r})")


# --- HTTP ----------------------------------------------------------------------


class Response:
    def __init__(self, status, headers, data):
        self.status = status
        self.headers = headers
        self.data = data
        try:
            self.json = json.loads(data) if data else None
        except ValueError:
            self.json = None

    @property
    def text(self):
        return self.data.decode("utf-8", "replace")

    def __repr__(self):
        return f"<Response {self.status} {self.text[:600]}>"


def _encode(body, content_type):
    if body is None:
        return None, content_type
    if isinstance(body, (bytes, bytearray)):
        return bytes(body), content_type
    if isinstance(body, str):
        return body.encode(), content_type
    return json.dumps(body).encode(), content_type or "application/json"


def _with_query(path, params):
    if not params:
        return path
    return path + ("&" if "?" in path else "?") + urllib.parse.urlencode(params)


def connect(port, timeout, ssl_context=None):
    """An HTTP(S) connection to 127.0.0.1:port."""
    if ssl_context:
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ssl_context)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


class Client:
    """HTTP calls over one keep-alive connection (reconnects when needed)."""

    def __init__(self, port, token=None, timeout=30.0, ssl_context=None):
        self.port = port
        self.token = token
        self.timeout = timeout * SLOW
        self.ssl_context = ssl_context
        self.conn = None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, params=None, token=None, headers=None,
                content_type=None, accept=None):
        data, ctype = _encode(body, content_type)
        h = {}
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        if ctype:
            h["Content-Type"] = ctype
        if accept:
            h["Accept"] = accept
        h.update(headers or {})
        url = _with_query(path, params)
        for attempt in (0, 1):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = connect(self.port, self.timeout, self.ssl_context)
            try:
                self.conn.request(method, url, body=data, headers=h)
                r = self.conn.getresponse()
                out = Response(r.status, dict(r.getheaders()), r.read())
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return out
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a kept-alive connection the server closed meanwhile: once
                # more on a new one (never after a failure on a fresh one)
                self.close()
                if attempt or not reused:
                    raise
        raise AssertionError("unreachable")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body=None, content_type="application/merge-patch+json", **kw):
        return self.request("PATCH", path, body, content_type=content_type, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body, **kw)


class Watch:
    """A watch stream read by a thread: events arrive in .events (a Queue)."""

    def __init__(self, port, path, params=None, token=None, accept=None, timeout=60.0,
                 ssl_context=None):
        self.events = queue.Queue()
        self.lines = []
        self.ended = threading.Event()
        self.status = None
        self.error = None
        self.conn = connect(port, timeout * SLOW, ssl_context)
        h = {}
        if token:
            h["Authorization"] = f"Bearer {token}"
        if accept:
            h["Accept"] = accept
        self.conn.request("GET", _with_query(path, params), headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = dict(self.resp.getheaders())
        if self.status != 200:
            self.body = self.resp.read()
            self.ended.set()
            return
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                self.lines.append(line)
                if line.strip():
                    self.events.put(json.loads(line))
        except Exception as e:  # noqa: BLE001 - reported through .error
            self.error = e
        finally:
            self.ended.set()

    def next(self, timeout=5.0):
        """The next event, or None if none arrived within timeout."""
        try:
            return self.events.get(timeout=timeout * SLOW)
        except queue.Empty:
            return None

    def wait_for(self, pred, timeout=10.0):
        """Skips events until pred(event) is true; returns that event."""
        deadline = time.monotonic() + timeout * SLOW
        seen = []
        while time.monotonic() < deadline:
            ev = self.next(timeout=max(0.01, (deadline - time.monotonic()) / SLOW))
            if ev is None:
                continue
            if pred(ev):
                return ev
            seen.append(ev.get("type"))
        raise AssertionError(f"no matching watch event within {timeout * SLOW:.0f}s; saw {seen}")

    def drain(self, timeout=0.5):
        """Every event that arrives within timeout of the previous one."""
        out = []
        while True:
            ev = self.next(timeout)
            if ev is None:
                return out
            out.append(ev)

    def close(self):
        try:
            self.conn.sock and self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


# --- kfleetd ----------------------------------------------------------------------


def has_store(scheme):
    """Whether this build's kfleetd knows the store scheme ("sqlite", ...)."""
    tmp = tempfile.mkdtemp(prefix="kftest-probe-")
    try:
        url = {"sqlite": f"sqlite:{tmp}/probe.db", "memory": "memory:"}.get(scheme, scheme + ":")
        # kfleetd opens the store, then refuses the listen address (exit 2)
        p = subprocess.run(
            [os.path.join(BIN_DIR, "kfleetd"), "--store", url, "--listen", "999.1.1.1:1",
             "--data-dir", tmp],
            capture_output=True, timeout=60, text=True,
        )
        return "unknown store scheme" not in p.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_default_store = None


def default_store():
    """$KF_TEST_STORE, else "sqlite" when this build has it, else "memory"."""
    global _default_store
    if _default_store is None:
        _default_store = os.environ.get("KF_TEST_STORE") or (
            "sqlite" if has_store("sqlite") else "memory")
        if _default_store == "memory" and not os.environ.get("KF_TEST_STORE"):
            print("note: this kfleetd has no sqlite store; tests use memory:", flush=True)
    return _default_store


ETCD_BIN = "/usr/bin/etcd"


class Etcd:
    """etcd members on 127.0.0.1 (25 ms heartbeats, 250 ms elections)."""

    def __init__(self, members=1):
        require(os.access(ETCD_BIN, os.X_OK), f"{ETCD_BIN} is not installed")
        self.n = members
        self.dir = tempfile.mkdtemp(prefix="kftest-etcd-")
        self.client_ports = [free_port() for _ in range(members)]
        self.peer_ports = [free_port() for _ in range(members)]
        self.endpoints = [f"http://127.0.0.1:{p}" for p in self.client_ports]
        self.procs = [None] * members
        self.cluster = ",".join(f"m{i}=http://127.0.0.1:{p}"
                                for i, p in enumerate(self.peer_ports))

    def url(self, prefix="/kfleet"):
        return f"etcd:{','.join(self.endpoints)}?prefix={prefix}"

    def _spawn(self, i, state="new"):
        peer = f"http://127.0.0.1:{self.peer_ports[i]}"
        log = open(os.path.join(self.dir, f"m{i}.log"), "ab")
        cmd = [ETCD_BIN, "--name", f"m{i}", "--data-dir", os.path.join(self.dir, f"m{i}.data"),
               "--listen-client-urls", self.endpoints[i],
               "--advertise-client-urls", self.endpoints[i],
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", self.cluster, "--initial-cluster-state", state,
               "--heartbeat-interval", "25", "--election-timeout", "250",
               "--snapshot-count", "5000", "--logger", "zap", "--log-level", "warn"]
        self.procs[i] = track(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        log.close()

    def healthy(self, i):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.client_ports[i], timeout=1)
            c.request("GET", "/health")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False

    def start(self):
        for i in range(self.n):
            self._spawn(i)
        for i in range(self.n):
            eventually(lambda i=i: self.healthy(i), timeout=20.0,
                       msg=f"etcd member {i} did not become healthy (logs in {self.dir})")
        return self

    def kill(self, i):
        p = self.procs[i]
        if p and p.poll() is None:
            p.kill()
            p.wait(timeout=10)

    def restart(self, i):
        self._spawn(i, "existing")
        eventually(lambda: self.healthy(i), timeout=20.0)

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.terminate()
        for i, p in enumerate(self.procs):
            if p:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill(i)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


_shared_etcd = None


def shared_etcd():
    """One etcd member for the whole test process, stopped at exit."""
    global _shared_etcd
    if _shared_etcd is None:
        _shared_etcd = Etcd(1).start()
        atexit.register(_shared_etcd.stop)
    return _shared_etcd


def make_cert(directory):
    """A self-signed certificate for 127.0.0.1 and its key (PEM files in
    directory), made with the openssl command; returns (cert, key)."""
    cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=kfleetd", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def write_token_file(path, tokens=None):
    # kfleetd refuses a token file others may read
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write("# token,user,role\n")
        for tok, (user, role) in (tokens or TOKENS).items():
            f.write(f"{tok},{user},{role}\n")
    return path


class Kfleetd:
    """One kfleetd process on 127.0.0.1 with a temporary data directory.

    store:  "sqlite" (a file in the data directory), "memory", a URL, or
            None for default_store().
    tokens: None (no authentication), True (TOKENS), or a dict
            token -> (user, role).
    args:   extra command-line arguments.
    tls:    serve HTTPS with a fresh self-signed certificate (cert_file).
    controllers: False (the API alone), True (every controller) or a
            --controllers list.
    alert_destinations: kfleetd --alert-destinations; tests' webhook
            receivers listen on loopback, which kfleetd refuses unless
            listed (docs/security.md, "Secrets"). None: not given.
    """

    def __init__(self, store=None, tokens=None, args=(), data_dir=None, port=None,
                 log_level="info", env=None, tls=False, controllers=False,
                 alert_destinations="127.0.0.1"):
        if store is None:
            store = default_store()
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="kftest-")
        self.port = port or free_port()
        self.tls = tls
        self.ssl_context = None
        self.cert_file = self.key_file = None
        if tls:
            self.cert_file, self.key_file = make_cert(self.data_dir)
            self.ssl_context = ssl.create_default_context(cafile=self.cert_file)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        if store == "sqlite":
            store = f"sqlite:{self.data_dir}/kfleet.db"
        elif store == "memory":
            store = "memory:"
        elif store == "etcd":
            store = shared_etcd().url(f"/kftest-{os.getpid()}-{self.port}")
        self.store = store
        self.token_file = None
        self.tokens = None
        if tokens:
            self.tokens = TOKENS if tokens is True else tokens
            self.token_file = write_token_file(os.path.join(self.data_dir, "tokens"), self.tokens)
        self.admin_token = ADMIN_TOKEN if self.tokens is TOKENS else (
            next((t for t, (u, r) in self.tokens.items() if r == "admin"), None)
            if self.tokens else None)
        self.args = list(args)
        if alert_destinations:
            self.args = ["--alert-destinations", alert_destinations] + self.args
        if controllers is not True:
            self.args = ["--controllers", controllers or "none"] + self.args
        self.log_level = log_level
        self.env = dict(os.environ, **(env or {}))
        self.log_path = os.path.join(self.data_dir, "kfleetd.log")
        self.proc = None
        self._clients = {}

    # life cycle

    def command(self):
        cmd = [os.path.join(BIN_DIR, "kfleetd"), "--listen", f"127.0.0.1:{self.port}",
               "--store", self.store, "--data-dir", self.data_dir, "--log-level", self.log_level]
        if self.token_file:
            cmd += ["--token-file", self.token_file]
        if self.tls:
            cmd += ["--tls-cert-file", self.cert_file, "--tls-key-file", self.key_file]
        return cmd + self.args

    def start(self, wait=True):
        self.log_file = open(self.log_path, "ab")
        self.proc = track(subprocess.Popen(self.command(), stdout=self.log_file,
                                           stderr=subprocess.STDOUT, env=self.env))
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"kfleetd exited with {self.proc.returncode} before it was ready:\n"
                    + self.log_tail())
            try:
                c = connect(self.port, 2, self.ssl_context)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    c.close()
                    return
                c.close()
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("kfleetd did not become ready:\n" + self.log_tail())

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, sig=signal.SIGTERM, timeout=30.0, expect=0):
        """Stops kfleetd with sig and returns its exit code; asserts it is
        `expect` (pass expect=None not to check)."""
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, sig)
        try:
            code = self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError("kfleetd did not stop within the timeout:\n" + self.log_tail())
        finally:
            self.log_file.close()
        if expect is not None and code != expect:
            raise AssertionError(f"kfleetd exited with {code}, expected {expect}:\n"
                                 + self.log_tail())
        return code

    def kill(self):
        """SIGKILL: no clean shutdown."""
        return self.stop(signal.SIGKILL, expect=None)

    def restart(self, **kw):
        self.stop(**kw)
        return self.start()

    def close(self):
        try:
            if self.proc and self.proc.poll() is None:
                self.stop(expect=None)
        finally:
            if self.own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        if not self.proc:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            # a clean exit must be clean: exit code 0 (ASan leaks included)
            try:
                self.stop()
            finally:
                if self.own_dir:
                    shutil.rmtree(self.data_dir, ignore_errors=True)
        else:
            sys.stderr.write("--- kfleetd log (tail) ---\n" + self.log_tail() + "\n")
            self.close()
        return False

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def agent_token(self):
        """A token of role agent (None when authentication is off)."""
        if not self.tokens:
            return None
        return next((t for t, (u, r) in self.tokens.items() if r == "agent"), None)

    def host_token(self, host):
        """The agent token bound to host (user host:HOST), or None."""
        return next((t for t, (u, r) in (self.tokens or {}).items()
                     if r == "agent" and u == "host:" + host), None)

    # HTTP

    def client(self, token=None):
        """A keep-alive Client (token None: the admin token when auth is on)."""
        tok = token if token is not None else self.admin_token
        return Client(self.port, tok, ssl_context=self.ssl_context)

    def _default_client(self, token):
        key = token if token is not None else "__admin__"
        if key not in self._clients:
            self._clients[key] = self.client(token)
        return self._clients[key]

    def request(self, method, path, body=None, token=None, **kw):
        return self._default_client(token).request(method, path, body, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body=None, content_type="application/merge-patch+json", **kw):
        return self.request("PATCH", path, body, content_type=content_type, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body, **kw)

    def watch(self, path, params=None, token=None, accept=None, timeout=60.0):
        tok = token if token is not None else self.admin_token
        p = dict(params or {})
        p.setdefault("watch", "true")
        return Watch(self.port, path, p, tok, accept, timeout, self.ssl_context)

    def metrics(self):
        r = self.get("/metrics")
        assert r.status == 200, r
        return r.text

    def metric(self, name, labels=None):
        """The value of one series of /metrics (None if absent)."""
        want = name
        if labels:
            want += "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            if key == want:
                return float(value)
        return None


# --- agents --------------------------------------------------------------------------

_agent_dirs = []  # data directories of every agent started, for the members' cleanup


def _proc_start_time(pid):
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def runner_processes(data_dir, which=("members", "tasks")):
    """[(name, pid, pid_start, keeper_pid, keeper_start)] from the runner's
    state files of an agent's data directory: its members' and its running
    BroadcastJob tasks' (which=("tasks",) for those alone)."""
    out = []
    for sub in which:
        out += _runner_processes(os.path.join(data_dir, "runner", sub))
    return out


def _runner_processes(d):
    out = []
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return out
    for fn in names:
        if not fn.endswith(".state"):
            continue
        rec = {}
        try:
            with open(os.path.join(d, fn)) as f:
                for line in f.read().splitlines()[1:]:
                    k, _, v = line.partition(" ")
                    rec.setdefault(k, v)
        except OSError:
            continue
        try:
            out.append((rec.get("name", fn[:-6]), int(rec.get("pid", 0)),
                        int(rec.get("pid_start", 0)), int(rec.get("keeper_pid", 0)),
                        int(rec.get("keeper_start", 0))))
        except ValueError:
            continue
    return out


def pid_alive(pid, start=None):
    """Whether pid runs (and, given start, is still the same process)."""
    if pid <= 0:
        return False
    st = _proc_start_time(pid)
    if st is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rpartition(")")[2].split()[0] == "Z":
                return False
    except OSError:
        return False
    return start is None or start == 0 or st == start


def kill_runner_processes(data_dir):
    """SIGKILLs, by PID, every member (its process group) and keeper an
    agent left running in data_dir, checking each pid's start time first,
    and waits until they are gone."""
    killed = []
    for _name, pid, pst, kpid, kst in runner_processes(data_dir):
        for p, st, group in ((pid, pst, True), (kpid, kst, False)):
            if pid_alive(p, st):
                try:
                    if group:
                        os.killpg(p, signal.SIGKILL)
                    else:
                        os.kill(p, signal.SIGKILL)
                    killed.append((p, st))
                except OSError:
                    pass
    deadline = time.monotonic() + 5
    while any(pid_alive(p, st) for p, st in killed) and time.monotonic() < deadline:
        time.sleep(0.02)


def _cleanup_agents():
    for d in _agent_dirs:
        kill_runner_processes(d)


class Agent:
    """One kfleet-agent for kfleetd `kd` with a temporary data directory.

    role/name/zone/unit/cluster: the Host it registers.
    simulate: N virtual hosts (name is then their prefix).
    args: extra arguments (e.g. ["--stop-members-on-exit"]).
    The agent serves /metrics on a free port (self.metrics_port).
    .stop() sends SIGTERM and checks the exit code; .kill() sends SIGKILL
    (members keep running); .close() stops it and SIGKILLs, by PID, every
    member it left, and removes the data directory.
    """

    def __init__(self, kd, name, zone="a", unit="u1", role="meta", cluster=None, args=(),
                 data_dir=None, token=None, simulate=None, heartbeat="500ms",
                 log_level="info"):
        self.kd = kd
        self.name = name
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="kftest-agent-")
        _agent_dirs.append(self.data_dir)
        self.metrics_port = free_port()
        self.log_path = os.path.join(self.data_dir, "agent.log")
        cmd = [os.path.join(BIN_DIR, "kfleet-agent"), "--server", kd.url, "--role", role,
               "--name", name, "--zone", zone, "--data-dir", self.data_dir,
               "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
               "--heartbeat-interval", heartbeat, "--log-level", log_level,
               "--backoff", "200ms,2s", "--stop-grace", "5s"]
        cmd += ["--cluster", cluster] if role == "worker" else ["--unit", unit]
        if simulate:
            cmd += ["--simulate", str(simulate)]
        tok = token if token is not None else kd.agent_token()
        if tok:
            cmd += ["--token", tok]
        if kd.tls:
            cmd += ["--ca-file", kd.cert_file]
        self.cmd = cmd + list(args)
        self.proc = None

    def start(self):
        self.log_file = open(self.log_path, "ab")
        self.proc = track(subprocess.Popen(self.cmd, stdout=self.log_file,
                                           stderr=subprocess.STDOUT))
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=60.0, expect=0):
        if not self.running():
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, sig)
        try:
            code = self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError("kfleet-agent did not stop:\n" + self.log_tail())
        finally:
            self.log_file.close()
        if expect is not None and code != expect:
            raise AssertionError(f"kfleet-agent exited with {code}, expected {expect}:\n"
                                 + self.log_tail())
        return code

    def kill(self):
        """SIGKILL the agent alone: its members keep running."""
        return self.stop(signal.SIGKILL, expect=None)

    def processes(self):
        return runner_processes(self.data_dir)

    def close(self):
        try:
            if self.running():
                self.stop(expect=None)
        finally:
            kill_runner_processes(self.data_dir)
            if self.own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        if not self.proc:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write(f"--- agent {self.name} log (tail) ---\n" + self.log_tail() + "\n")
        self.close()
        return False

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def metrics(self):
        """The text of the agent's /metrics ("" while it does not answer)."""
        c = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=5)
        try:
            c.request("GET", "/metrics")
            r = c.getresponse()
            assert r.status == 200, r.status
            return r.read().decode()
        except OSError:
            return ""
        finally:
            c.close()

    def metric(self, name, labels=None):
        want = name
        if labels:
            want += "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        for line in self.metrics().splitlines():
            key, _, value = line.rpartition(" ")
            if key == want:
                return float(value)
        return None


# --- objects -------------------------------------------------------------------------


def path(plural, name=None, sub=None):
    p = f"{API}/{plural}"
    if name:
        p += f"/{name}"
    if sub:
        p += f"/{sub}"
    return p


PLURALS = {
    "Region": "regions",
    "Unit": "units",
    "Host": "hosts",
    "Profile": "profiles",
    "Template": "templates",
    "GuestCluster": "guestclusters",
    "ControlPlaneMember": "controlplanemembers",
    "IPPool": "ippools",
}

# A valid spec of each kind users write (Event is written by kfleetd).
SAMPLE_SPECS = {
    "Region": {"zones": ["cn-hangzhou-a", "cn-hangzhou-b", "cn-hangzhou-c"]},
    "Unit": {"region": "cn-hangzhou", "zones": ["cn-hangzhou-a", "cn-hangzhou-b",
                                                "cn-hangzhou-c"]},
    "Host": {"role": "meta", "unit": "hz-u1", "zone": "cn-hangzhou-a",
             "capacity": {"cpu": "32", "memory": "128Gi"}},
    "Profile": {"versions": ["1.37"]},
    "Template": {"profile": "standard"},
    "GuestCluster": {"region": "cn-hangzhou", "profile": "standard", "version": "1.37",
                     "expectedNodes": 3, "network": {"vpc": "vpc-1"}},
    "ControlPlaneMember": {"cluster": "web-1", "component": "etcd"},
    "IPPool": {"vpc": "vpc-1", "cidrs": ["10.0.0.0/8"]},
}


def sample(kind, name, labels=None, **spec):
    """A valid object of kind named name; spec keys override the sample."""
    s = json.loads(json.dumps(SAMPLE_SPECS[kind]))
    s.update(spec)
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": s}


# --- monitoring ----------------------------------------------------------------------

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def have_monitoring_binaries():
    return all(os.access(p, os.X_OK) for p in (NODE_EXPORTER, PROMETHEUS, ALERTMANAGER))


class NodeExporter:
    """A prometheus-node-exporter the test owns, on 127.0.0.1:port."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.proc = None

    def start(self):
        self.proc = track(subprocess.Popen(
            [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def up():
            try:
                c = connect(self.port, 2)
                c.request("GET", "/metrics")
                ok = c.getresponse().status == 200
                c.close()
                return ok
            except OSError:
                return False
        eventually(up, timeout=10, msg="node_exporter did not answer")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)


class WebhookSink:
    """An HTTP server in a thread: every POST is kept as (time, path,
    headers, parsed JSON body) in .events."""

    def __init__(self):
        import http.server
        sink = self
        self.events = []
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                with sink.lock:
                    sink.events.append((time.time(), self.path, dict(self.headers), doc))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """A minimal SMTP server in a thread (EHLO/HELO, MAIL, RCPT, DATA,
    RSET, NOOP, QUIT; no STARTTLS, no AUTH): each message is kept as
    (time, mail_from, [rcpt], data text) in .messages."""

    def __init__(self):
        import socketserver
        sink = self
        self.messages = []
        self.lock = threading.Lock()

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line):
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self):
                self.reply("220 kftest ESMTP sink")
                mail_from, rcpt = None, []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode("utf-8", "replace").strip()
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 kftest")
                    elif verb == "MAIL":
                        mail_from, rcpt = cmd[10:].strip(), []
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        rcpt.append(cmd[8:].strip())
                        self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        lines = []
                        while True:
                            l = self.rfile.readline()
                            if not l or l in (b".\r\n", b".\n"):
                                break
                            lines.append(l.decode("utf-8", "replace"))
                        with sink.lock:
                            sink.messages.append((time.time(), mail_from, rcpt, "".join(lines)))
                        self.reply("250 queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 ok")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def prom_query(port, query):
    """The result list of an instant query to the Prometheus on port
    ([] when it does not answer)."""
    try:
        c = connect(port, 5)
        c.request("GET", "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status != 200:
            return []
        return json.loads(data)["data"]["result"]
    except (OSError, ValueError, KeyError):
        return []


def pids_by_path(path):
    """PIDs of processes whose command line names path."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        if path in cmd:
            found.append(int(d))
    return found


def kill_by_path(path):
    """SIGKILLs, by PID, every process whose command line names path."""
    for pid in pids_by_path(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# --- running tests ------------------------------------------------------------------


def main(namespace, shared=()):
    """Runs the test_* functions of namespace (a module's globals()).

    shared names the module's fixtures that its tests set up once, lazily, and
    share (a Kfleetd in "kd", an Etcd in "etcd", an attribute as "tr.etcd"):
    each one that is set when the tests end is closed (close(), else stop()),
    whether they passed or not."""
    try:
        only = set(sys.argv[1:])
        tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
        failed = 0
        for name, fn in tests:
            if only and name not in only:
                continue
            t0 = time.monotonic()
            try:
                fn()
            except Skip as e:
                print(f"SKIP {name}: {e}", flush=True)
                continue
            except Exception:  # noqa: BLE001 - every failure is reported
                failed += 1
                print(f"FAIL {name} ({time.monotonic() - t0:.1f}s)", flush=True)
                traceback.print_exc()
                continue
            print(f"ok   {name} ({time.monotonic() - t0:.1f}s)", flush=True)
        _cleanup()
        sys.exit(1 if failed else 0)
    finally:
        for name in shared:
            first, *rest = name.split(".")
            fixture = namespace.get(first)
            for attr in rest:
                fixture = getattr(fixture, attr, None)
            if fixture:
                (getattr(fixture, "close", None) or fixture.stop)()
