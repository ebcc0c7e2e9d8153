#!/usr/bin/python3
"""ONNX export of the PyTorch reference (tools/csasn_model.py) for the benchmark
(`make bench`) and the ONNX parity test (tests/test_onnx_parity.cjs).

For every model it writes, under build/bench/ (or --out):
  NAME.onnx        torch.onnx.export of CSASN.predict: input [1,3,S,S] (normalised,
                   planar) -> probs [1,K], malignancy [1] (when the model has the
                   head), attention [1,S/32,S/32] (when it has attention stages).
  NAME.csasn       the very same weights in our format (f32), so both runtimes
                   run identical numbers (shipped models: a copy of weights/NAME.csasn
                   is not needed, the .csasn there is used directly; see NAME.json).
  NAME.json        {"name", "csasn", "onnx", "input_size", "labels", "outputs",
                   "ref": {"image", "input" (raw f32 file), "torch": {output: values}},
                   "export": {"opset", "torch", "max_abs_diff_vs_module"}}

Models: `csasn-b0-ti` at 224x224 with random weights whose BatchNorm statistics
are calibrated on real DDTI/BUSI images (a randomly initialised CNN otherwise
makes activations vanish) and whose heads are scaled so the
probabilities are not uniform, plus each shipped model weights/*.csasn.

Usage: /usr/bin/python3 tools/export_onnx.py [--out build/bench] [--opset 17]
       [--only NAME...] [--force]
"""
import argparse
import csv
import glob
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import csasn_format  # noqa: E402
import csasn_model as cm  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data")


# ------------------------------------------------------------------ images

def calibration_images(n_each=8):
    """A few real images from both data sets (labelled ones, fixed order)."""
    paths = []
    for ds, col in (("ddti", "tirads"), ("busi", "class")):
        with open(os.path.join(DATA, ds, "labels.csv")) as f:
            rows = [r for r in csv.DictReader(f) if r.get(col)]
        rows.sort(key=lambda r: r["image"])
        step = max(1, len(rows) // n_each)
        paths += [os.path.join(DATA, ds, r["image"]) for r in rows[::step][:n_each]]
    return paths


def to_input(path, cfg):
    """Gray -> S x S (PIL bilinear, which antialiases when shrinking) -> 3 channels,
    normalised [3, S, S]. Close to the engine's preprocessing; the benchmark and
    the parity test feed both runtimes the same tensor, so exactness is not needed."""
    S = cfg.input_size
    im = Image.open(path).convert("L").resize((S, S), Image.BILINEAR)
    g = np.asarray(im, dtype=np.float32) / 255.0
    x = np.stack([(g - m) / s for m, s in zip(cfg.mean, cfg.std)])
    return torch.from_numpy(x.astype(np.float32))


# ------------------------------------------------------------------ models

def calibrated_random(cfg, seed=0):
    """Random CSASN with BatchNorm statistics from real images and heads scaled so
    that the subtype probabilities and malignancy are far from uniform."""
    torch.manual_seed(seed)
    model = cm.CSASN(cfg)
    xs = torch.stack([to_input(p, cfg) for p in calibration_images()])   # [16, 3, S, S]
    cm.calibrate_batchnorm(model, xs)
    with torch.no_grad():
        o = model(xs)
        # Subtype logits spread ~3 across classes, malignancy logit ~2: softmax far
        # from uniform, so a wrong class order or a missed temperature shows.
        for head, key, target in ((model.head_subtype, "logits", 3.0),
                                  (model.head_malig, "malignancy_logit", 2.0)):
            if head is None:
                continue
            sd = float(o[key].std())
            if sd > 0:
                head.weight.mul_(target / sd)
                head.bias.mul_(target / sd)
    return model


def load_shipped(path):
    meta, tensors, _ = csasn_format.read(path)
    cfg = cm.meta_to_config(meta)
    model = cm.CSASN(cfg)
    state = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"{path}: missing {missing} unexpected {unexpected}")
    return model.eval()


# ------------------------------------------------------------------ export

class Predict(nn.Module):
    """What the engine returns, as one graph: CSASN.predict minus the logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.names = None

    def forward(self, x):
        r = self.model.predict(x)
        names = ["probs"] + [k for k in ("malignancy", "attention", "mask") if k in r]
        self.names = names
        return tuple(r[k] for k in names)


def export(model, name, outdir, opset, ref_image, csasn_path=None):
    cfg = model.cfg
    S = cfg.input_size
    wrap = Predict(model).eval()
    x = to_input(ref_image, cfg)[None]                       # [1, 3, S, S]
    with torch.no_grad():
        ref = wrap(x)
        ref_pred = model.predict(x)
    names = wrap.names
    # The wrapper must be the module itself, bit for bit (it only reorders outputs).
    diff = max(float((a - ref_pred[k]).abs().max()) for a, k in zip(ref, names))
    assert diff == 0.0, f"export wrapper differs from CSASN.predict by {diff}"
    onnx_path = os.path.join(outdir, name + ".onnx")
    torch.onnx.export(wrap, x, onnx_path, input_names=["input"], output_names=names,
                      opset_version=opset, do_constant_folding=True)
    if csasn_path is None:
        csasn_path = os.path.join(outdir, name + ".csasn")
        csasn_format.write(csasn_path, cm.config_to_meta(cfg), cm.export_state(model), "f32")
    inp_path = os.path.join(outdir, name + ".input.f32")
    x[0].numpy().astype("<f4").tofile(inp_path)
    info = {
        "name": name,
        "csasn": os.path.relpath(csasn_path, ROOT),
        "onnx": os.path.relpath(onnx_path, ROOT),
        "input_size": S,
        "flops": flops(cfg),
        "labels": list(cfg.labels),
        "outputs": names,
        "ref": {"image": os.path.relpath(ref_image, ROOT),
                "input": os.path.relpath(inp_path, ROOT),
                "torch": {k: v[0].flatten().tolist() if v.dim() > 1 else v.flatten().tolist()
                          for k, v in zip(names, ref)}},
        "export": {"opset": opset, "torch": torch.__version__,
                   "onnx_bytes": os.path.getsize(onnx_path)},
    }
    with open(os.path.join(outdir, name + ".json"), "w") as f:
        json.dump(info, f)
    print(f"{name}: {os.path.relpath(onnx_path, ROOT)} ({info['export']['onnx_bytes'] / 1e6:.1f} MB), "
          f"probs {np.round(ref[0][0].numpy(), 3).tolist()}", flush=True)
    return info


def flops(cfg):
    """Multiply-add FLOPs (2 per MAC) of one forward pass by the op types that
    `csasn bench --profile` reports, so bench.cjs can turn ms into GFLOP/s.
    Small terms (SE, CBAM MLPs, classifier) are left out: they are < 1%."""
    S = cfg.input_size
    f = {"conv1x1_gemm": 0, "depthwise": 0, "conv_im2col": 0, "linear_gemm": 0, "attention": 0}
    H = S // 2
    f["conv_im2col"] += 2 * H * H * 3 * 9 * cfg.cnn_stem                          # stem 3x3 s2
    for cin, mid, cout, k, s, se, ex in cfg.cnn_blocks:
        if ex:
            f["conv1x1_gemm"] += 2 * H * H * cin * mid
        H = (H + s - 1) // s
        f["depthwise"] += 2 * H * H * mid * k * k
        f["conv1x1_gemm"] += 2 * H * H * mid * cout
    f["conv1x1_gemm"] += 2 * H * H * cfg.cnn_blocks[-1][2] * cfg.cnn_head       # head
    f["conv1x1_gemm"] += 2 * H * H * (cfg.cnn_head + cfg.vit_dim) * cfg.fuse_channels
    g, D, M = S // cfg.vit_patch, cfg.vit_dim, cfg.vit_mlp
    T = g * g + 1
    f["conv_im2col"] += 2 * g * g * 3 * cfg.vit_patch ** 2 * D                   # patch embedding
    f["linear_gemm"] += cfg.vit_depth * 2 * T * (3 * D * D + D * D + 2 * D * M)
    f["attention"] += cfg.vit_depth * 2 * 2 * T * T * D                          # QK^T and AV
    if cfg.head_segmentation:
        t8 = cfg.cnn_blocks[cm.tap_indices(cfg)[0]][2]
        f["conv1x1_gemm"] += 2 * H * H * cfg.fuse_channels * cfg.seg_channels
        s8 = S // 8
        f["conv_im2col"] += 2 * s8 * s8 * (cfg.seg_channels + t8) * 9 * cfg.seg_channels
    f["total"] = sum(f.values())
    return f


def digest(paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--force", action="store_true", help="re-export even when up to date")
    ap.add_argument("--weights", default=os.path.join(ROOT, "weights"), help="folder of shipped models")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    ref_image, busi_image = calibration_images(1)
    jobs = [("csasn-b0-ti", None)]
    for p in sorted(glob.glob(os.path.join(a.weights, "*.csasn"))):
        jobs.append((os.path.splitext(os.path.basename(p))[0], p))
    # Up to date = same exporter, same model file, same opset (stamp in NAME.stamp).
    me = os.path.abspath(__file__)
    for name, path in jobs:
        if a.only and name not in a.only:
            continue
        stamp = digest([me, os.path.join(ROOT, "tools", "csasn_model.py")] + ([path] if path else []))
        stamp += f"-opset{a.opset}"
        sp = os.path.join(a.out, name + ".stamp")
        if not a.force and os.path.exists(sp) and open(sp).read() == stamp \
                and os.path.exists(os.path.join(a.out, name + ".json")):
            print(f"{name}: up to date")
            continue
        if path is None:
            model = calibrated_random(cm.make_config(
                "csasn-b0-ti", labels=["TR2", "TR3", "TR4a", "TR4b", "TR4c", "TR5"],
                malignant_labels=["TR4a", "TR4b", "TR4c", "TR5"],
                source="random initialisation, BatchNorm calibrated on 16 DDTI/BUSI images (bench)"))
        else:
            model = load_shipped(path)
        # A reference image from the model's own domain (breast models get a BUSI image).
        busi = "breast" in name or "busi" in name or set(model.cfg.labels) == {"normal", "benign", "malignant"}
        ref = busi_image if busi else ref_image
        export(model, name, a.out, a.opset, ref, path)
        with open(sp, "w") as f:
            f.write(stamp)


if __name__ == "__main__":
    main()
