"""What every Python suite shares (not a suite itself): paths, the CLI under
test, and the `ok NAME` / `not ok NAME: why` reporting that tests/run.py counts.

No torch here, so suites that only drive the CLI start fast; tinymodel.py adds
the torch side.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
DATA = os.path.join(ROOT, "..", "shared", "data")
# CSASN_CLI: run the suites against another build of the CLI (make test-asan sets build/asan/csasn).
CLI = os.environ.get("CSASN_CLI") or os.path.join(ROOT, "build", "csasn")
# Set by make test-asan: sanitized binaries are up to ~10x slower, so timeouts grow.
SANITIZED = os.environ.get("CSASN_SANITIZED") == "1"

_failed = 0


def check(name, ok, why=""):
    """Report one check; `why` is printed only when it fails."""
    global _failed
    if not ok:
        _failed += 1
    print(f"ok {name}" if ok else f"not ok {name}: {why}", flush=True)
    return ok


def cli_built():
    """The CLI under test exists (a failed check otherwise: run make first)."""
    return check(f"{os.path.relpath(CLI, ROOT)} exists", os.access(CLI, os.X_OK), "run make first")


def exit_code():
    """0 when every check so far passed, else 1 (the suite's exit status)."""
    return 1 if _failed else 0
