"""test_api_metrics.py: /metrics after some traffic passes `promtool check
metrics` and reports what an operator looks for: requests by verb, resource
and code, latency, watchers, the store's revision and size, process
memory; with authentication on, /metrics needs a token."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402


def series(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_metrics_content_and_promtool():
    kftest.require(shutil.which("promtool"), "promtool is not installed")
    with kftest.Kfleetd(tokens=True) as kd:
        for i in range(3):
            assert kd.post(path("regions"), sample("Region", f"m{i}")).status == 201
        assert kd.get(path("regions", "nope")).status == 404
        assert kd.get(path("regions")).status == 200
        assert kd.get(path("regions"), token="").status == 401
        w = kd.watch(path("regions"))
        w.next()
        r = kd.get("/metrics", token="")
        assert r.status == 401, r
        r = kd.get("/metrics")
        assert r.status == 200, r
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
        p = subprocess.run(["promtool", "check", "metrics"], input=r.data, capture_output=True)
        assert p.returncode == 0, (p.stdout, p.stderr)
        s = series(r.text)
        assert s['kfleet_api_requests_total{verb="create",resource="regions",code="201"}'] == 3
        assert s['kfleet_api_requests_total{verb="get",resource="regions",code="404"}'] == 1
        assert s['kfleet_api_requests_total{verb="list",resource="regions",code="401"}'] == 1
        assert s['kfleet_api_request_duration_seconds_count{verb="create",resource="regions"}'] == 3
        assert s['kfleet_api_watchers{resource="regions"}'] == 1
        assert s['kfleet_api_watch_events_total{resource="regions",type="ADDED"}'] >= 1
        assert s["kfleet_store_revision"] >= 3 and s["kfleet_store_keys"] >= 3
        assert s["kfleet_store_size_bytes"] > 0 and s["kfleet_store_up"] == 1
        assert s["process_resident_memory_bytes"] > 1e6
        assert s["kfleet_api_tokens"] == len(kftest.TOKENS)
        w.close()


if __name__ == "__main__":
    kftest.main(globals())
