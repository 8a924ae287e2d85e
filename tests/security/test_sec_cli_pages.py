"""test_sec_cli_pages.py: kfleet reads every page a bounded LIST answers
(docs/security.md, "Exhaustion"): `kfleet describe`'s events and the host
groups of a BroadcastJob follow metadata.continue, which kfleetd sets
whenever it cuts a list short (a page of --list-max-page objects, or a
filtered page that came back short).

A proxy in front of a real kfleetd answers the lists of Events and of
BroadcastTasks itself, a page at a time with continue tokens (the first
page empty, as a filtered page may be); everything else goes to kfleetd.
Before, both read the first page only and showed nothing."""

import http.client
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402
from kftest import path  # noqa: E402

KFLEET = os.path.join(kftest.BIN_DIR, "kfleet")
TS = "2026-01-01T00:00:00Z"

kd = None
HOME = tempfile.mkdtemp(prefix="kftest-cli-pages-home-")


def event(name, reason):
    return {"apiVersion": "kfleet.io/v1", "kind": "Event",
            "metadata": {"name": name, "creationTimestamp": TS},
            "spec": {"type": "Normal", "reason": reason, "message": f"{reason} happened",
                     "lastTimestamp": TS, "source": {"component": "test"},
                     "involvedObject": {"kind": "Template", "name": "pg-1"}}}


def task(host, phase):
    return {"apiVersion": "kfleet.io/v1", "kind": "BroadcastTask",
            "metadata": {"name": f"pj-{host}", "creationTimestamp": TS},
            "spec": {"job": "pj", "host": host}, "status": {"phase": phase}}


# (kind plural, phase in the fieldSelector or None) -> pages of items
PAGES = {
    ("events", None): [[], [event("e1", "FirstPageEvent")], [event("e2", "LastPageEvent")]],
    ("broadcasttasks", "status.phase=Failed"): [[], [task("h-failed", "Failed")]],
}


def pages_for(plural, query):
    sel = query.get("fieldSelector", [""])[0]
    for (kind, phase), pages in PAGES.items():
        if kind == plural and (phase is None or phase in sel.split(",")):
            return pages
    return [[]] if plural in ("events", "broadcasttasks") else None


class Proxy(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        plural = u.path.rstrip("/").rsplit("/", 1)[-1]
        pages = pages_for(plural, q) if u.path.startswith("/apis/") else None
        if pages is None:
            c = http.client.HTTPConnection("127.0.0.1", kd.port, timeout=30)
            c.request("GET", self.path, headers={k: v for k, v in self.headers.items()
                                                 if k.lower() != "host"})
            r = c.getresponse()
            self.reply(r.status, r.read(), r.getheader("Content-Type", "application/json"))
            c.close()
            return
        i = int(q.get("continue", ["0"])[0])
        meta = {"resourceVersion": "7"}
        if i + 1 < len(pages):
            meta["continue"] = str(i + 1)
        self.reply(200, json.dumps({"kind": "List", "apiVersion": "kfleet.io/v1",
                                    "metadata": meta, "items": pages[i]}).encode())


def kfleet(server, *args):
    e = {k: v for k, v in os.environ.items() if not k.startswith("KFLEET_")}
    e.update(KFLEET_SERVER=server, HOME=HOME)
    p = subprocess.run([KFLEET, *args], capture_output=True, text=True, env=e,
                       timeout=60 * kftest.SLOW)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout


def with_proxy(fn):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        return fn(f"http://127.0.0.1:{srv.server_address[1]}")
    finally:
        srv.shutdown()
        srv.server_close()


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(store="memory").start()
    return kd


def test_describe_reads_every_page_of_events():
    setup()
    assert kd.post(path("templates"), kftest.sample("Template", "pg-1")).status == 201
    out = with_proxy(lambda url: kfleet(url, "describe", "template", "pg-1"))
    assert "FirstPageEvent" in out and "LastPageEvent" in out, out


def test_broadcastjob_hosts_read_every_page():
    setup()
    job = {"apiVersion": "kfleet.io/v1", "kind": "BroadcastJob", "metadata": {"name": "pj"},
           "spec": {"selector": {"matchLabels": {"kfleet.io/cluster": "none"}},
                    "template": {"command": ["true"], "restartPolicy": "Never"}}}
    r = kd.post(path("broadcastjobs"), job)
    assert r.status == 201, r
    out = with_proxy(lambda url: kfleet(url, "describe", "broadcastjob", "pj"))
    assert "h-failed" in out, out


def test_zz_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    kftest.main(globals(), shared=("kd",))
