#!/usr/bin/python3
"""Print a .csasn model file's metadata and tensor table.

    tools/dump.py MODEL.csasn [--json] [--no-tensors]

Table columns: name, dtype, shape, offset (relative to the data start), bytes.
Totals: tensors, parameters, data bytes, file size.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import csasn_format  # noqa: E402

DTYPES = {csasn_format.DT_F32: ("f32", 4), csasn_format.DT_F16: ("f16", 2)}


def describe(path):
    buf = open(path, "rb").read()
    try:
        meta, _, info = csasn_format.read(buf)
    except (struct.error, ValueError, UnicodeDecodeError, KeyError) as e:
        raise ValueError(f"{path}: not a readable .csasn file ({e})")
    rows = []
    for name, (dt, shape, off) in info.items():
        if dt not in DTYPES:
            raise ValueError(f"{path}: tensor '{name}' has unknown dtype {dt}")
        n = int(np.prod(shape))
        rows.append({"name": name, "dtype": DTYPES[dt][0], "shape": list(shape), "offset": off,
                     "bytes": n * DTYPES[dt][1], "numel": n})
    return meta, rows, len(buf)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Print a .csasn file's metadata and tensor table.")
    ap.add_argument("model")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of text")
    ap.add_argument("--no-tensors", action="store_true", help="metadata and totals only")
    a = ap.parse_args(argv)
    try:
        meta, rows, size = describe(a.model)
    except (OSError, ValueError) as e:
        print(f"dump: {e}", file=sys.stderr)
        return 1
    totals = {"tensors": len(rows), "parameters": sum(r["numel"] for r in rows),
              "data_bytes": sum(r["bytes"] for r in rows), "file_bytes": size}
    if a.json:
        out = {"metadata": meta, "totals": totals}
        if not a.no_tensors:
            out["tensors"] = rows
        print(json.dumps(out))
        return 0
    print(f"# {a.model}")
    print("## metadata")
    w = max((len(k) for k in meta), default=0)
    for k, v in meta.items():
        # f32 values as their shortest float32 form (0.485, not 0.48500001430511475)
        if isinstance(v, float):
            v = str(np.float32(v))
        elif isinstance(v, list) and v and isinstance(v[0], float):
            v = "[" + ", ".join(str(np.float32(x)) for x in v) + "]"
        if isinstance(v, list) and len(v) > 16:
            v = f"[{', '.join(map(str, v[:16]))}, ...] ({len(v)} values)"
        print(f"  {k:<{w}}  {v}")
    if not a.no_tensors:
        print("## tensors")
        nw = max((len(r["name"]) for r in rows), default=4)
        print(f"  {'name':<{nw}}  dtype  {'shape':<20} {'offset':>12} {'bytes':>12}")
        for r in rows:
            shape = "x".join(map(str, r["shape"]))
            print(f"  {r['name']:<{nw}}  {r['dtype']:<5}  {shape:<20} {r['offset']:>12} {r['bytes']:>12}")
    print("## totals")
    print(f"  {totals['tensors']} tensors, {totals['parameters']:,} parameters, "
          f"{totals['data_bytes']:,} data bytes, {totals['file_bytes']:,} file bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
