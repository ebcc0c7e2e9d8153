#!/usr/bin/python3
"""A model with square region geometry and descriptor heads: the C engine (build/csasn
classify --roi) against the PyTorch module (tools/csasn_model.py) fed by
tools/preprocess.py with the same region rule, on real DDTI scanner frames with the
nodules' boxes as regions (what a clinician draws on the page).

The model is built as the thyroid model with descriptors is (tools/csasn_model.py Config
region_* and descriptors, written by tools/csasn_format.py): random weights, BatchNorm
statistics calibrated on these very inputs (train-mode passes, then eval) so activations
neither vanish nor explode, and the heads scaled so the probabilities are far from uniform
(otherwise two engines would agree on constants).

Tolerance 1e-3 on probabilities, malignancy and every descriptor probability (the bound
the shipped model is held to). The two sides differ by float32 rounding (BatchNorm folded,
polynomial erf/exp, another summation order) and by the input (C and Python preprocessing
agree to 1e-5): ~1e-5 here (measured), far below the bound, far above what a wrong layer, a head
read from the wrong vector, or a region taken differently gives (tenths).
"""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as L  # noqa: E402
import csasn_format  # noqa: E402
from csasn_model import CSASN, calibrate_batchnorm, config_to_meta, export_state, make_config  # noqa: E402
import preprocess as P  # noqa: E402

torch.set_num_threads(1)
OUT = os.path.join(L.ROOT, "build", "parity_region")
FRAMES = os.path.join(L.DATA, "ddti_frames")
TIMEOUT = 900 if L.SANITIZED else 300
TOL = 1e-3

# TI-RADS descriptors as the DDTI case files spell them (normalised).
DESCRIPTORS = {
    "composition": ["solid", "predominantly solid", "predominantly cystic", "cystic", "spongiform", "dense"],
    "echogenicity": ["hyperechogenicity", "isoechogenicity", "hypoechogenicity", "marked hypoechogenicity"],
    "margins": ["well defined", "ill defined", "microlobulated", "macrolobulated", "spiculated"],
    "calcifications": ["non", "microcalcifications", "macrocalcifications"],
}


def frames_with_boxes(n):
    """n labelled DDTI frames with their first nodule's box (x, y, w, h); nodules.csv
    corners are inclusive."""
    with open(os.path.join(FRAMES, "labels.csv")) as f:
        labelled = {r["image"] for r in csv.DictReader(f) if r["class"] in ("benign", "malignant")}
    with open(os.path.join(FRAMES, "nodules.csv")) as f:
        rows = sorted((r for r in csv.DictReader(f) if r["image"] in labelled), key=lambda r: r["image"])
    seen, out = set(), []
    for r in rows:
        if r["image"] not in seen:
            seen.add(r["image"])
            x0, y0, x1, y1 = (int(r[k]) for k in ("x0", "y0", "x1", "y1"))
            out.append((os.path.join(FRAMES, r["image"]), (x0, y0, x1 - x0 + 1, y1 - y0 + 1)))
    return [out[i * len(out) // n] for i in range(n)]


def build(cfg, calib, seed):
    torch.manual_seed(seed)
    model = CSASN(cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.7, 1.3)
                m.bias.uniform_(-0.1, 0.1)
    calibrate_batchnorm(model, calib)
    with torch.no_grad():
        model.head_subtype.weight.mul_(4.0)
        model.head_malig.weight.mul_(4.0)
        for h in model.head_desc:
            h.weight.mul_(5.0)
    return model


def c_classify(path, cases):
    out = []
    for img, roi in cases:
        p = subprocess.run([L.CLI, "classify", "--model", path, "--roi", ",".join(map(str, roi)), img],
                           capture_output=True, text=True, timeout=TIMEOUT)
        out.append(json.loads(p.stdout) if p.returncode == 0 else {"error": p.stderr.strip()[:300]})
    return out


def compare(tag, cfg, ref, res):
    ok_all = all("probs" in r for r in res)
    L.check(f"{tag}: C classified all {len(res)} frames", ok_all, str([r.get("error") for r in res])[:300])
    if not ok_all:
        return
    Pt, Pc = ref["probs"].numpy(), np.array([r["probs"] for r in res])
    d = float(np.abs(Pc - Pt).max())
    L.check(f"{tag}: class probabilities within {TOL} of PyTorch (max diff {d:.2e}, max prob {Pt.max():.2f})",
            d <= TOL and Pt.max() > 1 / len(cfg.labels) + 0.05 and Pt.std(0).max() > 1e-3, f"C {Pc} vs torch {Pt}")
    Mt, Mc = ref["malignancy"].numpy(), np.array([r["malignancy"] for r in res])
    d = float(np.abs(Mc - Mt).max())
    L.check(f"{tag}: malignancy within {TOL} (max diff {d:.2e}, range {Mt.min():.2f}..{Mt.max():.2f})",
            d <= TOL and Mt.max() - Mt.min() > 1e-2, f"C {Mc} vs torch {Mt}")
    L.check(f"{tag}: every result names the {len(cfg.descriptors)} heads and their labels, in the file's order",
            all(list(r["descriptors"]) == cfg.descriptors and
                all(list(r["descriptors"][n]) == labs for n, labs in zip(cfg.descriptors, cfg.descriptor_labels))
                for r in res), str(res[0].get("descriptors"))[:300])
    for i, name in enumerate(cfg.descriptors):
        Dt = ref["descriptors"][i].numpy()
        Dc = np.array([[r["descriptors"][name][lab] for lab in cfg.descriptor_labels[i]] for r in res])
        d = float(np.abs(Dc - Dt).max())
        tops = (Dc.argmax(1) == Dt.argmax(1)).all()
        L.check(f"{tag}: descriptor '{name}' ({Dt.shape[1]} labels) within {TOL} (max diff {d:.2e}, "
                f"max prob {Dt.max():.2f}), same top label on every frame",
                d <= TOL and tops and Dt.max() > 1 / Dt.shape[1] + 0.05 and Dt.std(0).max() > 1e-3,
                f"C {Dc} vs torch {Dt}")


def main():
    os.makedirs(OUT, exist_ok=True)
    if not L.cli_built():
        return 1
    cases = frames_with_boxes(8)
    L.check(f"{len(cases)} labelled DDTI frames with nodule boxes", len(cases) == 8 and all(os.path.exists(c[0]) for c in cases),
            str(cases[:2]))
    cfg = make_config("region-desc-parity", cnn="mobilenetv2", vit=(96, 2, 3, 192), input_size=128,
                      labels=["2", "3", "4a", "4b", "4c", "5"], malignant_labels=["4a", "4b", "4c", "5"],
                      fuse_channels=64, att_reduction=8, cls_dim=64, cls_hidden=128, temperature=1.3,
                      malignancy_temperature=0.9, region_mode="square", region_margin=0.25, region_fill=0.0,
                      descriptors=list(DESCRIPTORS), descriptor_labels=list(DESCRIPTORS.values()),
                      source="tests/test_parity_region.py (random, BN calibrated)")
    S = cfg.input_size
    # Python's preprocessing with the rule the file stores (float32 margin and fill).
    m32, f32 = float(np.float32(cfg.region_margin)), float(np.float32(cfg.region_fill))
    x = torch.stack([torch.from_numpy(P.preprocess(img, S, cfg.mean, cfg.std, roi, cfg.region_mode, m32, f32))
                     for img, roi in cases])
    model = build(cfg, x, seed=11)
    meta, state = config_to_meta(cfg), export_state(model)
    L.check("the file carries the region rule and the descriptor heads",
            meta.get("csasn.region_mode") == "square" and meta.get("heads.descriptors") == list(DESCRIPTORS)
            and all(f"head_desc.{i}.weight" in state for i in range(len(DESCRIPTORS))), str(sorted(meta))[:300])
    f32_path, f16_path = os.path.join(OUT, "region-desc.f32.csasn"), os.path.join(OUT, "region-desc.f16.csasn")
    csasn_format.write(f32_path, meta, state, "f32")
    csasn_format.write(f16_path, meta, state, "f16")
    with torch.no_grad():
        ref = model.predict(x)
    res = c_classify(f32_path, cases)
    compare("f32 file", cfg, ref, res)
    # The region each result reports is the square region_geometry takes.
    want = []
    for img, roi in cases:
        g = P.load_gray(img)
        x0, y0, x1, y1 = P.region_geometry(roi, g.shape[1], g.shape[0], cfg.region_mode, m32)[:4]
        want.append({"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0})
    L.check("every result's region is the square region_geometry gives (w == h, grown around the box)",
            [r.get("region") for r in res] == want and all(w["w"] == w["h"] for w in want), f"{[r.get('region') for r in res]} vs {want}")
    # The shipped files are fp16: the same file in fp16 against PyTorch with fp16-rounded weights.
    m16 = CSASN(cfg)
    m16.load_state_dict({k: v.half().float() if k in state else v for k, v in model.state_dict().items()})
    m16.eval()
    with torch.no_grad():
        ref16 = m16.predict(x)
    compare("f16 file", cfg, ref16, c_classify(f16_path, cases))
    return L.exit_code()


if __name__ == "__main__":
    sys.exit(main())
