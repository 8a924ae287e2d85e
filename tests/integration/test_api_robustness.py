"""test_api_robustness.py: hostile and broken requests. Huge bodies (by
Content-Length and chunked), deep nesting, invalid UTF-8, garbage bytes, bad
patches, bad resourceVersions, bad escapes, long URIs and headers, raw
garbage on the socket, slow clients, and a few hundred mutated objects:
every answer is a 4xx Status (never a 5xx or a crash), the server keeps
serving, and the objects stored before are untouched."""

import json
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402

kd = None
BEFORE = {}


def setup():
    global kd
    if kd is None:
        kd = kftest.Kfleetd(args=["--connection-timeout", "2s"]).start()
        for kind in ("Region", "GuestCluster", "Host"):
            r = kd.post(path(kftest.PLURALS[kind]), sample(kind, "keep"))
            assert r.status == 201, r
            BEFORE[kind] = r.json
    return kd


def assert_4xx(r, what=""):
    assert 400 <= r.status < 500, (what, r)
    assert r.json and r.json.get("kind") == "Status", (what, r)


def raw(data, timeout=5.0):
    """Sends bytes on a fresh connection; returns what came back."""
    s = socket.create_connection(("127.0.0.1", kd.port), timeout=timeout * kftest.SLOW)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def test_body_too_large():
    setup()
    big = b'{"metadata":{"name":"big"},"spec":{"x":"' + b"a" * (600 * 1024) + b'"}}'
    r = kd.post(path("regions"), big, content_type="application/json")
    assert r.status == 413 and r.json["reason"] == "RequestEntityTooLarge", r
    assert "limit" in r.json["message"], r
    # the same without Content-Length: chunked
    head = (f"POST {path('regions')} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    body = b""
    for i in range(0, len(big), 65536):
        part = big[i:i + 65536]
        body += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    body += b"0\r\n\r\n"
    out = raw(head + body)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    # a Content-Length far past the limit is refused before the body
    out = raw(f"PUT {path('regions', 'keep')} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999"
              "\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{".encode())
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    assert kd.get("/readyz").status == 200
    assert kd.metric("kfleet_api_request_bodies_rejected_total") >= 3


def test_malformed_bodies():
    setup()
    bodies = [
        b"[" * 100000,
        b'{"metadata":{"name":"' + b"\xff\xfe" + b'"}}',
        b'{"metadata":{"name":"a\x00b"}}',
        b'{"metadata":{"name":"dup"},"metadata":{"name":"dup"}}',
        b"\x00\x01\x02\x03",
        b"null", b"1e999999", b'"string"', b"{}", b'{"metadata":null}',
        b'{"metadata":{"name":12}}', b'{"metadata":{"name":"x","labels":"no"}}',
        b'{"metadata":{"name":"x","resourceVersion":"abc"},"spec":{}}',
        b'{"metadata":{"name":"x","finalizers":[1,2]},"spec":{}}',
    ]
    for b in bodies:
        assert_4xx(kd.post(path("regions"), b, content_type="application/json"), b[:40])
        assert_4xx(kd.put(path("regions", "keep"), b, content_type="application/json"), b[:40])


def test_bad_patches():
    setup()
    merge = [b"[1,2]", b'"x"', b"{", b'{"spec":{"zones":' + b"[" * 70 + b"]" * 70 + b"}}",
             b'{"metadata":{"name":"other"}}', b'{"metadata":{"uid":"x"}}',
             b'{"metadata":{"resourceVersion":"abc"}}', b'{"apiVersion":"v2"}',
             b'{"kind":"Unit"}']
    for b in merge:
        r = kd.patch(path("regions", "keep"), b)
        assert r.status < 500, (b, r)
    jp = [b"{}", b"[{}]", b'[{"op":"add"}]', b'[{"op":"remove","path":"/nope"}]',
          b'[{"op":"move","from":"/nope","path":"/spec/x"}]',
          b'[{"op":"replace","path":"/spec/zones/99","value":"a"}]',
          b'[{"op":"add","path":"/spec/zones/-1","value":"a"}]',
          b'[{"op":"add","path":"' + b"/a" * 5000 + b'","value":1}]',
          b'[{"op":"test","path":"/spec","value":1}]', b'[{"op":"copy","from":"/","path":"/x"}]',
          b'[{"op":"add","path":"/metadata/name","value":"renamed"}]']
    for b in jp:
        r = kd.patch(path("regions", "keep"), b, content_type="application/json-patch+json")
        assert r.status < 500, (b, r)
        assert r.status != 200 or r.json["metadata"]["name"] == "keep", (b, r)


def test_bad_targets():
    setup()
    for target in ("/apis/kfleet.io/v1/regions/%zz", "/apis/kfleet.io/v1/regions/a%00b",
                   "/apis/kfleet.io/v1/regions?labelSelector=%", "/apis/kfleet.io/v1/regions/"
                   + "a" * 300, "/apis/kfleet.io/v1/regions/..%2F..%2Fetc", "/../../etc/passwd",
                   "/apis/kfleet.io/v1/regions?watch=maybe", "/apis/kfleet.io/v1/regions/a/b/c/d"):
        r = kd.get(target)
        assert 400 <= r.status < 500, (target, r)
    out = raw(f"GET /apis/kfleet.io/v1/regions?x={'a' * 20000} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              "Connection: close\r\n\r\n".encode())
    assert out[:12] in (b"HTTP/1.1 414", b"HTTP/1.1 431", b"HTTP/1.1 413"), out[:100]
    out = raw(("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + "b" * 100000 +
               "\r\nConnection: close\r\n\r\n").encode())
    assert out == b"" or out[:10] == b"HTTP/1.1 4", out[:100]
    for junk in (b"GARBAGE\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                 b"GET / HTTP/9.9\r\n\r\n", b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"\r\n" * 1000):
        raw(junk, timeout=1)
    assert kd.get("/healthz").status == 200


def test_slow_client_is_dropped():
    setup()
    s = socket.create_connection(("127.0.0.1", kd.port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never finishes
    s.settimeout(20 * kftest.SLOW)
    t0 = time.monotonic()
    try:
        data = s.recv(100)
    except (ConnectionResetError, socket.timeout):
        data = b""
    waited = time.monotonic() - t0
    s.close()
    assert data == b"" and waited < 15 * kftest.SLOW, (data, waited)
    assert kd.get("/healthz").status == 200


def test_many_connections():
    setup()
    socks = [socket.create_connection(("127.0.0.1", kd.port)) for _ in range(300)]
    try:
        assert kd.client().get("/healthz").status == 200
    finally:
        for s in socks:
            s.close()
    assert kd.get("/healthz").status == 200


def mutate(rng, v, depth=0):
    choices = [None, True, 0, -1, 2 ** 63, 1.5e300, "", "x" * rng.randint(1, 300), "\u00e9\u4e2d",
               [], {}, [1, "a", None], {"k": "v"}]
    if depth > 4 or rng.random() < 0.15:
        return rng.choice(choices)
    if isinstance(v, dict):
        out = dict(v)
        for k in list(out):
            r = rng.random()
            if r < 0.15:
                del out[k]
            elif r < 0.6:
                out[k] = mutate(rng, out[k], depth + 1)
        if rng.random() < 0.2:
            out[rng.choice(["bogus", "$patch", "", "a.b", "metadata"])] = rng.choice(choices)
        return out
    if isinstance(v, list):
        return [mutate(rng, x, depth + 1) for x in v] + ([rng.choice(choices)]
                                                         if rng.random() < 0.3 else [])
    return rng.choice(choices)


def test_mutated_objects():
    setup()
    rng = random.Random(20261127)
    c = kd.client()
    n = 100 if kftest.SANITIZE else 400
    for i in range(n):
        kind = rng.choice(list(kftest.SAMPLE_SPECS))
        obj = mutate(rng, sample(kind, f"fz-{i}"))
        body = json.dumps(obj).encode()
        if rng.random() < 0.1:
            body = body[:rng.randint(0, len(body))]
        verb = rng.choice(["POST", "PUT", "PATCH"])
        plural = kftest.PLURALS[kind]
        if verb == "POST":
            r = c.post(path(plural), body, content_type="application/json")
        elif verb == "PUT":
            r = c.put(path(plural, "keep"), body, content_type="application/json")
        else:
            r = c.patch(path(plural, "keep"), body)
        assert r.status < 500, (verb, kind, body[:300], r)
        assert r.json is not None, r


def test_store_intact():
    setup()
    # the fuzzing may have changed "keep" through valid writes: what must
    # hold is that every stored object still reads back and validates
    for kind, plural in kftest.PLURALS.items():
        r = kd.get(path(plural))
        assert r.status == 200, r
        for item in r.json["items"]:
            g = kd.get(path(plural, item["metadata"]["name"]))
            assert g.status == 200 and g.json == item, (g, item)
            assert kd.put(path(plural, item["metadata"]["name"]), item).status == 200
    r = kd.get(path("regions", "keep"))
    assert r.status == 200 and r.json["metadata"]["uid"] == BEFORE["Region"]["metadata"]["uid"]
    assert kd.get("/readyz").status == 200


def test_zz_clean_shutdown():
    setup()
    assert kd.stop() == 0


if __name__ == "__main__":
    kftest.main(globals(), shared=("kd",))
