"""test_kubectl.py: the real kubectl (1.32) against kfleetd: apply -f
(create, configure, unchanged; no --validate=false), get (the kind's
columns, -o wide, short names, -l), get -o yaml / -o json, get -w, delete,
patch, label, explain, errors as the server words them, and bearer tokens
with roles over HTTPS (kubectl, like every client-go program, sends a token
only over TLS; over plain HTTP it sends none, so the HTTP tests run a
kfleetd without a token file on loopback)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import path  # noqa: E402

KUBECTL = shutil.which("kubectl")
HOME = tempfile.mkdtemp(prefix="kftest-kubectl-")
ENV = dict(os.environ, HOME=HOME, KUBECONFIG=os.path.join(HOME, "kubeconfig"))
kd = None

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
  version: "1.30"
  expectedNodes: %d
  network:
    vpc: vpc-1
"""


def setup():
    global kd
    kftest.require(KUBECTL, "kubectl is not installed")
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


def columns(line):
    return line.split()


def test_apply_create_configure_unchanged():
    setup()
    p = kubectl("apply", "-f", "-", stdin=MANIFEST % 3)
    assert p.stdout.split("\n")[:2] == ["region.kfleet.io/cn-hangzhou created",
                                        "guestcluster.kfleet.io/web-1 created"], p.stdout
    gc = kd.get(path("guestclusters", "web-1")).json
    assert gc["spec"]["expectedNodes"] == 3 and gc["metadata"]["generation"] == 1, gc
    assert gc["metadata"]["labels"] == {"env": "prod"}, gc
    assert "kubectl.kubernetes.io/last-applied-configuration" in gc["metadata"]["annotations"]

    p = kubectl("apply", "-f", "-", "-v=8", stdin=MANIFEST % 7)
    assert "region.kfleet.io/cn-hangzhou unchanged" in p.stdout, p.stdout
    # apply sends a merge patch: OpenAPI offers no strategic merge patch
    assert "Content-Type: application/merge-patch+json" in p.stderr, p.stderr[-3000:]
    assert "guestcluster.kfleet.io/web-1 configured" in p.stdout, p.stdout
    gc2 = kd.get(path("guestclusters", "web-1")).json
    assert gc2["spec"]["expectedNodes"] == 7 and gc2["metadata"]["generation"] == 2, gc2
    assert gc2["metadata"]["uid"] == gc["metadata"]["uid"]
    # the server's defaults survive (apply sent a merge patch, not a replace)
    assert gc2["spec"]["paused"] is False and gc["spec"]["paused"] is False, gc2


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
    assert [columns(ln)[0] for ln in kubectl("get", "gc", "-l", "env=prod").stdout
            .splitlines()[1:]] == ["web-1"]
    p = kubectl("get", "gc", "-l", "env=dev", check=False)
    assert p.returncode == 0 and "No resources found" in p.stderr, p
    assert "region.kfleet.io/cn-hangzhou" in kubectl("get", "kfleet").stdout


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


def read_line(proc, deadline):
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            return line.rstrip("\n")
        if proc.poll() is not None:
            break
    raise AssertionError("kubectl -w printed nothing more")


def test_get_watch():
    setup()
    proc = kftest.track(subprocess.Popen(
        [KUBECTL, "--server", kd.url, "get", "regions", "-w"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=ENV))
    try:
        deadline = time.monotonic() + 30 * kftest.SLOW
        assert columns(read_line(proc, deadline))[0] == "NAME"
        assert columns(read_line(proc, deadline))[0] == "cn-hangzhou"
        assert kd.post(path("regions"), kftest.sample("Region", "eu-west")).status == 201
        assert columns(read_line(proc, deadline))[0] == "eu-west"
        assert kd.patch(path("regions", "cn-hangzhou"),
                        {"spec": {"complianceTags": ["gdpr"]}}).status == 200
        line = read_line(proc, deadline)
        assert columns(line)[0] == "cn-hangzhou" and "gdpr" in line, line
    finally:
        proc.kill()
        proc.wait()

    proc = kftest.track(subprocess.Popen(
        [KUBECTL, "--server", kd.url, "get", "regions", "eu-west", "-w", "-o", "json",
         "--output-watch-events"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=ENV))
    try:
        time.sleep(1.0 * kftest.SLOW)
        assert kd.delete(path("regions", "eu-west")).status == 200
        deadline = time.monotonic() + 30 * kftest.SLOW
        events = [json.loads(read_line(proc, deadline))]
        while events[-1]["type"] != "DELETED":
            events.append(json.loads(read_line(proc, deadline)))
        assert [e["type"] for e in events] == ["ADDED", "DELETED"], events
        assert events[-1]["object"]["metadata"]["name"] == "eu-west", events
    finally:
        proc.kill()
        proc.wait()


def test_patch_label_explain():
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
    kubectl("label", "region", "cn-hangzhou", "tier=gold")
    assert kd.get(path("regions", "cn-hangzhou")).json["metadata"]["labels"]["tier"] == "gold"
    out = kubectl("explain", "guestcluster.spec").stdout
    assert "expectedNodes" in out and "KIND:       GuestCluster" in out, out


def test_errors_read_as_the_server_wrote_them():
    setup()
    p = kubectl("get", "region", "nope", check=False)
    assert p.returncode == 1, p
    assert 'Error from server (NotFound): regions.kfleet.io "nope" not found' in p.stderr, p
    bad = (MANIFEST % 3).split("---\n")[1].replace("expectedNodes: 3", "expectedNodes: lots")
    bad = bad.replace("name: web-1", "name: web-2")
    p = kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert p.returncode == 1 and "spec.expectedNodes" in p.stderr, p
    assert kd.get(path("guestclusters", "web-2")).status == 404


def test_delete():
    setup()
    p = kubectl("delete", "guestcluster", "web-1")
    assert p.stdout.strip() == 'guestcluster.kfleet.io "web-1" deleted', p.stdout
    assert kd.get(path("guestclusters", "web-1")).status == 404
    p = kubectl("delete", "-f", "-", stdin=MANIFEST % 3, check=False)
    assert 'region.kfleet.io "cn-hangzhou" deleted' in p.stdout, p
    assert kd.get(path("regions", "cn-hangzhou")).status == 404


def test_tokens_over_https():
    kftest.require(KUBECTL, "kubectl is not installed")
    with kftest.Kfleetd(tokens=True, tls=True) as k2:
        ca = ["--certificate-authority", k2.cert_file]
        p = kubectl("apply", "-f", "-", stdin=(MANIFEST % 3).split("---\n")[0],
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
    try:
        kftest.main(globals())
    finally:
        if kd:
            kd.close()
        shutil.rmtree(HOME, ignore_errors=True)
