#!/usr/bin/env python3
"""Train CSASN (tools/csasn_model.py) on DDTI thyroid, BUSI breast or any folder
of class-named sub-folders, and export a .csasn model file.

  # the shipped thyroid model (CPU by default; CUDA when present)
  /usr/bin/python3 tools/train.py --dataset thyroid --out weights/thyroid-ddti.csasn
  # a hospital's own classes: DIR/PTC/*.png DIR/FTC/*.png DIR/benign/*.png ...
  /usr/bin/python3 tools/train.py --dataset folder --data-dir DIR --malignant PTC,FTC,MTC,ATC \
      --out my.csasn
  # cross-validation (ablation rows): --cv 3 --variant full|cnn_only|vit_only|no_att|no_ms|plain_ce

Modes
- final (default): one grouped, stratified validation split (--val-frac) is held
  out; the model trains on the rest; the validation split drives the dynamic
  class weights, the temperatures (subtype and malignancy, fitted by NLL) and the
  malignancy threshold (Youden), then the model is exported (fp16).
- --cv K: K grouped stratified folds; inside each training fold an inner
  validation split plays the role above, the outer fold is only predicted.
  Out-of-fold predictions go to --result (npz + json), which tools/evaluate.py reads.

Loss (src/ARCHITECTURE.md, section 1.7): subtype cross-entropy with per-class weights recomputed
every epoch = 0.5 * sqrt-inverse-frequency + 0.5 * (1 - smoothed validation
recall) (classes the model misses get more weight), optional focal term
(--focal); malignancy BCE balanced by class frequency; segmentation Dice + BCE
(on images with masks; for DDTI also the unlabeled crops, whose class is never
read); the three task losses combined with learned homoscedastic-uncertainty
weights (exp(-s_i) L_i + s_i / 2). --variant plain_ce uses unweighted CE/BCE,
no focal term and fixed unit task weights.

Augmentation (on the device, batched): random resized crop with zoom-out
(ROI jitter as a user-drawn ROI would vary), +-10 degree rotation, horizontal
flip only (the vertical axis is depth: shadowing below a lesion is a cue),
gain / offset / gamma (scanner gain and TGC settings), multiplicative
speckle-like noise. Inputs: the cache of tools/data.py, i.e. images resized by
the engine's own triangle filter.

Checkpoints: --ckpt PATH is written every epoch ({"config", "state_dict",
"epoch", "optimizer", ...}); --resume continues from it.
"""
import argparse
import dataclasses
import json
import math
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
import csasn_format  # noqa: E402
import data as D  # noqa: E402
import metrics as MT  # noqa: E402

VARIANTS = ("full", "cnn_only", "vit_only", "no_att", "no_ms", "plain_ce")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="train CSASN", formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--dataset", choices=["thyroid", "breast", "folder"], required=True)
    ap.add_argument("--data-root", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--data-dir", help="folder of class-named sub-folders (--dataset folder)")
    ap.add_argument("--malignant", default="", help="comma-separated malignant class names (folder)")
    ap.add_argument("--group-prefix", action="store_true",
                    help="folder: images sharing the file-name prefix before '_' are one patient")
    ap.add_argument("--cache", help="npz from tools/data.py (built here when missing)")
    ap.add_argument("--out", help="exported .csasn (final mode)")
    ap.add_argument("--ckpt", help="checkpoint path (written every epoch)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--result", help="write predictions/metrics here (prefix; .npz and .json)")
    ap.add_argument("--cv", type=int, default=0, help="K-fold cross-validation instead of one final model")
    ap.add_argument("--folds", default="", help="with --cv: comma-separated fold numbers to run (default all)")
    ap.add_argument("--variant", choices=VARIANTS, default="full")
    ap.add_argument("--cnn", default="mobilenetv2-gluon",
                    help="mobilenetv2-gluon (ImageNet init) | mobilenetv2 | efficientnet-b0 | efficientnet-b2")
    ap.add_argument("--pretrained", default=os.path.join(HERE, "..", "..", "shared", "pretrained",
                                                         "mobilenetv2-1.0-imagenet"))
    ap.add_argument("--no-pretrained", action="store_true")
    ap.add_argument("--freeze", type=int, default=3, help="pretrained CNN: freeze stem + this many blocks")
    ap.add_argument("--vit", default="192,4,3,768", help="dim,depth,heads,mlp")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seg", type=int, default=-1, help="segmentation head (default: when masks exist)")
    ap.add_argument("--seg-weight", type=float, default=1.0, help="segmentation loss multiplier")
    ap.add_argument("--seg-channels", type=int, default=64)
    ap.add_argument("--mal-weight", type=float, default=1.0,
                    help="malignancy loss multiplier (the learned task log-variances move only about "
                         "+-0.15 in 60 epochs, so this acts as a fixed task weight)")
    ap.add_argument("--mixup", type=float, default=0.0,
                    help="mixup Beta(a, a) (0 = off): labelled images mix with labelled ones, "
                         "unlabeled with unlabeled; soft class / malignancy / mask targets")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--backbone-lr", type=float, default=0.25, help="pretrained CNN lr multiplier")
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--focal", type=float, default=0.0, help="focal gamma (0 = off)")
    ap.add_argument("--smooth", type=float, default=0.05, help="label smoothing")
    ap.add_argument("--ema", type=float, default=0.99)
    ap.add_argument("--val-frac", type=float, default=0.17)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="smoke tests: use only this many images")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="")
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


# ---------------------------------------------------------------- config / model

def build_config(a, labels, malignant, seg):
    vit = tuple(int(v) for v in a.vit.split(","))
    cnn = a.cnn
    name = a.name or {"thyroid": "csasn-thyroid-ddti", "breast": "csasn-breast-busi"}.get(a.dataset, "csasn-custom")
    cfg = M.make_config(name, cnn=cnn, vit=vit, input_size=a.size, labels=list(labels),
                        malignant_labels=list(malignant), head_malignancy=1 if malignant else 0,
                        head_segmentation=int(seg), seg_channels=a.seg_channels)
    if a.variant == "cnn_only":
        cfg.use_vit = 0
    elif a.variant == "vit_only":
        cfg.use_cnn = 0
        cfg.head_segmentation = 0     # the decoder needs the stride-8 CNN map
    elif a.variant == "no_att":
        cfg.att_stages = 0
    elif a.variant == "no_ms":
        cfg.cls_multiscale = 0
    pre = cnn == "mobilenetv2-gluon" and not a.no_pretrained and cfg.use_cnn
    cfg.source = ("CNN branch from ImageNet MobileNetV2-1.0 (GluonCV, Apache-2.0), rest random; "
                  if pre else "random initialisation; ") + f"trained with tools/train.py ({a.dataset})"
    return cfg, pre


class Net(nn.Module):
    """CSASN plus the training-only learned task log-variances."""

    def __init__(self, cfg, pretrained_dir=None, freeze=0):
        super().__init__()
        self.m = M.CSASN(cfg)
        self.log_vars = nn.Parameter(torch.zeros(3))
        self.frozen = []
        if pretrained_dir:
            import pretrained
            pretrained.load_into(self.m, pretrained_dir)
            if freeze > 0:
                self.frozen = [self.m.cnn.stem] + list(self.m.cnn.blocks[:freeze])
                for mod in self.frozen:
                    for p in mod.parameters():
                        p.requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        for mod in self.frozen:     # frozen layers keep their ImageNet BN statistics
            mod.eval()
        return self


class EMA:
    """Exponential moving average of all float state (weights and BN statistics)."""

    def __init__(self, model, decay):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.steps = 0

    @torch.no_grad()
    def update(self, model):
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        sd = model.state_dict()
        fk = [k for k, v in sd.items() if v.dtype.is_floating_point]
        # foreach: one kernel launch per op for all tensors (launches dominate on a GPU)
        sh = [self.shadow[k] for k in fk]
        torch._foreach_mul_(sh, d)
        torch._foreach_add_(sh, [sd[k].detach() for k in fk], alpha=1 - d)
        for k, v in sd.items():
            if not v.dtype.is_floating_point:
                self.shadow[k].copy_(v)


# ---------------------------------------------------------------- augmentation

def augment(x, m, gen):
    """x [B,1,S,S] gray in [0,1], m [B,1,S,S] mask or None -> augmented (same geometry)."""
    B, dev = x.shape[0], x.device
    u = lambda lo, hi: torch.rand(B, device=dev, generator=gen) * (hi - lo) + lo
    zoom = u(0.8, 1.12)                 # side of the input seen, relative (>1 = zoom out)
    aspect = torch.exp(u(-0.15, 0.15))
    ang = u(-10, 10) * math.pi / 180
    flip = torch.where(torch.rand(B, device=dev, generator=gen) < 0.5, -1.0, 1.0)
    sx, sy = zoom * aspect.sqrt() * flip, zoom / aspect.sqrt()
    lim = (1 - zoom).abs() + 0.05
    tx, ty = u(-1, 1) * lim, u(-1, 1) * lim
    c, s = torch.cos(ang), torch.sin(ang)
    theta = torch.stack([torch.stack([c * sx, -s * sy, tx], 1), torch.stack([s * sx, c * sy, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if m is not None:
        m = F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gamma = torch.exp(u(-0.3, 0.3))[:, None, None, None]
    gain = u(0.8, 1.25)[:, None, None, None]
    off = u(-0.08, 0.08)[:, None, None, None]
    x = x.clamp(0, 1) ** gamma
    mu = x.mean((2, 3), keepdim=True)
    x = (x - mu) * gain + mu + off
    sig = u(0, 0.2)[:, None, None, None] * (torch.rand(B, 1, 1, 1, device=dev, generator=gen) < 0.5)
    noise = F.avg_pool2d(torch.randn(x.shape, device=dev, generator=gen), 3, 1, 1) * 3
    x = x * (1 + sig * noise)
    return x.clamp(0, 1), m


def to_input(g, cfg):
    """gray [B,1,S0,S0] in [0,1] -> normalised [B,3,S,S] (resized when S0 != S)."""
    S = cfg.input_size
    if g.shape[-1] != S:
        g = F.interpolate(g, size=(S, S), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(cfg.mean, device=g.device)[None, :, None, None]
    std = torch.tensor(cfg.std, device=g.device)[None, :, None, None]
    return (g.expand(-1, 3, -1, -1) - mean) / std


def autocast(dev):
    """bf16 autocast on CUDA; a no-op context on CPU (torch 1.13 CPU builds
    raise when asked about CUDA bf16 support)."""
    import contextlib
    if dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------- loss

def class_weights(counts, recall_ema, dynamic):
    K = len(counts)
    c = np.maximum(np.asarray(counts, float), 1)
    inv = np.sqrt(c.sum() / K / c)
    inv /= inv.mean()
    if not dynamic:
        return inv
    rw = 1.0 - np.asarray(recall_ema) + 0.1
    rw /= rw.mean()
    w = 0.5 * inv + 0.5 * rw
    return np.clip(w / w.mean(), 0.1, 5.0)


def seg_loss(logit, target):
    """Dice + BCE over the batch (batch-level Dice: empty masks are well defined)."""
    bce = F.binary_cross_entropy_with_logits(logit, target)
    p = torch.sigmoid(logit)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + dice


# ---------------------------------------------------------------- training

@torch.no_grad()
def predict(model, images, cfg, dev, bs=64):
    """images uint8 [N,S0,S0] -> dict of numpy logits (and mask probs at S/4)."""
    model.eval()
    out = {"logits": [], "mal": [], "mask": []}
    for i in range(0, len(images), bs):
        g = torch.from_numpy(images[i:i + bs]).to(dev).float().div_(255)[:, None]
        with autocast(dev):
            o = model(to_input(g, cfg))
        out["logits"].append(o["logits"].float().cpu().numpy())
        if "malignancy_logit" in o:
            out["mal"].append(o["malignancy_logit"].float().cpu().numpy())
        if "mask_logit" in o:
            out["mask"].append(torch.sigmoid(o["mask_logit"].float()).cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items() if v}


def mask_target(masks, S4):
    """uint8 masks [N,S0,S0] -> float [N,S4,S4] area fractions (soft targets)."""
    t = torch.from_numpy(masks).float()[:, None]
    return F.adaptive_avg_pool2d(t, S4)[:, 0]


def train_model(cfg, pre, a, dd, tr, va, unl, dev, log, ckpt=None):
    """Train on indices tr (+ unl, label-free), validate on va. Returns (Net with EMA weights, history)."""
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    gen = torch.Generator(device=dev)
    gen.manual_seed(a.seed)
    net = Net(cfg, a.pretrained if pre else None, a.freeze if pre else 0).to(dev)
    K = len(cfg.labels)
    labels = dd["labels"]
    mal_set = [cfg.labels.index(x) for x in cfg.malignant_labels]
    is_mal = np.isin(labels, mal_set).astype(np.float32)
    plain = a.variant == "plain_ce"
    seg = bool(cfg.head_segmentation)
    train_idx = np.concatenate([tr, unl]) if (seg and len(unl)) else tr
    counts = np.bincount(labels[tr], minlength=K)
    npos = is_mal[tr].sum()
    pos_weight = float(np.clip((len(tr) - npos) / max(npos, 1), 0.2, 5.0))
    # parameter groups: pretrained CNN at a lower learning rate
    bb = [p for n, p in net.named_parameters() if p.requires_grad and n.startswith("m.cnn.") and pre]
    rest = [p for n, p in net.named_parameters() if p.requires_grad and not (n.startswith("m.cnn.") and pre)]
    groups = [{"params": rest, "lr": a.lr}]
    if bb:
        groups.append({"params": bb, "lr": a.lr * a.backbone_lr})
    opt = torch.optim.AdamW(groups, lr=a.lr, weight_decay=a.wd)
    base_lrs = [g["lr"] for g in groups]
    steps_per_epoch = max(1, len(train_idx) // a.batch)
    total = a.epochs * steps_per_epoch
    ema = EMA(net.m, a.ema)
    recall_ema = np.full(K, 0.5)
    start_epoch, hist = 0, []
    if ckpt and a.resume and os.path.exists(ckpt):
        st = torch.load(ckpt, map_location=dev)
        if st.get("config") != dataclasses.asdict(cfg):
            raise SystemExit(f"error: checkpoint {ckpt} was written for another configuration; "
                             "remove it or train without --resume")
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["optimizer"])
        ema.shadow = {k: v.to(dev) for k, v in st["state_dict"].items()}
        ema.steps = st["ema_steps"]
        recall_ema = np.array(st["recall_ema"])
        start_epoch, hist = st["epoch"] + 1, st["history"]
        log(f"resumed from {ckpt} at epoch {start_epoch}")
    imgs_all = torch.from_numpy(dd["images"][train_idx]).to(dev)
    masks_all = torch.from_numpy(dd["masks"][train_idx]).to(dev) if seg else None
    hasm_all = torch.from_numpy(dd["has_mask"][train_idx].astype(bool)).to(dev)
    y_all = torch.from_numpy(labels[train_idx]).to(dev)
    m_all = torch.from_numpy(is_mal[train_idx]).to(dev)
    S4 = cfg.input_size // 4
    t0, seen = time.time(), 0
    for ep in range(start_epoch, a.epochs):
        net.train()
        w = class_weights(counts, recall_ema, dynamic=not plain)
        wt = torch.tensor(w if not plain else np.ones(K), dtype=torch.float32, device=dev)
        perm = torch.randperm(len(train_idx), device=dev, generator=gen)
        tl = np.zeros(4)
        for it in range(steps_per_epoch):
            step = ep * steps_per_epoch + it
            f = min(1.0, (step + 1) / max(1, a.warmup * steps_per_epoch))
            f *= 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))
            for g, lr0 in zip(opt.param_groups, base_lrs):
                g["lr"] = lr0 * f
            b = perm[it * a.batch:(it + 1) * a.batch]
            g = imgs_all[b].float().div_(255)[:, None]
            mk = masks_all[b].float()[:, None] if seg else None
            g, mk = augment(g, mk, gen)
            y, ym, lab = y_all[b], m_all[b], y_all[b] >= 0
            hm = hasm_all[b]
            lam, pi = 1.0, None
            if a.mixup > 0:
                # pair labelled with labelled and unlabeled with unlabeled, so
                # every labelled image keeps a full class target
                lam = float(np.random.beta(a.mixup, a.mixup))
                lam = max(lam, 1 - lam)
                pi = torch.arange(len(b), device=dev)
                for sel in (lab, ~lab):
                    ii = torch.nonzero(sel)[:, 0]
                    pi[ii] = ii[torch.randperm(len(ii), device=dev, generator=gen)]
                g = lam * g + (1 - lam) * g[pi]
                if mk is not None:
                    mk = lam * mk + (1 - lam) * mk[pi]
                    hm = hm & hm[pi]
                ym = lam * ym + (1 - lam) * ym[pi]     # BCE is linear in the target
            x = to_input(g, cfg)
            with autocast(dev):
                o = net.m(x)
            losses = []
            if lab.any():
                z = o["logits"].float()[lab]

                def sub_ce(yy):
                    ce = F.cross_entropy(z, yy, weight=wt, reduction="none", label_smoothing=a.smooth)
                    if a.focal > 0 and not plain:
                        pt = torch.softmax(z, -1).gather(1, yy[:, None])[:, 0].detach()
                        ce = ce * (1 - pt) ** a.focal
                    return ce.sum(), wt[yy].sum(), ce.mean()
                s1, w1, m1 = sub_ce(y[lab])
                if pi is not None:
                    s2, w2, m2 = sub_ce(y[pi][lab])
                    s1, w1, m1 = lam * s1 + (1 - lam) * s2, lam * w1 + (1 - lam) * w2, lam * m1 + (1 - lam) * m2
                l_sub = (s1 / w1) if not plain else m1
                losses.append(l_sub)
                if "malignancy_logit" in o:
                    zm = o["malignancy_logit"].float()[lab]
                    pw = torch.tensor(1.0 if plain else pos_weight, device=dev)
                    losses.append(a.mal_weight * F.binary_cross_entropy_with_logits(zm, ym[lab], pos_weight=pw))
                else:
                    losses.append(torch.zeros((), device=dev))
            else:
                losses += [torch.zeros((), device=dev)] * 2
            if seg and hm.any():
                tgt = F.adaptive_avg_pool2d(mk[hm], S4)[:, 0]
                losses.append(a.seg_weight * seg_loss(o["mask_logit"].float()[hm], tgt))
            else:
                losses.append(torch.zeros((), device=dev))
            L = torch.stack(losses)
            if plain:
                loss = L.sum()
            else:
                s = net.log_vars.clamp(-4, 4)
                loss = (torch.exp(-s) * L + 0.5 * s * (L.detach() > 0)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            ema.update(net.m)
            tl += np.array([loss.item()] + [v.item() for v in L])
            seen += len(b)
        # validation with the EMA weights: recall drives next epoch's class weights
        ev = M.CSASN(cfg).to(dev)
        ev.load_state_dict(ema.shadow)
        pv = predict(ev, dd["images"][va], cfg, dev)
        yv = labels[va]
        pred = pv["logits"].argmax(1)
        _, rec, _, sup = MT.per_class(yv, pred, K)
        recall_ema = np.where(sup > 0, 0.5 * recall_ema + 0.5 * rec, recall_ema)
        row = {"epoch": ep, "loss": tl[0] / steps_per_epoch, "l_sub": tl[1] / steps_per_epoch,
               "l_mal": tl[2] / steps_per_epoch, "l_seg": tl[3] / steps_per_epoch,
               "val_macro_f1": MT.macro_f1(yv, pred, K), "val_bacc": MT.balanced_accuracy(yv, pred, K),
               "val_recall": rec.round(3).tolist(), "weights": np.round(w, 3).tolist(),
               "task_s": net.log_vars.detach().cpu().numpy().round(3).tolist()}
        if "mal" in pv:
            row["val_mal_auc"] = MT.auc(is_mal[va], pv["mal"])
        if "mask" in pv:
            hv = dd["has_mask"][va].astype(bool) & (dd["masks"][va].reshape(len(va), -1).max(1) > 0)
            if hv.any():
                gt = mask_target(dd["masks"][va][hv], S4).numpy() > 0.5
                row["val_dice"] = float(np.nanmean(MT.dice_iou(pv["mask"][hv] > 0.5, gt)[0]))
        hist.append(row)
        el = time.time() - t0
        rate = seen / max(el, 1e-6)
        eta = (a.epochs - ep - 1) * steps_per_epoch * a.batch / max(rate, 1e-6)
        if not a.quiet or (ep + 1) % 10 == 0 or ep == a.epochs - 1:
            log(f"epoch {ep + 1}/{a.epochs} loss {row['loss']:.3f} (sub {row['l_sub']:.3f} mal {row['l_mal']:.3f} "
                f"seg {row['l_seg']:.3f}) val macroF1 {row['val_macro_f1']:.3f} bacc {row['val_bacc']:.3f}"
                + (f" malAUC {row['val_mal_auc']:.3f}" if "val_mal_auc" in row else "")
                + (f" dice {row['val_dice']:.3f}" if "val_dice" in row else "")
                + f" | {rate:.1f} img/s, ETA {eta / 60:.1f} min")
        if ckpt:
            os.makedirs(os.path.dirname(os.path.abspath(ckpt)), exist_ok=True)
            torch.save({"config": dataclasses.asdict(cfg), "state_dict": ema.shadow, "epoch": ep,
                        "optimizer": opt.state_dict(), "net": net.state_dict(), "ema_steps": ema.steps,
                        "recall_ema": recall_ema.tolist(), "history": hist}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
    final = M.CSASN(cfg).to(dev)
    final.load_state_dict(ema.shadow)
    final.eval()
    return final, hist, time.time() - t0


def calibrate(cfg, pv, yv, malv):
    """Temperatures (NLL) and the Youden malignancy threshold on validation predictions."""
    cfg.temperature = MT.fit_temperature(pv["logits"], yv)
    if "mal" in pv:
        cfg.malignancy_temperature = MT.fit_temperature(pv["mal"], malv, binary=True)
        cfg.malignancy_threshold = MT.youden_threshold(malv, MT.sigmoid(pv["mal"], cfg.malignancy_temperature))
    return cfg


def export(path, cfg, model):
    try:
        import convert
        if hasattr(convert, "export"):
            return convert.export(model, cfg, path, "f16")
    except ImportError:
        pass
    model.cfg = cfg
    csasn_format.write(path, M.config_to_meta(cfg), M.export_state(model), "f16")


def load_data(a, log):
    if a.dataset == "folder" and not a.data_dir:
        raise SystemExit("error: --dataset folder needs --data-dir DIR (DIR/<class>/<image>)")
    seg_possible = a.dataset in ("thyroid", "breast")
    cache = a.cache or os.path.join(HERE, "..", "cache", f"{a.dataset}_{a.size}.npz")
    if a.dataset == "folder" and not a.cache:
        cache = os.path.join(HERE, "..", "cache", "folder_" + os.path.basename(os.path.normpath(a.data_dir))
                             + f"_{a.size}.npz")
    if not os.path.exists(cache):
        need = a.data_dir if a.dataset == "folder" else os.path.join(
            a.data_root, {"thyroid": "ddti", "breast": "busi"}[a.dataset], "labels.csv")
        if not os.path.exists(need):
            raise SystemExit(f"error: {need} not found (set --data-root or --data-dir)")
        log(f"building cache {cache}")
        D.build_cache(a.dataset, cache, a.size, a.data_root, a.data_dir,
                      [m for m in a.malignant.split(",") if m], a.group_prefix, log=log)
    dd = D.load_cache(cache)
    dd["labels"] = dd["labels"].astype(np.int64)
    if a.dataset == "folder":
        seg_possible = bool(dd["has_mask"].any())
    if a.limit:
        keep = np.sort(np.random.default_rng(0).permutation(len(dd["labels"]))[:a.limit])
        for k in ("images", "masks", "has_mask", "labels", "sizes"):
            dd[k] = dd[k][keep]
        dd["names"] = [dd["names"][i] for i in keep]
        dd["groups"] = [dd["groups"][i] for i in keep]
    return dd, seg_possible


def main(argv=None):
    a = parse_args(argv)
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device)
    torch.set_num_threads(a.threads)
    t_start = time.time()

    def log(s):
        print(f"[{time.strftime('%H:%M:%S')}] {s}", flush=True)

    dd, seg_possible = load_data(a, log)
    seg = seg_possible if a.seg < 0 else bool(a.seg)
    labels, groups = dd["labels"], np.array(dd["groups"])
    cfg, pre = build_config(a, dd["label_names"], dd["malignant_labels"], seg)
    K = len(cfg.labels)
    mal_set = [cfg.labels.index(x) for x in cfg.malignant_labels]
    is_mal = np.isin(labels, mal_set).astype(np.int64)
    log(f"{a.dataset}: {int((labels >= 0).sum())} labelled images ({np.bincount(labels[labels >= 0], minlength=K).tolist()}), "
        f"{int((labels < 0).sum())} unlabeled, device {dev}, variant {a.variant}, cnn {a.cnn}"
        f"{' (ImageNet)' if pre else ''}, vit {a.vit}, size {a.size}, seg {int(seg)}")
    if a.cv:
        folds = D.grouped_folds(labels, groups, a.cv, a.seed)
        run = [int(f) for f in a.folds.split(",") if f] or list(range(a.cv))
        oof = {"idx": [], "fold": [], "logits": [], "mal": [], "T": [], "Tm": [], "thr": []}
        masks_pred, fold_rows = [], []
        for fi in run:
            tr_out, te = folds[fi]
            tr, va = D.holdout(labels, groups, a.val_frac, a.seed + 1, within=tr_out)
            unl = D.unlabeled_for(tr, labels, groups)
            log(f"fold {fi + 1}/{a.cv}: train {len(tr)} (+{len(unl) if seg else 0} unlabeled for masks), "
                f"inner val {len(va)}, test {len(te)}")
            model, hist, secs = train_model(cfg, pre, a, dd, tr, va, unl, dev, log,
                                            ckpt=(a.ckpt + f".fold{fi}") if a.ckpt else None)
            pv = predict(model, dd["images"][va], cfg, dev)
            c = calibrate(dataclasses.replace(cfg), pv, labels[va], is_mal[va])
            pt = predict(model, dd["images"][te], cfg, dev)
            oof["idx"].append(te)
            oof["fold"].append(np.full(len(te), fi))
            oof["logits"].append(pt["logits"])
            if "mal" in pt:
                oof["mal"].append(pt["mal"])
            if "mask" in pt:
                masks_pred.append((pt["mask"] > 0.5))
            oof["T"].append(np.full(len(te), c.temperature))
            oof["Tm"].append(np.full(len(te), c.malignancy_temperature))
            oof["thr"].append(np.full(len(te), c.malignancy_threshold))
            pred = pt["logits"].argmax(1)
            _, rec, f1, _ = MT.per_class(labels[te], pred, K)
            row = {"fold": fi, "macro_f1": MT.macro_f1(labels[te], pred, K),
                   "bacc": MT.balanced_accuracy(labels[te], pred, K), "recall": rec.tolist(),
                   "f1": f1.tolist(), "seconds": secs, "T": c.temperature}
            if "mal" in pt:
                row["mal_auc"] = MT.auc(is_mal[te], pt["mal"])
            if "mask" in pt:
                hv = dd["has_mask"][te].astype(bool) & (dd["masks"][te].reshape(len(te), -1).max(1) > 0)
                gt = mask_target(dd["masks"][te][hv], cfg.input_size // 4).numpy() > 0.5
                row["dice"] = float(np.nanmean(MT.dice_iou(pt["mask"][hv] > 0.5, gt)[0]))
            fold_rows.append(row)
            log(f"fold {fi + 1} test: " + json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                                                      for k, v in row.items() if k not in ("f1",)}))
        summary = {"dataset": a.dataset, "variant": a.variant, "cnn": a.cnn, "pretrained": pre,
                   "vit": a.vit, "size": a.size, "epochs": a.epochs, "cv": a.cv, "folds": fold_rows,
                   "recipe": {k: getattr(a, k) for k in ("freeze", "backbone_lr", "lr", "wd", "seg_weight",
                                                          "mal_weight", "mixup", "smooth", "ema", "batch")},
                   "labels": cfg.labels, "seconds": time.time() - t_start, "device": str(dev),
                   "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else ""}
        for k in ("macro_f1", "bacc", "mal_auc", "dice"):
            v = [r[k] for r in fold_rows if k in r]
            if v:
                summary[k] = [float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0]
        rec = np.array([r["recall"] for r in fold_rows])
        summary["recall_mean"] = rec.mean(0).tolist()
        summary["recall_sd"] = (rec.std(0, ddof=1) if len(rec) > 1 else np.zeros(K)).tolist()
        log("CV summary: " + json.dumps({k: summary[k] for k in ("macro_f1", "bacc", "mal_auc", "dice",
                                                                   "recall_mean") if k in summary}))
        if a.result:
            os.makedirs(os.path.dirname(os.path.abspath(a.result)), exist_ok=True)
            with open(a.result + ".json", "w") as f:
                json.dump(summary, f, indent=1)
            arr = {k: np.concatenate(v) for k, v in oof.items() if v}
            if masks_pred:
                arr["mask"] = np.packbits(np.concatenate(masks_pred), axis=-1)
            arr["names"] = np.array([dd["names"][i] for i in arr["idx"]])
            arr["labels"] = labels[arr["idx"]]
            arr["groups"] = groups[arr["idx"]]
            arr["label_names"] = np.array(cfg.labels)
            np.savez_compressed(a.result + ".npz", **arr)
        return summary
    # final model
    tr, va = D.holdout(labels, groups, a.val_frac, a.seed)
    unl = D.unlabeled_for(tr, labels, groups)
    log(f"final: train {len(tr)} (+{len(unl) if seg else 0} unlabeled for masks), validation {len(va)}")
    model, hist, secs = train_model(cfg, pre, a, dd, tr, va, unl, dev, log, ckpt=a.ckpt)
    pv = predict(model, dd["images"][va], cfg, dev)
    calibrate(cfg, pv, labels[va], is_mal[va])
    cfg.description = (f"{a.dataset}: trained {a.epochs} epochs on {len(tr)} images "
                       f"({'+' + str(len(unl)) + ' unlabeled for masks, ' if seg and len(unl) else ''}"
                       f"{dev.type}); validation split of {len(va)} images")
    model.cfg = cfg
    log(f"calibrated: T={cfg.temperature:.3f} Tm={cfg.malignancy_temperature:.3f} "
        f"threshold={cfg.malignancy_threshold:.3f}")
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)) or ".", exist_ok=True)
        export(a.out, cfg, model)
        log(f"exported {a.out} ({os.path.getsize(a.out) / 1e6:.2f} MB)")
        # The split beside the model: tools/evaluate.py and tests/test_weights.py
        # evaluate on exactly the images this model never trained on.
        root = os.path.abspath(a.data_dir if a.dataset == "folder" else a.data_root)
        rel = lambda i: os.path.relpath(os.path.abspath(dd["names"][i]), root)
        with open(os.path.splitext(a.out)[0] + ".split.json", "w") as f:
            json.dump({"dataset": a.dataset,
                       "note": "grouped (patient / near-duplicate image), stratified split made by "
                               "tools/train.py; 'val' was never trained on (used for class weights, "
                               "temperature and threshold only)",
                       "val": [rel(i) for i in va], "train": [rel(i) for i in tr],
                       "unlabeled_train": [rel(i) for i in unl] if seg else [],
                       "groups": {rel(i): str(groups[i]) for i in np.concatenate([va, tr])}}, f, indent=0)
    split = {"train": [dd["names"][i] for i in tr], "val": [dd["names"][i] for i in va],
             "unlabeled_train": [dd["names"][i] for i in unl] if seg else []}
    info = {"dataset": a.dataset, "args": vars(a), "history": hist, "train_seconds": secs,
            "device": str(dev), "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else "",
            "torch": torch.__version__, "config": dataclasses.asdict(cfg), "split": split}
    if a.result:
        os.makedirs(os.path.dirname(os.path.abspath(a.result)), exist_ok=True)
        with open(a.result + ".json", "w") as f:
            json.dump(info, f, indent=1)
        sd = {k: v.detach().half().cpu() for k, v in model.state_dict().items()}
        torch.save({"config": dataclasses.asdict(cfg), "state_dict": sd, "epoch": a.epochs - 1},
                   a.result + ".pt")
    log(f"done in {(time.time() - t_start) / 60:.1f} min")
    return info


if __name__ == "__main__":
    main()
