#!/usr/bin/python3
"""Latency of the PyTorch reference (tools/csasn_model.py), one thread, batch 1,
for `make bench` (tools/bench.cjs).

It runs CSASN.predict under torch.no_grad() in eval mode on the input that
tools/export_onnx.py saved (build/bench/NAME.input.f32), with the weights of
NAME.csasn (the same file our engine runs).

  bench_torch.py --model build/bench/csasn-b0-ti.csasn --input X.f32 --runs 30 --warmup 10
      -> one JSON line {"runs_ms": [...], "median_ms": m, "threads": 1, "torch": version}
  bench_torch.py --model ... --input ... --serve
      -> reads lines "run N" on stdin and answers each with {"runs_ms": [...]} (one
         JSON line), so the driver can interleave PyTorch with the other runtimes
         without paying the import and model build each round; "quit" ends it.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import csasn_format  # noqa: E402
import csasn_model as cm  # noqa: E402


def load(path):
    meta, tensors, _ = csasn_format.read(path)
    model = cm.CSASN(cm.meta_to_config(meta))
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=False)
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True, help="raw float32 [3,S,S]")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load(a.model)
    S = model.cfg.input_size
    x = torch.from_numpy(np.fromfile(a.input, dtype="<f4").reshape(1, 3, S, S))

    def run(n):
        out = []
        with torch.no_grad():
            for _ in range(n):
                t = time.perf_counter()
                model.predict(x)
                out.append((time.perf_counter() - t) * 1e3)
        return out

    run(a.warmup)
    info = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    if not a.serve:
        r = run(a.runs)
        print(json.dumps(dict(info, runs_ms=r, median_ms=statistics.median(r))), flush=True)
        return
    print(json.dumps(dict(info, ready=True)), flush=True)
    for line in sys.stdin:
        w = line.split()
        if not w or w[0] == "quit":
            break
        if w[0] == "run":
            print(json.dumps({"runs_ms": run(int(w[1]))}), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {line.strip()!r}"}), flush=True)


if __name__ == "__main__":
    main()
