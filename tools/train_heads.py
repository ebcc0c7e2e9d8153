#!/usr/bin/env python3
"""Train the trainable part of CSASN (fusion, cascaded channel-spatial
attention, residual multiscale classifier, subtype / malignancy / descriptor /
lesion-mask heads) on a feature cache of tools/featcache.py, with the frozen
CNN and ViT branches; cross-validate it (recipe and ablation rows) or export
the shipped model.

  # one recipe row: 5 patient-grouped folds on DDTI frames (+ lc_thyroid in training)
  /usr/bin/python3 tools/train_heads.py --cache cache/feat-square-0.25-imagenet-busi.npz \
      --cv 5 --lc train --row square-0.25 --table weights/thyroid-recipes.json
  # the shipped file (all data; an inner split for early stopping and calibration)
  /usr/bin/python3 tools/train_heads.py --cache ... --lc train --out weights/thyroid-ddti.csasn

Loss (the model's dynamically weighted loss): TI-RADS cross-entropy with
per-class weights recomputed every epoch = 0.5 * sqrt-inverse-frequency + 0.5 *
(1 - smoothed validation recall); malignancy BCE balanced by class frequency;
descriptor cross-entropy only where the case file has the descriptor; mask Dice
+ BCE where an outline exists (labelled and unlabelled DDTI frames); task
losses combined with learned homoscedastic-uncertainty weights. --variant
plain_ce: unweighted losses, unit task weights.

Splits: StratifiedGroupKFold over DDTI patients (case id) stratified by
TI-RADS; lc_thyroid has its own grouped folds (by `group`) so that with
`--lc train` each fold's lc images are held out like its DDTI patients. With
`--lc external` lc_thyroid never enters training and every fold model predicts
all of it (external test); `--lc only` trains on lc_thyroid alone and tests on
all DDTI regions (the reverse direction). Inside each training fold a grouped
inner split (17 %) drives early stopping, the dynamic class weights, the
temperatures and the malignancy threshold; the outer fold is only predicted.
"""
import argparse
import ast
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import csasn_model as M  # noqa: E402
import data as D  # noqa: E402
import featcache as FC  # noqa: E402
import frames as FR  # noqa: E402
import metrics as MT  # noqa: E402

VARIANTS = ("full", "cnn_only", "vit_only", "no_att", "no_ms", "plain_ce", "no_desc")
TRAINABLE = ("fuse", "att", "proj8", "proj16", "projf", "projt", "mix", "cls_blocks", "cls_ln",
             "head_subtype", "head_malig", "head_desc", "seg_reduce", "seg_fuse", "seg_out")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--cv", type=int, default=0)
    ap.add_argument("--lc", choices=["train", "external", "only", "none"], default="train")
    ap.add_argument("--variant", choices=VARIANTS, default="full")
    ap.add_argument("--tune-top", type=int, default=0,
                    help="also train the CNN blocks after the stride-16 tap and its head conv")
    ap.add_argument("--seg", type=int, default=0, help="train the lesion-mask head (slower)")
    ap.add_argument("--tta", type=int, default=1, help="average the box view and its flip")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--dropout", type=float, default=0.2, help="on the cached feature maps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--row", default="", help="name of this row in --table")
    ap.add_argument("--table", help="json file of rows (appended / replaced by --row)")
    ap.add_argument("--result", help="npz of out-of-fold predictions")
    ap.add_argument("--out", help="export the shipped .csasn (no --cv)")
    return ap.parse_args(argv)


# ---------------------------------------------------------------- data

class Cache:
    def __init__(self, path):
        z = np.load(path)
        self.meta = ast.literal_eval(str(z["meta"]))
        self.f = {k: torch.from_numpy(z[k]) for k in ("tap8", "tap16", "head", "vitmap", "vitcls") if k in z.files}
        self.masks = torch.from_numpy(z["masks"])
        self.label, self.mal, self.desc = z["label"], z["malignant"], z["desc"]
        self.group, self.source, self.image = z["group"], z["source"], z["image"]
        self.boxes = z["boxes"]
        self.N, self.V = self.masks.shape[:2]

    def batch(self, idx, views, variant, drop, gen):
        """-> (taps dict, vit_map, vit_cls, mask target) float32 for region idx, view views."""
        i, v = torch.as_tensor(idx), torch.as_tensor(views)
        g = lambda k: self.f[k][i, v].float()
        taps = {"tap8": g("tap8"), "tap16": g("tap16"), "head": g("head")}
        vm = g("vitmap") if "vitmap" in self.f else None
        vc = g("vitcls") if "vitcls" in self.f else None
        if drop > 0 and gen is not None:   # feature dropout: the cache has only a few views per region
            taps = {k: F.dropout(t, drop, True) for k, t in taps.items()}
            vm = F.dropout(vm, drop, True) if vm is not None else None
        return taps, vm, vc, self.masks[i, v].float()


def model_config(cache, variant, seg):
    cfg = FC.trunk_config()
    cfg.region_mode, cfg.region_margin = cache.meta["mode"], float(cache.meta["margin"])
    cfg.region_fill = float(cache.meta["fill"])
    cfg.head_segmentation = int(seg)
    if variant != "no_desc":
        cfg.descriptors = list(FR.DESCRIPTORS)
        cfg.descriptor_labels = [list(v) for v in FR.DESCRIPTORS.values()]
    if variant == "cnn_only":
        cfg.use_vit = 0
    elif variant == "vit_only":
        cfg.use_cnn, cfg.head_segmentation, cfg.cls_multiscale = 0, 0, 0
    elif variant == "no_att":
        cfg.att_stages = 0
    elif variant == "no_ms":
        cfg.cls_multiscale = 0
    if cache.meta["vit"] == "none":
        cfg.use_vit = 0
    return cfg


class Heads(nn.Module):
    """CSASN without its branches (they are frozen and cached) + task log-variances.
    tune_top: the CNN's blocks after the stride-16 tap and its head conv are
    trained too, from the cached stride-16 map (initialised from the trunk;
    BatchNorm statistics stay the trunk's)."""

    def __init__(self, cfg, trunk=None, tune_top=False):
        super().__init__()
        use_cnn, use_vit = cfg.use_cnn, cfg.use_vit
        self.m = M.CSASN(cfg)
        self.tune_top = bool(tune_top and use_cnn)
        if self.tune_top:
            own = self.m.state_dict()
            own.update({k: v for k, v in trunk.items() if k.startswith("cnn.")})
            self.m.load_state_dict(own)
            t16 = self.m.cnn.t16
            for i, mod in enumerate([self.m.cnn.stem] + list(self.m.cnn.blocks[:t16 + 1])):
                for p in mod.parameters():
                    p.requires_grad_(False)
        else:
            # The branches never run here; forward_features checks them only for None.
            self.m.cnn = nn.Identity() if use_cnn else None
        self.m.vit = nn.Identity() if use_vit else None
        self.log_vars = nn.Parameter(torch.zeros(4))

    def train(self, mode=True):
        super().train(mode)
        if self.tune_top:
            for mod in self.m.cnn.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.eval()
        return self

    def forward(self, taps, vm, vc):
        if self.tune_top:
            cnn = self.m.cnn
            x = taps["tap16"]                                        # [B, C16, S/16, S/16]
            for b in cnn.blocks[cnn.t16 + 1:]:
                x = b(x)
            taps = dict(taps, head=cnn.act(cnn.head(x)))             # [B, head, S/32, S/32]
        return self.m.forward_features(taps if self.m.cnn is not None else None,
                                       vm if self.m.vit is not None else None, vc)


# ---------------------------------------------------------------- training

def class_weights(counts, recall_ema, dynamic):
    c = np.maximum(np.asarray(counts, float), 1)
    inv = np.sqrt(c.sum() / len(c) / c)
    inv /= inv.mean()
    if not dynamic:
        return inv
    rw = 1.0 - np.asarray(recall_ema) + 0.1
    w = 0.5 * inv + 0.5 * rw / rw.mean()
    return np.clip(w / w.mean(), 0.1, 5.0)


def seg_loss(logit, target):
    ok = ~torch.isnan(target[:, 0, 0])
    if not ok.any():
        return logit.sum() * 0
    logit, target = logit[ok], target[ok]
    p = torch.sigmoid(logit)
    return F.binary_cross_entropy_with_logits(logit, target) + \
        1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)


@torch.no_grad()
def predict(net, C, idx, variant, tta, bs=128):
    """Box view (and its flip when tta) -> numpy logits per region."""
    net.eval()
    out = {"logits": [], "mal": [], "desc": [[] for _ in net.m.head_desc], "mask": []}
    views = [0, 1] if tta else [0]
    for s in range(0, len(idx), bs):
        ii = idx[s:s + bs]
        acc = None
        for v in views:
            o = net(*C.batch(ii, np.full(len(ii), v), variant, 0, None)[:3])
            parts = [o["logits"], o["malignancy_logit"][:, None]] + list(o["descriptor_logits"])
            z = torch.cat(parts, 1)
            acc = z if acc is None else acc + z
            if v == 0 and "mask_logit" in o:
                out["mask"].append(torch.sigmoid(o["mask_logit"]).numpy())
        acc = (acc / len(views)).numpy()
        K = len(net.m.cfg.labels)
        out["logits"].append(acc[:, :K])
        out["mal"].append(acc[:, K])
        p = K + 1
        for d, hd in enumerate(net.m.head_desc):
            n = hd.out_features
            out["desc"][d].append(acc[:, p:p + n])
            p += n
    r = {"logits": np.concatenate(out["logits"]), "mal": np.concatenate(out["mal"]),
         "desc": [np.concatenate(d) for d in out["desc"]]}
    if out["mask"]:
        r["mask"] = np.concatenate(out["mask"])
    return r


def train_fold(C, cfg, a, tr, va, log):
    """tr: training region indices (labelled or mask-only), va: inner validation
    (labelled). Returns the best network (by validation score) and its epoch."""
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    net = Heads(cfg, C.trunk if a.tune_top else None, a.tune_top)
    K = len(cfg.labels)
    plain = a.variant == "plain_ce"
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=a.wd)
    steps = a.epochs * max(1, int(np.ceil(len(tr) / a.batch)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps, pct_start=0.1)
    lab_tr = C.label[tr]
    counts = np.bincount(lab_tr[lab_tr >= 0], minlength=K)
    recall_ema = np.full(K, 0.5)
    mal_tr = C.mal[tr]
    pos = max(1, (mal_tr == 1).sum())
    neg = max(1, (mal_tr == 0).sum())
    best, best_score, best_ep = None, -1e9, -1
    gen = torch.Generator().manual_seed(a.seed)
    for ep in range(a.epochs):
        net.train()
        w = torch.tensor(class_weights(counts, recall_ema, not plain), dtype=torch.float32)
        order = rng.permutation(tr)
        for s in range(0, len(order), a.batch):
            ii = order[s:s + a.batch]
            vv = rng.integers(0, C.V, len(ii))
            taps, vm, vc, mt = C.batch(ii, vv, a.variant, a.dropout, gen)
            o = net(taps, vm, vc)
            y = torch.as_tensor(C.label[ii])
            ym = torch.as_tensor(C.mal[ii]).float()
            losses = []
            ok = y >= 0
            losses.append(F.cross_entropy(o["logits"][ok], y[ok], weight=None if plain else w,
                                          label_smoothing=0.05) if ok.any() else o["logits"].sum() * 0)
            okm = ym >= 0
            if okm.any():
                pw = torch.tensor(1.0 if plain else neg / pos)
                losses.append(F.binary_cross_entropy_with_logits(o["malignancy_logit"][okm], ym[okm], pos_weight=pw))
            else:
                losses.append(o["malignancy_logit"].sum() * 0)
            dl = o["malignancy_logit"].sum() * 0
            for d, z in enumerate(o["descriptor_logits"]):
                yd = torch.as_tensor(C.desc[ii, d])
                okd = yd >= 0
                if okd.any():
                    dl = dl + F.cross_entropy(z[okd], yd[okd]) / len(o["descriptor_logits"])
            losses.append(dl)
            losses.append(seg_loss(o["mask_logit"], mt) if "mask_logit" in o else dl * 0)
            if plain:
                loss = sum(losses)
            else:
                lv = net.log_vars
                loss = sum(torch.exp(-lv[t]) * L + lv[t] / 2 for t, L in enumerate(losses))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        # validation: recall per class (for the dynamic weights) and the score for early stopping
        pv = predict(net, C, va, a.variant, a.tta)
        yv = C.label[va]
        okv = yv >= 0
        pred = pv["logits"].argmax(1)
        rec = np.array([(pred[okv & (yv == k)] == k).mean() if (okv & (yv == k)).any() else recall_ema[k]
                        for k in range(K)])
        recall_ema = 0.7 * recall_ema + 0.3 * rec
        mv = C.mal[va]
        auc = MT.auc(mv[mv >= 0], pv["mal"][mv >= 0]) if len(np.unique(mv[mv >= 0])) == 2 else 0.5
        f1 = MT.macro_f1(yv[okv], pred[okv], K) if okv.any() else 0.0
        score = auc + 0.5 * f1
        if score > best_score:
            best_score, best_ep = score, ep
            best = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best)
    log(f"    best epoch {best_ep + 1}/{a.epochs}, inner-validation score {best_score:.3f}")
    return net, best_ep


def train_mask_head(C, net, fit, va, a, log, epochs=15):
    """Second stage of the shipped model: only the lesion-mask decoder trains,
    on the refined map and the stride-8 map of the finished classifier, so the
    classification outputs stay exactly those of the cross-validated recipe."""
    m = net.m
    seg = [m.seg_reduce, m.seg_fuse, m.seg_out]
    for p in net.parameters():
        p.requires_grad_(False)
    params = [p for mod in seg for p in mod.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=a.wd)
    rng = np.random.default_rng(a.seed + 7)
    has = lambda idx: np.array([i for i in idx if not np.isnan(C.masks[i, 0, 0, 0].item())], np.int64)
    fit, va = has(fit), has(va)
    best, best_dice = None, -1.0
    for ep in range(epochs):
        net.train()
        order = rng.permutation(fit)
        for s in range(0, len(order), a.batch):
            ii = order[s:s + a.batch]
            taps, vm, vc, mt = C.batch(ii, rng.integers(0, C.V, len(ii)), a.variant, 0, None)
            loss = seg_loss(net(taps, vm, vc)["mask_logit"], mt)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            taps, vm, vc, mt = C.batch(va, np.zeros(len(va), np.int64), a.variant, 0, None)
            pm = torch.sigmoid(net(taps, vm, vc)["mask_logit"]).numpy() > 0.5
        d, _ = MT.dice_iou(pm, mt.numpy() > 0.5)
        dice = float(np.nanmean(d))
        if dice > best_dice:
            best_dice, best = dice, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best)
    log(f"    mask head: validation Dice {best_dice:.3f} ({len(fit)} training, {len(va)} validation regions)")
    return best_dice


def calibrate(cfg, pv, C, va):
    yv, mv = C.label[va], C.mal[va]
    ok = yv >= 0
    cfg.temperature = MT.fit_temperature(pv["logits"][ok], yv[ok]) if ok.any() else 1.0
    okm = mv >= 0
    cfg.malignancy_temperature = MT.fit_temperature(pv["mal"][okm], mv[okm], binary=True)
    cfg.malignancy_threshold = MT.youden_threshold(mv[okm], MT.sigmoid(pv["mal"][okm], cfg.malignancy_temperature))
    return cfg


# ---------------------------------------------------------------- splits

def split_sets(C, lc_mode):
    """-> (labelled DDTI idx, mask-only DDTI idx, lc idx)."""
    ddti = C.source == "ddti"
    lab = np.nonzero(ddti & (C.label >= 0))[0]
    unl = np.nonzero(ddti & (C.label < 0))[0]
    lc = np.nonzero(C.source == "lc")[0]
    return lab, unl, lc


def folds_of(idx, strat, groups, k, seed):
    f = D.grouped_folds(strat[idx], groups[idx], k, seed)
    return [(idx[a], idx[b]) for a, b in f]


def inner_split(C, tr, seed):
    strat = np.where(C.label[tr] >= 0, C.label[tr], 10 + C.mal[tr])
    a, b = D.holdout(strat, C.group[tr], 0.17, seed)
    return tr[a], tr[b]


def run_cv(C, cfg, a, log):
    lab, unl, lc = split_sets(C, a.lc)
    K = a.cv
    if a.lc == "only":
        outer = folds_of(lc, C.mal, C.group, K, a.seed)
        test_sets = [(lc_tr, lc_te, lab) for lc_tr, lc_te in outer]
    else:
        dd = folds_of(lab, C.label, C.group, K, a.seed)
        lcf = folds_of(lc, C.mal, C.group, K, a.seed) if a.lc == "train" else [(None, None)] * K
        test_sets = []
        for (d_tr, d_te), (l_tr, l_te) in zip(dd, lcf):
            tr = d_tr if l_tr is None else np.concatenate([d_tr, l_tr])
            ext = lc if a.lc == "external" else np.array([], np.int64)
            test_sets.append((tr, np.concatenate([d_te] + ([l_te] if l_te is not None else [])), ext))
    n = C.N
    oof = {"logits": np.full((n, len(cfg.labels)), np.nan), "mal": np.full(n, np.nan),
           "desc": [np.full((n, len(l)), np.nan) for l in cfg.descriptor_labels], "fold": np.full(n, -1)}
    ext_mal = {}
    fold_info = []
    for f, (tr, te, ext) in enumerate(test_sets):
        t0 = time.time()
        fit, va = inner_split(C, tr, a.seed + f)
        if a.seg and a.lc != "only":   # mask-only frames of the training patients (never a held-out one)
            held = set(C.group[te])
            fit = np.concatenate([fit, [i for i in unl if C.group[i] not in held and C.group[i] not in set(C.group[va])]])
        net, ep = train_fold(C, cfg, a, fit, va, log)
        ccfg = calibrate(M.Config(**{**cfg.__dict__}), predict(net, C, va, a.variant, a.tta), C, va)
        p = predict(net, C, te, a.variant, a.tta)
        oof["logits"][te] = p["logits"] / ccfg.temperature
        oof["mal"][te] = p["mal"] / ccfg.malignancy_temperature
        for d in range(len(oof["desc"])):
            oof["desc"][d][te] = p["desc"][d]
        oof["fold"][te] = f
        if a.tta:   # the same fold model without the flip: what test-time flip buys, at no training cost
            oof.setdefault("mal_no_tta", np.full(n, np.nan))[te] = \
                predict(net, C, te, a.variant, 0)["mal"] / ccfg.malignancy_temperature
        if len(ext):
            pe = predict(net, C, ext, a.variant, a.tta)
            ext_mal[f] = (ext, pe["mal"] / ccfg.malignancy_temperature)
        fold_info.append({"fold": f, "train": int(len(fit)), "val": int(len(va)), "test": int(len(te)),
                          "best_epoch": ep + 1, "T": ccfg.temperature, "T_mal": ccfg.malignancy_temperature,
                          "threshold": ccfg.malignancy_threshold, "seconds": round(time.time() - t0, 1)})
        log(f"  fold {f + 1}/{K}: {fold_info[-1]}")
    return oof, ext_mal, fold_info


# ---------------------------------------------------------------- figures

def patient_level(groups, score, y):
    """Mean score (calibrated logit) per patient; label = the patient's label
    (a DDTI case has one TI-RADS; an lc group one folder)."""
    ug = np.unique(groups)
    s = np.array([score[groups == g].mean() for g in ug])
    yy = np.array([y[groups == g].max() for g in ug])
    return s, yy


def auc_block(y, s, groups, folds=None):
    r = {"n": int(len(y)), "patients": int(len(np.unique(groups))), "auc": MT.auc(y, s)}
    r["auc_ci"] = MT.bootstrap_ci(lambda i: MT.auc(y[i], s[i]) if len(np.unique(y[i])) == 2 else float("nan"),
                                  len(y), groups)
    ps, py = patient_level(groups, s, y)
    r["patient_auc"] = MT.auc(py, ps)
    r["patient_auc_ci"] = MT.bootstrap_ci(lambda i: MT.auc(py[i], ps[i]) if len(np.unique(py[i])) == 2
                                          else float("nan"), len(py))
    if folds is not None:
        per = [MT.auc(y[folds == f], s[folds == f]) for f in np.unique(folds)
               if len(np.unique(y[folds == f])) == 2]
        r["fold_auc_mean"], r["fold_auc_sd"] = float(np.mean(per)), float(np.std(per, ddof=1))
    return r


def figures(C, cfg, oof, ext_mal, a):
    out = {}
    K = len(cfg.labels)
    ddti = (C.source == "ddti") & (oof["fold"] >= 0) & (C.label >= 0)
    if ddti.any():
        y, m = C.label[ddti], C.mal[ddti]
        z = oof["logits"][ddti]
        pred = z.argmax(1)
        g, fo = C.group[ddti], oof["fold"][ddti]
        out["ddti"] = auc_block(m, oof["mal"][ddti], g, fo)
        if "mal_no_tta" in oof:
            out["ddti"]["auc_without_flip_tta"] = MT.auc(m, oof["mal_no_tta"][ddti])
        out["ddti"]["tirads_macro_f1"] = MT.macro_f1(y, pred, K)
        out["ddti"]["tirads_macro_f1_ci"] = MT.bootstrap_ci(lambda i: MT.macro_f1(y[i], pred[i], K), len(y), g)
        out["ddti"]["tirads_recall"] = [float(r) for r in MT.per_class(y, pred, K)[1]]
        out["ddti"]["tirads_balanced_accuracy"] = MT.balanced_accuracy(y, pred, K)
        pm = MT.sigmoid(oof["mal"][ddti])
        out["ddti"]["malignancy_ece"] = MT.ece(np.maximum(pm, 1 - pm), (pm >= 0.5) == (m == 1))
        probs = MT.softmax(z)
        out["ddti"]["tirads_ece"] = MT.ece(probs.max(1), pred == y)
        out["ddti"]["confusion"] = MT.confusion(y, pred, K).tolist()
        desc = {}
        for d, name in enumerate(cfg.descriptors):
            yd = C.desc[ddti, d]
            ok = yd >= 0
            if not ok.any():
                continue
            pd = oof["desc"][d][ddti][ok].argmax(1)
            maj = np.bincount(yd[ok]).argmax()
            nd = len(cfg.descriptor_labels[d])
            desc[name] = {"n": int(ok.sum()), "accuracy": float((pd == yd[ok]).mean()),
                          "majority_baseline": float((yd[ok] == maj).mean()),
                          "balanced_accuracy": MT.balanced_accuracy(yd[ok], pd, nd),
                          "accuracy_ci": MT.bootstrap_ci(lambda i: float((pd[i] == yd[ok][i]).mean()),
                                                         int(ok.sum()), C.group[ddti][ok])}
        out["descriptors"] = desc
    lcm = (C.source == "lc") & (oof["fold"] >= 0)
    if lcm.any():
        out["lc_cv"] = auc_block(C.mal[lcm], oof["mal"][lcm], C.group[lcm], oof["fold"][lcm])
    if ext_mal:
        idx = next(iter(ext_mal.values()))[0]
        s = np.mean([v[1] for v in ext_mal.values()], 0)
        out["lc_external"] = auc_block(C.mal[idx], s, C.group[idx])
        out["lc_external"]["per_fold_auc"] = [MT.auc(C.mal[v[0]], v[1]) for v in ext_mal.values()]
    return out


def run_reverse(C, cfg, a, log):
    """--lc only: train on lc_thyroid (inner split for stopping/calibration), test on all DDTI."""
    lab, unl, lc = split_sets(C, a.lc)
    fit, va = inner_split(C, lc, a.seed)
    net, ep = train_fold(C, cfg, a, fit, va, log)
    ccfg = calibrate(M.Config(**{**cfg.__dict__}), predict(net, C, va, a.variant, a.tta), C, va)
    p = predict(net, C, lab, a.variant, a.tta)
    return {"ddti_external": auc_block(C.mal[lab], p["mal"] / ccfg.malignancy_temperature, C.group[lab]),
            "best_epoch": ep + 1}


def save_row(a, row):
    if not a.table:
        return
    rows = []
    if os.path.exists(a.table):
        rows = [r for r in json.load(open(a.table)) if r.get("row") != a.row]
    rows.append(row)
    tmp = a.table + ".tmp"
    json.dump(rows, open(tmp, "w"), indent=1, default=float)
    os.replace(tmp, a.table)


def export_model(C, cfg, a, log):
    """Final model: all labelled DDTI (+ lc), inner split for stopping and calibration."""
    lab, unl, lc = split_sets(C, a.lc)
    tr = np.concatenate([lab, lc]) if a.lc == "train" else lab
    fit, va = inner_split(C, tr, a.seed)
    seg = cfg.head_segmentation
    cfg.head_segmentation = 0          # the classifier is the cross-validated recipe ...
    net, ep = train_fold(C, cfg, a, fit, va, log)
    cfg = calibrate(cfg, predict(net, C, va, a.variant, a.tta), C, va)
    dice = None
    if seg:                            # ... and the mask decoder is trained after it, on its maps
        cfg.head_segmentation = 1
        net2 = Heads(cfg)
        own = net2.state_dict()
        own.update(net.state_dict())
        net2.load_state_dict(own)
        net = net2
        mfit = np.concatenate([fit, [i for i in unl if C.group[i] not in set(C.group[va])]]).astype(np.int64)
        dice = train_mask_head(C, net, mfit, va, a, log)
    trunk = FC.trunk_state(C.meta["cnn"], C.meta["vit"])
    full = M.CSASN(cfg)
    state = full.state_dict()
    state.update({k: v for k, v in trunk.items()})
    state.update({"".join(k.split("m.", 1)[1:]) or k: v for k, v in net.state_dict().items() if k.startswith("m.")})
    full.load_state_dict(state)
    import convert
    cfg.source = (f"CNN branch: {'ImageNet MobileNetV2-1.0 (GluonCV, Apache-2.0)' if C.meta['cnn'] == 'imagenet' else 'MobileNetV2 of breast-busi.csasn'}"
                  f", frozen; ViT branch: ViT of breast-busi.csasn (BUSI), frozen; rest trained with "
                  f"tools/train_heads.py on DDTI frames" + (" + lc_thyroid" if a.lc == "train" else ""))
    cfg.description = (f"thyroid: {len(fit)} training regions, {len(va)} validation regions; "
                       f"region {cfg.region_mode}, margin {cfg.region_margin}; best epoch {ep + 1}"
                       + (f"; mask head validation Dice {dice:.3f}" if dice is not None else ""))
    split = {"fit": [str(C.image[i]) for i in fit], "val": [str(C.image[i]) for i in va]}
    json.dump({"regions_note": "one entry per region (a frame with two outlines appears twice)",
               "train": sorted(set(os.path.relpath(p, FC.DATA) for p in split["fit"])),
               "validation": sorted(set(os.path.relpath(p, FC.DATA) for p in split["val"]))},
              open(os.path.splitext(a.out)[0] + ".split.json", "w"), indent=0)
    full.cfg = cfg
    convert.export(full, cfg, a.out, "f16")
    log(f"wrote {a.out}")
    torch.save({"config": cfg.__dict__, "state_dict": full.state_dict()}, a.out + ".pt")


def main(argv=None):
    a = parse_args(argv)
    if a.table and a.row and not a.result:    # every row keeps its out-of-fold predictions
        a.result = os.path.join(os.path.dirname(a.table), a.row + ".npz")
    torch.set_num_threads(a.threads)
    log = lambda s: print(s, flush=True)
    C = Cache(a.cache)
    C.trunk = FC.trunk_state(C.meta["cnn"], C.meta["vit"]) if a.tune_top else None
    cfg = model_config(C, a.variant, a.seg)
    log(f"{a.cache}: {C.N} regions x {C.V} views; variant {a.variant}, lc {a.lc}, seg {a.seg}")
    t0 = time.time()
    if a.out:
        return export_model(C, cfg, a, log)
    if a.lc == "only":
        figs = run_reverse(C, cfg, a, log)
        folds = None
    else:
        oof, ext_mal, folds = run_cv(C, cfg, a, log)
        figs = figures(C, cfg, oof, ext_mal, a)
        if a.result:
            np.savez(a.result, mal=oof["mal"], logits=oof["logits"], fold=oof["fold"], group=C.group,
                     source=C.source, label=C.label, malignant=C.mal, image=C.image, desc=C.desc,
                     **{"desc_logits_%d" % d: v for d, v in enumerate(oof["desc"])},
                     **({"ext_idx": next(iter(ext_mal.values()))[0],
                         "ext_mal": np.mean([v[1] for v in ext_mal.values()], 0)} if ext_mal else {}))
    row = {"row": a.row, "cache": os.path.basename(a.cache), "meta": C.meta, "variant": a.variant,
           "lc": a.lc, "seg": a.seg, "tune_top": a.tune_top, "lr": a.lr, "dropout": a.dropout, "tta": a.tta, "epochs": a.epochs, "folds": folds, **figs,
           "seconds": round(time.time() - t0, 1)}
    log(json.dumps({k: v for k, v in row.items() if k in ("row", "ddti", "lc_cv", "lc_external", "ddti_external")},
                   default=float)[:1500])
    save_row(a, row)


if __name__ == "__main__":
    main()
