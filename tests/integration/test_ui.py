"""test_ui.py: the fleet dashboard at /ui/, in Debian's Chromium driven
through playwright-core (tests/ui/ui-driver.mjs), against a real kfleetd:

  - the overview renders a fleet: regions, units with their water-level
    bars against the mark, clusters by phase and grade, hosts Ready per
    zone; a Pending cluster's page shows its reason and the explain verdicts;
  - a write made with the CLI appears live (no reload): a cluster created
    shows in the list and on the overview, a unit cordoned shows as such;
  - a viewer gets a read-only page: no write control, and the writes and
    the kubeconfig the page could still try are refused by the server;
  - a cluster's Backups: taken from the page, the controller's reasons
    live, Succeeded with its size; an admin's Restore checked by kfleetd
    and shown in progress; Backups not Succeeded in Work in progress;
  - an admin's page downloads a guest's kubeconfig (all controllers: the
    lifecycle issues it while the guest provisions), a viewer's cannot;
  - 10,000 clusters: the list pages with limit/continue and filters with
    field and label selectors.

Screenshots are kept in BUILD/ui-artifacts/ (the README's image is one).
Without Chromium, node or playwright-core (scripts/install-deps installs
them) the file says what is missing and exits 77: CTest reports it
skipped, never passed."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import API, path  # noqa: E402

SOURCE = os.path.abspath(kftest.SOURCE_DIR)
DRIVER = os.path.join(SOURCE, "tests", "ui", "ui-driver.mjs")
CHROMIUM = os.environ.get("KF_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.path.join(os.path.dirname(kftest.BIN_DIR), "ui-artifacts")
KFLEET = os.path.join(kftest.BIN_DIR, "kfleet")
ADMIN = kftest.ADMIN_TOKEN
EDITOR = "editor-token-0123456789"
VIEWER = "viewer-token-0123456789"
GRACE = 3.0 * kftest.SLOW
WAIT_MS = int(20000 * kftest.SLOW)

kd = None
beater = None
browser = None


def missing():
    """What the browser tests lack, or None."""
    if not shutil.which("node"):
        return "node is not installed (scripts/install-deps installs nodejs)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM} (scripts/install-deps installs chromium)"
    if not os.path.isdir(os.path.join(SOURCE, "tests", "ui", "node_modules", "playwright-core")):
        return ("playwright-core is not installed in tests/ui/node_modules "
                "(scripts/install-deps runs npm ci there)")
    if not os.path.isfile(os.path.join(os.path.dirname(kftest.BIN_DIR), "share", "kfleet", "ui",
                                       "index.html")):
        return "the dashboard's files are not in BUILD/share/kfleet/ui (build the kfleet-ui target)"
    return None


class Browser:
    """One ui-driver.mjs process: commands in, answers out, a line each."""

    def __init__(self):
        self.proc = kftest.track(subprocess.Popen(
            ["node", DRIVER], cwd=os.path.dirname(DRIVER), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=sys.stderr, text=True,
            env=dict(os.environ, KF_CHROMIUM=CHROMIUM)))

    def do(self, op, check=True, **kw):
        self.proc.stdin.write(json.dumps(dict(op=op, **kw)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the browser driver ended (command {op} {kw})"
        r = json.loads(line)
        if check and not r["ok"]:
            raise AssertionError(f"{op} {kw}: {r.get('error')}\n{self.diagnose()}")
        return r

    def diagnose(self):
        """What the page shows and reported, for a failure's message; a
        screenshot goes to the artifacts as failure-N.png."""
        out = []
        for op, kw in (("text", {"sel": "body"}), ("problems", {})):
            self.proc.stdin.write(json.dumps(dict(op=op, **kw)) + "\n")
            self.proc.stdin.flush()
            out.append(self.proc.stdout.readline().strip()[:3000])
        os.makedirs(ARTIFACTS, exist_ok=True)
        n = len([f for f in os.listdir(ARTIFACTS) if f.startswith("failure-")])
        self.proc.stdin.write(json.dumps({"op": "screenshot", "full": True, "path": os.path.join(
            ARTIFACTS, f"failure-{n}.png")}) + "\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()
        return "page text: " + out[0] + "\nproblems: " + out[1]

    def wait(self, sel, text=None, state="visible", timeout=WAIT_MS):
        return self.do("wait", sel=sel, text=text, state=state, timeout=timeout)

    def text(self, sel):
        return self.do("text", sel=sel)["text"]

    def count(self, sel):
        return self.do("count", sel=sel)["count"]

    def eval(self, js):
        return self.do("eval", js=js)["value"]

    def shot(self, name, full=True):
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.do("screenshot", path=os.path.join(ARTIFACTS, name), full=full)

    def sign_in(self, url, token):
        self.do("page")
        self.do("goto", url=url)
        self.wait("#login")
        self.do("fill", sel="#token", value=token)
        self.do("click", sel="#login-form button")
        self.wait("#whoami", text="(")
        self.do("problems")  # the 401 of the first try, before the token

    def no_problems(self, expected=()):
        """No console error, CSP violation or page error, but for the
        failed loads of the statuses in expected (e.g. 404: an API the page
        asks for and kfleetd does not serve here)."""
        probs = [p for p in self.do("problems")["problems"]
                 if not any(p == f"console: Failed to load resource: the server responded with a "
                                 f"status of {code} " + f"({why})" for code, why in expected)]
        assert not probs, probs

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class Beater:
    """Batch heartbeats for every host but the silent ones."""

    def __init__(self, hosts, silent=(), server=None):
        self.server = server
        self.hosts = [h for h in hosts if h not in silent]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        server = self.server or kd
        client = server.client()
        while not self.stop.is_set():
            try:
                client.post(API + "/heartbeats", {"hosts": self.hosts})
            except OSError:
                client = server.client()
            self.stop.wait(GRACE / 5)

    def close(self):
        self.stop.set()
        self.thread.join()


def kfleet(*args, token=ADMIN, expect=0, server=None):
    server = server or kd
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFLEET_")}
    env.update(KFLEET_SERVER=server.url, KFLEET_TOKEN=token, HOME=server.data_dir)
    p = subprocess.run([KFLEET, *args], capture_output=True, text=True, env=env,
                       timeout=120 * kftest.SLOW)
    assert p.returncode == expect, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def apply(text, server=None):
    server = server or kd
    d = tempfile.mkdtemp(prefix="kftest-ui-", dir=server.data_dir)
    f = os.path.join(d, "objects.yaml")
    with open(f, "w") as fh:
        fh.write(text)
    return kfleet("apply", "-f", f, server=server)


UNITS = {"hz-u1": "cn-hangzhou", "hz-u2": "cn-hangzhou", "fra-u1": "eu-west"}
ZONES = {"cn-hangzhou": ("hz-a", "hz-b", "hz-c"), "eu-west": ("eu-a", "eu-b", "eu-c")}


def fleet_yaml():
    docs = []
    for region, zones in ZONES.items():
        tags = "[gdpr]" if region == "eu-west" else "[]"
        docs.append(f"apiVersion: kfleet.io/v1\nkind: Region\nmetadata: {{name: {region}}}\n"
                    f"spec: {{zones: [{', '.join(zones)}], complianceTags: {tags}}}\n")
    for unit, region in UNITS.items():
        docs.append(f"apiVersion: kfleet.io/v1\nkind: Unit\nmetadata: {{name: {unit}}}\n"
                    f"spec: {{region: {region}, zones: [{', '.join(ZONES[region])}]}}\n")
        for z in ZONES[region]:
            for i in range(2):
                docs.append(f"apiVersion: kfleet.io/v1\nkind: Host\nmetadata: {{name: {unit}-{z}-{i}}}\n"
                            f"spec: {{role: meta, unit: {unit}, zone: {z}, "
                            f"capacity: {{cpu: \"16\", memory: 64Gi}}}}\n")
    for region, cidr, svc in (("cn-hangzhou", "10.0.0.0/9", "172.16.0.0/16"),
                              ("eu-west", "10.128.0.0/9", "172.20.0.0/16")):
        docs.append(f"apiVersion: kfleet.io/v1\nkind: IPPool\nmetadata: {{name: vpc-{region}}}\n"
                    f"spec: {{vpc: vpc-{region}, region: {region}, cidrs: [\"{cidr}\"], "
                    f"serviceCIDRs: [\"{svc}\"]}}\n")
    return "---\n".join(docs)


def cluster_yaml(name, region="cn-hangzhou", nodes=5, extra=""):
    return (f"apiVersion: kfleet.io/v1\nkind: GuestCluster\nmetadata: {{name: {name}, "
            f"labels: {{team: t{len(name) % 3}}}}}\n"
            f"spec: {{region: {region}, profile: standard, expectedNodes: {nodes}, "
            f"network: {{vpc: vpc-{region}}}{extra}}}\n")


def setup():
    global kd, beater, browser
    if kd is not None:
        return
    kd = kftest.Kfleetd(tokens=True, controllers="*,-lifecycle",
                        args=["--host-grace", f"{int(GRACE * 1000)}ms"]).start()
    out = apply(fleet_yaml())
    assert "unit/fra-u1 created" in out, out
    hosts = [f"{u}-{z}-{i}" for u, r in UNITS.items() for z in ZONES[r] for i in range(2)]
    silent = {"hz-u2-hz-c-1"}  # one host NotReady: its zone shows 1/2
    beater = Beater(hosts, silent)
    kftest.eventually(lambda: all(kd.get(path("hosts", h)).json.get("status", {}).get("ready")
                                  for h in hosts if h not in silent),
                      timeout=30 * kftest.SLOW, msg="hosts Ready")
    docs = [cluster_yaml(f"web-{i:02d}", nodes=5 if i % 3 else 60) for i in range(24)]
    docs += [cluster_yaml(f"eu-{i}", region="eu-west") for i in range(3)]
    # a cluster that cannot be placed in any order of decisions: 5,000 nodes
    # is G5, whose 262 GiB of requests take an empty unit here (6 hosts of
    # 64 GiB) to 67 %, past its 60 % mark
    docs.append(cluster_yaml("huge-0", nodes=5000))
    apply("---\n".join(docs))

    def decided():
        items = kd.get(path("guestclusters")).json["items"]
        return len(items) == 28 and all(c.get("status", {}).get("conditions") for c in items)
    kftest.eventually(decided, timeout=120 * kftest.SLOW, msg="every cluster decided")
    kftest.eventually(lambda: "kfleet_guest_clusters{" in kd.metrics(),
                      timeout=30 * kftest.SLOW, msg="fleet-state metrics")
    browser = Browser()


def ui_url():
    return kd.url + "/ui/"


def test_files_served_with_strict_headers():
    """The dashboard's files: CSP without inline script, nosniff, no framing;
    names that leave the folder or are not the dashboard's get 404."""
    setup()
    c = kd.client()
    r = c.get("/ui", token="")
    assert r.status == 301 and r.headers.get("Location") == "/ui/", r
    r = c.get("/ui/", token="")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html"), r
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    assert "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp, csp
    assert r.headers["X-Content-Type-Options"] == "nosniff", r.headers
    assert "<script" in r.text and "<script>" not in r.text  # no inline script
    r = c.get("/ui/app.js", token="")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/javascript"), r
    for bad in ("/ui/../apis", "/ui/%2e%2e/tokens", "/ui/..%2fkfleet.db", "/ui/.hidden.js",
                "/ui//etc/passwd", "/ui/app.js/", "/ui/tokens", "/ui/kfleetd.log",
                "/ui/%2fetc%2fpasswd.html", "/ui/a/../../../../etc/passwd.html"):
        r = c.get(bad, token="")
        assert r.status in (400, 404), (bad, r.status, r.text)
        assert "admin-token" not in r.text and "root:" not in r.text, bad
    # the session needs a token like any API path, and says who it is
    assert c.get("/ui/session", token="").status == 401
    assert c.get("/ui/session", token=VIEWER).json == {
        "user": "victor", "role": "viewer", "authentication": True}
    # the same Host rule as the API: a rebound name gets nothing
    r = c.get("/ui/", token="", headers={"Host": "attacker.example"})
    assert r.status == 421, r


def test_overview_renders_fleet():
    setup()
    b = browser
    b.do("page")
    b.do("goto", url=ui_url())
    b.wait("#login")
    b.do("fill", sel="#token", value="not-a-token-at-all")
    b.do("click", sel="#login-form button")
    b.wait("#login-error", text="refused")
    b.do("fill", sel="#token", value=ADMIN)
    b.do("click", sel="#login-form button")
    b.wait("#whoami", text="alice (admin)")
    b.do("problems")  # the 401s of the first tries
    assert b.eval("() => sessionStorage.getItem('kfleet.token')") == ADMIN
    b.wait(".unit[data-unit='fra-u1']")
    for region in ZONES:
        b.wait(f".region[data-region='{region}']")
    assert b.count(".unit") == 3
    assert b.text("#tile-clusters .n") == "28"
    assert b.text("#tile-hosts .n") == "17/18"
    # every unit: a bar per resource with the mark drawn
    assert b.count(".unit .res[data-res='cpu'] .bar .mark") == 3
    assert b.count(".unit .res[data-res='memory'] .bar .mark") == 3
    assert "mark 60%" in b.text(".unit[data-unit='hz-u1'] .res[data-res='cpu']")
    # hosts Ready per zone: the silent host's zone shows 1 of 2
    assert "hz-c 1/2" in b.text(".unit[data-unit='hz-u2'] .zones")
    assert "hz-a 2/2" in b.text(".unit[data-unit='hz-u2'] .zones")
    phases = b.text("#phases")
    assert "Pending 1" in phases and "Scheduled" in phases, phases
    assert "G0" in phases and "G1" in phases, phases
    b.shot("overview.png")
    # a Pending cluster: its reason and the explain verdicts per unit
    b.do("goto", url=ui_url() + "#/clusters/huge-0")
    b.wait("#reason")
    b.wait("#explain table")
    assert "Pending" in b.text("#view h1")
    text = b.text("#explain")
    for unit in ("hz-u1", "hz-u2"):
        assert unit in text, text
    assert "fra-u1" not in text  # another region
    b.shot("cluster-pending.png")
    # a placed cluster: unit, grade, members per zone, network ranges
    b.do("goto", url=ui_url() + "#/clusters/web-01")
    b.wait("#members .card[data-zone='hz-a']")
    body = b.text("main")
    assert "Scheduled" in body and "Pod CIDR" in body and "10." in body, body
    assert b.count("#explain") == 0
    b.wait("#conditions tbody tr")
    b.wait("#events tbody tr")  # placement's Event on the cluster
    b.shot("cluster-placed.png")
    b.no_problems()  # no console error, no CSP violation


def test_cli_write_appears_live():
    setup()
    b = browser
    b.sign_in(ui_url(), EDITOR)
    b.do("goto", url=ui_url() + "#/clusters?region=cn-hangzhou")
    b.wait("#clusters tbody tr[data-name='web-00']")
    b.eval("() => { window.kfMarker = 42; return true; }")
    before = b.count("#clusters tbody tr")
    apply(cluster_yaml("live-new"))
    b.wait("#clusters tbody tr[data-name='live-new']")
    assert b.count("#clusters tbody tr") == before + 1
    # its phase follows placement, still without a reload
    b.wait("#clusters tbody tr[data-name='live-new'] .phase", text="Scheduled")
    kfleet("delete", "guestcluster", "live-new")
    b.wait("#clusters tbody tr[data-name='live-new']", state="detached")
    # the overview follows too: a unit cordoned with the CLI's patch
    b.do("goto", url=ui_url() + "#/")
    b.wait(".unit[data-unit='hz-u1']")
    assert "cordoned" not in b.text(".unit[data-unit='hz-u1']")
    apply("apiVersion: kfleet.io/v1\nkind: Unit\nmetadata: {name: hz-u1}\n"
          "spec: {region: cn-hangzhou, zones: [hz-a, hz-b, hz-c], cordoned: true}\n")
    b.wait(".unit[data-unit='hz-u1'] .chip", text="cordoned")
    # and the editor's own write from the page goes through the API's rules
    b.do("click", sel=".unit[data-unit='hz-u1'] button.cordon", text="Uncordon")
    kftest.eventually(lambda: not kd.get(path("units", "hz-u1")).json["spec"].get("cordoned"),
                      timeout=20 * kftest.SLOW, msg="uncordoned from the page")
    assert b.eval("() => window.kfMarker") == 42  # the same page all along
    b.no_problems()


def test_viewer_cannot_change_anything():
    setup()
    b = browser
    b.sign_in(ui_url(), VIEWER)
    b.wait("#readonly", text="read-only")
    b.wait(".unit[data-unit='hz-u1']")
    assert b.count("button.cordon") == 0
    b.do("goto", url=ui_url() + "#/clusters/web-02")
    b.wait("#kubeconfig")
    assert b.count("#delete") == 0 and b.count("#pause") == 0
    assert b.do("attr", sel="#kubeconfig", name="disabled")["value"] is not None
    b.shot("viewer.png")
    # what the page could still send is refused by kfleetd itself
    statuses = b.eval("""async () => {
      const t = sessionStorage.getItem('kfleet.token');
      const hd = {Authorization: `Bearer ${t}`};
      const base = '/apis/kfleet.io/v1';
      const patch = await fetch(`${base}/units/hz-u1`, {method: 'PATCH', headers: Object.assign(
        {'Content-Type': 'application/merge-patch+json'}, hd), body: '{"spec":{"cordoned":true}}'});
      const del = await fetch(`${base}/guestclusters/web-02`, {method: 'DELETE', headers: hd});
      const kc = await fetch(`${base}/guestclusters/web-02/kubeconfig`, {headers: hd});
      const form = await fetch(`${base}/guestclusters`, {method: 'POST', headers: Object.assign(
        {'Content-Type': 'text/plain'}, hd), body: '{}'});
      return [patch.status, del.status, kc.status, form.status];
    }""")
    assert statuses == [403, 403, 403, 415], statuses
    assert not kd.get(path("units", "hz-u1")).json["spec"].get("cordoned")
    assert kd.get(path("guestclusters", "web-02")).status == 200
    # the kubeconfig is the admin's: an admin's page asks and shows what the
    # server answers (here that it has none yet: the lifecycle controller,
    # which issues certificates and endpoints, does not run in this fleet)
    b.sign_in(ui_url(), ADMIN)
    b.do("goto", url=ui_url() + "#/clusters/web-02")
    b.wait("#kubeconfig")
    assert b.do("attr", sel="#kubeconfig", name="disabled")["value"] is None
    b.do("click", sel="#kubeconfig")
    b.wait("#banner", text="Could not download the kubeconfig of web-02: guest cluster")
    assert "yet" in b.text("#banner"), b.text("#banner")  # "no certificates yet", the server's
    b.no_problems(expected=[(503, "Service Unavailable")])


def test_work_in_progress():
    """BroadcastJobs with their progress, live; the kinds that discovery
    lists (Release, Backup, once they exist) get their panel; alerts say
    where they come from."""
    setup()
    b = browser
    b.sign_in(ui_url(), VIEWER)
    b.do("goto", url=ui_url() + "#/work")
    b.wait("#view h2", text="BroadcastJobs")
    assert "Monitoring is not running here" in b.text("#alerts")
    served = {r["name"] for r in kd.get(API).json["resources"]}
    for plural in ("releases", "backups"):
        assert (b.count(f"#view h2:text-is('{plural.capitalize()}')") == 1) == (plural in served)
    job = {"apiVersion": "kfleet.io/v1", "kind": "BroadcastJob", "metadata": {"name": "probe-1"},
           "spec": {"selector": {"matchLabels": {"kfleet.io/cluster": "no-such-cluster"}},
                    "template": {"command": ["true"], "restartPolicy": "Never"}}}
    assert kd.post(path("broadcastjobs"), job).status == 201
    b.wait("#jobs tr[data-name='probe-1'] .progress")
    b.shot("work.png")
    b.no_problems(expected=[(404, "Not Found")])  # /alerts: no monitoring stack here


def test_releases_live_and_admin_only():
    """A Release in Work in progress: its target and a bar per wave, as the
    release controller counts them; a pause with `kfleet rollout pause`
    shows without a reload; the admin's Resume from the page goes through;
    a viewer sees no button and kfleetd refuses the write anyway. A
    cluster's page shows the upgrade the engine reports in status.upgrade
    (written here as the engine would: this fleet runs without it)."""
    setup()
    b = browser
    target = kd.get(path("guestclusters", "eu-0")).json["status"]["version"]
    rel = {"apiVersion": "kfleet.io/v1", "kind": "Release", "metadata": {"name": "rel-eu"},
           # team t1 is eu-0, eu-1, eu-2 (cluster_yaml); the canary bakes an
           # hour, so the release stays Progressing with its second wave to go
           "spec": {"version": target, "selector": {"matchLabels": {"team": "t1"}},
                    "waves": [{"name": "canary", "clusters": ["eu-0"], "bakeTime": "1h"},
                              {"name": "rest", "bakeTime": "1h"}]}}
    r = kd.post(path("releases"), rel)
    assert r.status == 201, (r.status, r.text)
    b.sign_in(ui_url(), ADMIN)
    b.do("goto", url=ui_url() + "#/work")
    card = ".release[data-name='rel-eu']"
    b.wait(card)
    b.wait(f"{card} tr[data-wave='canary'] .updated", text="1/1")
    b.wait(f"{card} tr[data-wave='rest'] .updated", text="/2")
    assert b.count(f"{card} tr[data-wave] .progress") == 2
    assert f"→ {target}" in b.text(f"{card} .target")
    b.wait(f"{card} .chip", text="Progressing")
    b.wait(f"{card} button.release-pause", text="Pause")
    assert b.count(f"{card} button.release-abort") == 1
    b.eval("() => { window.kfMarker = 7; return true; }")
    # paused with the CLI: the page follows through the watch
    kfleet("rollout", "pause", "rel-eu")
    b.wait(f"{card} .paused", text="paused: PausedByUser")
    b.wait(f"{card} .chip", text="Paused")
    b.wait(f"{card} button.release-pause", text="Resume")
    b.shot("releases.png")
    # the admin's Resume from the page is the CLI's merge patch
    b.do("click", sel=f"{card} button.release-pause", text="Resume")
    kftest.eventually(lambda: not kd.get(path("releases", "rel-eu")).json["spec"].get("paused"),
                      timeout=20 * kftest.SLOW, msg="resumed from the page")
    b.wait(f"{card} .paused", state="detached")
    assert b.eval("() => window.kfMarker") == 7  # the same page all along
    b.no_problems(expected=[(404, "Not Found")])  # /alerts: no monitoring stack here
    # a viewer reads the release but gets no button, and the server says no
    b.sign_in(ui_url(), VIEWER)
    b.do("goto", url=ui_url() + "#/work")
    b.wait(f"{card} tr[data-wave='canary'] .progress")
    assert b.count(f"{card} button") == 0
    status = b.eval("""async () => {
      const t = sessionStorage.getItem('kfleet.token');
      const r = await fetch('/apis/kfleet.io/v1/releases/rel-eu', {method: 'PATCH', headers: {
        Authorization: `Bearer ${t}`, 'Content-Type': 'application/merge-patch+json'},
        body: '{"spec":{"paused":true}}'});
      return r.status;
    }""")
    assert status == 403, status
    assert not kd.get(path("releases", "rel-eu")).json["spec"].get("paused")
    b.no_problems(expected=[(404, "Not Found"), (403, "Forbidden")])
    # a cluster's upgrade as the engine reports it, shown live on its page
    b.do("goto", url=ui_url() + "#/clusters/eu-1")
    b.wait("#conditions tbody tr")
    assert b.count("#upgrade") == 0
    c = kd.get(path("guestclusters", "eu-1")).json
    major, minor = target.split(".")[:2]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    nxt = f"{major}.{int(minor) + 1}"
    conds = [x for x in c["status"].get("conditions", []) if x["type"] != "Upgraded"]
    conds.append({"type": "Upgraded", "status": "False", "reason": "InProgress",
                  "message": f"etcd: 1 of 3 members on {nxt}",
                  "lastTransitionTime": now})
    members = [{"name": f"eu-1-etcd-{z}", "component": "etcd", "zone": z, "from": target,
                "to": nxt, "state": state, "since": now}
               for z, state in (("eu-a", "Done"), ("eu-b", "Upgrading"), ("eu-c", "Pending"))]
    r = kd.patch(path("guestclusters", "eu-1", "status"), {"status": {
        "conditions": conds, "upgrade": {"from": target, "to": nxt, "step": "etcd",
                                         "message": "eu-1-etcd-eu-b upgrading",
                                         "startedAt": now,
                                         "members": members}}})
    assert r.status == 200, (r.status, r.text)
    b.wait("#upgrade h3", text=f"Upgrade in progress {target} → {nxt}")
    b.wait("#upgrade tr[data-member='eu-1-etcd-eu-b'] .state", text="Upgrading")
    text = b.text("#upgrade")
    assert "etcd" in text and "False (InProgress)" in text, text
    assert b.count("#upgrade tr[data-member]") == 3
    b.shot("cluster-upgrading.png")
    b.no_problems(expected=[(404, "Not Found"), (403, "Forbidden")])


def test_backups_live_and_restore():
    """Backups on a cluster's page and in Work in progress: an editor's
    "Back up now" writes the Backup `kfleet backup create` writes; the
    backup controller's reason (no location, then no Ready member) shows
    live on both pages; when the snapshot is recorded Succeeded (written
    here as the host's agent would: no agent runs in this fleet) it leaves
    the work page and shows with its size on the cluster's page; an admin's
    Restore goes through kfleetd's own checks (the file's sha256) and the
    restore in progress shows on the page; a viewer gets no button and
    kfleetd refuses its writes."""
    setup()
    b = browser
    name = "web-04"
    b.sign_in(ui_url(), EDITOR)
    b.do("goto", url=ui_url() + f"#/clusters/{name}")
    b.wait("#backup-schedule", text="Scheduled every 6h; the newest 7 are kept.")
    assert b.count(".restore") == 0  # restoring is admin's
    b.eval("() => { window.kfMarker = 11; return true; }")
    b.do("click", sel="#backup-now")

    def made():
        items = kd.get(path("backups"), params={"fieldSelector": f"spec.cluster={name}"}).json[
            "items"]
        asked = [x for x in items if x["metadata"]["name"].startswith(name + "-2")]
        return asked[0] if len(asked) == 1 else None
    bk = kftest.eventually(made, timeout=20 * kftest.SLOW, msg="the page's Backup")
    bname = bk["metadata"]["name"]
    assert bk["metadata"]["labels"] == {"kfleet.io/cluster": name}, bk["metadata"]
    row = f"#backup-list tr[data-name='{bname}']"
    b.wait(f"{row} .phase", text="Pending")
    b.wait(row, text="NoLocation")  # no BackupLocation in cn-hangzhou yet
    # the work page lists it (not Succeeded) with the controller's reason
    b.do("goto", url=ui_url() + "#/work")
    work_row = f"#backups tr[data-name='{bname}']"
    b.wait(work_row, text="NoLocation")
    assert b.count(f"{work_row} a[href='#/clusters/{name}']") == 1
    loc_dir = os.path.join(kd.data_dir, "backups-hz")
    os.makedirs(os.path.join(loc_dir, name), exist_ok=True)
    r = kd.post(path("backuplocations"), {
        "apiVersion": "kfleet.io/v1", "kind": "BackupLocation", "metadata": {"name": "hz-local"},
        "spec": {"region": "cn-hangzhou", "path": loc_dir}})
    assert r.status == 201, (r.status, r.text)
    b.wait(work_row, text="NoReadyMember")  # live: a location now, no Ready etcd member
    # the snapshot, recorded as the agent records it
    snap = os.path.join(loc_dir, name, bname + ".db")
    data = os.urandom(3 * 1024 * 1024 + 100 * 1024)
    with open(snap, "wb") as fh:
        fh.write(data)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    r = kd.patch(path("backups", bname, "status"), {"status": {
        "phase": "Succeeded", "reason": None, "message": "snapshot verified",
        "region": "cn-hangzhou", "location": "hz-local", "path": snap,
        "host": "hz-u1-hz-a-0", "revision": 4242, "size": len(data), "totalKeys": 900,
        "checksum": "sha256:" + hashlib.sha256(data).hexdigest(), "durationMillis": 1500,
        "startTime": now, "completionTime": now}})
    assert r.status == 200, (r.status, r.text)
    b.wait(work_row, state="detached")  # Succeeded: no longer "needs a look"
    # a cluster moving between units: the annotation the migrate action
    # writes (the replace controller then reports its step in the Migrated
    # condition) and the phase lifecycle would write (it does not run here)
    assert b.count("#migrating tr[data-name='web-07']") == 0
    mover = kd.get(path("guestclusters", "web-07")).json
    src = mover["status"]["unit"]
    dst = "hz-u1" if src == "hz-u2" else "hz-u2"
    mid = "1765000000000"
    r = kd.patch(path("guestclusters", "web-07"), {"metadata": {"annotations": {
        "kfleet.io/migrate": f"{mid} {src} {dst}"}}})
    assert r.status == 200, (r.status, r.text)
    r = kd.patch(path("guestclusters", "web-07", "status"), {"status": {"phase": "Migrating"}})
    assert r.status == 200, (r.status, r.text)
    moving = "#migrating tr[data-name='web-07']"
    b.wait(moving, text=f"{src} → {dst}")
    b.wait(moving, text=f"from unit {src} to unit {dst}: 0 of ")  # the replace controller's step
    # ended (as the replace controller records it) and the phase back: gone, live
    r = kd.patch(path("guestclusters", "web-07"), {"metadata": {"annotations": {
        "kfleet.io/migrated": mid}}})
    assert r.status == 200, (r.status, r.text)
    r = kd.patch(path("guestclusters", "web-07", "status"), {"status": {
        "phase": mover["status"]["phase"]}})
    assert r.status == 200, (r.status, r.text)
    b.wait(moving, state="detached")
    assert b.eval("() => window.kfMarker") == 11  # the same page all along
    b.do("goto", url=ui_url() + f"#/clusters/{name}")
    b.wait(f"{row} .phase", text="Succeeded")
    assert "3.1 MiB" in b.text(f"{row} .size"), b.text(row)
    assert "4242" in b.text(row) and "1.5 s" in b.text(row), b.text(row)
    b.shot("cluster-backups.png")
    b.no_problems(expected=[(404, "Not Found")])  # /alerts: no monitoring stack here
    # a viewer: no button; the writes the page could send are refused
    b.sign_in(ui_url(), VIEWER)
    b.do("goto", url=ui_url() + f"#/clusters/{name}")
    b.wait(f"{row} .phase", text="Succeeded")
    assert b.count("#backup-now") == 0 and b.count(".restore") == 0
    statuses = b.eval("""async () => {
      const t = sessionStorage.getItem('kfleet.token');
      const hd = {Authorization: `Bearer ${t}`, 'Content-Type': 'application/json'};
      const base = '/apis/kfleet.io/v1';
      const mk = await fetch(`${base}/backups`, {method: 'POST', headers: hd, body: JSON.stringify(
        {apiVersion: 'kfleet.io/v1', kind: 'Backup', metadata: {name: 'viewer-bk'},
         spec: {cluster: 'web-04'}})});
      const rs = await fetch(`${base}/backups/%s/restore?cluster=web-04`, {method: 'POST',
        headers: hd, body: '{}'});
      return [mk.status, rs.status];
    }""" % bname)
    assert statuses == [403, 403], statuses
    assert "kfleet.io/restore" not in kd.get(path("guestclusters", name)).json["metadata"].get(
        "annotations", {})
    b.no_problems(expected=[(404, "Not Found"), (403, "Forbidden")])
    # the admin's Restore (confirmed): kfleetd checks the file, then the
    # restore shows as in progress, live
    b.sign_in(ui_url(), ADMIN)
    b.do("goto", url=ui_url() + f"#/clusters/{name}")
    assert b.count("#recovery") == 0
    b.do("click", sel=f"{row} button.restore")
    b.wait("#banner", text=f"Restore of {name} from {bname} (revision 4242) started.")
    b.wait("#recovery tr[data-what='restore'] .state", text="in progress")
    assert f"from backup {bname}" in b.text("#recovery"), b.text("#recovery")
    ann = kd.get(path("guestclusters", name)).json["metadata"]["annotations"]
    assert ann["kfleet.io/restore"].split(" ")[1] == bname, ann
    b.shot("cluster-restoring.png")
    # a corrupted snapshot: the server's refusal is what the page says
    with open(snap, "r+b") as fh:
        fh.write(b"x")
    b.do("click", sel=f"{row} button.restore")
    b.wait("#banner", text=f"Could not restore {name}:")
    assert "corrupted" in b.text("#banner"), b.text("#banner")
    b.no_problems(expected=[(404, "Not Found"), (422, "Unprocessable Content")])


def test_admin_downloads_kubeconfig():
    """With every controller (lifecycle issues the guest's PKI and its
    endpoint while it provisions; no agent is needed for that), an admin's
    page downloads the cluster's kubeconfig; a viewer's cannot."""
    setup()
    lo, hi = kftest.port_window()
    with kftest.Kfleetd(tokens=True, controllers=True,
                        args=["--member-ports", f"{lo}-{hi}"]) as full:
        apply(fleet_yaml(), server=full)
        hosts = [f"{u}-{z}-{i}" for u, r in UNITS.items() for z in ZONES[r] for i in range(2)]
        beats = Beater(hosts, server=full)
        try:
            apply(cluster_yaml("kc-1"), server=full)
            kftest.eventually(lambda: full.get(path("guestclusters", "kc-1", "kubeconfig")).status
                              == 200, timeout=60 * kftest.SLOW, msg="the kubeconfig is issued")
            endpoint = full.get(path("guestclusters", "kc-1")).json["status"]["endpoints"][
                "apiServer"]
            b = browser
            b.sign_in(full.url + "/ui/", VIEWER)
            b.do("goto", url=full.url + "/ui/#/clusters/kc-1")
            b.wait("#kubeconfig")
            assert b.do("attr", sel="#kubeconfig", name="disabled")["value"] is not None
            b.sign_in(full.url + "/ui/", ADMIN)
            b.do("goto", url=full.url + "/ui/#/clusters/kc-1")
            b.wait("#view dd", text=endpoint)  # the endpoint, under "API server endpoint"
            got = b.do("download", sel="#kubeconfig")
            assert got["name"] == "kc-1.kubeconfig", got["name"]
            text = got["text"]
            assert "kind: Config" in text and endpoint in text, text[:1200]
            assert "client-key-data:" in text
            b.no_problems()
        finally:
            beats.close()


def create_clusters(port, n, version, threads=8):
    """n GuestClusters through the API, over keep-alive connections: region
    r(i % 4), label team=t(i % 7), and every tenth names its version."""
    errors = []

    def work(k):
        c = kftest.Client(port, token=ADMIN)
        for i in range(k, n, threads):
            spec = {"region": f"r{i % 4}", "profile": "standard", "expectedNodes": 5,
                    "network": {"vpc": "vpc-a"}}
            if i % 10 == 0:
                spec["version"] = version
            body = {"apiVersion": "kfleet.io/v1", "kind": "GuestCluster",
                    "metadata": {"name": f"c{i:05d}", "labels": {"team": f"t{i % 7}"}},
                    "spec": spec}
            r = c.post(path("guestclusters"), body)
            if r.status != 201:
                errors.append(r)
                break
        c.close()
    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]


def test_10000_clusters_page_and_filter():
    setup()
    with kftest.Kfleetd(tokens=True, store="memory") as big:
        # a version the catalog runs, as the standard Profile says
        version = kd.get(path("profiles", "standard")).json["spec"]["defaultVersion"]
        create_clusters(big.port, 10000, version)
        b = browser
        url = big.url + "/ui/"
        b.sign_in(url, ADMIN)
        b.do("goto", url=url + "#/clusters")
        b.wait("#clusters tbody tr[data-name='c00000']")
        b.wait("#range", text="rows 1–100, page 1")  # drawn after the rows
        assert b.count("#clusters tbody tr") == 100
        b.do("click", sel="#next")
        b.wait("#range", text="page 2")
        b.wait("#clusters tbody tr[data-name='c00100']")
        assert b.text("#range") == "rows 101–200, page 2"
        b.do("click", sel="#prev")
        b.wait("#range", text="page 1")
        b.shot("clusters-10000.png", full=False)
        # filters: region r2 and a version (every 10th, so every 20th of r2)
        b.do("goto", url=url + f"#/clusters?region=r2&version={version}&limit=500")
        b.wait("#clusters tbody tr[data-name='c00010']")
        names = b.eval("() => [...document.querySelectorAll('#clusters tbody tr')]"
                       ".map((r) => r.dataset.name)")
        want = [f"c{i:05d}" for i in range(10000) if i % 4 == 2 and i % 10 == 0]
        assert names == want, (len(names), names[:5])
        assert b.do("attr", sel="#next", name="disabled")["value"] is not None
        # 2,500 clusters of r2 walked page by page, 500 at a time
        b.do("goto", url=url + "#/clusters?region=r2&limit=500")
        seen = []
        for page in range(1, 6):
            b.wait("#range", text=f"page {page}")
            rows = b.eval("() => [...document.querySelectorAll('#clusters tbody tr')]"
                          ".map((r) => r.dataset.name)")
            seen += rows
            if page < 5:
                b.do("click", sel="#next")
        assert b.do("attr", sel="#next", name="disabled")["value"] is not None
        assert seen == [f"c{i:05d}" for i in range(2, 10000, 4)], len(seen)
        # a label selector and a name in the search box
        b.do("goto", url=url + "#/clusters")
        b.wait("#filters")
        b.do("fill", sel="#filters input[name='q']", value="team=t3")
        b.do("press", sel="#filters input[name='q']", key="Enter")
        # the unfiltered first page holds c00000..c00099: wait until the
        # filtered one (team t3: c00003, c00010, c00017, ...) has replaced it
        b.wait("#clusters tbody tr[data-name='c00000']", state="detached")
        b.wait("#clusters tbody tr[data-name='c00003']")
        b.wait("#range", text="rows 1–100, page 1")
        b.do("fill", sel="#filters input[name='q']", value="c09999")
        b.do("press", sel="#filters input[name='q']", key="Enter")
        b.wait("#range", text="rows 1–1, page 1")
        # the search box takes the start of a name: c099 is c09900..c09999,
        # one full page and no next
        b.do("fill", sel="#filters input[name='q']", value="c099")
        b.do("press", sel="#filters input[name='q']", key="Enter")
        b.wait("#range", text="rows 1–100, page 1")
        names = b.eval("() => [...document.querySelectorAll('#clusters tbody tr')]"
                       ".map((r) => r.dataset.name)")
        assert names == [f"c{i:05d}" for i in range(9900, 10000)], (len(names), names[:3])
        assert b.do("attr", sel="#next", name="disabled")["value"] is not None
        # the API's own answer: the prefix pages like every selector
        c = kftest.Client(big.port, token=ADMIN)
        first = c.get(path("guestclusters") + "?limit=30&fieldSelector=" +
                      urllib.parse.quote("metadata.name^=c012")).json
        assert [x["metadata"]["name"] for x in first["items"]] == [
            f"c{i:05d}" for i in range(1200, 1230)]
        second = c.get(path("guestclusters") + "?limit=100&fieldSelector=" +
                       urllib.parse.quote("metadata.name^=c012") + "&continue=" +
                       urllib.parse.quote(first["metadata"]["continue"])).json
        assert [x["metadata"]["name"] for x in second["items"]] == [
            f"c{i:05d}" for i in range(1230, 1300)]
        assert not second["metadata"].get("continue")
        r = c.get(path("guestclusters") + "?fieldSelector=" + urllib.parse.quote("spec.region^=r"))
        assert r.status == 400 and "metadata.name only" in r.json["message"], r.text
        c.close()
        b.shot("clusters-filtered.png", full=False)
        # the overview without the monitoring controller's counts (no
        # controllers here) counts from paged LISTs: the same totals
        b.do("goto", url=url + "#/")
        b.wait("#tile-clusters .n", text="10,000")
        b.no_problems()


if __name__ == "__main__":
    why = missing()
    if why:
        print(f"SKIP test_ui: {why}", flush=True)
        sys.exit(77)
    kftest.main(globals(), shared=("browser", "beater", "kd"))
