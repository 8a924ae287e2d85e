"""test_sec_exhaustion.py: kfleetd can hold the connections it promises
(docs/security.md, "Exhaustion").

kfleetd raises its soft open-file limit to --max-connections plus room for
its own files (or to the hard limit, with a warning), so that the usual
soft limit of 1024 does not make accept() fail for every client long
before --max-connections."""

import os
import resource
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import kftest  # noqa: E402


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc")


def test_file_limit_raised():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = 4000 + 1024
    # start it with a small soft limit, as most shells give
    env_limit = min(1024, hard)
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (env_limit, hard))
    try:
        with kftest.Kfleetd(store="memory", args=["--max-connections", "4000"]) as k:
            got = soft_nofile(k.proc.pid)
            expect = want if hard == resource.RLIM_INFINITY else min(want, hard)
            assert got >= expect, (got, expect, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


if __name__ == "__main__":
    kftest.main(globals())
