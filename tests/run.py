#!/usr/bin/python3
"""Runs every test suite and ends with `N passed, N failed`.

A suite is tests/test_*.py (Debian's python3), tests/test_*.cjs (node) or a C
program build/tests/test_*. Each prints one line per check: `ok NAME` or
`not ok NAME: why`. A suite that exits non-zero, times out or reports nothing
counts as one more failure, so a crash can never pass silently.

Usage: tests/run.py [--native] [SUBSTRING...]   (run only suites whose name contains one)
  --native: skip the node/browser suites (*.cjs); `make test-asan` uses it.
  CSASN_BUILD (default build): where the C test programs are (build/asan for test-asan).
"""
import glob
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = int(os.environ.get("CSASN_SUITE_TIMEOUT", "1800"))


def suites(native=False):
    out = []
    build = os.environ.get("CSASN_BUILD", "build")
    for p in sorted(glob.glob(os.path.join(ROOT, build, "tests/test_*"))):
        if os.access(p, os.X_OK) and not p.endswith((".c", ".o", ".d")):
            out.append([p])
    for p in sorted(glob.glob(os.path.join(ROOT, "tests/test_*.py"))):
        out.append(["/usr/bin/python3", p])
    for p in [] if native else sorted(glob.glob(os.path.join(ROOT, "tests/test_*.cjs"))):
        out.append(["node", p])
    return out


def main():
    native = "--native" in sys.argv[1:]
    filt = [a for a in sys.argv[1:] if a != "--native"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", NODE_PATH="/usr/share/nodejs:" + os.path.join(ROOT, "tools/node_modules"))
    passed = failed = 0
    failures = []
    for cmd in suites(native):
        name = os.path.relpath(cmd[-1], ROOT)
        if filt and not any(f in name for f in filt):
            continue
        print(f"== {name}", flush=True)
        t0 = time.time()
        n_ok = n_bad = 0
        try:
            p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, errors="replace")
            deadline = t0 + TIMEOUT
            for line in p.stdout:
                sys.stdout.write("   " + line)
                sys.stdout.flush()
                if re.match(r"^not ok\b", line):
                    n_bad += 1
                    failures.append(f"{name}: {line.strip()}")
                elif re.match(r"^ok\b", line):
                    n_ok += 1
                if time.time() > deadline:
                    p.kill()
                    break
            rc = p.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "timeout"
        if rc == "timeout" or time.time() > t0 + TIMEOUT:
            n_bad += 1
            failures.append(f"{name}: timed out after {TIMEOUT}s")
        elif rc != 0 and n_bad == 0:
            n_bad += 1
            failures.append(f"{name}: exited with status {rc} without reporting a failure")
        elif n_ok + n_bad == 0:
            n_bad += 1
            failures.append(f"{name}: reported no checks")
        print(f"   ({n_ok} ok, {n_bad} failed, {time.time() - t0:.1f}s)", flush=True)
        passed += n_ok
        failed += n_bad
    if failures:
        print("\nFailures:")
        for f in failures:
            print("  " + f)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
