#!/usr/bin/python3
"""The C preprocessing (`csasn preprocess`) equals tools/preprocess.py, which
training uses, on real images from ../shared/data (DDTI thyroid and BUSI
breast), whole image and lesion ROIs; and the Python resize equals PIL's
antialiased BILINEAR resize, an implementation written by others.
"""
import csv
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as L  # noqa: E402
import tinymodel as T  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import preprocess as P  # noqa: E402  (tools/, put on sys.path by tinymodel)

WORK = os.path.join(T.OUT, "preprocess")
os.makedirs(WORK, exist_ok=True)


def samples(n_each=6):
    """(image, mask) pairs: labelled DDTI and BUSI images with lesion masks."""
    out = []
    for ds, cls_col in (("ddti", "class"), ("busi", "class")):
        root = os.path.join(T.DATA, ds)
        with open(os.path.join(root, "labels.csv")) as f:
            rows = [r for r in csv.DictReader(f) if r[cls_col] in ("benign", "malignant")]
        rows.sort(key=lambda r: r["image"])
        step = max(1, len(rows) // n_each)
        out += [(os.path.join(root, r["image"]), os.path.join(root, r["mask"])) for r in rows[::step][:n_each]]
    return out


def mask_roi(mask_path, margin=0.15):
    """Bounding box of the lesion (x, y, w, h) widened by margin, as a user's ROI."""
    m = np.asarray(Image.open(mask_path).convert("L")) > 0
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    mx, my = int((x1 - x0) * margin), int((y1 - y0) * margin)
    return (int(x0 - mx), int(y0 - my), int(x1 - x0 + 2 * mx), int(y1 - y0 + 2 * my))


def c_preprocess(model, image, roi):
    out = os.path.join(WORK, "input.f32")
    args = [T.CSASN, "preprocess", "--model", model, "--out", out]
    if roi is not None:
        args += ["--roi", ",".join(map(str, roi))]
    p = subprocess.run(args + [image], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"csasn preprocess failed ({p.returncode}): {p.stderr.strip()}")
    return np.fromfile(out, np.float32)


# Two models: the tiny one (S = 64: strong downscaling, ImageNet mean/std) and
# one at S = 224 with other mean/std, to show both come from the model file.
models = [(T.write_model("tiny", "f32"), T.tiny_config()),
          (T.write_model("tiny224", "f32", input_size=224, mean=(0.5, 0.4, 0.3), std=(0.25, 0.3, 0.2)),
           T.tiny_config(input_size=224, mean=(0.5, 0.4, 0.3), std=(0.25, 0.3, 0.2)))]
pairs = samples(6)
L.check("at_least_8_real_images", len(pairs) >= 8 and all(os.path.exists(p) for pr in pairs for p in pr),
        f"{len(pairs)} images")

# 1. C vs Python. Both decode PNG losslessly to the same 8-bit values and
# compute the same sums in double precision; they differ only in summation
# order (~1e-16) and hence at most in the last bit of a float32 after the
# final rounding: ~1e-7 relative, ~5e-7 after dividing by std = 0.2. The
# required bound is 1e-5.
worst = 0.0
n_cmp = 0
for model, cfg in models:
    S = cfg.input_size
    for img, mask in pairs:
        w, h = Image.open(img).size
        rois = [None, mask_roi(mask), (-15, -10, w // 2, h // 3), (w - 30, h - 25, 60, 50)]
        for roi in rois:
            name = f"S{S}_{os.path.basename(os.path.dirname(os.path.dirname(img)))}_{os.path.basename(img)}_roi{roi}"
            try:
                c = c_preprocess(model, img, roi)
            except RuntimeError as e:
                L.check(name, False, str(e))
                continue
            py = P.preprocess(img, S, cfg.mean, cfg.std, roi).ravel()
            d = float(np.abs(c - py).max()) if c.shape == py.shape else float("inf")
            worst = max(worst, d)
            n_cmp += 1
            if d > 1e-5:
                L.check(name, False, f"max abs diff {d} > 1e-5 (shapes {c.shape} {py.shape})")
L.check(f"c_equals_python_preprocess ({n_cmp} image/ROI/size cases, max diff {worst:.2e})",
        n_cmp == len(models) * len(pairs) * 4 and worst <= 1e-5, f"worst {worst}")

# 2. Python resize vs PIL's Image.resize(BILINEAR) on float images ('F').
# PIL uses the same antialiased triangle filter (support scaled by in/out when
# shrinking) but stores the result of its horizontal pass as float32 while we
# keep double: one extra rounding of <= 2^-24 relative per pass on values in
# [0, 1], so the outputs agree to ~1e-7; the bound is 1e-6.
worst = 0.0
for img, mask in pairs[::2]:
    g = P.load_gray(img)
    h, w = g.shape
    for S, roi in ((224, None), (64, None), (448, None), (224, mask_roi(mask)), (224, (10, 20, 37, 23))):
        x0, y0, x1, y1 = P.clip_roi(roi, w, h)
        ours = P.resize_normalize(g, roi, S, (0, 0, 0), (1, 1, 1))[0]
        pil = np.asarray(Image.fromarray(g[y0:y1, x0:x1], "F").resize((S, S), Image.BILINEAR))
        worst = max(worst, float(np.abs(ours - pil).max()))
L.check(f"python_resize_equals_PIL_bilinear (max diff {worst:.2e})", worst <= 1e-6, f"{worst}")

# 3. The resize really antialiases: a 1-pixel checkerboard shrunk 5x must come
# out uniform grey (a point-sampling bilinear resize would alias to 0/1).
cb = (np.indices((320, 320)).sum(0) % 2).astype(np.float32)
r = P.resize_normalize(cb, None, 64, (0, 0, 0), (1, 1, 1))[0]
L.check("resize_antialiases", np.abs(r - 0.5).max() < 0.02, f"range {r.min()}..{r.max()}")
Image.fromarray((cb * 255).astype(np.uint8)).save(os.path.join(WORK, "checker.png"))
c = c_preprocess(models[0][0], os.path.join(WORK, "checker.png"), None).reshape(3, 64, 64)
cm = np.asarray(models[0][1].mean, np.float32)[:, None, None]
cs = np.asarray(models[0][1].std, np.float32)[:, None, None]
L.check("c_resize_antialiases", np.abs(c * cs + cm - 0.5).max() < 0.02, f"range {(c * cs + cm).min()}..{(c * cs + cm).max()}")

# 4. Colour and 16-bit sources (same code paths as the engine's).
img = pairs[0][0]
g8 = np.asarray(Image.open(img))
rgb = np.stack([g8, np.roll(g8, 7, 1), 255 - g8], -1).astype(np.uint8)
extra = {"rgb.png": Image.fromarray(rgb), "rgba.png": Image.fromarray(np.concatenate([rgb, g8[..., None]], -1)),
         "palette.png": Image.fromarray(rgb).quantize(50),
         "gray16.png": Image.fromarray((g8.astype(np.uint16) * 251 + np.arange(g8.shape[1], dtype=np.uint16) % 97))}
worst = 0.0
for n, im in extra.items():
    path = os.path.join(WORK, n)
    im.save(path)
    c = c_preprocess(models[1][0], path, None)
    py = P.preprocess(path, 224, models[1][1].mean, models[1][1].std).ravel()
    worst = max(worst, float(np.abs(c - py).max()))
L.check(f"c_equals_python_colour_and_16bit (max diff {worst:.2e})", worst <= 1e-5, f"{worst}")

# 5. JPEG: stb_image and libjpeg (PIL) are different decoders (IDCT, chroma
# upsampling) and may differ by a few grey levels; 3/255 / std 0.2 = 0.06.
path = os.path.join(WORK, "photo.jpg")
Image.fromarray(rgb).save(path, quality=85)
c = c_preprocess(models[1][0], path, None)
py = P.preprocess(path, 224, models[1][1].mean, models[1][1].std).ravel()
d = float(np.abs(c - py).max())
L.check(f"jpeg_close_across_decoders (max diff {d:.2e})", d <= 0.06, f"{d}")

# 6. A bad ROI is rejected the same way on both sides.
try:
    P.preprocess(img, 64, (0, 0, 0), (1, 1, 1), (5000, 0, 10, 10))
    py_ok = True
except ValueError as e:
    py_ok = "does not overlap" not in str(e)
p = subprocess.run([T.CSASN, "preprocess", "--model", models[0][0], "--out", os.path.join(WORK, "x.f32"),
                    "--roi", "5000,0,10,10", img], capture_output=True, text=True)
L.check("bad_roi_rejected_by_both", not py_ok and p.returncode == 1 and "does not overlap" in p.stderr,
        f"python accepted={py_ok}, C status {p.returncode}: {p.stderr[:200]}")

sys.exit(L.exit_code())
