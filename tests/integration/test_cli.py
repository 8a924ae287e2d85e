"""test_cli.py: the `kfleet` binary against a real kfleetd, as a user sees
it: tables, -o json/yaml/name, paging, apply (created / configured /
unchanged, fields removed, other owners' fields kept, stdin, directories),
validation errors with their fields, delete with finalizers and --wait,
describe, watch (live events, a kfleetd restart, a compacted revision),
where the server and token come from, and every exit code."""

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402

KFLEET = os.path.join(kftest.BIN_DIR, "kfleet")
HOME = tempfile.mkdtemp(prefix="kftest-cli-home-")
kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd().start()
    return kd


def env(**extra):
    """A clean environment: no KFLEET_* from the caller, a HOME of our own."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("KFLEET_")}
    e["HOME"] = HOME
    e.update({k: v for k, v in extra.items() if v is not None})
    return e


def kfleet(*args, server=True, stdin=None, expect=0, **envs):
    """Runs kfleet; returns (stdout, stderr) after checking the exit code.
    server=True points it at kd through $KFLEET_SERVER."""
    if server is True:
        envs.setdefault("KFLEET_SERVER", kd.url)
    p = subprocess.run([KFLEET, *args], input=stdin, capture_output=True, text=True,
                       env=env(**envs), timeout=60 * kftest.SLOW)
    if expect is not None and p.returncode != expect:
        raise AssertionError(f"kfleet {' '.join(args)}: exit {p.returncode}, want {expect}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p.stdout, p.stderr


def table(text):
    """Rows of a table as lists of cells (split on runs of blanks)."""
    return [line.split() for line in text.splitlines() if line.strip()]


def write(dirpath, name, text):
    p = os.path.join(dirpath, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def test_get_tables_and_formats():
    setup()
    for i, (region, nodes) in enumerate([("cn-hangzhou", 3), ("cn-beijing", 120)]):
        gc = sample("GuestCluster", f"get-{i}", labels={"team": "a" if i == 0 else "b"},
                    region=region, expectedNodes=nodes)
        assert kd.post(path("guestclusters"), gc).status == 201
    out, _ = kfleet("get", "guestclusters")
    rows = table(out)
    assert rows[0] == ["NAME", "REGION", "UNIT", "GRADE", "VERSION", "PHASE", "NODES", "AGE"], out
    byname = {r[0]: r for r in rows[1:]}
    assert byname["get-0"][1:3] == ["cn-hangzhou", "<none>"], out
    assert byname["get-1"][6] == "120", out
    assert byname["get-1"][7].endswith("s"), out  # just created

    # kind, plural, singular and short name all work; -l and --field-selector filter
    for name in ("GuestCluster", "guestcluster", "gc"):
        out, _ = kfleet("get", name, "-l", "team=b")
        assert [r[0] for r in table(out)[1:]] == ["get-1"], out
    out, _ = kfleet("get", "gc", "--field-selector", "spec.region=cn-hangzhou", "-o", "name")
    assert "guestcluster/get-0\n" in out and "get-1" not in out, out

    out, _ = kfleet("get", "gc", "get-0", "-o", "wide")
    assert table(out)[0][-5:] == ["MEMBERS", "PROFILE", "VPC", "POD-CIDR", "AGE"], out
    assert table(out)[1][9] == "vpc-1", out

    # -o json: one object as itself, several as a List
    out, _ = kfleet("get", "gc", "get-0", "-o", "json")
    obj = json.loads(out)
    assert obj["kind"] == "GuestCluster" and obj["metadata"]["name"] == "get-0", obj
    out, _ = kfleet("get", "gc", "get-0", "get-1", "-o", "json")
    lst = json.loads(out)
    assert lst["kind"] == "List" and lst["apiVersion"] == "v1", lst
    assert [o["metadata"]["name"] for o in lst["items"]] == ["get-0", "get-1"], lst

    # -o yaml: block style, strings that look like numbers quoted
    out, _ = kfleet("get", "gc", "get-0", "-o", "yaml")
    assert out.startswith("apiVersion: kfleet.io/v1\nkind: GuestCluster\nmetadata:\n"), out
    assert '  version: "1.37"\n' in out and "  expectedNodes: 3\n" in out, out

    _, err = kfleet("get", "templates")
    assert err == "No templates found.\n", err


def test_paging():
    setup()
    for i in range(7):
        assert kd.post(path("templates"), sample("Template", f"page-{i}")).status == 201
    out, _ = kfleet("get", "tpl", "--limit", "2")
    names = [r[0] for r in table(out)[1:]]
    assert names == [f"page-{i}" for i in range(7)], out
    out, _ = kfleet("get", "tpl", "--limit", "3", "-o", "json")
    assert len(json.loads(out)["items"]) == 7
    for i in range(7):
        assert kd.delete(path("templates", f"page-{i}")).status == 200


def test_apply_created_configured_unchanged():
    setup()
    d = tempfile.mkdtemp(prefix="kftest-cli-apply-")
    try:
        f = write(d, "fleet.yaml", """\
# two objects, one file
apiVersion: kfleet.io/v1
kind: Region
metadata:
  name: ap-region
spec:
  zones: [ap-a, ap-b, ap-c]
---
kind: GuestCluster
metadata:
  name: ap-1
  labels:
    team: web
    tier: "1"
spec:
  region: ap-region
  profile: standard
  version: "1.37"
  expectedNodes: 5
  network:
    vpc: vpc-ap
""")
        out, _ = kfleet("apply", "-f", f)
        assert out == "region/ap-region created\nguestcluster/ap-1 created\n", out
        gc = kd.get(path("guestclusters", "ap-1")).json
        assert gc["metadata"]["labels"] == {"team": "web", "tier": "1"}, gc
        assert gc["spec"]["version"] == "1.37" and gc["spec"]["expectedNodes"] == 5, gc

        out, _ = kfleet("apply", "-f", f)
        assert out == "region/ap-region unchanged\nguestcluster/ap-1 unchanged\n", out

        # A controller adds a finalizer and a label: apply must keep both.
        r = kd.patch(path("guestclusters", "ap-1"),
                     {"metadata": {"finalizers": ["kfleet.io/test-hold"],
                                   "labels": {"owner": "controller"}}})
        assert r.status == 200, r

        # Change a field and drop one the last apply set.
        write(d, "fleet.yaml", open(f).read().replace("expectedNodes: 5", "expectedNodes: 9")
              .replace('    tier: "1"\n', ""))
        out, _ = kfleet("apply", "-f", f)
        assert out == "region/ap-region unchanged\nguestcluster/ap-1 configured\n", out
        gc = kd.get(path("guestclusters", "ap-1")).json
        assert gc["spec"]["expectedNodes"] == 9, gc
        assert gc["metadata"]["labels"] == {"team": "web", "owner": "controller"}, gc
        assert gc["metadata"]["finalizers"] == ["kfleet.io/test-hold"], gc
        assert gc["spec"]["paused"] is False, gc  # a default, kept

        # JSON on stdin, and a directory of files (a List among them).
        out, _ = kfleet("apply", "-f", "-", stdin=json.dumps(
            {"kind": "Template", "metadata": {"name": "ap-tpl"}, "spec": {"profile": "standard"}}))
        assert out == "template/ap-tpl created\n", out
        sub = os.path.join(d, "dir")
        os.mkdir(sub)
        write(sub, "a.yaml", "kind: List\napiVersion: v1\nitems:\n"
              "- {kind: Template, metadata: {name: ap-tpl}, spec: {profile: standard}}\n"
              "- {kind: Template, metadata: {name: ap-tpl2}, spec: {profile: edge}}\n")
        write(sub, "b.json", '{\n\t"kind": "Profile",\n\t"metadata": {"name": "ap-prof"},\n'
              '\t"spec": {"versions": ["1.37"]}\n}\n')
        write(sub, "ignored.txt", "not: [yaml")
        out, _ = kfleet("apply", "-f", sub)
        assert out == ("template/ap-tpl unchanged\ntemplate/ap-tpl2 created\n"
                       "profile/ap-prof created\n"), out
    finally:
        shutil.rmtree(d, ignore_errors=True)
        kd.patch(path("guestclusters", "ap-1"), {"metadata": {"finalizers": None}})


def test_apply_errors():
    setup()
    d = tempfile.mkdtemp(prefix="kftest-cli-apply-")
    try:
        bad = write(d, "bad.yaml", """\
kind: GuestCluster
metadata: {name: bad-1}
spec:
  region: cn-hangzhou
  expectedNodes: -4
  network: {}
""")
        _, err = kfleet("apply", "-f", bad, expect=1)
        assert err.startswith('guestcluster/bad-1: Error from server (Invalid): '), err
        lines = err.splitlines()
        assert any(ln.startswith("  spec.expectedNodes: ") for ln in lines), err
        assert "  spec.network.vpc: Required value" in lines, err
        assert kd.get(path("guestclusters", "bad-1")).status == 404

        # Input mistakes are found before anything is sent (exit 2).
        good = write(d, "good.yaml", "kind: Template\nmetadata: {name: never}\n"
                     "spec: {profile: standard}\n")
        broken = write(d, "broken.yaml", "kind: Template\nmetadata:\n  name: x\n\tspec: {}\n")
        _, err = kfleet("apply", "-f", good, "-f", broken, expect=2)
        assert "broken.yaml: line 4" in err and "tabs" in err, err
        assert kd.get(path("templates", "never")).status == 404
        wrong = write(d, "wrong.yaml", "apiVersion: apps/v1\nkind: Deployment\n"
                      "metadata: {name: x}\n")
        _, err = kfleet("apply", "-f", wrong, expect=2)
        assert 'apiVersion "apps/v1" is not served by kfleet' in err, err
        _, err = kfleet("apply", "-f", os.path.join(d, "missing.yaml"), expect=2)
        assert "cannot open" in err and "missing.yaml" in err, err
        _, err = kfleet("apply", expect=2)
        assert "needs -f FILE" in err, err
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_describe():
    setup()
    gc = sample("GuestCluster", "desc-1", labels={"app": "web"})
    gc["metadata"]["annotations"] = {"owner": "team-web"}
    gc["metadata"]["finalizers"] = ["kfleet.io/test-hold"]
    assert kd.post(path("guestclusters"), gc).status == 201
    st = {"status": {"phase": "Pending", "conditions": [
        {"type": "Scheduled", "status": "False", "reason": "NoHeadroom",
         "message": "no unit in cn-hangzhou has headroom for grade G1",
         "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]}}
    r = kd.patch(path("guestclusters", "desc-1", "status"), st)
    assert r.status == 200, r
    out, _ = kfleet("describe", "gc", "desc-1")
    lines = out.splitlines()
    assert lines[0].split() == ["Name:", "desc-1"] and lines[1].split() == ["Kind:", "GuestCluster"]
    assert "Labels:           app=web" in lines, out
    assert "Annotations:      owner=team-web" in lines, out
    assert "Finalizers:       kfleet.io/test-hold" in lines, out
    assert "  region:         cn-hangzhou" in lines, out
    assert "    vpc:  vpc-1" in lines, out
    assert "  phase:  Pending" in lines, out
    i = lines.index("Conditions:")
    assert lines[i + 1].split() == ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], out
    assert lines[i + 2].split()[:3] == ["Scheduled", "False", "NoHeadroom"], out
    assert lines[i + 2].endswith("no unit in cn-hangzhou has headroom for grade G1"), out
    # Events come from kfleetd's controllers; none has written about this one.
    assert lines[-1] == "Events:  <none>", out

    _, err = kfleet("describe", "gc", "nope", expect=4)
    assert "not found" in err, err
    kd.patch(path("guestclusters", "desc-1"), {"metadata": {"finalizers": None}})


def test_delete():
    setup()
    held = sample("Region", "del-held")
    held["metadata"]["finalizers"] = ["kfleet.io/test-hold"]
    assert kd.post(path("regions"), held).status == 201
    assert kd.post(path("regions"), sample("Region", "del-free")).status == 201
    out, _ = kfleet("delete", "rg", "del-free", "del-held")
    assert out == ("region/del-free deleted\n"
                   "region/del-held deletion requested (finalizers: kfleet.io/test-hold)\n"), out
    assert kd.get(path("regions", "del-free")).status == 404
    assert kd.get(path("regions", "del-held")).json["metadata"]["deletionTimestamp"]

    # --wait returns when the finalizer's owner lets go.
    def release():
        time.sleep(0.5)
        kd.patch(path("regions", "del-held"), {"metadata": {"finalizers": None}})
    t = threading.Thread(target=release)
    t.start()
    out, _ = kfleet("delete", "rg", "del-held", "--wait", "--timeout", "30s")
    t.join()
    assert out.endswith("region/del-held deleted\n"), out
    assert kd.get(path("regions", "del-held")).status == 404

    # -f: the objects named in a file; a missing one is exit 4 unless ignored
    d = tempfile.mkdtemp(prefix="kftest-cli-del-")
    try:
        assert kd.post(path("templates"), sample("Template", "del-tpl")).status == 201
        f = write(d, "t.yaml", "kind: Template\nmetadata: {name: del-tpl}\n---\n"
                  "kind: Template\nmetadata: {name: del-gone}\n")
        out, err = kfleet("delete", "-f", f, expect=4)
        assert out == "template/del-tpl deleted\n", out
        assert "del-gone" in err and "not found" in err, err
        out, _ = kfleet("delete", "-f", f, "--ignore-not-found")
        assert out == "", out
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Watcher:
    """A `kfleet watch` process whose output lines arrive in a queue."""

    def __init__(self, *args, **envs):
        self.lines = queue.Queue()
        self.proc = kftest.track(subprocess.Popen(
            [KFLEET, "watch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env(**envs)))
        self.err = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.err.append),
                         daemon=True).start()

    @staticmethod
    def _read(stream, put):
        for line in stream:
            put(line.rstrip("\n"))

    def rows(self, n, timeout=15.0):
        """The next n lines, split into cells."""
        out = []
        deadline = time.monotonic() + timeout * kftest.SLOW
        while len(out) < n:
            try:
                out.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())).split())
            except queue.Empty:
                raise AssertionError(f"only {out} within {timeout}s; stderr: {self.err}")
        return out

    def quiet(self, t=0.5):
        try:
            line = self.lines.get(timeout=t * kftest.SLOW)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected output: {line!r}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


def test_watch_live_and_restart():
    d = tempfile.mkdtemp(prefix="kftest-cli-watch-")
    k = kftest.Kfleetd(store="sqlite", data_dir=d).start()
    try:
        assert k.post(path("units"), sample("Unit", "w-0")).status == 201
        w = Watcher("units", KFLEET_SERVER=k.url)
        rows = w.rows(2)
        assert rows[0] == ["EVENT", "NAME", "REGION", "ZONES", "CLUSTERS", "CPU%", "MEM%",
                           "WATER", "AGE"], rows
        assert rows[1][:3] == ["ADDED", "w-0", "cn-hangzhou"], rows
        assert k.post(path("units"), sample("Unit", "w-1")).status == 201
        assert k.patch(path("units", "w-1"), {"spec": {"waterLevel": 0.5}}).status == 200
        assert k.delete(path("units", "w-0")).status == 200
        rows = w.rows(3)
        assert [r[:2] for r in rows] == [["ADDED", "w-1"], ["MODIFIED", "w-1"],
                                         ["DELETED", "w-0"]], rows
        assert rows[1][7] == "50%", rows

        # kfleetd restarts: the watch says so, comes back, and misses nothing.
        k.stop()
        k.start()
        assert k.post(path("units"), sample("Unit", "w-2")).status == 201
        rows = w.rows(1)
        assert rows[0][:2] == ["ADDED", "w-2"], rows
        w.quiet()
        kftest.eventually(lambda: w.err and w.err[-1] == "watch: connected again")
        assert "watch: retrying until it answers" in w.err, w.err
        w.stop()

        # A watch bounded by --timeout ends by itself with exit 0.
        p = subprocess.run([KFLEET, "watch", "un", "w-2", "--timeout", "1s"], capture_output=True,
                           text=True, env=env(KFLEET_SERVER=k.url), timeout=30 * kftest.SLOW)
        assert p.returncode == 0, p
        assert [r[:2] for r in table(p.stdout)] == [["EVENT", "NAME"], ["ADDED", "w-2"]], p.stdout
    finally:
        k.close()
        shutil.rmtree(d, ignore_errors=True)


def test_watch_relists_after_compaction():
    """The watch's revision is compacted away while it is disconnected: it
    lists again and prints exactly what changed meanwhile."""
    d = tempfile.mkdtemp(prefix="kftest-cli-watch-")
    k = kftest.Kfleetd(store="sqlite", data_dir=d).start()
    try:
        for name in ("c-keep", "c-change", "c-drop"):
            assert k.post(path("regions"), sample("Region", name)).status == 201
        w = Watcher("regions", KFLEET_SERVER=k.url)
        assert [r[:2] for r in w.rows(4)[1:]] == [["ADDED", "c-change"], ["ADDED", "c-drop"],
                                                  ["ADDED", "c-keep"]]
        k.stop()
        # Meanwhile another kfleetd on the same store changes things and
        # compacts the history the watch would resume from.
        k2 = kftest.Kfleetd(store="sqlite", data_dir=d, args=[
            "--compact-interval", "100ms", "--compact-retention", "0",
            "--compact-keep-revisions", "1"]).start()
        assert k2.patch(path("regions", "c-change"), {"spec": {"displayName": "C"}}).status == 200
        assert k2.delete(path("regions", "c-drop")).status == 200
        last = k2.post(path("regions"), sample("Region", "c-new")).json
        for i in range(3):  # more revisions past the ones the watch knows
            assert k2.patch(path("regions", "c-new"), {"spec": {"displayName": f"n{i}"}}
                            ).status == 200
        kftest.eventually(lambda: (k2.metric("kfleet_store_compacted_revision") or 0)
                          > int(last["metadata"]["resourceVersion"]))
        k2.stop()
        k.start()
        rows = sorted(r[:2] for r in w.rows(3, timeout=30))
        assert rows == [["ADDED", "c-new"], ["DELETED", "c-drop"], ["MODIFIED", "c-change"]], rows
        w.quiet()
        kftest.eventually(lambda: w.err and w.err[-1] == "watch: connected again")
        w.stop()
    finally:
        k.close()
        shutil.rmtree(d, ignore_errors=True)


def test_server_and_token_precedence():
    with kftest.Kfleetd(tokens=True) as k:
        cfg = os.path.join(HOME, "cfg", "config")
        dead = f"http://127.0.0.1:{kftest.free_port()}"

        # kfleet config writes the file 0600.
        out, _ = kfleet("config", "set-server", k.url + "/", server=False, KFLEET_CONFIG=cfg)
        assert out == f"server set in {cfg}\n", out
        kfleet("config", "set-token", "viewer-token-0123456789", server=False, KFLEET_CONFIG=cfg)
        assert os.stat(cfg).st_mode & 0o777 == 0o600
        text = open(cfg).read()
        assert f"server: {k.url}\n" in text and "token: viewer-token-0123456789\n" in text, text

        # The file alone: reads work with the viewer token, writes are refused (1).
        out, _ = kfleet("get", "regions", server=False, KFLEET_CONFIG=cfg)
        _, err = kfleet("apply", "-f", "-", server=False, KFLEET_CONFIG=cfg, expect=1, stdin=json.dumps(
            sample("Region", "prec-1")))
        assert "region/prec-1: Error from server (Forbidden)" in err, err

        # The environment beats the file, a flag beats both.
        out, _ = kfleet("apply", "-f", "-", server=False, KFLEET_CONFIG=cfg,
                        KFLEET_TOKEN=kftest.ADMIN_TOKEN, stdin=json.dumps(
                            sample("Region", "prec-1")))
        assert out == "region/prec-1 created\n", out
        _, err = kfleet("get", "rg", server=False, KFLEET_CONFIG=cfg, KFLEET_SERVER=dead,
                        expect=3)
        assert f"cannot reach the kfleet server at {dead} (from $KFLEET_SERVER)" in err, err
        out, _ = kfleet("get", "rg", "prec-1", "-o", "name", "--server", k.url, server=False,
                        KFLEET_CONFIG=cfg, KFLEET_SERVER=dead)
        assert out == "region/prec-1\n", out
        _, err = kfleet("--server", dead, "get", "rg", server=False, KFLEET_CONFIG=cfg,
                        KFLEET_SERVER=k.url, expect=3)
        assert "(from --server)" in err and "--server URL" in err, err
        _, err = kfleet("get", "rg", "--token", "wrong", server=False, KFLEET_CONFIG=cfg,
                        expect=1)
        assert "Error from server (Unauthorized)" in err and "--token" in err, err

        out, _ = kfleet("config", "view", server=False, KFLEET_CONFIG=cfg,
                        KFLEET_TOKEN=kftest.ADMIN_TOKEN)
        assert f"server: {k.url}\n" in out and "token: REDACTED\n" in out, out
        assert kftest.ADMIN_TOKEN not in out and "viewer-token" not in out, out
        assert f"# in effect: server {k.url} (from config file), token from environment" in out

        # A token others can read is worth a warning.
        os.chmod(cfg, 0o644)
        _, err = kfleet("get", "rg", server=False, KFLEET_CONFIG=cfg)
        assert f'warning: the config file "{cfg}" holds a token and others may read it' in err, err
        os.chmod(cfg, 0o600)
        _, err = kfleet("get", "rg", server=False, KFLEET_CONFIG=cfg)
        assert "warning" not in err, err

        # ~/.kfleet/config is the default file.
        os.makedirs(os.path.join(HOME, ".kfleet"), exist_ok=True)
        shutil.copy(cfg, os.path.join(HOME, ".kfleet", "config"))
        out, _ = kfleet("get", "rg", "prec-1", "-o", "name", server=False)
        assert out == "region/prec-1\n", out
        os.unlink(os.path.join(HOME, ".kfleet", "config"))

        # Nothing anywhere: the default server, which here is nobody.
        if not port_open(7480):
            _, err = kfleet("get", "rg", server=False, expect=3)
            assert "at http://127.0.0.1:7480 (the default)" in err, err


def port_open(port):
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_exit_codes_and_usage():
    setup()
    kfleet("version")
    out, _ = kfleet("version", "--client", server=False)
    assert out.startswith("Client Version: kfleet "), out
    out, _ = kfleet("help")
    assert "Exit codes:" in out and "  4  not found" in out, out
    out, _ = kfleet("apply", "--help")
    assert out.startswith("usage: kfleet apply -f FILE"), out
    out, _ = kfleet("api-resources")
    assert ["guestclusters", "gc", "kfleet.io/v1", "false", "GuestCluster"] in table(out), out

    _, err = kfleet(expect=2)
    _, err = kfleet("frobnicate", expect=2)
    assert 'no command "frobnicate"' in err, err
    _, err = kfleet("get", "widgets", expect=2)
    assert 'no kind "widgets"' in err and "api-resources" in err, err
    _, err = kfleet("get", "gc", "--bogus", expect=2)
    assert 'unknown option "--bogus"' in err, err
    _, err = kfleet("get", "gc", "-o", "xml", expect=2)
    _, err = kfleet("get", "gc", "does-not-exist", expect=4)
    assert 'Error from server (NotFound): ' in err, err
    _, err = kfleet("get", "gc", "-l", "app in (", expect=1)
    assert "Error from server (BadRequest)" in err, err
    _, err = kfleet("get", "gc", server=False, KFLEET_SERVER="localhost:7480", expect=2)
    assert "is not a URL" in err, err


def test_zz_clean_shutdown():
    if kd is not None:
        kd.stop()
    shutil.rmtree(HOME, ignore_errors=True)


if __name__ == "__main__":
    kftest.main(globals())
