"""test_sec_secrets.py: an editor cannot make kfleetd send a secret where it
wants, nor make it reach internal addresses (docs/security.md, "Secrets").

- A receiver uses only the secrets named after it (<receiver> or
  <receiver>.<suffix> under <data-dir>/secrets/).
- Binding a secret (secretRef, secretFile, urlFile) to a destination is
  admin's: an editor may not create such a receiver nor change where or how
  it sends, only who is notified.
- {{secret}} is never in an SMS URL (URLs are logged by gateways, proxies
  and kfleetd).
- Deliveries go to public addresses, or to what kfleetd
  --alert-destinations lists: a webhook to 127.0.0.1 is refused unless
  listed."""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402
from kftest import eventually, path  # noqa: E402

ADMIN = kftest.ADMIN_TOKEN
EDITOR = "editor-token-0123456789"
PAYLOAD = os.path.join(kftest.SOURCE_DIR, "tests", "fuzz", "corpus", "alert-webhook",
                       "lab-firing.json")

kd = None


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(tokens=True).start()
    return kd


def receiver(name, spec):
    return {"apiVersion": "kfleet.io/v1", "kind": "AlertReceiver", "metadata": {"name": name},
            "spec": spec}


def sms(name, **kw):
    s = {"url": "https://sms.example.com/send", "phones": ["13800000000"],
         "headers": {"X-Key": "{{secret}}"}}
    s.update(kw)
    return receiver(name, {"type": "sms", "sms": s})


def test_secret_named_after_receiver():
    setup()
    r = kd.post(path("alertreceivers"), sms("pager", secretRef={"name": "ops-ding"}),
                token=ADMIN)
    assert r.status == 422 and "named after it" in r.json["message"], r
    for ref in ("pager", "pager.key"):
        r = kd.post(path("alertreceivers"), sms("pager", secretRef={"name": ref}), token=ADMIN)
        assert r.status == 201, (ref, r)
        assert kd.delete(path("alertreceivers", "pager"), token=ADMIN).status == 200


def test_no_secret_in_url():
    setup()
    for url in ("https://sms.example.com/send?key={{secret}}",
                "https://sms.example.com/{{ secret }}/send"):
        r = kd.post(path("alertreceivers"), sms("leak", url=url, secretRef={"name": "leak"}),
                    token=ADMIN)
        assert r.status == 422 and "{{secret}}" in r.json["message"], (url, r)


def test_binding_secrets_is_admins():
    setup()
    for extra in ({"secretRef": {"name": "ed"}}, {"secretFile": "/etc/kfleet/ed"}):
        r = kd.post(path("alertreceivers"), sms("ed", **extra), token=EDITOR)
        assert r.status == 403 and "admin" in r.json["message"], (extra, r)
    # a dingtalk urlFile names a file too
    r = kd.post(path("alertreceivers"), receiver("ed-ding", {
        "type": "dingtalk", "dingtalk": {"urlFile": "/etc/kfleet/kfleetd-tokens"}}),
        token=EDITOR)
    assert r.status == 403, r
    r = kd.post(path("alertreceivers"), sms("oncall", secretRef={"name": "oncall"}),
                token=ADMIN)
    assert r.status == 201, r
    # the editor may change who is notified ...
    r = kd.patch(path("alertreceivers", "oncall"), {"spec": {"sms": {"phones": ["139"]}}},
                 token=EDITOR)
    assert r.status == 200, r
    # ... but not where or how the secret goes
    for patch in ({"spec": {"sms": {"url": "https://evil.example/collect"}}},
                  {"spec": {"sms": {"headers": {"X-Key": "x"}, "body": "{{secret}}"}}},
                  {"spec": {"sms": {"secretRef": {"name": "oncall.other"}}}},
                  {"spec": {"sms": {"secretRef": None,
                                    "secretFile": "/etc/kfleet/kfleetd-tokens"}}}):
        r = kd.patch(path("alertreceivers", "oncall"), patch, token=EDITOR)
        assert r.status == 403, (patch, r)
    # nor add a secret to a receiver of its own
    r = kd.post(path("alertreceivers"), sms("ed-plain"), token=EDITOR)
    assert r.status == 201, r
    r = kd.patch(path("alertreceivers", "ed-plain"),
                 {"spec": {"sms": {"secretRef": {"name": "ed-plain"}}}}, token=EDITOR)
    assert r.status == 403, r
    r = kd.patch(path("alertreceivers", "oncall"), {"spec": {"sms": {"url": "https://b.example/"}}},
                 token=ADMIN)
    assert r.status == 200, r


def deliver(destinations):
    """A webhook receiver at a local sink, one alert posted to the adapter:
    the sink's requests and kfleetd's log."""
    sink = kftest.WebhookSink()
    tmp = tempfile.mkdtemp(prefix="kftest-sec-")
    cfg = os.path.join(tmp, "monitoring.json")
    with open(cfg, "w") as f:
        # external: kfleetd renders configurations for these (nothing runs)
        json.dump({"centrals": [{"name": "c1", "listen": "127.0.0.1:1"}],
                   "alertmanagers": [{"name": "a1", "listen": "127.0.0.1:2",
                                      "cluster": "127.0.0.1:3"}]}, f)
    k = kftest.Kfleetd(store="sqlite", controllers="monitoring", alert_destinations=destinations,
                       args=["--monitoring", "external", "--monitoring-config", cfg])
    try:
        k.start()
        r = k.post(path("alertreceivers"), receiver("hook", {
            "type": "webhook", "webhook": {"url": f"{sink.url}/in"}}))
        assert r.status == 201, r
        with open(os.path.join(k.data_dir, "monitoring", ".adapter", "token")) as f:
            token = f.read().strip()
        with open(PAYLOAD) as f:
            payload = json.load(f)

        if destinations is None:
            # the controller leaves the receiver out of the configuration
            # it renders, and says why in an Event; the adapter knows no
            # such receiver (the delivery check is test-obs-receiver's)
            def left_out():
                evs = k.get(path("events")).json["items"]
                return [e for e in evs if e["spec"]["involvedObject"]["name"] == "hook"
                        and e["spec"]["reason"] == "DestinationNotAllowed"]
            ev = eventually(left_out, timeout=20, msg="no DestinationNotAllowed event")
            assert "127.0.0.1" in ev[0]["spec"]["message"], ev
            assert "--alert-destinations" in ev[0]["spec"]["message"], ev
            r = k.post("/alerts/v1/receivers/hook", payload, token=token)
            assert r.status == 404, r
            return [], ""

        def posted():
            r = k.post("/alerts/v1/receivers/hook", payload, token=token)
            return r.status == 200 and r
        eventually(posted, timeout=20, msg="the adapter did not take the alert")

        def done():
            with open(k.log_path, errors="replace") as f:
                log = f.read()
            return (sink.snapshot() or "--alert-destinations" in log) and log
        log = eventually(done, timeout=20, msg="the notification went nowhere")
        return sink.snapshot(), log
    finally:
        k.stop()
        k.close()
        sink.close()


def test_internal_destination_refused_unless_listed():
    events, _ = deliver(None)
    assert not events, events
    events, log = deliver("127.0.0.1")
    assert events and events[0][1] == "/in", events


def test_zz_clean_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    try:
        kftest.main(globals())
    finally:
        if kd:
            kd.close()
