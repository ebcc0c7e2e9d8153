#!/usr/bin/python3
"""Fuzz smoke (every fuzz target builds and runs clean): builds the libFuzzer targets (make fuzz-build:
clang, ASan + UBSan) and

1. replays every regression input tests/fuzz/regress/<target>_*.bin (each crash
   the fuzzers ever found) through its target, built twice: with ASan + UBSan and
   with MemorySanitizer (some stb_image bugs are reads of uninitialised memory
   that only MSan reports deterministically): none may crash again;
2. runs each target for FUZZ_SMOKE_SECONDS (default 10) from its seed corpus
   tests/fuzz/corpus_<target>/ (work copy in build/fuzz/smoke_<target>/, so
   tests/ is never written): passes if libFuzzer finds no crash, leak, timeout
   or sanitizer report, and ran at least a few hundred inputs.

Under CSASN_SANITIZED=1 (the `make test-asan` re-run) only step 1 runs: the fuzz
targets are sanitized builds already, running them twice adds nothing.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as L  # noqa: E402

ROOT = L.ROOT
FUZZ = os.path.join(ROOT, "build", "fuzz")
SECONDS = int(os.environ.get("FUZZ_SMOKE_SECONDS", "10"))
TARGETS = sorted(os.path.basename(p)[5:-2] for p in glob.glob(os.path.join(ROOT, "tests/fuzz/fuzz_*.c")))
MAXLEN = {"model_load": 65536}


def crashed(log):
    pats = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "ERROR: libFuzzer",
            "WARNING: MemorySanitizer",
            "==ERROR", "SUMMARY: ", "deadly signal", "Test unit written")
    return [line for line in log.splitlines() if any(p in line for p in pats)]


def main():
    b = subprocess.run(["make", "-s", "fuzz-build"], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    L.check("make fuzz-build (clang -fsanitize=fuzzer,address,undefined)", b.returncode == 0,
            (b.stdout + b.stderr)[-800:])
    if b.returncode != 0:
        return 1
    sanitized = L.SANITIZED
    for t in TARGETS:
        exe = os.path.join(FUZZ, "fuzz_" + t)
        art = os.path.join(FUZZ, "smoke_artifacts_" + t) + "/"
        os.makedirs(art, exist_ok=True)
        regress = sorted(glob.glob(os.path.join(ROOT, "tests/fuzz/regress", t + "_*.bin")))
        for san, binary in (("ASan+UBSan", exe), ("MSan", os.path.join(FUZZ, "msan", "fuzz_" + t))):
            if not regress:
                break
            p = subprocess.run([binary, "-runs=1", "-artifact_prefix=" + art] + regress,
                               capture_output=True, text=True, errors="replace", timeout=600)
            bad = crashed(p.stderr + "\n" + p.stdout)
            L.check(f"fuzz_{t} ({san}): {len(regress)} regression inputs replay without a crash",
                    p.returncode == 0 and not bad, f"exit {p.returncode}: " + " | ".join(bad[:5]))
        if sanitized:
            continue
        work = os.path.join(FUZZ, "smoke_" + t)
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(os.path.join(ROOT, "tests/fuzz", "corpus_" + t), work)
        cmd = [exe, f"-max_total_time={SECONDS}", "-print_final_stats=1", "-timeout=20",
               "-rss_limit_mb=2560", f"-max_len={MAXLEN.get(t, 32768)}", "-artifact_prefix=" + art, work]
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=SECONDS + 300)
        m = re.search(r"stat::number_of_executed_units:\s*(\d+)", p.stderr)
        n = int(m.group(1)) if m else 0
        bad = crashed(p.stderr)
        # A few hundred executions at least: the harness is really running (the
        # slowest target, classify, does ~1000/s with ASan on this machine).
        L.check(f"fuzz_{t}: {SECONDS} s from the seeds, {n} executions, no crash",
                p.returncode == 0 and not bad and n >= 200,
                f"exit {p.returncode}, {n} executions: " + " | ".join(bad[:5]))
    return L.exit_code()


if __name__ == "__main__":
    sys.exit(main())
