"""test_kubectl.py: real kubectl programs against kfleetd: apply -f
(create, configure, unchanged; no --validate=false; --server-side, diff
and --dry-run=server refused with a message that says what to do), get (the kind's columns from the
server's Table, -o wide, short names, categories, label and field
selectors, --chunk-size paging), get -o yaml / -o json, get -w, delete
(by name, by file, by label), patch (merge, json, strategic), label,
explain (OpenAPI v3 from kubectl 1.27 on), api-resources (aggregated
discovery from kubectl 1.30 on), errors as the server words them, and
bearer tokens with roles over HTTPS (kubectl, like every client-go
program, sends a token only over TLS; over plain HTTP it sends none, so
the HTTP tests run a kfleetd without a token file on loopback).

Which kubectl: $KF_KUBECTL. Unset, the kubectl on PATH (Debian's 1.20, or
whichever the machine has); "built", the one scripts/install-kubernetes
builds from the pinned Kubernetes release (/opt/kfleet/kubernetes/<minor>/
bin/kubectl); anything else, a path. CTest runs this file once for each of
the first two (integration/test_kubectl and
integration/kubectl-built/test_kubectl). When the kubectl asked for is
missing, the file says so and exits 77, which CTest reports as skipped:
no test passes without it."""

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import path  # noqa: E402

SOURCE_DIR = os.environ.get("KF_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")


def pinned_kubectl():
    """(path, why-missing) of the kubectl scripts/install-kubernetes builds:
    the release pinned there (or $KF_K8S_VERSION) under $KF_K8S_PREFIX."""
    script = os.path.join(SOURCE_DIR, "scripts", "install-kubernetes")
    version = os.environ.get("KF_K8S_VERSION")
    if not version:
        # the newest of the minors the script builds; a script this cannot
        # read is this test's failure, not a reason to skip
        with open(script) as f:
            m = re.search(r'^K8S_VERSIONS="([^"]+)"', f.read(), re.M)
        assert m, f"cannot read the pinned Kubernetes releases (K8S_VERSIONS) from {script}"
        version = m.group(1).split()[-1]
        assert re.fullmatch(r"v\d+\.\d+\.\d+", version), (script, version)
    minor = version.lstrip("v").rsplit(".", 1)[0]
    exe = os.path.join(os.environ.get("KF_K8S_PREFIX", "/opt/kfleet"), "kubernetes", minor, "bin",
                       "kubectl")
    if not os.access(exe, os.X_OK):
        return None, (f"kubectl {version} is not installed at {exe}: "
                      "run scripts/install-kubernetes")
    return exe, None


def choose_kubectl():
    want = os.environ.get("KF_KUBECTL", "")
    if not want:
        exe = shutil.which("kubectl")
        return exe, None if exe else "no kubectl on PATH (scripts/install-deps installs one)"
    if want == "built":
        return pinned_kubectl()
    if not os.access(want, os.X_OK):
        return None, f"KF_KUBECTL={want} is not an executable"
    return want, None


KUBECTL, MISSING = choose_kubectl()
HOME = tempfile.mkdtemp(prefix="kftest-kubectl-")
ENV = dict(os.environ, HOME=HOME, KUBECONFIG=os.path.join(HOME, "kubeconfig"))
MINOR = None  # the kubectl's minor version, e.g. 37
kd = None
# A version the component catalog serves (the harness keeps its sample current).
GC_VERSION = kftest.sample("GuestCluster", "x")["spec"]["version"]

MANIFEST = """\
apiVersion: kfleet.io/v1
kind: Region
metadata:
  name: cn-hangzhou
  labels:
    geo: cn
spec:
  zones: [cn-hangzhou-a, cn-hangzhou-b, cn-hangzhou-c]
---
apiVersion: kfleet.io/v1
kind: GuestCluster
metadata:
  name: web-1
  labels:
    env: prod
spec:
  region: cn-hangzhou
  profile: standard
  version: "%(version)s"
  expectedNodes: %(nodes)d
  network:
    vpc: vpc-1
"""


def manifest(nodes):
    return MANIFEST % {"version": GC_VERSION, "nodes": nodes}


def kubectl_minor():
    p = subprocess.run([KUBECTL, "version", "--client", "-o", "json"], capture_output=True,
                       text=True, env=ENV, timeout=60)
    m = re.search(r"v1\.(\d+)\.", json.loads(p.stdout)["clientVersion"]["gitVersion"])
    assert m, p.stdout
    return int(m.group(1))


def setup():
    global kd, MINOR
    kftest.require(KUBECTL, MISSING)
    if MINOR is None:
        MINOR = kubectl_minor()
        print(f"     kubectl {KUBECTL} (1.{MINOR})", flush=True)
    if kd is None:
        kd = kftest.Kfleetd().start()
    return kd


def kubectl(*args, server=None, token="ignored-over-http", stdin=None, check=True, extra=()):
    cmd = [KUBECTL, "--server", server or kd.url, *extra]
    if token:
        cmd += ["--token", token]
    p = subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=True, env=ENV,
                       timeout=60 * kftest.SLOW)
    if check and p.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p


def requests_made(log):
    """The paths (with queries) of the requests a kubectl -v=6 log shows."""
    return re.findall(r"https?://127\.0\.0\.1:\d+(/[^\s\"]*)", log)


def columns(line):
    return line.split()


def test_apply_create_configure_unchanged():
    setup()
    p = kubectl("apply", "-f", "-", stdin=manifest(3))
    assert p.stdout.split("\n")[:2] == ["region.kfleet.io/cn-hangzhou created",
                                        "guestcluster.kfleet.io/web-1 created"], p.stdout
    gc = kd.get(path("guestclusters", "web-1")).json
    assert gc["spec"]["expectedNodes"] == 3 and gc["metadata"]["generation"] == 1, gc
    assert gc["metadata"]["labels"] == {"env": "prod"}, gc
    assert "kubectl.kubernetes.io/last-applied-configuration" in gc["metadata"]["annotations"]

    p = kubectl("apply", "-f", "-", "-v=8", stdin=manifest(7))
    assert "region.kfleet.io/cn-hangzhou unchanged" in p.stdout, p.stdout
    # apply sends a merge patch: OpenAPI offers no strategic merge patch
    assert re.search(r"Content-Type:? \"?application/merge-patch\+json", p.stderr), \
        p.stderr[-3000:]
    assert "guestcluster.kfleet.io/web-1 configured" in p.stdout, p.stdout
    gc2 = kd.get(path("guestclusters", "web-1")).json
    assert gc2["spec"]["expectedNodes"] == 7 and gc2["metadata"]["generation"] == 2, gc2
    assert gc2["metadata"]["uid"] == gc["metadata"]["uid"]
    # the server's defaults survive (apply sent a merge patch, not a replace)
    assert gc2["spec"]["paused"] is False and gc["spec"]["paused"] is False, gc2


def test_apply_server_side_refused():
    """kfleetd does not do server-side apply (no managedFields): kubectl says
    so in the server's words, with what to use instead, and writes nothing."""
    setup()
    region = manifest(3).split("---\n")[0].replace("cn-hangzhou", "ssa-1")
    p = kubectl("apply", "--server-side", "-f", "-", stdin=region, check=False)
    assert p.returncode == 1, p
    assert "server-side apply is not supported by kfleetd" in p.stderr, p.stderr
    assert "without --server-side" in p.stderr, p.stderr
    assert kd.get(path("regions", "ssa-1")).status == 404
    p = kubectl("apply", "--server-side", "-f", "-", check=False, stdin=manifest(3))
    assert p.returncode == 1 and "server-side apply is not supported" in p.stderr, p
    assert kd.get(path("guestclusters", "web-1")).json["spec"]["expectedNodes"] == 7


def test_diff_and_server_dry_run_refused():
    """kubectl diff and --dry-run=server send dryRun, which kfleetd refuses
    (pretending would mislead): the message says what to do instead."""
    setup()
    changed = manifest(8)
    p = kubectl("diff", "-f", "-", stdin=changed, check=False)
    assert p.returncode > 1, p
    assert "dryRun is not supported by kfleetd" in p.stderr and "kubectl diff" in p.stderr, p
    p = kubectl("apply", "--dry-run=server", "-f", "-", stdin=changed, check=False)
    assert p.returncode == 1 and "--dry-run=server" in p.stderr, p
    assert kd.get(path("guestclusters", "web-1")).json["spec"]["expectedNodes"] == 7
    # a client-side dry run sends nothing that writes
    p = kubectl("apply", "--dry-run=client", "-f", "-", stdin=changed)
    assert "(dry run)" in p.stdout, p.stdout
    assert kd.get(path("guestclusters", "web-1")).json["spec"]["expectedNodes"] == 7


def test_get_table_columns():
    setup()
    table = kd.get(path("guestclusters"), accept=kftest.TABLE_ACCEPT).json
    want = [c["name"].upper() for c in table["columnDefinitions"] if c["priority"] == 0]
    lines = kubectl("get", "guestclusters").stdout.splitlines()
    assert columns(lines[0]) == want, (lines[0], want)
    row = columns([ln for ln in lines if ln.startswith("web-1 ")][0])
    assert row[want.index("REGION")] == "cn-hangzhou", row
    wide = kubectl("get", "gc", "-o", "wide").stdout.splitlines()
    all_cols = [c["name"].upper() for c in table["columnDefinitions"]]
    assert columns(wide[0]) == all_cols and len(all_cols) > len(want), wide[0]
    assert "region.kfleet.io/cn-hangzhou" in kubectl("get", "kfleet").stdout
    # one object by name is a Table too
    one = kubectl("get", "gc", "web-1").stdout.splitlines()
    assert columns(one[0]) == want and columns(one[1])[0] == "web-1", one


def test_get_yaml_and_json():
    setup()
    obj = kd.get(path("guestclusters", "web-1")).json
    as_json = json.loads(kubectl("get", "guestcluster", "web-1", "-o", "json").stdout)
    assert as_json == obj, (as_json, obj)
    y = kubectl("get", "guestcluster", "web-1", "-o", "yaml").stdout.splitlines()
    for line in ("apiVersion: kfleet.io/v1", "kind: GuestCluster", "  name: web-1",
                 f"  resourceVersion: \"{obj['metadata']['resourceVersion']}\"",
                 f"  uid: {obj['metadata']['uid']}", "  region: cn-hangzhou"):
        assert line in y, (line, y)
    lst = json.loads(kubectl("get", "regions", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in lst["items"]] == ["cn-hangzhou"], lst
    names = kubectl("get", "regions", "-o", "name").stdout.split()
    assert names == ["region.kfleet.io/cn-hangzhou"], names


def test_selectors():
    setup()
    for name, labels in (("sel-a", {"tier": "gold", "geo": "eu"}), ("sel-b", {"tier": "silver"}),
                         ("sel-c", {})):
        assert kd.post(path("regions"), kftest.sample("Region", name, labels=labels)).status == 201

    def names(*args):
        out = kubectl("get", "regions", "-o", "name", *args).stdout.split()
        return sorted(n.split("/", 1)[1] for n in out)

    assert names("-l", "tier=gold") == ["sel-a"]
    assert names("-l", "tier in (gold,silver)") == ["sel-a", "sel-b"]
    assert names("-l", "tier,geo!=cn") == ["sel-a", "sel-b"]
    assert names("-l", "!tier") == ["cn-hangzhou", "sel-c"]
    assert names("-l", "geo=cn") == ["cn-hangzhou"]
    assert names("--field-selector", "metadata.name=sel-b") == ["sel-b"]
    assert names("--field-selector", "metadata.name!=sel-b", "-l", "tier") == ["sel-a"]
    assert [columns(ln)[0] for ln in kubectl("get", "gc", "-l", "env=prod").stdout
            .splitlines()[1:]] == ["web-1"]
    p = kubectl("get", "gc", "-l", "env=dev", check=False)
    assert p.returncode == 0 and "No resources found" in p.stderr, p
    p = kubectl("get", "regions", "-l", "tier in (gold", check=False)
    assert p.returncode == 1 and "BadRequest" in p.stderr, p
    assert 'unable to parse labelSelector "tier in (gold"' in p.stderr, p.stderr
    # deleting by label deletes what the selector matches, and nothing else
    p = kubectl("delete", "regions", "-l", "tier")
    assert sorted(p.stdout.split("\n")[:2]) == ['region.kfleet.io "sel-a" deleted',
                                                'region.kfleet.io "sel-b" deleted'], p.stdout
    assert names() == ["cn-hangzhou", "sel-c"]
    assert kd.delete(path("regions", "sel-c")).status == 200


def test_chunk_size_pages():
    """--chunk-size N lists N objects a request and follows metadata.continue:
    every object shows, once, in every output format."""
    setup()
    want = sorted(f"page-{i}" for i in range(7))
    for n in want:
        assert kd.post(path("hosts"), kftest.sample("Host", n)).status == 201
    p = kubectl("get", "hosts", "--chunk-size=2", "-v=6")
    got = [columns(ln)[0] for ln in p.stdout.splitlines()[1:]]
    assert got == want, p.stdout
    assert sum(1 for ln in p.stdout.splitlines() if columns(ln)[0] == "NAME") == 1, p.stdout
    reqs = [r for r in requests_made(p.stderr) if r.startswith(path("hosts"))]
    assert len(reqs) == 4 and all("limit=2" in r for r in reqs), reqs
    assert all("continue=" in r for r in reqs[1:]) and "continue=" not in reqs[0], reqs
    lst = json.loads(kubectl("get", "hosts", "--chunk-size=3", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in lst["items"]] == want, lst
    out = kubectl("get", "hosts", "--chunk-size=1", "-o", "name").stdout.split()
    assert out == [f"host.kfleet.io/{n}" for n in want], out
    p = kubectl("delete", "hosts", "--all")
    assert len(p.stdout.splitlines()) == 7, p.stdout
    assert kd.get(path("hosts")).json["items"] == []


class Lines:
    """A kubectl that keeps printing (get -w): a thread reads its lines, so
    that a test waits for the next one with a deadline, never forever."""

    def __init__(self, *args):
        self.proc = kftest.track(subprocess.Popen(
            [KUBECTL, "--server", kd.url, *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=ENV))
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def next(self, timeout=30.0):
        try:
            line = self.q.get(timeout=timeout * kftest.SLOW)
        except queue.Empty:
            line = None
        if line is None:
            ended = self.proc.poll() is not None
            raise AssertionError("kubectl printed nothing more"
                                 + (f" and exited: {self.proc.stderr.read()}" if ended else ""))
        return line

    def close(self):
        self.proc.kill()
        self.proc.wait()


def test_get_watch():
    setup()
    w = Lines("get", "regions", "-w")
    try:
        assert columns(w.next())[0] == "NAME"
        assert columns(w.next())[0] == "cn-hangzhou"
        assert kd.post(path("regions"), kftest.sample("Region", "eu-west")).status == 201
        assert columns(w.next())[0] == "eu-west"
        assert kd.patch(path("regions", "cn-hangzhou"),
                        {"spec": {"complianceTags": ["gdpr"]}}).status == 200
        line = w.next()
        assert columns(line)[0] == "cn-hangzhou" and "gdpr" in line, line
    finally:
        w.close()

    def watching_regions():
        return kd.metric("kfleet_api_watchers", {"resource": "regions"}) == 1

    kftest.eventually(lambda: kd.metric("kfleet_api_watchers", {"resource": "regions"}) == 0)
    w = Lines("get", "regions", "eu-west", "-w", "-o", "json", "--output-watch-events")
    try:
        # the object as it is, then what changes: kubectl 1.37 GETs the
        # object and then watches from resourceVersion 0 ("now"), so a
        # change made before its watch is open would not show
        events = [json.loads(w.next())]
        assert events[0]["type"] == "ADDED", events
        kftest.eventually(watching_regions)
        assert kd.delete(path("regions", "eu-west")).status == 200
        while events[-1]["type"] != "DELETED":
            events.append(json.loads(w.next()))
        assert [e["type"] for e in events] == ["ADDED", "DELETED"], events
        assert events[-1]["object"]["metadata"]["name"] == "eu-west", events
    finally:
        w.close()

    # --watch-only: only what changes once the watch is open
    w = Lines("get", "gc", "--watch-only", "-o", "name")
    try:
        kftest.eventually(
            lambda: kd.metric("kfleet_api_watchers", {"resource": "guestclusters"}) == 1)
        kubectl("label", "gc", "web-1", "seen=yes")
        assert w.next() == "guestcluster.kfleet.io/web-1"
    finally:
        w.close()


def test_patch_label():
    setup()
    kubectl("patch", "gc", "web-1", "--type", "merge", "-p", '{"spec":{"expectedNodes":9}}')
    assert kd.get(path("guestclusters", "web-1")).json["spec"]["expectedNodes"] == 9
    kubectl("patch", "gc", "web-1", "--type", "json", "-p",
            '[{"op":"replace","path":"/spec/expectedNodes","value":10}]')
    assert kd.get(path("guestclusters", "web-1")).json["spec"]["expectedNodes"] == 10
    # kubectl patch's default type is a strategic merge patch: taken as a merge patch
    p = kubectl("patch", "gc", "web-1", "-p", '{"spec":{"expectedNodes":11}}', "-v=8")
    assert "application/strategic-merge-patch+json" in p.stderr, p.stderr[-2000:]
    assert kd.get(path("guestclusters", "web-1")).json["spec"]["expectedNodes"] == 11
    p = kubectl("patch", "gc", "web-1", "--type", "merge", "-p", '{"spec":{"expectedNodes":"x"}}',
                check=False)
    assert p.returncode == 1 and "spec.expectedNodes" in p.stderr, p
    kubectl("label", "region", "cn-hangzhou", "tier=gold")
    assert kd.get(path("regions", "cn-hangzhou")).json["metadata"]["labels"]["tier"] == "gold"
    kubectl("label", "region", "cn-hangzhou", "tier-")
    assert "tier" not in kd.get(path("regions", "cn-hangzhou")).json["metadata"]["labels"]
    kubectl("annotate", "region", "cn-hangzhou", "owner=ops")
    assert kd.get(path("regions", "cn-hangzhou")).json["metadata"]["annotations"]["owner"] == "ops"


def test_explain():
    """explain reads the kinds' schemas: OpenAPI v3 from kubectl 1.27 on,
    OpenAPI v2 before (and with --output plaintext-openapiv2)."""
    setup()
    out = kubectl("explain", "guestcluster.spec").stdout
    assert re.search(r"KIND:\s+GuestCluster", out) and "expectedNodes" in out, out
    assert re.search(r"VERSION:\s+(kfleet\.io/)?v1", out), out
    out = kubectl("explain", "gc.spec.network.vpc").stdout
    assert re.search(r"FIELD:\s+vpc", out), out
    out = kubectl("explain", "regions", "--recursive").stdout
    assert "zones" in out and "metadata" in out, out
    if MINOR >= 27:
        out = kubectl("explain", "gc.spec", "--output", "plaintext-openapiv2").stdout
        assert "expectedNodes" in out, out
    p = kubectl("explain", "gc.spec.nope", check=False)
    assert p.returncode == 1 and "nope" in p.stderr, p


def test_api_resources():
    setup()
    p = kubectl("api-resources", "--api-group=kfleet.io", "-o", "wide", "-v=6")
    lines = p.stdout.splitlines()
    head = columns(lines[0])
    assert head[:5] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"], lines[0]
    rows = {columns(ln)[0]: columns(ln) for ln in lines[1:]}
    gc = rows["guestclusters"]
    assert gc[1:5] == ["gc", "kfleet.io/v1", "false", "GuestCluster"], gc
    verbs = re.findall(r"\[?(create[ ,]delete[ ,]deletecollection[ ,]get[ ,]list[ ,]patch[ ,]"
                       r"update[ ,]watch)\]?", lines[1 + list(rows).index("guestclusters")])
    assert verbs, lines
    assert "events" in rows and "regions" in rows and "guestclusters/status" not in rows, rows
    reqs = requests_made(p.stderr)
    if MINOR >= 30:
        # aggregated discovery: /api and /apis say everything, nothing more is asked
        assert not any(r.startswith("/apis/kfleet.io/v1") for r in reqs), reqs
    if "--categories" in kubectl("api-resources", "--help").stdout:  # kubectl 1.26 on
        assert kubectl("api-resources", "--api-group=kfleet.io", "--categories=kfleet", "-o",
                       "name").stdout.split()[:2] == ["alertreceivers.kfleet.io",
                                                      "alertroutes.kfleet.io"]
    out = kubectl("api-versions").stdout.split()
    assert "kfleet.io/v1" in out, out


def test_errors_read_as_the_server_wrote_them():
    setup()
    p = kubectl("get", "region", "nope", check=False)
    assert p.returncode == 1, p
    assert 'Error from server (NotFound): regions.kfleet.io "nope" not found' in p.stderr, p
    bad = manifest(3).split("---\n")[1].replace("expectedNodes: 3", "expectedNodes: lots")
    bad = bad.replace("name: web-1", "name: web-2")
    p = kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert p.returncode == 1 and "spec.expectedNodes" in p.stderr, p
    assert kd.get(path("guestclusters", "web-2")).status == 404
    p = kubectl("get", "nosuchthings", check=False)
    assert p.returncode == 1 and "nosuchthings" in p.stderr, p
    p = kubectl("create", "-f", "-", check=False, stdin=manifest(3).split("---\n")[0])
    assert p.returncode == 1 and "AlreadyExists" in p.stderr, p


def test_delete():
    setup()
    p = kubectl("delete", "guestcluster", "web-1")
    assert p.stdout.strip() == 'guestcluster.kfleet.io "web-1" deleted', p.stdout
    assert kd.get(path("guestclusters", "web-1")).status == 404
    p = kubectl("delete", "-f", "-", stdin=manifest(3), check=False)
    assert 'region.kfleet.io "cn-hangzhou" deleted' in p.stdout, p
    assert kd.get(path("regions", "cn-hangzhou")).status == 404
    p = kubectl("delete", "region", "cn-hangzhou", check=False)
    assert p.returncode == 1 and "NotFound" in p.stderr, p
    assert kubectl("delete", "region", "cn-hangzhou", "--ignore-not-found").returncode == 0


def test_tokens_over_https():
    setup()
    with kftest.Kfleetd(tokens=True, tls=True) as k2:
        ca = ["--certificate-authority", k2.cert_file]
        p = kubectl("apply", "-f", "-", stdin=manifest(3).split("---\n")[0],
                    server=k2.url, token=kftest.ADMIN_TOKEN, extra=ca)
        assert "region.kfleet.io/cn-hangzhou created" in p.stdout, p.stdout
        r = k2.get(path("regions", "cn-hangzhou"))
        assert r.status == 200 and r.json["spec"]["zones"][0] == "cn-hangzhou-a", r
        p = kubectl("get", "regions", server=k2.url, token="viewer-token-0123456789", extra=ca)
        assert "cn-hangzhou" in p.stdout, p.stdout
        p = kubectl("delete", "region", "cn-hangzhou", server=k2.url,
                    token="viewer-token-0123456789", extra=ca, check=False)
        assert p.returncode == 1 and "Forbidden" in p.stderr, p
        assert "needs role editor or admin" in p.stderr, p.stderr
        p = kubectl("get", "regions", server=k2.url, token="wrong-token-0123456789", extra=ca,
                    check=False)
        assert p.returncode == 1 and ("Unauthorized" in p.stderr or "logged in" in p.stderr), p
        assert k2.get(path("regions", "cn-hangzhou")).status == 200
        # a watch over TLS, resumed by a write like any other
        w = k2.watch(path("regions"))
        assert w.next()["object"]["metadata"]["name"] == "cn-hangzhou"
        assert k2.post(path("regions"), kftest.sample("Region", "tls-2")).status == 201
        ev = w.next()
        assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "tls-2", ev
        w.close()


def test_zz_clean_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    if not KUBECTL:
        # CTest reports the file as skipped (SKIP_RETURN_CODE), not passed
        print(f"SKIP every test: {MISSING}", flush=True)
        shutil.rmtree(HOME, ignore_errors=True)
        sys.exit(77)
    try:
        kftest.main(globals(), shared=("kd",))
    finally:
        shutil.rmtree(HOME, ignore_errors=True)
