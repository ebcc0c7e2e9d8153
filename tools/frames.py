"""Thyroid training data at native aspect ratio: DDTI scanner frames with the
nodule's box as the region, lc_thyroid as extra benign/malignant images.

One record per region (a nodule outline on a frame, or a whole lc_thyroid
image): the frame, the box (x, y, w, h) a clinician would draw, the mask drawn
from the polygon at native resolution, the patient group, the TI-RADS class
(-1 where the case file has none), the malignancy (-1 unknown) and the four
TI-RADS descriptors (-1 where not recorded).

Labels: DDTI's are the radiologist's TI-RADS category (Kwak-style 2, 3, 4a,
4b, 4c, 5; 2-3 = benign), not pathology. lc_thyroid's are its authors'
benign/malignant folders (source of the label not documented).

The frames' lower band (rows 312 and below, typed text that spells out the
TI-RADS category in some frames) is already black in the shared copy; regions
are clipped above it as well (`TEXT_BAND_Y`), so no sampled pixel comes from it.
"""
import csv
import json
import os

import numpy as np
from PIL import Image, ImageDraw

DDTI_TIRADS = ["2", "3", "4a", "4b", "4c", "5"]
TEXT_BAND_Y = 312

# Descriptor vocabularies. DDTI's spellings vary ("ill- defined" / "ill defined",
# "microcalcification(s)"); classes with under ~10 labelled frames are merged
# with their nearest neighbour in TI-RADS terms (cystic + predominantly cystic;
# micro- + macrolobulated) so every class can be estimated. "dense" (8 frames)
# is a solid nodule in DDTI's case files.
DESCRIPTORS = {
    "composition": ["solid", "predominantly solid", "cystic or predominantly cystic", "spongiform"],
    "echogenicity": ["hyperechoic", "isoechoic", "hypoechoic", "markedly hypoechoic"],
    "margins": ["well defined", "ill defined", "lobulated", "spiculated"],
    "calcifications": ["none", "macrocalcifications", "microcalcifications"],
}
_SPELLING = {
    "composition": {"solid": 0, "dense": 0, "predominantly solid": 1, "predominantly cystic": 2,
                    "cystic": 2, "spongiform": 3},
    "echogenicity": {"hyperechogenicity": 0, "isoechogenicity": 1, "hypoechogenicity": 2,
                     "marked hypoechogenicity": 3},
    "margins": {"well defined": 0, "well defined smooth": 0, "ill- defined": 1, "ill defined": 1,
                "microlobulated": 2, "macrolobulated": 2, "spiculated": 3},
    "calcifications": {"non": 0, "macrocalcification": 1, "macrocalcifications": 1,
                       "microcalcification": 2, "microcalcifications": 2},
}


def normalise_descriptor(name, value):
    """Case-file spelling -> class index, -1 when empty; unknown spellings are
    an error (a new spelling must be mapped on purpose, not guessed)."""
    v = " ".join(value.strip().lower().split())
    if not v:
        return -1
    if v not in _SPELLING[name]:
        raise ValueError(f"unknown {name} spelling {value!r}")
    return _SPELLING[name][v]


def ddti_frame_records(root):
    """root = .../ddti_frames -> list of region records."""
    frames = {}
    with open(os.path.join(root, "labels.csv"), newline="") as f:
        for r in csv.DictReader(f):
            frames[r["image"]] = r
    recs = []
    with open(os.path.join(root, "nodules.csv"), newline="") as f:
        for n in csv.DictReader(f):
            fr = frames[n["image"]]
            poly = [tuple(p) for p in json.loads(n["polygon"])]
            x0, y0 = int(n["x0"]), int(n["y0"])
            x1, y1 = min(int(n["x1"]) + 1, int(fr["width"])), min(int(n["y1"]) + 1, TEXT_BAND_Y)
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            t = fr["tirads"].strip()
            recs.append({
                "source": "ddti", "image": os.path.join(root, n["image"]),
                "box": (x0, y0, x1 - x0, y1 - y0), "polygon": poly,
                "group": "ddti" + fr["case_id"], "frame": n["image"],
                "label": DDTI_TIRADS.index(t) if t else -1,
                "malignant": -1 if not t else int(DDTI_TIRADS.index(t) >= 2),
                "desc": [normalise_descriptor(k, fr[k]) if t else -1 for k in DESCRIPTORS],
            })
    recs.sort(key=lambda r: (r["image"], r["box"]))
    return recs


def lc_records(root):
    """root = .../lc_thyroid: whole images, malignancy only."""
    recs = []
    with open(os.path.join(root, "labels.csv"), newline="") as f:
        for r in csv.DictReader(f):
            recs.append({
                "source": "lc", "image": os.path.join(root, r["image"]), "box": None, "polygon": None,
                "group": "lc" + r["group"], "frame": r["image"], "label": -1,
                "malignant": int(r["class"] == "malignant"), "desc": [-1] * len(DESCRIPTORS),
            })
    recs.sort(key=lambda r: r["image"])
    return recs


def polygon_mask(polys, w, h):
    """All outlines of a frame -> float [h, w] in {0, 1} at native resolution
    (a frame's other nodules are lesion too; the mask target covers them)."""
    im = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(im)
    for p in polys:
        if len(p) >= 3:
            d.polygon(p, fill=1, outline=1)
    return np.asarray(im, np.float32)


def jitter_box(box, rng, frac, w, h):
    """A box as a hand would draw it around the outline: each edge moves
    independently by up to +-frac of the box side on its axis (uniform).
    Clipped to the image and kept above the text band."""
    x, y, bw, bh = box
    e = rng.uniform(-frac, frac, 4)
    x0, x1 = x + e[0] * bw, x + bw + e[1] * bw
    y0, y1 = y + e[2] * bh, y + bh + e[3] * bh
    x0, y0 = max(0, int(round(x0))), max(0, int(round(y0)))
    x1, y1 = min(w, int(round(x1))), min(h, int(round(y1)))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return box
    return (x0, y0, x1 - x0, y1 - y0)
