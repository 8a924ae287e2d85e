"""test_sec_flags.py: an editor cannot make a component read or write a
file, or run code, through component flags (docs/security.md, "Component
flags").

Template and GuestCluster `flags` ("component.flag": "value") reach the
command lines of the members agents run. A non-admin writer may set only
tunables (max-requests-inflight, event-ttl, feature-gates, v, ...); a flag
that names a file or a program (--audit-policy-file, --cert-dir,
--kubeconfig, ...) is admin's: 403 naming the flag. A flag admin set may
stay when an editor changes something else."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402

ADMIN = kftest.ADMIN_TOKEN
EDITOR = "editor-token-0123456789"

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(store="memory", tokens=True).start()
    return kd


def refused(r, flag):
    assert r.status == 403, r
    assert f'flag "{flag}"' in r.json["message"] and "admin" in r.json["message"], r.json


def test_editor_tunables_only():
    setup()
    ok = {"kube-apiserver.max-requests-inflight": "800", "kube-apiserver.event-ttl": "2h",
          "kube-apiserver.feature-gates": "SomeGate=true", "etcd.quota-backend-bytes": "8589934592"}
    r = kd.post(path("templates"), sample("Template", "t-ok", flags=ok), token=EDITOR)
    assert r.status == 201, r
    for flag, value in (("kube-apiserver.audit-policy-file", "/etc/shadow"),
                        ("kube-apiserver.admission-control-config-file", "/tmp/x"),
                        ("kube-controller-manager.kubeconfig", "/root/.kube/config"),
                        ("kube-apiserver.cert-dir", "/"),
                        ("etcd.data-dir", "/var/lib/other")):
        r = kd.post(path("templates"), sample("Template", "t-bad", flags={flag: value}),
                    token=EDITOR)
        refused(r, flag)
        r = kd.post(path("guestclusters"), sample("GuestCluster", "gc-bad", flags={flag: value}),
                    token=EDITOR)
        refused(r, flag)
        r = kd.patch(path("templates", "t-ok"), {"spec": {"flags": {flag: value}}}, token=EDITOR)
        refused(r, flag)
    t = kd.get(path("templates", "t-ok"), token=EDITOR).json
    t["spec"]["flags"]["kube-apiserver.kubeconfig"] = "/x"
    refused(kd.put(path("templates", "t-ok"), t, token=EDITOR), "kube-apiserver.kubeconfig")


def test_admin_any_flag_kept_by_editor_edits():
    setup()
    flags = {"kube-apiserver.audit-log-path": "/var/log/kube/audit.log"}
    r = kd.post(path("templates"), sample("Template", "t-admin", flags=flags), token=ADMIN)
    assert r.status == 201, r
    # an editor changes something else: the admin's flag may stay
    r = kd.patch(path("templates", "t-admin"),
                 {"metadata": {"labels": {"team": "a"}},
                  "spec": {"flags": {"kube-apiserver.v": "4"}}}, token=EDITOR)
    assert r.status == 200, r
    # ... but not change it
    r = kd.patch(path("templates", "t-admin"),
                 {"spec": {"flags": {"kube-apiserver.audit-log-path": "/etc/cron.d/x"}}},
                 token=EDITOR)
    refused(r, "kube-apiserver.audit-log-path")
    r = kd.patch(path("templates", "t-admin"),
                 {"spec": {"flags": {"kube-apiserver.audit-log-path": "/var/log/b.log"}}},
                 token=ADMIN)
    assert r.status == 200, r


def test_zz_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    kftest.main(globals())
