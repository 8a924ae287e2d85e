"""test_sec_small.py: the small findings of issue 13 (docs/security.md,
"Small ones").

Without a token kfleetd's 404 does not list the kinds it serves and
/readyz says ok or not, without the store's URL or the leader (an
authenticated client gets both); --log-file is opened again on SIGHUP, so
logrotate can move it away."""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402
from kftest import API  # noqa: E402

VIEWER = "viewer-token-0123456789"

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(tokens=True, controllers=True).start()
    return kd


def test_404_lists_kinds_to_authenticated_only():
    setup()
    r = kd.get(API + "/nosuchkinds", token="")
    assert r.status == 404, r
    assert "hosts" not in r.json["message"] and "it serves" not in r.json["message"], r.json
    r = kd.get(API + "/nosuchkinds", token="wrong-token")
    assert r.status == 404 and "hosts" not in r.json["message"], r.json
    r = kd.get(API + "/nosuchkinds", token=VIEWER)
    assert r.status == 404 and "hosts" in r.json["message"], r.json


def test_readyz_details_to_authenticated_only():
    setup()
    r = kd.get("/readyz", token="")
    assert r.status == 200, r
    assert r.text.strip() == "ok", r.text
    assert kd.store not in r.text and "leader" not in r.text
    r = kd.get("/readyz", token=VIEWER)
    assert r.status == 200 and r.text.startswith("ok\n") and "leader" in r.text, r.text


def test_log_file_reopened_on_sighup():
    d = kftest.tempfile.mkdtemp(prefix="kftest-log-")
    log = os.path.join(d, "kfleetd.log")
    with kftest.Kfleetd(store="memory", args=["--log-file", log]) as k:
        kftest.eventually(lambda: os.path.exists(log) and os.path.getsize(log) > 0,
                          timeout=10 * kftest.SLOW, msg="the log file written")
        os.rename(log, log + ".1")  # what logrotate does
        os.kill(k.proc.pid, signal.SIGHUP)
        kftest.eventually(lambda: os.path.exists(log), timeout=10 * kftest.SLOW,
                          msg="a new log file after SIGHUP")
        k.stop()
    with open(log) as f:
        text = f.read()
    assert "kfleetd stopped" in text, text


def test_zz_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    kftest.main(globals())
