#!/usr/bin/env python3
"""Evaluate a CSASN model file: through the C engine (build/csasn classify) and
through the PyTorch module loaded from the same file, on real images.

  /usr/bin/python3 tools/evaluate.py --model weights/thyroid-ddti.csasn \
      --split weights/thyroid-ddti.split.json [--oof cache/res1/cv_thyroid_full.npz \
      --cv-json cache/res1/cv_thyroid_full.json] --out weights/thyroid-ddti

Reports (JSON at OUT.metrics.json, plots OUT-roc.png, OUT-confusion.png,
OUT-reliability.png):
- per-class precision / recall / F1 and one-vs-rest AUC, macro-F1, balanced
  accuracy, confusion matrix;
- malignancy AUC, sensitivity and specificity at the threshold stored in the file;
- expected calibration error (10 bins) before (T = 1) and after the stored
  temperature;
- Dice and IoU of the lesion mask (at the mask's S/4 grid; ground truth resized
  by the engine's triangle filter, both thresholded at 0.5), lesion images only;
- 95% bootstrap confidence intervals (1000 resamples of patients / duplicate
  groups, not images);
- the largest |C engine - PyTorch| difference of the probabilities;
- with --oof: the same metrics on the pooled out-of-fold predictions of the
  cross-validation that produced the recipe (each fold calibrated on its own
  inner validation split), plus per-fold mean +- sd from --cv-json.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import csasn_format  # noqa: E402
import csasn_model as M  # noqa: E402
import data as D  # noqa: E402
import metrics as MT  # noqa: E402
import preprocess  # noqa: E402

ROOT = os.path.dirname(HERE)


def load_module(path):
    """The PyTorch module exactly as stored in the file (fp16 weights widened)."""
    meta, tensors, _ = csasn_format.read(path)
    cfg = M.meta_to_config(meta)
    model = M.CSASN(cfg)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()},
                                                strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval(), cfg, meta


def torch_predict(model, cfg, paths, bs=16):
    out = {"probs": [], "malignancy": [], "mask": [], "logits": []}
    with torch.no_grad():
        for i in range(0, len(paths), bs):
            x = torch.from_numpy(np.stack([preprocess.preprocess(p, cfg.input_size, cfg.mean, cfg.std)
                                           for p in paths[i:i + bs]]))
            r = model.predict(x)
            out["probs"].append(r["probs"].numpy())
            out["logits"].append(r["logits"].numpy())
            if "malignancy" in r:
                out["malignancy"].append(r["malignancy"].numpy())
            if "mask" in r:
                out["mask"].append(r["mask"].numpy())
    return {k: np.concatenate(v) for k, v in out.items() if v}


def c_predict(model_path, paths, mask=False, exe=None, bs=48):
    """build/csasn classify on the images: one JSON line each."""
    exe = exe or os.path.join(ROOT, "build", "csasn")
    if not os.path.exists(exe):
        raise FileNotFoundError(f"{exe} not found: run `make` first")
    rows = []
    for i in range(0, len(paths), bs):
        cmd = [exe, "classify", "--model", model_path] + (["--mask"] if mask else []) + list(paths[i:i + bs])
        p = subprocess.run(cmd, capture_output=True, text=True)
        lines = [json.loads(s) for s in p.stdout.splitlines() if s.strip()]
        if p.returncode != 0 or len(lines) != len(paths[i:i + bs]):
            raise RuntimeError(f"csasn classify failed ({p.returncode}): {p.stderr[-500:]}")
        rows += lines
    bad = [r for r in rows if "error" in r]
    if bad:
        raise RuntimeError(f"csasn classify: {bad[0]}")
    out = {"probs": np.array([r["probs"] for r in rows], np.float64)}
    if "malignancy" in rows[0]:
        out["malignancy"] = np.array([r["malignancy"] for r in rows], np.float64)
    if mask and "mask" in rows[0]:
        out["mask"] = np.array([r["mask"] for r in rows], np.float32)
    return out


def gt_masks(paths, S4):
    return np.stack([D.load_mask(p, S4) if p and os.path.exists(p) else np.zeros((S4, S4), np.uint8)
                     for p in paths]).astype(bool)


def classification_metrics(y, probs, probs_t1, mal_y, mal_p, mal_p_t1, thr, labels, groups,
                           dice=None, iou=None, B=1000):
    """Everything of the module doc for one set of predictions (+ CIs)."""
    K = len(labels)
    n = len(y)
    pred = probs.argmax(1)
    prec, rec, f1, sup = MT.per_class(y, pred, K)
    aucs = MT.ovr_auc(y, probs)
    r = {"n": int(n), "labels": labels, "support": sup.tolist(),
         "precision": prec.tolist(), "recall": rec.tolist(), "f1": f1.tolist(), "auc_ovr": aucs.tolist(),
         "macro_f1": MT.macro_f1(y, pred, K), "balanced_accuracy": MT.balanced_accuracy(y, pred, K),
         "accuracy": float((pred == y).mean()), "confusion": MT.confusion(y, pred, K).tolist()}
    conf = probs.max(1)
    r["ece_after"] = MT.ece(conf, pred == y)
    if probs_t1 is not None:
        r["ece_before"] = MT.ece(probs_t1.max(1), probs_t1.argmax(1) == y)
    ci = {"macro_f1": lambda i: MT.macro_f1(y[i], pred[i], K),
          "balanced_accuracy": lambda i: MT.balanced_accuracy(y[i], pred[i], K)}
    for k in range(K):
        ci[f"recall_{k}"] = (lambda k: lambda i: (MT.per_class(y[i], pred[i], K)[1][k]
                                                  if (y[i] == k).any() else float("nan")))(k)
    if mal_p is not None:
        # thr: the stored threshold, or one per image (cross-validation: each fold's own)
        ta = np.broadcast_to(np.asarray(thr, np.float64), (n,))
        r["malignancy_auc"] = MT.auc(mal_y, mal_p)
        r["malignancy_threshold"] = float(thr) if np.ndim(thr) == 0 else "per fold (Youden on its inner validation split)"
        r["sensitivity"], r["specificity"] = MT.sens_spec(mal_y, mal_p, ta)
        r["malignancy_ece_after"] = MT.ece(np.where(mal_p >= 0.5, mal_p, 1 - mal_p), (mal_p >= 0.5) == mal_y)
        if mal_p_t1 is not None:
            r["malignancy_ece_before"] = MT.ece(np.where(mal_p_t1 >= 0.5, mal_p_t1, 1 - mal_p_t1),
                                                (mal_p_t1 >= 0.5) == mal_y)
        ci["malignancy_auc"] = lambda i: MT.auc(mal_y[i], mal_p[i])
        ci["sensitivity"] = lambda i: MT.sens_spec(mal_y[i], mal_p[i], ta[i])[0] if mal_y[i].any() else float("nan")
        ci["specificity"] = lambda i: (MT.sens_spec(mal_y[i], mal_p[i], ta[i])[1] if (~mal_y[i]).any()
                                       else float("nan"))
    if dice is not None:
        r["dice"] = float(np.nanmean(dice))
        r["iou"] = float(np.nanmean(iou))
        r["mask_images"] = int(np.isfinite(dice).sum())
        ci["dice"] = lambda i: float(np.nanmean(dice[i])) if np.isfinite(dice[i]).any() else float("nan")
        ci["iou"] = lambda i: float(np.nanmean(iou[i])) if np.isfinite(iou[i]).any() else float("nan")
    r["ci95"] = {k: MT.bootstrap_ci(f, n, groups, B=B) for k, f in ci.items()}
    return r


def plots(prefix, title, sets, labels):
    """sets: list of (name, y, probs, probs_t1, mal_y, mal_p, thr)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    K = len(labels)
    # ROC: malignancy of every set, plus one-vs-rest of the first set
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.6))
    for name, y, p, p1, my, mp, thr in sets:
        if mp is not None:
            fpr, tpr, _ = MT.roc_curve(my, mp)
            se, sp = MT.sens_spec(my, mp, thr)
            ax[0].plot(fpr, tpr, label=f"{name} (AUC {MT.auc(my, mp):.3f})")
            ax[0].plot([1 - sp], [se], "o", color=ax[0].lines[-1].get_color())
    ax[0].plot([0, 1], [0, 1], "k:", lw=0.8)
    ax[0].set(title="malignancy ROC (dot: stored threshold)", xlabel="1 - specificity", ylabel="sensitivity")
    ax[0].legend(fontsize=8, loc="lower right")
    name, y, p = sets[0][0], sets[0][1], sets[0][2]
    for k in range(K):
        if (y == k).any() and (y != k).any():
            fpr, tpr, _ = MT.roc_curve(y == k, p[:, k])
            ax[1].plot(fpr, tpr, label=f"{labels[k]} ({MT.auc(y == k, p[:, k]):.3f})")
    ax[1].plot([0, 1], [0, 1], "k:", lw=0.8)
    ax[1].set(title=f"one-vs-rest ROC, {name}", xlabel="false positive rate", ylabel="true positive rate")
    ax[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(prefix + "-roc.png", dpi=90)
    plt.close(fig)
    # confusion matrices
    fig, ax = plt.subplots(1, len(sets), figsize=(4.8 * len(sets), 4.4))
    ax = np.atleast_1d(ax)
    for a, (name, y, p, *_rest) in zip(ax, sets):
        c = MT.confusion(y, p.argmax(1), K)
        a.imshow(c / np.maximum(c.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
        for i in range(K):
            for j in range(K):
                a.text(j, i, str(c[i, j]), ha="center", va="center", fontsize=9)
        a.set_xticks(range(K))
        a.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
        a.set_yticks(range(K))
        a.set_yticklabels(labels, fontsize=8)
        a.set(title=name, xlabel="predicted", ylabel="true")
    fig.suptitle(title + " - confusion matrix (colour: row-normalised recall)")
    fig.tight_layout()
    fig.savefig(prefix + "-confusion.png", dpi=90)
    plt.close(fig)
    # reliability
    fig, ax = plt.subplots(1, len(sets), figsize=(4.6 * len(sets), 4.2))
    ax = np.atleast_1d(ax)
    for a, (name, y, p, p1, *_rest) in zip(ax, sets):
        for lab, q in (("T = 1", p1), ("stored T", p)):
            if q is None:
                continue
            e, acc, cf, cnt = MT.reliability(q.max(1), q.argmax(1) == y)
            m = cnt > 0
            a.plot(cf[m], acc[m], "o-", label=f"{lab} (ECE {MT.ece(q.max(1), q.argmax(1) == y):.3f})")
        a.plot([0, 1], [0, 1], "k:", lw=0.8)
        a.set(title=name, xlabel="confidence (top class)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
        a.legend(fontsize=8)
    fig.suptitle(title + " - reliability (subtype head)")
    fig.tight_layout()
    fig.savefig(prefix + "-reliability.png", dpi=90)
    plt.close(fig)


# The shipped models, in the order the page lists them (tools/manifest.py writes the rest
# of each entry from the file itself).
SHIPPED = ["thyroid-ddti.csasn", "breast-busi.csasn"]
TITLES = {"thyroid-ddti": "Thyroid nodule, TI-RADS category (DDTI)",
          "breast-busi": "Breast lesion, normal / benign / malignant + mask (BUSI)"}


def write_manifest(folder):
    """folder/manifest.json (read by the page) listing the shipped models present in folder."""
    import manifest
    files = [f for f in SHIPPED if os.path.exists(os.path.join(folder, f))]
    ids = [f[:-len(".csasn")] for f in files]
    out = manifest.write(folder, files, default="thyroid-ddti" if "thyroid-ddti" in ids else None,
                         titles={k: v for k, v in TITLES.items() if k in ids})
    print(f"wrote {out} ({len(files)} models)")


def ablation_rows(pairs, rare=None):
    """Markdown rows 'name | macro-F1 | bal. acc | malignancy AUC | Dice | recall of the rare classes'
    from (name, cv-json path) pairs written by tools/train.py --cv (mean +- sd over folds)."""
    rows = []
    for name, path in pairs:
        j = json.load(open(path))
        labels = j["labels"]
        rare = rare or list(range(len(labels)))
        f = lambda k: (f"{j[k][0]:.3f} ± {j[k][1]:.3f}" if k in j else "-")
        rec = [f"{j['recall_mean'][k]:.2f} ± {j['recall_sd'][k]:.2f}" for k in rare]
        rows.append(f"| {name} | {f('macro_f1')} | {f('bacc')} | {f('mal_auc')} | {f('dice')} | "
                    + " | ".join(rec) + " |")
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--write-manifest"]:
        return write_manifest(argv[1] if len(argv) > 1 else os.path.join(ROOT, "weights"))
    if argv[:1] == ["--ablation"]:
        # --ablation NAME=CV.json ... : print the markdown rows of an ablation table
        pairs = [x.split("=", 1) for x in argv[1:]]
        print("\n".join(ablation_rows(pairs)))
        return None
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="tools/evaluate.py --write-manifest [DIR] rewrites DIR/manifest.json")
    ap.add_argument("--model", required=True)
    ap.add_argument("--split", required=True, help="JSON with a 'val' list of images (relative to --data-root)")
    ap.add_argument("--data-root", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--dataset", choices=["thyroid", "breast", "folder"], default=None)
    ap.add_argument("--oof", help="npz of out-of-fold predictions from tools/train.py --cv")
    ap.add_argument("--cv-json", help="json summary of the same cross-validation")
    ap.add_argument("--out", required=True, help="prefix of the outputs")
    ap.add_argument("--engine", choices=["both", "c", "torch"], default="both")
    ap.add_argument("--bootstrap", type=int, default=1000)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    model, cfg, meta = load_module(a.model)
    labels = list(cfg.labels)
    mal_idx = [labels.index(x) for x in cfg.malignant_labels]
    split = json.load(open(a.split))
    kind = a.dataset or split.get("dataset")
    recs, rec_labels, _ = D.load_dataset(kind, a.data_root)
    if rec_labels != labels:
        raise SystemExit(f"model labels {labels} != dataset labels {rec_labels}")
    by_rel = {os.path.relpath(r["image"], a.data_root): r for r in recs}
    val = [by_rel[v] for v in split["val"]]
    paths = [r["image"] for r in val]
    y = np.array([r["label"] for r in val])
    groups = np.array([r["group"] or os.path.basename(r["image"]) for r in val])
    if kind == "breast":   # near-duplicate groups, as in training
        groups = np.array([split.get("groups", {}).get(v, v) for v in split["val"]])
    mal_y = np.isin(y, mal_idx)
    seg = bool(cfg.head_segmentation)
    result = {"model": os.path.basename(a.model), "sha256": None, "config_name": cfg.name,
              "temperature": cfg.temperature, "malignancy_temperature": cfg.malignancy_temperature,
              "malignancy_threshold": cfg.malignancy_threshold, "validation_images": len(paths)}
    import hashlib
    result["sha256"] = hashlib.sha256(open(a.model, "rb").read()).hexdigest()
    S4 = cfg.input_size // 4
    gt = gt_masks([r["mask"] for r in val], S4) if seg else None
    lesion = gt.reshape(len(gt), -1).any(1) if seg else None
    sets = []
    preds = {}
    if a.engine in ("both", "torch"):
        preds["torch"] = torch_predict(model, cfg, paths)
    if a.engine in ("both", "c"):
        preds["c"] = c_predict(a.model, paths, mask=seg)
    if "torch" in preds and "c" in preds:
        result["c_vs_torch_max_abs_diff"] = {
            "probs": float(np.abs(preds["c"]["probs"] - preds["torch"]["probs"]).max()),
            **({"malignancy": float(np.abs(preds["c"]["malignancy"] - preds["torch"]["malignancy"]).max())}
               if "malignancy" in preds["c"] else {}),
            **({"mask": float(np.abs(preds["c"]["mask"] - preds["torch"]["mask"]).max())}
               if seg and "mask" in preds["c"] else {})}
    for eng, pr in preds.items():
        p = pr["probs"]
        # probabilities at T = 1 from the calibrated ones: log p * T are the logits up to a constant
        p1 = MT.softmax(np.log(np.clip(p, 1e-30, 1)) * cfg.temperature)
        mp = pr.get("malignancy")
        mp1 = None
        if mp is not None:
            z = np.log(np.clip(mp, 1e-30, 1)) - np.log(np.clip(1 - mp, 1e-30, 1))
            mp1 = MT.sigmoid(z * cfg.malignancy_temperature)
        dice = iou = None
        if seg and "mask" in pr:
            d, j = MT.dice_iou(pr["mask"] > 0.5, gt)
            dice, iou = np.where(lesion, d, np.nan), np.where(lesion, j, np.nan)
        result[eng] = classification_metrics(y, p, p1, mal_y, mp, mp1, cfg.malignancy_threshold, labels,
                                             groups, dice, iou, B=a.bootstrap)
        sets.append((f"shipped file, {'C engine' if eng == 'c' else 'PyTorch'}, validation (n={len(y)})",
                     y, p, p1, mal_y, mp, cfg.malignancy_threshold))
    if a.oof:
        z = np.load(a.oof)
        yo = z["labels"]
        T = z["T"][:, None]
        po = MT.softmax(z["logits"], T)
        po1 = MT.softmax(z["logits"])
        myo = np.isin(yo, mal_idx)
        mpo = MT.sigmoid(z["mal"], z["Tm"]) if "mal" in z.files else None
        mpo1 = MT.sigmoid(z["mal"]) if "mal" in z.files else None
        thr = z["thr"] if "thr" in z.files else None
        dice = iou = None
        if "mask" in z.files:
            names = [str(n) for n in z["names"]]
            mo = np.unpackbits(z["mask"], axis=-1)[..., :S4].astype(bool)
            rel = [os.path.relpath(n, "../shared/data") if n.startswith("../shared/data") else n for n in names]
            gto = gt_masks([by_rel[r]["mask"] if r in by_rel else "" for r in rel], S4)
            d, j = MT.dice_iou(mo, gto)
            les = gto.reshape(len(gto), -1).any(1)
            dice, iou = np.where(les, d, np.nan), np.where(les, j, np.nan)
        # Each fold has its own threshold: sensitivity/specificity use the per-image fold threshold.
        thr_scalar = float(np.median(thr)) if thr is not None else 0.5
        r = classification_metrics(yo, po, po1, myo, mpo, mpo1, thr if thr is not None else 0.5, labels,
                                   np.array([str(g) for g in z["groups"]]), dice, iou, B=a.bootstrap)
        result["cv_oof"] = r
        sets.insert(0, (f"cross-validation, out-of-fold (n={len(yo)})", yo, po, po1, myo, mpo, thr_scalar))
    if a.cv_json:
        result["cv_folds"] = json.load(open(a.cv_json))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)) or ".", exist_ok=True)
    with open(a.out + ".metrics.json", "w") as f:
        json.dump(result, f, indent=1)
    plots(a.out, cfg.name, sets, labels)
    short = {k: result.get(k) for k in ("c_vs_torch_max_abs_diff",)}
    for eng in ("cv_oof", "c", "torch"):
        if eng in result:
            r = result[eng]
            short[eng] = {k: (round(r[k], 4) if isinstance(r.get(k), float) else r.get(k))
                          for k in ("macro_f1", "balanced_accuracy", "malignancy_auc", "sensitivity",
                                    "specificity", "dice", "ece_before", "ece_after") if k in r}
    print(json.dumps(short, indent=1))
    return result


if __name__ == "__main__":
    main()
