"""Preprocessing in Python that gives the same tensor as the C engine
(src/image.c): gray in [0,1] -> the model's region of the ROI -> antialiased
triangle resize to S x S -> (x - mean[c]) / std[c], planar [3, S, S] float32.

Region geometry (the model file's `csasn.region_mode`, `csasn.region_margin`,
`csasn.region_fill`; src/FORMAT.md): how the user's box becomes the S x S input.
- `stretch` (files without the keys): the box, grown by the margin and clipped
  to the image, is resized to S x S whatever its aspect ratio.
- `square`: the grown box is centred in the smallest square that holds it; the
  square shows the image around the box (context), `fill` where it leaves the
  image. Aspect ratio kept: a taller-than-wide nodule stays taller than wide.
- `letterbox`: the same square, but only the grown box shows image; the bands
  beside it are `fill`.
All in integer pixels, so that C and Python take exactly the same samples:
margin px = floor(margin * side + 0.5) per axis, square offset = floor division.

Training imports these functions, so the model is trained on exactly what the
engine feeds it. tests/test_preprocess.py checks C against this to 1e-5.

Decoding: PIL here, stb_image in C. They agree exactly on PNG, BMP, GIF and
PNM (lossless); JPEG decoders differ by a grey level or so (different IDCTs),
so for JPEG the two agree only to about 1e-2 after normalisation. A 16-bit
colour PNG is reduced to 8 bits by PIL (the engine keeps 16); ultrasound is
8- or 16-bit gray, where both agree.
"""
import io
import math

import numpy as np
from PIL import Image, ImageOps


def load_gray(path_or_bytes):
    """-> float32 [H, W] in [0, 1], upright: the EXIF orientation of a JPEG or
    PNG (eXIf) is applied, as the engine and the browsers do. 16-bit gray
    /65535, 8-bit /255, colour -> BT.601 luma 0.299 R + 0.587 G + 0.114 B
    computed in float32 (same order as the C code), alpha ignored."""
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
    with Image.open(src) as im0:
        im0.load()
        im = ImageOps.exif_transpose(im0) if im0.format in ("JPEG", "PNG") else im0
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            # PIL opens 16-bit gray PNG/PNM as I;16 (or I): values 0..65535.
            a = np.asarray(im, dtype=np.uint32 if mode == "I" else None).astype(np.float32)
            return a / np.float32(65535.0)
        if mode in ("L", "LA", "La"):
            a = np.asarray(im.getchannel(0) if mode != "L" else im).astype(np.float32)
            return a / np.float32(255.0)
        if mode == "1":
            im = im.convert("L")
            return np.asarray(im).astype(np.float32) / np.float32(255.0)
        if mode not in ("RGB", "RGBA", "RGBX"):
            im = im.convert("RGBA" if "transparency" in im.info or mode in ("PA",) else "RGB")
        a = np.asarray(im).astype(np.float32)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    y = np.float32(0.299) * r + np.float32(0.587) * g
    y = y + np.float32(0.114) * b
    # R = G = B: the weights sum to 1, take the value itself (as the C code does).
    y = np.where((r == g) & (g == b), r, y)
    return (y / np.float32(255.0)).astype(np.float32)


def clip_roi(roi, w, h):
    """roi (x, y, w, h) or None -> (x0, y0, x1, y1) inside the image, as the
    engine clips it. Raises ValueError for w/h <= 0 or no overlap."""
    if roi is None:
        return 0, 0, w, h
    x, y, rw, rh = (int(v) for v in roi)
    if rw <= 0 or rh <= 0:
        raise ValueError(f"bad ROI {x},{y},{rw},{rh}: width and height must be positive")
    if x + rw <= 0 or y + rh <= 0 or x >= w or y >= h:
        raise ValueError(f"ROI {x},{y},{rw},{rh} does not overlap the {w}x{h} image")
    return max(x, 0), max(y, 0), min(x + rw, w), min(y + rh, h)


def resize_weights(n_in, n_out):
    """[n_out, n_in] float64 matrix of the antialiased triangle filter (PIL's
    BILINEAR): support widens to in/out when shrinking; rows sum to 1."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    W = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo = max(int(math.floor(center - support)), 0)
        hi = min(int(math.ceil(center + support)), n_in)
        j = np.arange(lo, hi)
        w = np.maximum(0.0, 1.0 - np.abs((j + 0.5 - center) / support))
        W[i, lo:hi] = w / w.sum()
    return W


_cache = {}


def _weights(n_in, n_out):
    k = (n_in, n_out)
    if k not in _cache:
        if len(_cache) > 256:
            _cache.clear()
        _cache[k] = resize_weights(n_in, n_out)
    return _cache[k]


REGION_MODES = ("stretch", "square", "letterbox")


def region_geometry(roi, w, h, mode="stretch", margin=0.0):
    """-> (x0, y0, x1, y1, gx0, gy0, gx1, gy1): the sampled region in image
    pixels (may extend past the image for square/letterbox) and the grown box
    (the part that shows image in letterbox mode). The margin applies only to a
    given ROI: the whole image is never grown."""
    if mode not in REGION_MODES:
        raise ValueError(f"unknown region mode {mode!r} (expected one of {REGION_MODES})")
    bx0, by0, bx1, by1 = clip_roi(roi, w, h)
    mx = my = 0
    if roi is not None:
        mx = int(math.floor(margin * (bx1 - bx0) + 0.5))
        my = int(math.floor(margin * (by1 - by0) + 0.5))
    gx0, gy0, gx1, gy1 = bx0 - mx, by0 - my, bx1 + mx, by1 + my
    if mode == "stretch":
        gx0, gy0, gx1, gy1 = max(gx0, 0), max(gy0, 0), min(gx1, w), min(gy1, h)
        return gx0, gy0, gx1, gy1, gx0, gy0, gx1, gy1
    side = max(gx1 - gx0, gy1 - gy0)
    x0 = gx0 - (side - (gx1 - gx0)) // 2
    y0 = gy0 - (side - (gy1 - gy0)) // 2
    return x0, y0, x0 + side, y0 + side, gx0, gy0, gx1, gy1


def region_pixels(gray, roi, mode="stretch", margin=0.0, fill=0.0):
    """gray [H, W] -> float64 [h, w] region the resize reads (fill outside)."""
    h, w = gray.shape
    x0, y0, x1, y1, gx0, gy0, gx1, gy1 = region_geometry(roi, w, h, mode, margin)
    if mode == "square":     # image wherever the square covers it
        gx0, gy0, gx1, gy1 = 0, 0, w, h
    out = np.full((y1 - y0, x1 - x0), float(fill), np.float64)
    sx0, sy0 = max(x0, gx0, 0), max(y0, gy0, 0)
    sx1, sy1 = min(x1, gx1, w), min(y1, gy1, h)
    out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = gray[sy0:sy1, sx0:sx1]
    return out


def resize_normalize(gray, roi, S, mean, std, mode="stretch", margin=0.0, fill=0.0):
    """gray float32 [H, W] in [0,1] -> float32 [3, S, S] normalised input."""
    crop = region_pixels(gray, roi, mode, margin, fill)
    # Same maths as the C code (horizontal pass, then vertical, in double).
    r = (_weights(crop.shape[0], S) @ (crop @ _weights(crop.shape[1], S).T)).astype(np.float32)
    mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
    std = np.asarray(std, np.float32).reshape(3, 1, 1)
    return ((r[None] - mean) / std).astype(np.float32)


def resize_region(a, roi, S, mode="stretch", margin=0.0, fill=0.0):
    """Any [H, W] map (e.g. a lesion mask) -> float32 [S, S] through the same
    region and filter as the image."""
    crop = region_pixels(np.asarray(a, np.float64), roi, mode, margin, fill)
    return (_weights(crop.shape[0], S) @ (crop @ _weights(crop.shape[1], S).T)).astype(np.float32)


def preprocess(path, S, mean, std, roi=None, mode="stretch", margin=0.0, fill=0.0):
    """Image file (path or bytes) -> float32 [3, S, S], as the engine computes it."""
    return resize_normalize(load_gray(path), roi, S, mean, std, mode, margin, fill)
