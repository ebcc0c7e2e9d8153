#!/usr/bin/python3
"""Region geometry and descriptor heads in the model file, on the CLI.

1. The C preprocessing (`csasn preprocess`) equals tools/preprocess.py, which training
   imports, for every region mode (stretch, square, letterbox) x margins x fills, on real
   DDTI scanner frames (../shared/data/ddti_frames) with the nodules' boxes from
   nodules.csv and with boxes that touch the image edge, reach past it, cover more than
   the image, and tiny ones (1 x 1, 2 x 9); the region the CLI reports is
   region_geometry's.
2. Bad region keys and descriptor heads are refused with a message naming the problem.
3. The shipped models (weights/*.csasn) still load; written again with their region rule
   spelled out (the keys at their defaults when the file has none) they give exactly the
   same classify output; without region keys the region is the clipped box (the
   engine's behaviour before region geometry existed) and there are no descriptors.
"""
import csv
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as L  # noqa: E402
import tinymodel as T  # noqa: E402

import numpy as np  # noqa: E402

import csasn_format  # noqa: E402
import preprocess as P  # noqa: E402

OUT = os.path.join(T.ROOT, "build", "test_region")
FRAMES = os.path.join(T.DATA, "ddti_frames")
TIMEOUT = 600 if L.SANITIZED else 60
# 1e-5, the bound the engine and tools/preprocess.py are held to: both decode PNG to the
# same 8-bit values, take the same pixels (integer geometry) and sum the same weights in
# double; only the summation order differs (about 1e-16), i.e. at most the last bit of a
# float32 after the final rounding (~1e-7 relative, ~5e-7 after dividing by std 0.225).
TOL = 1e-5

MODES = ("stretch", "square", "letterbox")
# 0.15 is not a float32: the file stores float32(0.15) and Python is given that same value,
# which is what a model's own preprocessing reads back from its file.
MARGINS = (0.0, 0.15, 0.25, 0.5, 1.0)
FILLS = (0.0, 0.5)


def run(args):
    return subprocess.run([T.CSASN] + args, capture_output=True, text=True, timeout=TIMEOUT)


def frames_with_boxes(n):
    """n DDTI frames (sorted, spread over the set) with one nodule box each, (x, y, w, h)
    in frame pixels: nodules.csv gives inclusive corners."""
    with open(os.path.join(FRAMES, "nodules.csv")) as f:
        rows = list(csv.DictReader(f))
    seen, out = set(), []
    for r in sorted(rows, key=lambda r: r["image"]):
        if r["image"] in seen:
            continue
        seen.add(r["image"])
        x0, y0, x1, y1 = (int(r[k]) for k in ("x0", "y0", "x1", "y1"))
        out.append((os.path.join(FRAMES, r["image"]), (x0, y0, x1 - x0 + 1, y1 - y0 + 1)))
    step = max(1, len(out) // n)
    return out[::step][:n]


def edge_boxes(w, h):
    """Boxes the geometry must handle at the image's edge and beyond."""
    return [None,                                   # the whole image (never grown)
            (0, 0, w // 3, h // 4),                 # touching the top-left corner
            (w - 40, h - 25, 90, 70),               # reaching past the bottom-right edge
            (-12, -7, w + 30, h + 20),              # more than the whole image
            (w - 1, h - 1, 1, 1),                   # one pixel, in the last corner
            (5, h // 2, 2, 9)]                      # thin and tiny


def with_meta(src, dst, changes, drop=(), tensors_changes=None):
    """src rewritten with metadata changes (None removes a key) and tensor changes."""
    meta, tensors, info = csasn_format.read(src)
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    t = {k: v for k, v in tensors.items() if k not in drop}
    t.update(tensors_changes or {})
    dtype = "f16" if all(d[0] == csasn_format.DT_F16 for d in info.values()) else "f32"
    csasn_format.write(dst, meta, t, dtype)
    return dst


def preprocess_cases():
    base = T.write_model("region-base", "f32")
    cfg = T.tiny_config()
    S = cfg.input_size
    cases = []
    for img, box in frames_with_boxes(4):
        h, w = P.load_gray(img).shape
        cases += [(img, r) for r in [box] + edge_boxes(w, h)]
    worst, n_cmp, bad, regions_ok = 0.0, 0, [], True
    for mode in MODES:
        for margin in MARGINS:
            for fill in FILLS:
                if mode == "stretch" and fill:
                    continue    # stretch never samples outside the image: fill is unused
                tag = f"{mode}_m{margin}_f{fill}"
                model = with_meta(base, os.path.join(OUT, f"pre_{tag}.csasn"), {
                    "csasn.region_mode": mode, "csasn.region_margin": float(margin),
                    "csasn.region_fill": float(fill)})
                m32, f32 = float(np.float32(margin)), float(np.float32(fill))
                for img, roi in cases:
                    raw = os.path.join(OUT, "input.f32")
                    args = ["preprocess", "--model", model, "--out", raw]
                    if roi is not None:
                        args += ["--roi", ",".join(map(str, roi))]
                    p = run(args + [img])
                    name = f"{tag} {os.path.basename(img)} roi={roi}"
                    if p.returncode != 0:
                        bad.append(f"{name}: status {p.returncode}: {p.stderr.strip()[:200]}")
                        continue
                    c = np.fromfile(raw, np.float32)
                    py = P.preprocess(img, S, cfg.mean, cfg.std, roi, mode, m32, f32).ravel()
                    d = float(np.abs(c - py).max()) if c.shape == py.shape else math.inf
                    worst = max(worst, d)
                    n_cmp += 1
                    if d > TOL:
                        bad.append(f"{name}: max diff {d}")
                    gray = P.load_gray(img)
                    x0, y0, x1, y1 = P.region_geometry(roi, gray.shape[1], gray.shape[0], mode, m32)[:4]
                    got = json.loads(p.stdout).get("region")
                    if got != {"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0}:
                        regions_ok = False
                        bad.append(f"{name}: region {got}, python {(x0, y0, x1 - x0, y1 - y0)}")
    n_want = (len(MODES) * len(MARGINS) * len(FILLS) - len(MARGINS) * (len(FILLS) - 1)) * len(cases)
    L.check(f"C preprocessing equals tools/preprocess.py for every mode x {len(MARGINS)} margins x "
            f"{len(FILLS)} fills on {len(cases)} real frame/box cases ({n_cmp} inputs, max diff {worst:.2e})",
            n_cmp == n_want and worst <= TOL and not bad, "; ".join(bad[:5]))
    L.check("the CLI's region is tools/preprocess.py region_geometry's in every case", regions_ok and n_cmp == n_want,
            "; ".join(b for b in bad if "region" in b)[:500])

    # The modes really differ where they should: a square region of a wide box shows the
    # image above and below it, letterbox shows fill there, stretch neither.
    img, box = frames_with_boxes(4)[0]
    outs = {}
    for mode in MODES:
        model = os.path.join(OUT, f"pre_{mode}_m0.25_f0.5.csasn" if mode != "stretch" else "pre_stretch_m0.25_f0.0.csasn")
        raw = os.path.join(OUT, f"mode_{mode}.f32")
        run(["preprocess", "--model", model, "--out", raw, "--roi", ",".join(map(str, box)), img])
        outs[mode] = np.fromfile(raw, np.float32)
    L.check("the three modes give three different inputs for one box",
            all(o.size == 3 * S * S for o in outs.values()) and
            min(np.abs(outs[a] - outs[b]).max() for a, b in (("stretch", "square"), ("square", "letterbox"),
                                                             ("stretch", "letterbox"))) > 0.1,
            str({k: v.size for k, v in outs.items()}))


def bad_files():
    base = T.write_model("region-desc", "f32", region_mode="square", region_margin=0.25, region_fill=0.5,
                         descriptors=["composition", "echogenicity"],
                         descriptor_labels=[["solid", "mixed", "cystic"], ["hypo", "iso", "hyper", "very hypo"]])
    meta, tensors, _ = csasn_format.read(base)
    p = run(["info", "--model", base])
    info = json.loads(p.stdout) if p.returncode == 0 else {}
    L.check("a model with square geometry and two descriptor heads loads; info shows both",
            info.get("region") == {"mode": "square", "margin": 0.25, "fill": 0.5} and info.get("descriptor_heads") == 2
            and info.get("heads.descriptors") == ["composition", "echogenicity"], p.stderr[:300] + p.stdout[:300])
    E = tensors["head_desc.0.weight"].shape[1]
    many = [f"d{i}" for i in range(17)]
    cases = {
        "wrong_head_desc_weight_shape": ({}, (), {"head_desc.0.weight": np.zeros((4, E), np.float32)},
                                         ["head_desc.0.weight", "shape [4,", "expected [3,"]),
        "wrong_head_desc_bias_shape": ({}, (), {"head_desc.1.bias": np.zeros(3, np.float32)},
                                       ["head_desc.1.bias", "shape [3]", "expected [4]"]),
        "head_desc_missing": ({}, ("head_desc.1.weight",), None, ["missing tensor 'head_desc.1.weight'"]),
        "head_desc_without_a_head": ({"heads.descriptors": ["composition"], "descriptor.echogenicity": None}, (), None,
                                     ["unexpected tensor 'head_desc.1."]),
        "unknown_region_mode": ({"csasn.region_mode": "squash"}, (), None, ["csasn.region_mode", "squash", "stretch, square or letterbox"]),
        "region_mode_not_a_string": ({"csasn.region_mode": 1}, (), None, ["csasn.region_mode", "type u32", "expected str"]),
        "margin_negative": ({"csasn.region_margin": -0.1}, (), None, ["csasn.region_margin", "0..1"]),
        "margin_above_1": ({"csasn.region_margin": 1.5}, (), None, ["csasn.region_margin", "0..1"]),
        "margin_nan": ({"csasn.region_margin": float("nan")}, (), None, ["csasn.region_margin", "0..1"]),
        "fill_above_1": ({"csasn.region_fill": 1.25}, (), None, ["csasn.region_fill", "0..1"]),
        "too_many_heads": (dict({"heads.descriptors": many}, **{f"descriptor.d{i}": ["a", "b"] for i in range(17)}), (), None,
                           ["17 heads", "at most 16"]),
        "one_label": ({"descriptor.composition": ["solid"]}, (), None, ["descriptor.composition", "1 labels", "2..64"]),
        "65_labels": ({"descriptor.composition": [f"l{i}" for i in range(65)]}, (), None, ["descriptor.composition", "65 labels"]),
        "labels_key_missing": ({"descriptor.echogenicity": None}, (), None, ["echogenicity", "has no labels"]),
        "stray_descriptor_key": ({"descriptor.margins": ["smooth", "ill-defined"]}, (), None, ["descriptor.margins", "names no head"]),
        "duplicate_head": ({"heads.descriptors": ["composition", "composition"], "descriptor.echogenicity": None}, (), None,
                           ["composition", "appears twice"]),
        "duplicate_label": ({"descriptor.composition": ["solid", "solid", "cystic"]}, (), None, ["label 'solid' appears twice"]),
    }
    for name, (changes, drop, tch, words) in cases.items():
        path = with_meta(base, os.path.join(OUT, f"bad_{name}.csasn"), changes, drop, tch)
        p = run(["info", "--model", path])
        err = p.stderr.strip()
        L.check(f"bad file refused with a clear message: {name}",
                p.returncode == 1 and all(w.lower() in err.lower() for w in words) and not p.stdout.strip(),
                f"status {p.returncode}, stderr {err[:300]!r}, want {words}")


def shipped_models():
    files = sorted(f for f in os.listdir(os.path.join(T.ROOT, "weights")) if f.endswith(".csasn"))
    L.check("shipped models found", len(files) >= 2, str(files))
    picks = frames_with_boxes(3)
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "ms"}
    for f in files:
        src = os.path.join(T.ROOT, "weights", f)
        meta = csasn_format.read(src)[0]
        mode = meta.get("csasn.region_mode", "stretch")
        margin = meta.get("csasn.region_margin", 0.0)
        spelled = with_meta(src, os.path.join(OUT, "spelled_" + f), {
            "csasn.region_mode": mode, "csasn.region_margin": float(margin),
            "csasn.region_fill": float(meta.get("csasn.region_fill", 0.0))})
        same, n = True, 0
        for img, box in picks:
            for roi in (None, box, (-20, -10, box[2] + 40, box[3] + 30)):
                args = ["--attention", "--mask"] + (["--roi", ",".join(map(str, roi))] if roi else []) + [img]
                a, b = run(["classify", "--model", src] + args), run(["classify", "--model", spelled] + args)
                if a.returncode or b.returncode:
                    same = False
                    continue
                ra, rb = strip(a.stdout), strip(b.stdout)
                same &= ra == rb
                n += 1
                if "csasn.region_mode" not in meta:
                    h, w = P.load_gray(img).shape
                    x0, y0, x1, y1 = P.clip_roi(roi, w, h)
                    L.check(f"{f}: no region keys -> the region is the clipped box ({os.path.basename(img)} roi={roi})",
                            ra.get("region") == {"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0} and ra.get("descriptors") == {},
                            str(ra.get("region")))
        L.check(f"{f}: loads, and the same file with its region rule spelled out gives identical results "
                f"({n} classifications, probabilities, maps, region)", same and n == 9, f"{n} compared")


def main():
    os.makedirs(OUT, exist_ok=True)
    if not L.cli_built():
        return 1
    L.check("DDTI frames present", os.path.exists(os.path.join(FRAMES, "nodules.csv")), FRAMES)
    preprocess_cases()
    bad_files()
    shipped_models()
    return L.exit_code()


if __name__ == "__main__":
    sys.exit(main())
