#!/usr/bin/env python3
"""The lint's own test: scripts/lint-source must report every offence marked
`LINT: <rule>` in fixture-bad.c, on that line, and nothing else; an allow-list
entry must silence its finding; the clean tree (src/ with the project's
allow-list) must pass. A lint that cannot fail fails here."""

import os
import re
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
top = os.path.dirname(os.path.dirname(here))
lint = os.path.join(top, "scripts", "lint-source")
fixture = os.path.join(here, "fixture-bad.c")
LIMIT = "15"  # the fixture's long function is 20 lines, the others at most 15


def run(*args):
    p = subprocess.run([sys.executable, lint, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def expected():
    want = set()
    with open(fixture) as f:
        for no, line in enumerate(f, 1):
            m = re.search(r"LINT: ([a-z-]+)", line)
            if m:
                want.add((no, m.group(1)))
    return want


def main():
    failures = []
    want = expected()
    assert {r for _, r in want} == {"long-function", "generic-label", "no-prefix"}, want

    rc, out, err = run("--allow", "", "--max-lines", LIMIT, fixture)
    got = set()
    for row in out.splitlines():
        m = re.match(r"^(.*):(\d+): ([a-z-]+): ", row)
        if not m or os.path.abspath(m.group(1)) != fixture:
            failures.append(f"unexpected output line: {row!r}")
            continue
        got.add((int(m.group(2)), m.group(3)))
    if rc != 1:
        failures.append(f"exit status {rc} on the fixture, want 1")
    for miss in sorted(want - got):
        failures.append(f"not reported: line {miss[0]}: {miss[1]}")
    for extra in sorted(got - want):
        failures.append(f"reported by mistake: line {extra[0]}: {extra[1]}")

    # The same findings allowed by name: the lint passes, and says which entry is stale.
    with tempfile.NamedTemporaryFile("w", suffix=".allow", delete=False) as f:
        rel = os.path.normpath(fixture)
        for name in ("counter_without_prefix", "helper_without_prefix", "long_function", "out",
                     "no_such_thing"):
            f.write(f"{rel}:{name}\n")
        allow = f.name
    try:
        rc, out, err = run("--allow", allow, "--max-lines", LIMIT, fixture)
        if rc != 0 or out:
            failures.append(f"allow-list did not silence the fixture: rc={rc} out={out!r}")
        if "no_such_thing" not in err:
            failures.append("a stale allow-list entry was not reported")
    finally:
        os.unlink(allow)

    # The default limit is 100: the fixture's 20-line function passes it.
    rc, out, err = run("--allow", "", fixture)
    if "long-function" in out:
        failures.append("default limit is not 100")

    # The project's tree passes with its allow-list.
    rc, out, err = run()
    if rc != 0:
        failures.append(f"src/ does not pass the lint:\n{out}{err}")

    for f in failures:
        print("FAIL:", f)
    print("lint-source self test:", "failed" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
