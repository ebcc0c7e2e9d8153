"""Datasets, label sets and splits for training and evaluation.

Three sources, all turned into the same record list (one dict per image):
- `thyroid`: DDTI crops (../shared/data/ddti). Subtype = radiologist's TI-RADS
  category (2, 3, 4a, 4b, 4c, 5), malignancy = 4a-5. Unlabeled crops are kept
  with label -1: training uses them only for the segmentation mask (no class
  label is ever read from them).
- `breast`: BUSI (../shared/data/busi). normal / benign / malignant,
  malignancy = malignant, lesion masks for every image (empty for normal).
- `folder`: any DIR/<class name>/*.png|jpg|... tree (a hospital's own classes);
  optional masks in DIR/<class>/masks/<stem>.png are not required.

Splits are grouped (DDTI: by case_id, BUSI: by near-duplicate image hash,
folder: by file-name prefix before the first '_' if --group-prefix) and
stratified by label (sklearn StratifiedGroupKFold), so no patient and no
duplicated image sits on both sides of a split.

The cache (`build_cache`) holds every image already resized to S x S by the
same antialiased triangle filter as the C engine (tools/preprocess.py), as
uint8 gray, plus masks at S x S: a compact npz that a GPU machine can take.
"""
import csv
import hashlib
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DDTI_TIRADS = ["2", "3", "4a", "4b", "4c", "5"]
DDTI_LABELS = ["TI-RADS " + t for t in DDTI_TIRADS]
DDTI_MALIGNANT = ["TI-RADS 4a", "TI-RADS 4b", "TI-RADS 4c", "TI-RADS 5"]
BUSI_LABELS = ["normal", "benign", "malignant"]
BUSI_MALIGNANT = ["malignant"]
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff")


def ddti_records(root):
    """-> (records, labels, malignant_labels). root = .../ddti"""
    recs = []
    with open(os.path.join(root, "labels.csv"), newline="") as f:
        for r in csv.DictReader(f):
            t = r["tirads"].strip()
            recs.append({
                "image": os.path.join(root, r["image"]),
                "mask": os.path.join(root, r["mask"]) if r.get("mask") else "",
                "group": "case" + r["case_id"],
                "label": DDTI_TIRADS.index(t) if t else -1,
            })
    recs.sort(key=lambda r: r["image"])
    return recs, list(DDTI_LABELS), list(DDTI_MALIGNANT)


def busi_records(root):
    recs = []
    with open(os.path.join(root, "labels.csv"), newline="") as f:
        for r in csv.DictReader(f):
            recs.append({
                "image": os.path.join(root, r["image"]),
                "mask": os.path.join(root, r["mask"]) if r.get("mask") else "",
                "group": "",  # filled from image content in build_cache (duplicates)
                "label": BUSI_LABELS.index(r["class"]),
            })
    recs.sort(key=lambda r: r["image"])
    return recs, list(BUSI_LABELS), list(BUSI_MALIGNANT)


def folder_records(root, malignant=(), group_prefix=False):
    """DIR/<class>/<image>: classes = sorted sub-folder names."""
    if not os.path.isdir(root):
        raise SystemExit(f"error: data folder {root!r} does not exist")
    classes = sorted(d for d in os.listdir(root)
                     if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if len(classes) < 2:
        raise SystemExit(f"error: {root!r} needs at least two class sub-folders, found {classes}")
    bad = [m for m in malignant if m not in classes]
    if bad:
        raise SystemExit(f"error: --malignant names {bad} are not class folders of {root!r} ({classes})")
    recs = []
    for ci, c in enumerate(classes):
        d = os.path.join(root, c)
        for fn in sorted(os.listdir(d)):
            if fn.lower().endswith(IMAGE_EXT):
                m = os.path.join(d, "masks", os.path.splitext(fn)[0] + ".png")
                g = fn.split("_")[0] if group_prefix else c + "/" + fn
                recs.append({"image": os.path.join(d, fn), "mask": m if os.path.exists(m) else "",
                             "group": g, "label": ci})
    if not recs:
        raise SystemExit(f"error: no images ({', '.join(IMAGE_EXT)}) under {root!r}")
    return recs, classes, list(malignant)


def load_dataset(kind, data_root="../shared/data", data_dir=None, malignant=(), group_prefix=False):
    if kind == "thyroid":
        return ddti_records(os.path.join(data_root, "ddti"))
    if kind == "breast":
        return busi_records(os.path.join(data_root, "busi"))
    if kind == "folder":
        return folder_records(data_dir, malignant, group_prefix)
    raise SystemExit(f"error: unknown dataset {kind!r}")


# ---------------------------------------------------------------- pixels

def _pil_gray(path):
    im = Image.open(path)
    im.seek(0)
    if im.mode in ("I;16", "I;16B", "I", "F"):
        a = np.asarray(im, dtype=np.float32)
        return a / (65535.0 if a.max() > 255 else 255.0)
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def load_gray(path):
    """float32 [H, W] in [0, 1], through the project's preprocessing when present."""
    try:
        import preprocess
        return np.asarray(preprocess.load_gray(path), dtype=np.float32)
    except ImportError:
        return _pil_gray(path)


def resize_gray(gray, S):
    """gray [H, W] -> [S, S] with the engine's antialiased triangle filter
    (preprocess.resize_normalize with mean 0 / std 1, channel 0)."""
    try:
        import preprocess
        x = preprocess.resize_normalize(gray, None, S, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        return np.asarray(x[0], dtype=np.float32)
    except ImportError:
        # PIL's BILINEAR resize of a float image is the same support-scaled
        # (antialiased) triangle filter; used only until preprocess.py exists.
        return np.asarray(Image.fromarray(gray.astype(np.float32), "F").resize((S, S), Image.BILINEAR),
                          dtype=np.float32)


def load_mask(path, S):
    """Binary mask resized to S x S (triangle filter, then > 0.5) as uint8 0/1."""
    m = (_pil_gray(path) > 0.5).astype(np.float32)
    return (resize_gray(m, S) > 0.5).astype(np.uint8)


def image_hash(small):
    """Near-duplicate key: 16x16 average-hash of the 32x32 thumbnail."""
    t = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((16, 16), Image.BILINEAR),
                   dtype=np.float32)
    return hashlib.md5(np.packbits(t > t.mean()).tobytes()).hexdigest()[:12]


def build_cache(kind, path, S, data_root="../shared/data", data_dir=None, malignant=(),
                group_prefix=False, log=print):
    """Decode and resize every image once; write an npz (see module doc)."""
    recs, labels, mal = load_dataset(kind, data_root, data_dir, malignant, group_prefix)
    n = len(recs)
    imgs = np.zeros((n, S, S), np.uint8)
    masks = np.zeros((n, S, S), np.uint8)
    has_mask = np.zeros(n, np.uint8)
    sizes = np.zeros((n, 2), np.int32)
    for i, r in enumerate(recs):
        g = load_gray(r["image"])
        sizes[i] = g.shape
        imgs[i] = np.clip(np.rint(resize_gray(g, S) * 255), 0, 255).astype(np.uint8)
        if r["mask"] and os.path.exists(r["mask"]):
            masks[i] = load_mask(r["mask"], S)
            has_mask[i] = 1
        if not r["group"]:
            r["group"] = "img" + image_hash(resize_gray(g, 32))
        if log and (i + 1) % 100 == 0:
            log(f"cache {kind}: {i + 1}/{n}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(
        path, images=imgs, masks=np.packbits(masks, axis=-1), has_mask=has_mask,
        labels=np.array([r["label"] for r in recs], np.int64),
        groups=np.array([r["group"] for r in recs]), names=np.array([r["image"] for r in recs]),
        sizes=sizes, label_names=np.array(labels), malignant_labels=np.array(mal, dtype=str),
        size=np.int64(S), kind=np.array(kind))
    return path


def load_cache(path):
    z = np.load(path, allow_pickle=False)
    S = int(z["size"])
    d = {k: z[k] for k in z.files}
    d["masks"] = np.unpackbits(z["masks"], axis=-1)[..., :S]
    d["label_names"] = [str(x) for x in z["label_names"]]
    d["malignant_labels"] = [str(x) for x in z["malignant_labels"]]
    d["names"] = [str(x) for x in z["names"]]
    d["groups"] = [str(x) for x in z["groups"]]
    d["size"] = S
    return d


# ---------------------------------------------------------------- splits

def grouped_folds(labels, groups, k, seed=0):
    """StratifiedGroupKFold over the labelled items: list of (train_idx, test_idx)
    index arrays into `labels` (items with label < 0 are left out)."""
    from sklearn.model_selection import StratifiedGroupKFold
    labels, groups = np.asarray(labels), np.asarray(groups)
    idx = np.nonzero(labels >= 0)[0]
    sgk = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(idx[a], idx[b]) for a, b in sgk.split(idx, labels[idx], groups[idx])]


def holdout(labels, groups, frac, seed=0, within=None):
    """One grouped, stratified split of `within` (default: all labelled):
    (train_idx, val_idx) with about frac of the items in val."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    base = np.nonzero(labels >= 0)[0] if within is None else np.asarray(within)
    k = max(2, int(round(1.0 / frac)))
    from sklearn.model_selection import StratifiedGroupKFold
    sgk = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    a, b = next(iter(sgk.split(base, labels[base], groups[base])))
    return base[a], base[b]


def unlabeled_for(train_idx, labels, groups):
    """Unlabeled items (label < 0) whose group has no item outside the training
    indices: used for label-free losses without leaking a held-out patient."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    train_groups = set(groups[train_idx])
    labelled_groups = set(groups[labels >= 0])
    return np.array([i for i in np.nonzero(labels < 0)[0]
                     if groups[i] in train_groups or groups[i] not in labelled_groups], np.int64)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="build the training cache (npz) of a dataset")
    ap.add_argument("--dataset", choices=["thyroid", "breast", "folder"], required=True)
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--data-dir")
    ap.add_argument("--malignant", default="")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    build_cache(a.dataset, a.out, a.size, a.data_root, a.data_dir,
                [m for m in a.malignant.split(",") if m])
