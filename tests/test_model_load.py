#!/usr/bin/python3
"""The model builder's own checks (src/model_load.c), on top of the container checks
of tests/test_format.py: inconsistent hyperparameters and tensors that do not
fit the architecture the metadata describes must each be rejected with a
message naming the problem (and no crash), while the unmodified file loads.

Each case takes the tiny MobileNetV2 model of tests/tinymodel.py, changes one
thing in its metadata or tensors, writes it and runs `csasn info` on it.
"""
import glob
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as L  # noqa: E402
import tinymodel as T  # noqa: E402
import csasn_format  # noqa: E402

OUT = os.path.join(T.ROOT, "build", "test_models", "load")


def info(path):
    p = subprocess.run([T.CSASN, "info", "--model", path], capture_output=True, text=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).lower()


def main():
    os.makedirs(OUT, exist_ok=True)
    base = T.write_model("load-base", dtype="f32")
    meta, tensors, _ = csasn_format.read(base)
    rc, out = info(base)
    L.check("unmodified tiny model loads", rc == 0, out[:300])
    # `info` names the file by its SHA-256 (what reports cite): hashlib is the reference.
    for path in [base] + sorted(glob.glob(os.path.join(T.ROOT, "weights", "*.csasn"))):
        rc, out = info(path)
        want = hashlib.sha256(open(path, "rb").read()).hexdigest()
        got = json.loads(out).get("sha256") if rc == 0 else None
        L.check(f"info sha256 equals hashlib's: {os.path.basename(path)}", got == want, f"{got} != {want}")
    rows = [list(meta["cnn.blocks"][i:i + 7]) for i in range(0, len(meta["cnn.blocks"]), 7)]
    flat = lambda r: [v for row in r for v in row]

    def variant(name, meta_changes=None, drop=(), tensors_changes=None):
        m = dict(meta)
        for k, v in (meta_changes or {}).items():
            if v is None:
                m.pop(k, None)
            else:
                m[k] = v
        t = {k: v for k, v in tensors.items() if k not in drop}
        t.update(tensors_changes or {})
        path = os.path.join(OUT, name + ".csasn")
        csasn_format.write(path, m, t, "f32")
        return path

    r_in = [row[:] for row in rows]
    r_in[3][0] += 8                               # block 3 input != block 2 output
    r_stride = [row[:] for row in rows]
    r_stride[1][4] = 3
    r_kernel = [row[:] for row in rows]
    r_kernel[2][3] = 4
    r_noexp = [row[:] for row in rows]
    r_noexp[0][1] = r_noexp[0][0] * 2             # mid != in without an expand conv
    r_stride32 = [row[:] for row in rows]
    r_stride32[-1][4] = 2                         # total stride 64
    var = tensors["cnn.blocks.0.dw.bn.running_var"].copy()
    var[3] = -1.0
    cases = [
        ("input_size", {"csasn.input_size": 48}, (), None, ["csasn.input_size", "multiple of 32"]),
        ("vit_heads", {"vit.heads": 3}, (), None, ["vit.heads", "vit.dim"]),
        ("vit_patch", {"vit.patch": 24}, (), None, ["vit.patch"]),
        ("vit_grid", {"vit.patch": 64}, (), None, ["grid"]),
        ("blocks_len", {"cnn.blocks": flat(rows)[:-1]}, (), None, ["cnn.blocks", "7 per block"]),
        ("blocks_chain", {"cnn.blocks": flat(r_in)}, (), None, ["row 3", "previous output"]),
        ("blocks_stride", {"cnn.blocks": flat(r_stride)}, (), None, ["row 1", "stride"]),
        ("blocks_kernel", {"cnn.blocks": flat(r_kernel)}, (), None, ["row 2", "kernel"]),
        ("blocks_mid", {"cnn.blocks": flat(r_noexp)}, (), None, ["row 0", "mid"]),
        ("total_stride", {"cnn.blocks": flat(r_stride32)}, (), None, ["total stride"]),
        ("labels_vs_head", {"csasn.labels": ["a", "b", "c"], "csasn.malignant_labels": []}, (), None,
         ["head_subtype.weight", "shape"]),
        ("label_twice", {"csasn.labels": ["a", "a"], "csasn.malignant_labels": []}, (), None, ["twice"]),
        ("malignant_unknown", {"csasn.malignant_labels": ["nope"]}, (), None, ["malignant_labels", "nope"]),
        ("temperature_zero", {"csasn.temperature": 0.0}, (), None, ["csasn.temperature"]),
        ("act_unknown", {"cnn.act": "gelu"}, (), None, ["cnn.act"]),
        ("family_unknown", {"cnn.family": "resnet"}, (), None, ["cnn.family"]),
        ("att_kernel_even", {"att.kernel": 4}, (), None, ["att.kernel"]),
        ("fuse_channels", {"fuse.channels": 48}, (), None, ["fuse.conv.weight", "shape"]),
        ("missing_key", {"norm.ln_eps": None}, (), None, ["norm.ln_eps"]),
        ("std_zero", {"csasn.std": [0.2, 0.0, 0.2]}, (), None, ["csasn.std"]),
        ("multiscale_off", {"cls.multiscale": 0}, (), None, ["mix.weight", "shape"]),
        ("unexpected_extra", None, (), {"proj8.extra": np.zeros(3, np.float32)}, ["unexpected", "proj8.extra"]),
        ("seg_on_missing", {"heads.segmentation": 1}, (), None, ["missing", "seg_reduce"]),
        ("bn_var_negative", None, (), {"cnn.blocks.0.dw.bn.running_var": var}, ["running_var"]),
        ("missing_block_tensor", None, ("cnn.blocks.2.project.bn.bias",), None,
         ["missing", "cnn.blocks.2.project.bn.bias"]),
    ]
    for name, mc, drop, tc, words in cases:
        rc, out = info(variant(name, mc, drop, tc))
        ok = rc == 1 and all(w.lower() in out for w in words) and "sanitizer" not in out
        msg = out.strip().splitlines()[-1].split("': ", 1)[-1][:110] if out.strip() else ""
        L.check(f"rejects {name}: {msg}", ok,
                f"rc {rc}, want words {words}, got {out[:300]!r}")
    return L.exit_code()


if __name__ == "__main__":
    sys.exit(main())
