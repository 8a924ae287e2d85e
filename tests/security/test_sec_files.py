"""test_sec_files.py: files that hold secrets are private, and credentials
do not cross the network in cleartext (docs/security.md, "Files and
cleartext").

- The SQLite store (every guest CA key) and its WAL are 0600 even when the
  data folder existed before and the umask is 022; a store found readable
  by others is made private.
- A token file others may read is refused.
- A non-loopback --listen with tokens needs TLS, or an explicit
  --insecure-allow-plaintext.
- An atomic write (PKI files, generated configuration) fsyncs the folder
  after its rename, so that the rename survives a crash."""

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402
from kftest import path, sample  # noqa: E402


def run_kfleetd(*args):
    return subprocess.run([os.path.join(kftest.BIN_DIR, "kfleetd"), "--store", "memory:",
                           "--controllers", "none", *args],
                          capture_output=True, text=True, timeout=30)


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_store_private():
    data = tempfile.mkdtemp(prefix="kftest-sec-")
    os.chmod(data, 0o755)
    old = os.umask(0o022)
    try:
        with kftest.Kfleetd(store="sqlite", data_dir=data) as k:
            assert k.post(path("regions"), sample("Region", "r")).status == 201
            for name in ("kfleet.db", "kfleet.db-wal"):
                p = os.path.join(data, name)
                if os.path.exists(p):
                    assert mode(p) & 0o077 == 0, (name, oct(mode(p)))
        os.chmod(os.path.join(data, "kfleet.db"), 0o644)
        with kftest.Kfleetd(store="sqlite", data_dir=data) as k:
            assert k.get(path("regions", "r")).status == 200
        assert mode(os.path.join(data, "kfleet.db")) & 0o077 == 0
    finally:
        os.umask(old)


def test_token_file_mode():
    tmp = tempfile.mkdtemp(prefix="kftest-sec-")
    tok = kftest.write_token_file(os.path.join(tmp, "tokens"))
    os.chmod(tok, 0o644)
    p = run_kfleetd("--token-file", tok, "--listen", f"127.0.0.1:{kftest.free_port()}")
    assert p.returncode == 2 and "chmod 600" in p.stderr, (p.returncode, p.stderr)


def test_plaintext_needs_consent():
    tmp = tempfile.mkdtemp(prefix="kftest-sec-")
    tok = kftest.write_token_file(os.path.join(tmp, "tokens"))
    p = run_kfleetd("--token-file", tok, "--listen", f"0.0.0.0:{kftest.free_port()}")
    assert p.returncode == 2 and "--insecure-allow-plaintext" in p.stderr, (p.returncode,
                                                                           p.stderr)
    port = kftest.free_port()
    with kftest.Kfleetd(tokens=True, store="memory", port=port,
                        args=["--listen", f"0.0.0.0:{port}", "--insecure-allow-plaintext"]) as k:
        assert k.get(path("regions")).status == 200
    with kftest.Kfleetd(tokens=True, store="memory", tls=True, port=port,
                        args=["--listen", f"0.0.0.0:{port}"]) as k:
        assert k.get(path("regions")).status == 200


def test_rename_then_fsync_folder():
    """kfleet config writes its file as every atomic writer does (base-file.c):
    temporary file, fsync, rename, then an fsync of the folder."""
    kftest.require(shutil.which("strace"), "strace is not installed")
    d = tempfile.mkdtemp(prefix="kftest-sec-")
    cfg = os.path.join(d, "config")
    out = subprocess.run(["strace", "-f", "-e", "trace=rename,renameat,renameat2,openat,fsync",
                          os.path.join(kftest.BIN_DIR, "kfleet"), "config", "set-token", "t"],
                         capture_output=True, text=True, timeout=60,
                         # LeakSanitizer cannot run under ptrace: the sanitized
                         # build checks leaks everywhere else, not in this run
                         env=dict(os.environ, KFLEET_CONFIG=cfg,
                                  ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                                  ":detect_leaks=0"))
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stderr.splitlines()
    renamed = [i for i, line in enumerate(lines) if "rename" in line and f'"{cfg}"' in line]
    assert renamed, out.stderr[-2000:]
    after = lines[renamed[-1] + 1:]
    fds = [m.group(1) for line in after
           for m in [re.search(rf'openat\(AT_FDCWD, "{re.escape(d)}", .*O_DIRECTORY.*\) = (\d+)',
                               line)] if m]
    assert fds, "\n".join(after)
    assert any(f"fsync({fd})" in line for line in after for fd in fds), "\n".join(after)


if __name__ == "__main__":
    kftest.main(globals())
