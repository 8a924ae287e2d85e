"""test_agent_artifacts.py: a meta host that lacks a Kubernetes release
fetches it from an artifact source and checks it against the catalog.

Real processes: kfleetd, a kfleet-agent with an empty --kubernetes-dir and
--artifacts pointing at an HTTP server (on loopback, in this process) that
serves the releases scripts/install-kubernetes built: 1.37 as built, 1.36
with one file that is not what the catalog says. What a user sees is
asserted: the release that matches is installed whole (VERSION, every
program, SHA256SUMS that `sha256sum -c` accepts) and reported on the Host
(status.kubernetesVersions); the one that does not is not installed, not
reported, and the agent's log says which file and both hashes.

An agent with a short --artifacts-interval looks again while it runs: a
release the source gains later is fetched and reported on the Host
without a restart, and so is a release whose folder was removed from the
host. A release refused for a wrong file is not downloaded again round
after round: the agent asks the source (HEAD) whether that file changed,
and fetches the release again only once it has.
"""

import functools
import http.server
import os
import shutil
import subprocess
import threading

import kftest
import lifecycle_fixture as lf
from kftest import eventually, path

PROGRAMS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


class Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; each request's method, path and status go to the
    server's `requests` list."""

    def log_message(self, *args):
        pass

    def log_request(self, code="-", size="-"):
        self.server.requests.append((self.command, self.path, int(code)))


def serve(directory):
    handler = functools.partial(Quiet, directory=directory)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.requests = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def require_releases():
    for minor in ("1.36", "1.37"):
        for p in PROGRAMS:
            kftest.require(os.access(f"/opt/kfleet/kubernetes/{minor}/bin/{p}", os.X_OK),
                           f"Kubernetes {minor} is not installed (scripts/install-kubernetes)")


def link_release(src, minor):
    os.makedirs(os.path.join(src, minor, "bin"))
    for p in PROGRAMS:
        os.symlink(f"/opt/kfleet/kubernetes/{minor}/bin/{p}", os.path.join(src, minor, "bin", p))


def tamper(src, minor="1.36"):
    """The mirror serves a kubectl of its own for minor: not the catalog's."""
    bad = os.path.join(src, minor, "bin", "kubectl")
    os.unlink(bad)
    with open(bad, "w") as fh:
        fh.write("#!/bin/sh\necho not kubectl\n")
    return bad


def fetching_agent(f, name, srv, k8s, interval=None):
    """A meta agent with an empty --kubernetes-dir k8s and srv as its
    artifact source (looking again every interval, if given), started."""
    args = ["--kubernetes-dir", k8s, "--artifacts", f"http://127.0.0.1:{srv.server_address[1]}",
            "--capacity-cpu", "4", "--capacity-memory", "8Gi"]
    if interval:
        args += ["--artifacts-interval", interval]
    return kftest.Agent(f.kd, name, zone="a", token="agent-token-0123456789", args=args).start()


def held(kd, name):
    r = kd.get(path("hosts", name))
    return sorted(r.json.get("status", {}).get("kubernetesVersions", [])) if r.status == 200 \
        else None


def test_fetch_checks_every_file():
    require_releases()
    with lf.Fleet() as f:
        src = os.path.join(f.tmp, "artifacts")
        for minor in ("1.36", "1.37"):
            link_release(src, minor)
        tamper(src)  # a mirror that serves a different kubectl for 1.36
        srv = serve(src)
        try:
            k8s = os.path.join(f.tmp, "k8s")
            ag = fetching_agent(f, "h-art", srv, k8s)
            try:
                host = eventually(lambda: (lambda r: r.json if r.status == 200 and
                                           "kubernetesVersions" in r.json.get("status", {})
                                           else None)(f.kd.get(path("hosts", "h-art"))),
                                  timeout=300 * kftest.SLOW,
                                  msg="h-art never reported its releases:\n" + ag.log_tail(20))
                assert host["status"]["kubernetesVersions"] == ["1.37.2"], host["status"]
                with open(os.path.join(k8s, "1.37", "VERSION")) as fh:
                    assert fh.read().strip() == "v1.37.2"
                p = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=os.path.join(k8s, "1.37"),
                                   capture_output=True, text=True, timeout=120)
                assert p.returncode == 0 and p.stdout.count(": OK") == len(PROGRAMS), p
                assert all(os.access(os.path.join(k8s, "1.37", "bin", x), os.X_OK)
                           for x in PROGRAMS)
                # the tampered release is not there, not even half
                assert sorted(os.listdir(k8s)) == ["1.37"], os.listdir(k8s)
                log = ag.log()
                assert "1.36/bin/kubectl has SHA-256" in log and "but the catalog says" in log, log
                assert "Kubernetes v1.36.3 not installed" in log, log
            finally:
                ag.close()
        finally:
            srv.shutdown()
            srv.server_close()


def wait_for(fn, what, kd, ag):
    try:
        return eventually(fn, timeout=300)
    except AssertionError:
        raise AssertionError(f"{what}; the host holds {held(kd, ag.name)}; agent log:\n"
                             + ag.log_tail(30)) from None


def test_fetch_again_while_running():
    require_releases()
    with lf.Fleet() as f:
        src = os.path.join(f.tmp, "artifacts")
        link_release(src, "1.37")  # 1.36 is not on the source yet
        srv = serve(src)
        try:
            k8s = os.path.join(f.tmp, "k8s")
            ag = fetching_agent(f, "h-again", srv, k8s, interval="2s")
            try:
                wait_for(lambda: held(f.kd, "h-again") == ["1.37.2"], "1.37 not reported", f.kd,
                         ag)
                assert sorted(os.listdir(k8s)) == ["1.37"], os.listdir(k8s)
                # the source gains 1.36: fetched and reported, no restart
                link_release(src, "1.36")
                wait_for(lambda: held(f.kd, "h-again") == ["1.36.3", "1.37.2"],
                         "1.36, added to the source later, not reported", f.kd, ag)
                with open(os.path.join(k8s, "1.36", "VERSION")) as fh:
                    assert fh.read().strip() == "v1.36.3"
                # 1.36's folder is removed from the host: fetched again
                shutil.rmtree(os.path.join(k8s, "1.36"))
                wait_for(lambda: os.path.exists(os.path.join(k8s, "1.36", "VERSION")),
                         "1.36, removed from the host, not fetched again", f.kd, ag)
                p = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=os.path.join(k8s, "1.36"),
                                   capture_output=True, text=True, timeout=120)
                assert p.returncode == 0 and p.stdout.count(": OK") == len(PROGRAMS), p
                assert held(f.kd, "h-again") == ["1.36.3", "1.37.2"]
                log = ag.log()
                assert log.count("installed Kubernetes v1.36.3") == 2, log
                assert log.count("installed Kubernetes v1.37.2") == 1, log
                # it kept heartbeating meanwhile
                assert f.kd.get(path("hosts", "h-again")).json["status"].get("ready") is True
            finally:
                ag.close()
        finally:
            srv.shutdown()
            srv.server_close()


def test_refused_release_not_fetched_again_until_it_changes():
    require_releases()
    with lf.Fleet() as f:
        src = os.path.join(f.tmp, "artifacts")
        link_release(src, "1.37")
        link_release(src, "1.36")
        bad = tamper(src)
        srv = serve(src)
        try:
            k8s = os.path.join(f.tmp, "k8s")
            ag = fetching_agent(f, "h-memo", srv, k8s, interval="1s")
            try:
                wait_for(lambda: held(f.kd, "h-memo") == ["1.37.2"], "1.37 not reported", f.kd,
                         ag)

                def gets_136():
                    return [r for r in list(srv.requests)
                            if r[0] == "GET" and r[1].startswith("/1.36/")]

                def heads():
                    return [r for r in list(srv.requests) if r[0] == "HEAD"]
                # three more rounds: each asks for the refused file alone, and
                # the source answers it is the same
                wait_for(lambda: len(heads()) >= 3, "no HEAD of the refused file", f.kd, ag)
                assert all(r == ("HEAD", "/1.36/bin/kubectl", 200) for r in heads()), heads()
                first = gets_136()
                assert ("GET", "/1.36/bin/kubectl", 200) in first, srv.requests
                assert first.count(("GET", "/1.36/bin/kubectl", 200)) == 1, first
                n = len(heads())
                wait_for(lambda: len(heads()) >= n + 2, "the rounds stopped", f.kd, ag)
                assert gets_136() == first, "1.36 downloaded again though unchanged"
                assert "still the file refused before" in ag.log(), ag.log_tail(20)
                assert sorted(os.listdir(k8s)) == ["1.37"], os.listdir(k8s)
                # the mirror is fixed (another size and time): fetched, installed
                os.unlink(bad)
                shutil.copyfile("/opt/kfleet/kubernetes/1.36/bin/kubectl", bad)
                wait_for(lambda: held(f.kd, "h-memo") == ["1.36.3", "1.37.2"],
                         "1.36, fixed on the source, not fetched again", f.kd, ag)
                assert gets_136().count(("GET", "/1.36/bin/kubectl", 200)) == 2, gets_136()
                p = subprocess.run(["sha256sum", "-c", "SHA256SUMS"],
                                   cwd=os.path.join(k8s, "1.36"), capture_output=True, text=True,
                                   timeout=120)
                assert p.returncode == 0 and p.stdout.count(": OK") == len(PROGRAMS), p
            finally:
                ag.close()
        finally:
            srv.shutdown()
            srv.server_close()


if __name__ == "__main__":
    kftest.main(globals())
