#!/usr/bin/python3
"""Fixtures for the node and browser region suites (not a suite itself): models with
region rules and descriptor heads, and tools/preprocess.py's input for each case, so
that the wasm engine is compared with the Python preprocessing training uses.

  region_fixtures.py OUTDIR   writes OUTDIR/cases.json, OUTDIR/pre_*.csasn, OUTDIR/ref_*.f32,
                              OUTDIR/desc.csasn (square + 4 descriptor heads, one label
                              spelled as markup: labels are untrusted text)
"""
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinymodel as T  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import csasn_format  # noqa: E402
import preprocess as P  # noqa: E402

FRAMES = os.path.join(T.DATA, "ddti_frames")
MARKUP_LABEL = '<img src=x onerror="window.__pwned=1">isoechoic'
DESCRIPTORS = {
    "composition": ["solid", "predominantly solid", "predominantly cystic", "cystic", "spongiform"],
    "echogenicity": ["hyperechogenicity", MARKUP_LABEL, "hypoechogenicity", "marked hypoechogenicity"],
    "margins": ["well defined", "ill defined", "microlobulated", "spiculated"],
    "calcifications": ["non", "microcalcifications", "macrocalcifications"],
}


def frames_with_boxes(n):
    with open(os.path.join(FRAMES, "nodules.csv")) as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["image"])
    seen, out = set(), []
    for r in rows:
        if r["image"] not in seen:
            seen.add(r["image"])
            x0, y0, x1, y1 = (int(r[k]) for k in ("x0", "y0", "x1", "y1"))
            out.append((os.path.join(FRAMES, r["image"]), [x0, y0, x1 - x0 + 1, y1 - y0 + 1]))
    return [out[i * len(out) // n] for i in range(n)]


def desc_model(path):
    """A tiny random model (tests/tinymodel.py) with square geometry and four descriptor
    heads whose weights are scaled so their probabilities are far from uniform."""
    torch.set_num_threads(1)
    cfg = T.tiny_config(name="region-desc-web", region_mode="square", region_margin=0.25, region_fill=0.0,
                        descriptors=list(DESCRIPTORS), descriptor_labels=list(DESCRIPTORS.values()))
    m = T.random_model(cfg, seed=7)
    with torch.no_grad():
        for h in m.head_desc:
            h.weight.mul_(8.0)
    import convert
    convert.export(m, cfg, path, "f32")
    return cfg


def main(out):
    os.makedirs(out, exist_ok=True)
    base = T.write_model("region-base", "f32")
    cfg = T.tiny_config()
    combos = [("stretch", 0.0, 0.0), ("stretch", 0.15, 0.0), ("square", 0.0, 0.0), ("square", 0.25, 0.5),
              ("square", 1.0, 0.0), ("letterbox", 0.15, 0.5), ("letterbox", 0.5, 1.0)]
    cases = []
    for img, box in frames_with_boxes(3):
        h, w = P.load_gray(img).shape
        for roi in [box, None, [0, 0, w // 3, h // 4], [w - 40, h - 25, 90, 70], [-12, -7, w + 30, h + 20],
                    [w - 1, h - 1, 1, 1], [5, h // 2, 2, 9]]:
            cases.append({"image": img, "roi": roi, "w": w, "h": h})
    meta, tensors, _ = csasn_format.read(base)
    items = []
    for ci, (mode, margin, fill) in enumerate(combos):
        model = os.path.join(out, f"pre_{ci}.csasn")
        m = dict(meta, **{"csasn.region_mode": mode, "csasn.region_margin": margin, "csasn.region_fill": fill})
        csasn_format.write(model, m, tensors, "f32")
        m32, f32 = float(np.float32(margin)), float(np.float32(fill))
        for k, c in enumerate(cases):
            ref = os.path.join(out, f"ref_{ci}_{k}.f32")
            x = P.preprocess(c["image"], cfg.input_size, cfg.mean, cfg.std, c["roi"], mode, m32, f32)
            x.astype("<f4").tofile(ref)
            x0, y0, x1, y1 = P.region_geometry(c["roi"], c["w"], c["h"], mode, m32)[:4]
            items.append({"model": model, "mode": mode, "margin": margin, "fill": fill, "image": c["image"],
                          "roi": c["roi"], "ref": ref, "region": {"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0}})
    dcfg = desc_model(os.path.join(out, "desc.csasn"))
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"items": items, "desc": {"model": os.path.join(out, "desc.csasn"), "descriptors": dcfg.descriptors,
                                            "labels": dcfg.descriptor_labels, "markup_label": MARKUP_LABEL,
                                            "frames": frames_with_boxes(3)}}, f)


if __name__ == "__main__":
    main(sys.argv[1])
