"""test_capacity.py: capacity and placement end to end, as a newcomer does
it: a real kfleetd with its controllers, `kfleet apply -f` of a region,
three units of three zones with hosts (kept Ready by heartbeats from this
test), two IPPools, and about a hundred clusters of mixed grades and
profiles; then what `kfleet get`, `kfleet explain` and `kfleet plan` show
and what the objects say: clusters spread over the units, no unit above its
water level, no overlapping ranges, members spread over zones, the clusters
that did not fit Pending with reasons an operator can act on. Finally a
host that stops heartbeating goes NotReady after the grace (nothing is
moved) and comes back."""

import ipaddress
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import API, path  # noqa: E402

KFLEET = os.path.join(kftest.BIN_DIR, "kfleet")
GRACE = 2.0 * kftest.SLOW
UNITS = ("hz-u1", "hz-u2", "hz-u3")
ZONES = ("hz-a", "hz-b", "hz-c")
kd = None
beater = None


class Beater:
    """Sends batch heartbeats for every host but the silenced ones."""

    def __init__(self, hosts):
        self.hosts = list(hosts)
        self.silent = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        client = kd.client()
        while not self.stop.is_set():
            names = [h for h in self.hosts if h not in self.silent]
            try:
                client.post(API + "/heartbeats", {"hosts": names})
            except OSError:
                client = kd.client()
            self.stop.wait(GRACE / 5)


def kfleet(*args, expect=0):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFLEET_")}
    env["KFLEET_SERVER"] = kd.url
    env["HOME"] = kd.data_dir
    p = subprocess.run([KFLEET, *args], capture_output=True, text=True, env=env,
                       timeout=120 * kftest.SLOW)
    assert p.returncode == expect, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def fleet_yaml():
    docs = ["""apiVersion: kfleet.io/v1
kind: Region
metadata: {name: cn-hangzhou}
spec:
  zones: [hz-a, hz-b, hz-c]
""", """apiVersion: kfleet.io/v1
kind: Region
metadata: {name: eu-west}
spec:
  zones: [eu-a, eu-b, eu-c]
  complianceTags: [gdpr]
"""]
    for i, u in enumerate(UNITS):
        features = "[gpu]" if u == "hz-u3" else "[]"
        docs.append(f"""apiVersion: kfleet.io/v1
kind: Unit
metadata: {{name: {u}}}
spec:
  region: cn-hangzhou
  zones: [hz-a, hz-b, hz-c]
  features: {features}
  costPerCore: {1 + i * 0.1}
""")
        for z in ZONES:
            for h in range(3):
                docs.append(f"""apiVersion: kfleet.io/v1
kind: Host
metadata: {{name: {u}-{z}-{h}}}
spec:
  role: meta
  unit: {u}
  zone: {z}
  capacity: {{cpu: "32", memory: 128Gi}}
""")
    for name, cidr, svc in (("vpc-a", "10.0.0.0/9", "172.16.0.0/16"),
                            ("vpc-b", "10.128.0.0/9", "172.20.0.0/16")):
        docs.append(f"""apiVersion: kfleet.io/v1
kind: IPPool
metadata: {{name: {name}}}
spec:
  vpc: {name}
  region: cn-hangzhou
  cidrs: ["{cidr}"]
  serviceCIDRs: ["{svc}"]
""")
    return "---\n".join(docs)


def clusters_yaml():
    """98 clusters that should be placeable and a few that cannot be."""
    mix = ([("G0", 5, "standard")] * 40 + [("G1", 50, "standard")] * 20 +
           [("G1", 40, "serverless")] * 6 + [("G1", 60, "windows")] * 6 +
           [("G2", 200, "standard")] * 12 + [("G3", 400, "standard")] * 5 +
           [("G1", 60, "ai")] * 4 + [("G0", 8, "edge")] * 2)
    docs = []
    for i, (_, nodes, profile) in enumerate(mix):
        vpc = "vpc-a" if i % 2 == 0 else "vpc-b"
        docs.append(f"""apiVersion: kfleet.io/v1
kind: GuestCluster
metadata: {{name: c{i:03d}, labels: {{profile: {profile}}}}}
spec:
  region: cn-hangzhou
  profile: {profile}
  expectedNodes: {nodes}
  network: {{vpc: {vpc}}}
""")
    for i in range(2):  # gdpr in a region without the tag
        docs.append(f"""apiVersion: kfleet.io/v1
kind: GuestCluster
metadata: {{name: gdpr-{i}}}
spec:
  region: cn-hangzhou
  compliance: [gdpr]
  network: {{vpc: vpc-a}}
""")
    return "---\n".join(docs), len(mix) + 2


def setup():
    global kd, beater
    if kd is not None:
        return kd
    # every controller but lifecycle: it would take placed clusters on to
    # Provisioning and hold their members for agents, and this fleet's hosts
    # are heartbeats without agents (test_agents_* run the whole path)
    kd = kftest.Kfleetd(controllers="*,-lifecycle",
                        args=["--host-grace", f"{int(GRACE * 1000)}ms"]).start()
    d = tempfile.mkdtemp(prefix="kftest-capacity-", dir=kd.data_dir)
    with open(os.path.join(d, "fleet.yaml"), "w") as f:
        f.write(fleet_yaml())
    out = kfleet("apply", "-f", os.path.join(d, "fleet.yaml"))
    assert "unit/hz-u3 created" in out and "ippool/vpc-b created" in out, out
    hosts = [f"{u}-{z}-{h}" for u in UNITS for z in ZONES for h in range(3)]
    beater = Beater(hosts)
    kftest.eventually(lambda: all(kd.get(path("hosts", h)).json.get("status", {}).get("ready")
                                  for h in hosts), timeout=20 * kftest.SLOW, msg="hosts Ready")
    text, n = clusters_yaml()
    with open(os.path.join(d, "clusters.yaml"), "w") as f:
        f.write(text)
    out = kfleet("apply", "-f", os.path.join(d, "clusters.yaml"))
    assert out.count("created") == n, out

    def settled():
        items = kd.get(path("guestclusters")).json["items"]
        done = [c for c in items if c.get("status", {}).get("phase") in ("Scheduled", "Pending")
                and c["status"].get("conditions")]
        return len(done) == n
    kftest.eventually(settled, timeout=120 * kftest.SLOW, msg="every cluster decided")
    return kd


def clusters():
    return kd.get(path("guestclusters")).json["items"]


def test_clusters_placed_or_pending_with_reasons():
    setup()
    items = clusters()
    placed = [c for c in items if c["status"].get("unit")]
    pending = [c for c in items if c["status"]["phase"] == "Pending"]
    assert len(placed) + len(pending) == len(items)
    assert len(placed) >= 80, [c["metadata"]["name"] for c in pending]
    for c in pending:
        cond = [x for x in c["status"]["conditions"] if x["type"] == "Scheduled"][0]
        assert cond["status"] == "False" and cond["message"].startswith("no unit in"), c
    by_name = {c["metadata"]["name"]: c for c in items}
    for name in ("gdpr-0", "gdpr-1"):
        msg = by_name[name]["status"]["message"]
        assert 'carries compliance tag "gdpr"' in msg, msg
    for c in items:
        if c["metadata"].get("labels", {}).get("profile") == "edge":
            assert c["status"]["phase"] == "Pending", c
            assert 'lacks feature "edge"' in c["status"]["message"], c
        if c["metadata"].get("labels", {}).get("profile") == "ai" and c["status"].get("unit"):
            assert c["status"]["unit"] == "hz-u3", c  # the only gpu unit
    # the table a newcomer reads
    out = kfleet("get", "guestclusters")
    assert "Scheduled" in out and "Pending" in out and "hz-u1" in out, out


def test_spread_over_units_and_under_the_water_level():
    setup()
    per_unit = {}
    for c in clusters():
        if c["status"].get("unit"):
            per_unit[c["status"]["unit"]] = per_unit.get(c["status"]["unit"], 0) + 1
    assert set(per_unit) == set(UNITS), per_unit
    assert min(per_unit.values()) >= 10, per_unit

    def units_settled():
        us = kd.get(path("units")).json["items"]
        return all(u.get("status", {}).get("clusters") == per_unit[u["metadata"]["name"]]
                   for u in us)
    kftest.eventually(units_settled, timeout=30 * kftest.SLOW, msg="unit status up to date")
    for u in kd.get(path("units")).json["items"]:
        st = u["status"]
        assert st["aboveWaterLevel"] is False, u
        assert st["waterLevel"]["cpu"] <= 0.6 and st["waterLevel"]["memory"] <= 0.6, u
        assert st["readyHosts"] == 9 and st["zonesReady"] == list(ZONES), u
        assert any(x["type"] == "AboveWaterLevel" and x["status"] == "False"
                   for x in st["conditions"]), u
    # `kfleet get units`: CPU% and MEM% under the mark
    rows = [line.split() for line in kfleet("get", "units").splitlines()[1:] if line.strip()]
    assert len(rows) == 3, rows
    for row in rows:
        cpu, mem = float(row[4].rstrip("%")), float(row[5].rstrip("%"))
        assert 0 < cpu <= 60 and 0 < mem <= 60, row
    # the biggest of them is close to it: placement used the room it had
    assert max(float(r[4].rstrip("%")) for r in rows) > 40, rows


def test_region_status():
    """A Region's status sums its units: units, hosts, ready hosts, clusters
    placed; `kfleet get regions` shows them."""
    setup()
    placed = sum(1 for c in clusters() if c["status"].get("unit"))

    def region_settled():
        st = kd.get(path("regions", "cn-hangzhou")).json.get("status", {})
        return st if st.get("clusters") == placed else None
    st = kftest.eventually(region_settled, timeout=30 * kftest.SLOW, msg="region status")
    assert (st["units"], st["hosts"], st["readyHosts"]) == (3, 27, 27), st
    assert st["observedGeneration"] == 1, st
    eu = kftest.eventually(lambda: kd.get(path("regions", "eu-west")).json.get("status"),
                           timeout=30 * kftest.SLOW, msg="eu-west status")
    assert (eu["units"], eu["hosts"], eu["clusters"]) == (0, 0, 0), eu
    rows = {line.split()[0]: line.split() for line in kfleet("get", "regions").splitlines()}
    header = rows["NAME"]
    row = dict(zip(header, rows["cn-hangzhou"]))
    assert row["UNITS"] == "3" and row["CLUSTERS"] == str(placed), (header, rows)


def test_ranges_never_overlap():
    setup()
    pods = {"vpc-a": [], "vpc-b": []}
    for c in clusters():
        net = c["status"].get("network")
        if not c["status"].get("unit"):
            continue
        assert net, c
        own = [ipaddress.ip_network(net[k]) for k in ("nodeCIDR", "podCIDR", "serviceCIDR")]
        for i in range(3):
            for j in range(i):
                assert not own[i].overlaps(own[j]), (c["metadata"]["name"], net)
        assert str(ipaddress.ip_network(net["serviceCIDR"])[1]) == net["kubernetesServiceIP"]
        assert str(ipaddress.ip_network(net["serviceCIDR"])[10]) == net["dnsServiceIP"]
        pods[c["spec"]["network"]["vpc"]].append((own[1], own[0], c["metadata"]["name"]))
    for vpc, nets in pods.items():
        ranges = [n for pod, node, _ in nets for n in (pod, node)]
        ranges.sort(key=lambda n: int(n.network_address))
        for a, b in zip(ranges, ranges[1:]):
            assert not a.overlaps(b), (vpc, a, b)
    # the IPPools sum up what their clusters hold
    def summed():
        pools = kd.get(path("ippools")).json["items"]
        return sum(p.get("status", {}).get("clusters", 0) for p in pools) == \
            sum(len(n) for n in pods.values())
    kftest.eventually(summed, timeout=10 * kftest.SLOW, msg="IPPool summaries")
    out = kfleet("get", "ippools")
    assert "CLUSTERS" in out and "vpc-a" in out, out


def test_members_bound_and_spread():
    setup()
    members = kd.get(path("controlplanemembers")).json["items"]
    by_cluster = {}
    for m in members:
        by_cluster.setdefault(m["spec"]["cluster"], []).append(m)
    for c in clusters():
        name = c["metadata"]["name"]
        if not c["status"].get("unit"):
            assert name not in by_cluster, name
            continue
        ms = by_cluster[name]
        assert len(ms) == c["status"]["members"]["desired"], (name, len(ms))
        etcd = [m for m in ms if m["spec"]["component"] == "etcd"]
        assert sorted(m["spec"]["zone"] for m in etcd) == list(ZONES), name
        api = [m for m in ms if m["spec"]["component"] == "kube-apiserver"]
        assert len({m["spec"]["zone"] for m in api}) == min(len(api), 3), name
        for m in ms:
            assert m["spec"]["host"].startswith(c["status"]["unit"] + "-" + m["spec"]["zone"]), m
    # serverless runs three apiservers and a virtual-kubelet pair
    sl = [c for c in clusters() if c["metadata"].get("labels", {}).get("profile") == "serverless"
          and c["status"].get("unit")][0]
    comps = sorted(m["spec"]["component"] for m in by_cluster[sl["metadata"]["name"]])
    assert comps.count("kube-apiserver") == 3 and comps.count("virtual-kubelet") == 2, comps


def test_explain_and_plan():
    setup()
    out = kfleet("explain", "guestcluster", "gdpr-0")
    assert "UNIT" in out and "VERDICT" in out, out
    for u in UNITS:
        assert u in out, out
    assert 'failed: Compliance' in out and "decision: no unit in cn-hangzhou" in out, out
    placed = [c for c in clusters() if c["status"].get("unit")][0]
    out = kfleet("explain", "gc", placed["metadata"]["name"])
    assert f"is placed in unit {placed['status']['unit']}" in out and "CHOSEN" in out, out
    assert "spread(x3)" in out and "etcd-0 -> " in out, out
    out = kfleet("explain", "gc", placed["metadata"]["name"], "-o", "json")
    assert '"kind": "PlacementExplanation"' in out, out
    kfleet("explain", "gc", "no-such", expect=4)

    out = kfleet("plan", "--region", "cn-hangzhou", "--add", "100xG1", "--add", "10xG3",
                 "--host-cpu", "32", "--host-memory", "128Gi")
    assert out.startswith("region cn-hangzhou: demand 10 x G3 + 100 x G1 (110 clusters)"), out
    assert "new-1" in out and "hz-u1" in out, out
    assert "new unit" in out, out
    out = kfleet("plan", "--region", "cn-hangzhou", "--add", "lots", expect=1)


def test_unit_selector_and_zones():
    """spec.placement.unitSelector and zones: only units whose labels match,
    members only in the named zones (3 needed for HA); reasons that say so."""
    setup()
    # label the unit with the most room "tier: gold"
    us = kd.get(path("units")).json["items"]
    gold = min(us, key=lambda u: u["status"]["waterLevel"]["cpu"])["metadata"]["name"]
    r = kd.patch(path("units", gold), {"metadata": {"labels": {"tier": "gold"}}},
                 content_type="application/merge-patch+json")
    assert r.status == 200, r

    def gc(name, placement):
        return {"apiVersion": "kfleet.io/v1", "kind": "GuestCluster",
                "metadata": {"name": name},
                "spec": {"region": "cn-hangzhou", "expectedNodes": 3,
                         "network": {"vpc": "vpc-a"}, "placement": placement}}

    def decided(name):
        c = kd.get(path("guestclusters", name)).json
        return c if c.get("status", {}).get("phase") in ("Scheduled", "Pending") else None

    made = {"sel-gold": {"unitSelector": {"matchLabels": {"tier": "gold"}}},
            "sel-none": {"unitSelector": {"matchLabels": {"tier": "platinum"}}},
            "zones-2": {"zones": ["hz-a", "hz-b"]},
            "zones-3": {"zones": ["hz-c", "hz-b", "hz-a"]}}
    for name, placement in made.items():
        assert kd.post(path("guestclusters"), gc(name, placement)).status == 201
    try:
        # the label and the cluster reach placement through two informers:
        # it may see the cluster first and say Pending, until the label
        # arrives (an event that wakes it)
        c = kftest.eventually(lambda: (lambda x: x if x and x["status"]["phase"] == "Scheduled"
                                       else None)(decided("sel-gold")), timeout=30,
                              msg=lambda: f"sel-gold not Scheduled: {decided('sel-gold')}")
        assert c["status"]["unit"] == gold, c["status"]
        c = kftest.eventually(lambda: decided("sel-none"), timeout=30, msg="sel-none undecided")
        assert c["status"]["phase"] == "Pending", c["status"]
        msg = [x["message"] for x in c["status"]["conditions"] if x["type"] == "Scheduled"]
        assert msg == ["no unit in region cn-hangzhou matches the cluster's unitSelector "
                       "(tier=platinum)"], c["status"]["conditions"]
        out = kfleet("explain", "gc", "sel-none")
        assert "unit's labels do not match the cluster's unitSelector (tier=platinum)" in out, out
        c = kftest.eventually(lambda: decided("zones-2"), timeout=30, msg="zones-2 undecided")
        assert c["status"]["phase"] == "Pending", c["status"]
        msg = [x["message"] for x in c["status"]["conditions"] if x["type"] == "Scheduled"][0]
        assert "usable zones among the cluster's, grade G0 needs 3" in msg, msg
        c = kftest.eventually(lambda: decided("zones-3"), timeout=30, msg="zones-3 undecided")
        assert c["status"]["phase"] == "Scheduled", c["status"]
    finally:
        for name in made:
            kfleet("delete", "gc", name, "--wait", "--timeout", "60s")
        kd.patch(path("units", gold), {"metadata": {"labels": {"tier": None}}},
                 content_type="application/merge-patch+json")


def test_host_grace_notready_and_back():
    setup()
    host = "hz-u2-hz-b-1"
    members_before = [m["metadata"]["name"] for m in kd.get(path("controlplanemembers")).json["items"]
                      if m["spec"]["host"] == host]
    beater.silent.add(host)
    kftest.eventually(lambda: kd.get(path("hosts", host)).json["status"]["ready"] is False,
                      timeout=20 * kftest.SLOW, msg="NotReady after the grace")
    h = kd.get(path("hosts", host)).json
    assert "no heartbeat for" in h["status"]["message"], h
    assert ("its members stay where they are" in h["status"]["message"]) == bool(members_before)
    kftest.eventually(lambda: kd.get(path("units", "hz-u2")).json["status"]["readyHosts"] == 8,
                      timeout=20 * kftest.SLOW, msg="the unit counts 8 Ready hosts")
    # nothing moved
    members_after = [m["metadata"]["name"] for m in kd.get(path("controlplanemembers")).json["items"]
                     if m["spec"]["host"] == host]
    assert members_after == members_before
    out = kfleet("get", "hosts", "-l", "kfleet.io/unit=hz-u2")
    assert any(line.startswith(host) and " False " in line for line in out.splitlines()), out
    beater.silent.discard(host)
    kftest.eventually(lambda: kd.get(path("hosts", host)).json["status"]["ready"] is True,
                      timeout=20 * kftest.SLOW, msg="Ready again")


def test_delete_releases():
    setup()
    placed = [c for c in clusters() if c["status"].get("unit")][-1]
    name = placed["metadata"]["name"]
    pod = placed["status"]["network"]["podCIDR"]
    out = kfleet("delete", "gc", name, "--wait", "--timeout", "60s")
    assert name in out, out
    assert all(m["spec"]["cluster"] != name
               for m in kd.get(path("controlplanemembers")).json["items"])
    # its ranges are free again: a new cluster of the same size gets them
    assert kd.get(path("guestclusters", name)).status == 404


def test_zz_shutdown():
    setup()
    beater.stop.set()
    beater.thread.join(timeout=10)
    assert kd.stop() == 0


if __name__ == "__main__":
    kftest.main(globals())
