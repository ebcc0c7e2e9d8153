#!/usr/bin/env python3
"""Tables and plots of the thyroid recipe search (tools/train_heads.py rows):
weights/thyroid-recipes.md (recipe and ablation tables) and, for the shipped
recipe's out-of-fold predictions, weights/thyroid-recipes-cv.png (ROC,
reliability, confusion) and, with --metrics 1, weights/thyroid-ddti.metrics.json.

  /usr/bin/python3 tools/thyroid_card.py --rows cache/rows/recipes.json --shipped square-0.25 \
      --oof cache/rows/square-0.25.npz
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import frames as FR  # noqa: E402
import metrics as MT  # noqa: E402

LABELS = ["TI-RADS " + t for t in FR.DDTI_TIRADS]


def fmt_ci(v, ci):
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def row_line(r):
    d = r.get("ddti")
    m = r["meta"]
    geo = f"{m['mode']} {m['margin']}"
    trunk = f"CNN {m['cnn']}, ViT {m['vit']}"
    extra = []
    if r.get("tune_top"):
        extra.append("top CNN blocks trained")
    if r["variant"] != "full":
        extra.append(r["variant"])
    what = f"{geo}; {trunk}; lc {r['lc']}" + (f"; {', '.join(extra)}" if extra else "")
    if d is None:
        e = r.get("ddti_external")
        return (f"| {r['row']} | {what} | external: {fmt_ci(e['auc'], e['auc_ci'])} (trained on lc_thyroid only) "
                f"| {e['patient_auc']:.3f} | - | - | - | - |")
    lc = r.get("lc_external") or r.get("lc_cv")
    lc_s = (("external " if "lc_external" in r else "in CV ") + fmt_ci(lc["auc"], lc["auc_ci"])) if lc else "-"
    return (f"| {r['row']} | {what} | {d['fold_auc_mean']:.3f} ± {d['fold_auc_sd']:.3f}; pooled {fmt_ci(d['auc'], d['auc_ci'])} "
            f"| {fmt_ci(d['patient_auc'], d['patient_auc_ci'])} | {fmt_ci(d['tirads_macro_f1'], d['tirads_macro_f1_ci'])} "
            f"| {d['tirads_recall'][1]:.2f} | {d['malignancy_ece']:.3f} | {lc_s} |")


HEAD = ("| row | recipe | DDTI malignancy AUC, folds mean ± sd; pooled [95% CI] | patient-level AUC [95% CI] "
        "| TI-RADS macro-F1 [95% CI] | TI-RADS 3 recall | ECE (malignancy) | lc_thyroid AUC [95% CI] |\n"
        "|---|---|---|---|---|---|---|---|")


def tables(rows):
    # Recipes vary the data and geometry with the full model; ablations drop one part of CSASN
    # (or its loss) from the shipped recipe, shown next to it.
    rec = [r for r in rows if r["variant"] == "full"]
    abl = [r for r in rows if r["variant"] != "full" or r["row"] == "square-0.25"]
    out = ["## Recipe rows", "", HEAD] + [row_line(r) for r in rec]
    out += ["", "## Ablation rows (on the square-0.25 recipe)", "", HEAD] + [row_line(r) for r in abl]
    desc = [r for r in rows if r.get("descriptors")]
    if desc:
        out += ["", "## Descriptor heads (out-of-fold accuracy vs always answering the most frequent class)", "",
                "| row | descriptor | labelled regions | accuracy [95% CI] | majority baseline | balanced accuracy |",
                "|---|---|---|---|---|---|"]
        for r in desc:
            for name, v in r["descriptors"].items():
                out.append(f"| {r['row']} | {name} | {v['n']} | {fmt_ci(v['accuracy'], v['accuracy_ci'])} "
                           f"| {v['majority_baseline']:.3f} | {v['balanced_accuracy']:.3f} |")
    tta = [r for r in rows if r.get("ddti", {}).get("auc_without_flip_tta") is not None]
    if tta:
        out += ["", "## Test-time flip (same fold models, pooled DDTI AUC)", "",
                "| row | with flip | without |", "|---|---|---|"]
        out += [f"| {r['row']} | {r['ddti']['auc']:.3f} | {r['ddti']['auc_without_flip_tta']:.3f} |" for r in tta]
    return "\n".join(out) + "\n"


def plots(prefix, z):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dd = (z["source"] == "ddti") & (z["fold"] >= 0) & (z["label"] >= 0)
    y, m = z["label"][dd], z["malignant"][dd]
    pm = MT.sigmoid(z["mal"][dd])
    probs = MT.softmax(z["logits"][dd])
    fig, ax = plt.subplots(1, 3, figsize=(14, 4.4))
    fpr, tpr, _ = MT.roc_curve(m, pm)
    ax[0].plot(fpr, tpr, label=f"DDTI frames, CV (AUC {MT.auc(m, pm):.3f})")
    if "ext_idx" in z.files:
        ei = z["ext_idx"]
        f2, t2, _ = MT.roc_curve(z["malignant"][ei], z["ext_mal"])
        ax[0].plot(f2, t2, label=f"lc_thyroid, external (AUC {MT.auc(z['malignant'][ei], z['ext_mal']):.3f})")
    ax[0].plot([0, 1], [0, 1], "k:", lw=0.8)
    ax[0].set(title="malignancy (TI-RADS 4a-5) ROC", xlabel="1 - specificity", ylabel="sensitivity")
    ax[0].legend(fontsize=8, loc="lower right")
    e, acc, cf, cnt = MT.reliability(pm, m == 1)
    ok = cnt > 0
    ax[1].plot(cf[ok], acc[ok], "o-", label=f"P(malignant) (ECE {MT.ece(np.maximum(pm, 1 - pm), (pm >= .5) == (m == 1)):.3f})")
    ax[1].plot([0, 1], [0, 1], "k:", lw=0.8)
    ax[1].set(title="reliability, malignancy (calibrated)", xlabel="predicted probability",
              ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1))
    ax[1].legend(fontsize=8)
    c = MT.confusion(y, probs.argmax(1), len(LABELS))
    ax[2].imshow(c / np.maximum(c.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax[2].text(j, i, str(c[i, j]), ha="center", va="center", fontsize=9)
    ax[2].set_xticks(range(len(LABELS)))
    ax[2].set_xticklabels(LABELS, rotation=45, ha="right", fontsize=8)
    ax[2].set_yticks(range(len(LABELS)))
    ax[2].set_yticklabels(LABELS, fontsize=8)
    ax[2].set(title="TI-RADS confusion (row-normalised colour)", xlabel="predicted", ylabel="radiologist")
    fig.suptitle("thyroid-ddti.csasn recipe, 5-fold patient-grouped cross-validation on DDTI frames")
    fig.tight_layout()
    fig.savefig(prefix + "-cv.png", dpi=80)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", required=True)
    ap.add_argument("--shipped", required=True, help="row name of the shipped recipe")
    ap.add_argument("--oof", help="its out-of-fold npz")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "..", "weights"))
    ap.add_argument("--metrics", type=int, default=0,
                    help="also write thyroid-ddti.metrics.json (only when the recipe is the shipped file)")
    a = ap.parse_args(argv)
    rows = json.load(open(a.rows))
    order = {r["row"]: i for i, r in enumerate(rows)}
    rows.sort(key=lambda r: (r["row"] != a.shipped, order[r["row"]]))
    text = ("# Thyroid recipe search (tools/train_heads.py, tools/thyroid_card.py)\n\n"
            "Every row: 5 folds grouped by DDTI patient (case id) and stratified by TI-RADS; lc_thyroid has its\n"
            "own folds grouped by `group`. Labels: DDTI = the radiologist's TI-RADS category (malignant = 4a-5),\n"
            "lc_thyroid = its authors' benign/malignant folders (label source undocumented). AUC intervals:\n"
            "bootstrap over patients (1000 resamples). Produced on this project's 2-core CPU machine.\n\n"
            + tables(rows))
    open(os.path.join(a.out_dir, "thyroid-recipes.md"), "w").write(text)
    ship = next(r for r in rows if r["row"] == a.shipped)
    if a.metrics:
        json.dump(ship, open(os.path.join(a.out_dir, "thyroid-ddti.metrics.json"), "w"), indent=1, default=float)
    if a.oof:
        plots(os.path.join(a.out_dir, "thyroid-recipes"), np.load(a.oof))
    print(text)


if __name__ == "__main__":
    main()
