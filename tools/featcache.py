#!/usr/bin/env python3
"""Run the frozen part of CSASN once per region and view, and keep what the
trainable part reads: the CNN's stride-8 / stride-16 / head maps and the ViT's
pooled patch map and class token. Training the fusion, the cascaded attention,
the residual multiscale classifier and the heads on this cache (tools/train_heads.py)
costs seconds per epoch on 2 CPU cores instead of minutes.

  /usr/bin/python3 tools/featcache.py --mode square --margin 0.25 --cnn imagenet --vit busi \
      --out cache/feat-square-0.25-imagenet-busi.npz

Views per region: 0 = the outline's box, 1 = the same flipped left-right (test
time flip), then --views jittered boxes (tools/frames.py jitter_box), every
other one flipped. The input is made by tools/preprocess.py, i.e. exactly what
the engine computes for that box in that region mode.

Trunks: --cnn imagenet (GluonCV MobileNetV2, ../shared/pretrained) | busi (the
MobileNetV2 of weights/breast-busi.csasn, fine-tuned on BUSI breast ultrasound);
--vit busi (the ViT of weights/breast-busi.csasn) | none. BUSI shares no patient
or image with DDTI or lc_thyroid, so a trunk trained on it leaks no thyroid label.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import csasn_format  # noqa: E402
import csasn_model as M  # noqa: E402
import frames as FR  # noqa: E402
import preprocess as P  # noqa: E402

DATA = os.path.join(HERE, "..", "..", "shared", "data")
BUSI_MODEL = os.path.join(HERE, "..", "weights", "breast-busi.csasn")
PRETRAINED = os.path.join(HERE, "..", "..", "shared", "pretrained", "mobilenetv2-1.0-imagenet")
SIZE, VIT = 224, (192, 4, 3, 768)


def trunk_config():
    return M.make_config("csasn-thyroid-ddti", cnn="mobilenetv2-gluon", vit=VIT, input_size=SIZE,
                         labels=["TI-RADS " + t for t in FR.DDTI_TIRADS],
                         malignant_labels=["TI-RADS " + t for t in FR.DDTI_TIRADS[2:]])


def trunk_state(cnn, vit):
    """-> state_dict entries (cnn.*, vit.*) of the frozen trunk."""
    sd = {}
    if cnn == "imagenet":
        import pretrained
        sd.update(pretrained.gluon_to_state(PRETRAINED, trunk_config()))
    busi = None
    if cnn == "busi" or vit == "busi":
        _, t, _ = csasn_format.read(BUSI_MODEL)
        busi = {k: torch.from_numpy(v.copy()) for k, v in t.items()}
    if cnn == "busi":
        sd.update({k: v for k, v in busi.items() if k.startswith("cnn.")})
    if vit == "busi":
        sd.update({k: v for k, v in busi.items() if k.startswith("vit.")})
    return sd


def build_trunk(cnn, vit):
    cfg = trunk_config()
    m = M.CSASN(cfg)
    missing = m.load_state_dict(trunk_state(cnn, vit), strict=False)
    return m.eval(), cfg


def region_views(rec, gray, n_jit, rng):
    """-> list of (box or None, flip)."""
    h, w = gray.shape
    box = rec["box"]
    views = [(box, False), (box, True)]
    for j in range(n_jit):
        b = FR.jitter_box(box, rng, 0.08, w, min(h, FR.TEXT_BAND_Y)) if box else \
            FR.jitter_box((0, 0, w, h), rng, 0.04, w, h)
        views.append((b, j % 2 == 1))
    return views


@torch.no_grad()
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=P.REGION_MODES, default="square")
    ap.add_argument("--margin", type=float, default=0.25)
    ap.add_argument("--fill", type=float, default=0.0)
    ap.add_argument("--cnn", choices=["imagenet", "busi"], default="imagenet")
    ap.add_argument("--vit", choices=["busi", "none"], default="busi")
    ap.add_argument("--views", type=int, default=6, help="jittered views per region (besides box and flip)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    recs = FR.ddti_frame_records(os.path.join(DATA, "ddti_frames")) + FR.lc_records(os.path.join(DATA, "lc_thyroid"))
    if a.limit:
        recs = recs[:a.limit // 2] + recs[-a.limit // 2:]
    model, cfg = build_trunk(a.cnn, a.vit)
    mean, std = cfg.mean, cfg.std
    S4 = SIZE // 4
    rng = np.random.default_rng(0)
    nv = 2 + a.views
    N = len(recs)
    out = {k: None for k in ("tap8", "tap16", "head", "vitmap", "vitcls")}
    masks = np.zeros((N, nv, S4, S4), np.float16)
    boxes = np.zeros((N, nv, 4), np.int32)
    t0 = time.time()
    frame_polys = {}
    for r in recs:
        if r["polygon"]:
            frame_polys.setdefault(r["image"], []).append(r["polygon"])
    gray_cache = {}
    for i, r in enumerate(recs):
        if r["image"] not in gray_cache:
            gray_cache.clear()
            g = P.load_gray(r["image"])
            if r["source"] == "ddti":
                g = g.copy()
                g[FR.TEXT_BAND_Y:] = 0.0
            gray_cache[r["image"]] = g
        g = gray_cache[r["image"]]
        h, w = g.shape
        mk = FR.polygon_mask(frame_polys[r["image"]], w, h) if r["polygon"] else None
        xs = []
        for v, (b, flip) in enumerate(region_views(r, g, a.views, rng)):
            x = P.resize_normalize(g, b, SIZE, mean, std, a.mode, a.margin, a.fill)
            if mk is not None:
                mm = P.resize_region(mk, b, S4, a.mode, a.margin, 0.0)
                masks[i, v] = mm[:, ::-1] if flip else mm
            else:
                masks[i, v] = np.nan
            boxes[i, v] = b if b else (0, 0, w, h)
            xs.append(x[:, :, ::-1].copy() if flip else x)
        o = model(torch.from_numpy(np.stack(xs)))
        feats = {"tap8": o["cnn_tap8"], "tap16": o["cnn_tap16"], "head": o["cnn_head"]}
        if a.vit != "none":
            tok = o["vit_tokens"]
            B, T, D = tok.shape
            gsz = model.vit.grid
            pm = tok[:, 1:].transpose(1, 2).reshape(B, D, gsz, gsz)
            feats["vitmap"] = F.avg_pool2d(pm, model.vit_pool)
            feats["vitcls"] = tok[:, 0]
        for k, t in feats.items():
            if out[k] is None:
                out[k] = np.zeros((N, nv) + tuple(t.shape[1:]), np.float16)
            out[k][i] = t.numpy().astype(np.float16)
        if i % 50 == 0:
            print(f"{i}/{N} regions, {time.time() - t0:.0f} s", flush=True)
    meta = dict(mode=a.mode, margin=a.margin, fill=a.fill, cnn=a.cnn, vit=a.vit, views=nv, size=SIZE)
    arrays = {k: v for k, v in out.items() if v is not None}
    np.savez(a.out + ".tmp.npz", masks=masks, boxes=boxes,
             label=np.array([r["label"] for r in recs]), malignant=np.array([r["malignant"] for r in recs]),
             desc=np.array([r["desc"] for r in recs]), group=np.array([r["group"] for r in recs]),
             source=np.array([r["source"] for r in recs]), image=np.array([r["image"] for r in recs]),
             meta=np.array(repr(meta)), **arrays)
    os.replace(a.out + ".tmp.npz", a.out)
    print(f"wrote {a.out}: {N} regions x {nv} views in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
