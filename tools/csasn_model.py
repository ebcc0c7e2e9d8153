"""CSASN reference model in PyTorch: the single source of truth for the
architecture and for tensor names.

The C engine (src/model_forward.c) computes exactly this forward pass in eval mode. The
names of this module's state_dict() (minus BatchNorm's num_batches_tracked) are
the tensor names of the .csasn file (src/FORMAT.md); `config_to_meta` gives the
metadata. Shapes are noted as [C, H, W] per image (batch dimension omitted).

Configurations: `csasn-b0-ti` (EfficientNet-B0 + ViT-Tiny, 224), `csasn-b2-b16`
(EfficientNet-B2 + ViT-B/16) and any other combination via `make_config`.
"""
import math
from dataclasses import dataclass, field
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# One MBConv block: input, expanded (mid), output channels, kernel, stride,
# squeeze-excitation channels (0 = no SE), has a 1x1 expand conv (0/1).
BLOCK_FIELDS = ("in", "mid", "out", "kernel", "stride", "se", "expand")


@dataclass
class Config:
    name: str = "csasn-b0-ti"
    input_size: int = 224
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    labels: List[str] = field(default_factory=lambda: ["benign", "malignant"])
    malignant_labels: List[str] = field(default_factory=lambda: ["malignant"])
    temperature: float = 1.0
    malignancy_temperature: float = 1.0
    malignancy_threshold: float = 0.5
    # How the user's box becomes the S x S input (tools/preprocess.py region_geometry)
    region_mode: str = "stretch"          # or "square", "letterbox"
    region_margin: float = 0.0            # context per side, fraction of the box side
    region_fill: float = 0.0              # gray level in [0, 1] outside the image / box
    # Descriptor heads (e.g. TI-RADS composition, echogenicity...): one softmax each
    descriptors: List[str] = field(default_factory=list)
    descriptor_labels: List[List[str]] = field(default_factory=list)
    # CNN branch
    cnn_family: str = "efficientnet"      # or "mobilenetv2"
    cnn_act: str = "silu"                 # or "relu6"
    width_mult: float = 1.0
    depth_mult: float = 1.0
    cnn_bn_eps: float = 1e-5
    cnn_stem: int = 32
    cnn_blocks: List[List[int]] = field(default_factory=list)
    cnn_head: int = 1280
    # ViT branch
    vit_patch: int = 16
    vit_dim: int = 192
    vit_depth: int = 12
    vit_heads: int = 3
    vit_mlp: int = 768
    vit_ln_eps: float = 1e-6
    # fusion, attention, classifier, heads
    fuse_channels: int = 256
    att_stages: int = 2
    att_reduction: int = 16
    att_kernel: int = 7
    cls_dim: int = 256
    cls_hidden: int = 512
    cls_blocks: int = 2
    cls_multiscale: int = 1
    head_malignancy: int = 1
    head_segmentation: int = 0
    seg_channels: int = 64
    bn_eps: float = 1e-5
    ln_eps: float = 1e-5
    # ablation switches (training/evaluation in PyTorch only; the engine runs
    # both branches)
    use_cnn: int = 1
    use_vit: int = 1
    source: str = "random initialisation"
    description: str = ""


def _make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def efficientnet_blocks(width_mult, depth_mult):
    """torchvision's EfficientNet-B* block table (same rounding rules)."""
    stages = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
              (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
              (6, 3, 1, 192, 320, 1)]
    rows = []
    for t, k, s, cin, cout, n in stages:
        cin, cout = _make_divisible(cin * width_mult), _make_divisible(cout * width_mult)
        for i in range(int(math.ceil(n * depth_mult))):
            bin_ = cin if i == 0 else cout
            mid = _make_divisible(bin_ * t)
            rows.append([bin_, mid, cout, k, s if i == 0 else 1, max(1, bin_ // 4), int(mid != bin_)])
    stem = _make_divisible(32 * width_mult)
    return stem, rows, 4 * rows[-1][2]


def mobilenetv2_blocks(width_mult=1.0, expand_first=False):
    """torchvision's MobileNetV2 block table. expand_first keeps the 1x1 expand
    conv of the first (t=1) block, as the GluonCV ImageNet weights have it."""
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    cin = _make_divisible(32 * width_mult)
    stem, rows = cin, []
    for t, c, n, s in settings:
        cout = _make_divisible(c * width_mult)
        for i in range(n):
            mid = int(round(cin * t))
            rows.append([cin, mid, cout, 3, s if i == 0 else 1, 0, int(t != 1 or expand_first)])
            cin = cout
    return stem, rows, _make_divisible(1280 * max(1.0, width_mult))


def make_config(name="csasn-b0-ti", cnn="efficientnet-b0", vit="tiny", **kw):
    """cnn: efficientnet-b0 | efficientnet-b2 | mobilenetv2 | mobilenetv2-gluon;
    vit: tiny | base | (dim, depth, heads, mlp)."""
    c = {}
    if cnn.startswith("efficientnet"):
        w, d = {"efficientnet-b0": (1.0, 1.0), "efficientnet-b2": (1.1, 1.2)}[cnn]
        stem, rows, head = efficientnet_blocks(w, d)
        c.update(cnn_family="efficientnet", cnn_act="silu", width_mult=w, depth_mult=d)
    else:
        stem, rows, head = mobilenetv2_blocks(1.0, expand_first=(cnn == "mobilenetv2-gluon"))
        c.update(cnn_family="mobilenetv2", cnn_act="relu6", width_mult=1.0, depth_mult=1.0)
    c.update(cnn_stem=stem, cnn_blocks=rows, cnn_head=head)
    if vit == "tiny":
        vit = (192, 12, 3, 768)
    elif vit == "base":
        vit = (768, 12, 12, 3072)
    c.update(vit_dim=vit[0], vit_depth=vit[1], vit_heads=vit[2], vit_mlp=vit[3])
    c.update(kw)
    return Config(name=name, **c)


def tap_indices(cfg):
    """Index of the last block at cumulative stride 8 and at stride 16."""
    stride, t8, t16 = 2, -1, -1
    for i, b in enumerate(cfg.cnn_blocks):
        stride *= b[4]
        if stride == 8:
            t8 = i
        if stride == 16:
            t16 = i
    return t8, t16


def config_to_meta(cfg):
    """Metadata of the .csasn file: key -> python value (type chosen by the writer)."""
    f = float
    m = {
        "general.name": cfg.name,
        "general.source": cfg.source,
        "general.description": cfg.description,
        "csasn.input_size": cfg.input_size,
        "csasn.mean": [f(x) for x in cfg.mean],
        "csasn.std": [f(x) for x in cfg.std],
        "csasn.labels": list(cfg.labels),
        "csasn.malignant_labels": list(cfg.malignant_labels),
        "csasn.temperature": f(cfg.temperature),
        "csasn.malignancy_temperature": f(cfg.malignancy_temperature),
        "csasn.malignancy_threshold": f(cfg.malignancy_threshold),
        "cnn.family": cfg.cnn_family,
        "cnn.act": cfg.cnn_act,
        "cnn.width_mult": f(cfg.width_mult),
        "cnn.depth_mult": f(cfg.depth_mult),
        "cnn.bn_eps": f(cfg.cnn_bn_eps),
        "cnn.stem": cfg.cnn_stem,
        "cnn.blocks": [int(v) for row in cfg.cnn_blocks for v in row],
        "cnn.head": cfg.cnn_head,
        "vit.patch": cfg.vit_patch, "vit.dim": cfg.vit_dim, "vit.depth": cfg.vit_depth,
        "vit.heads": cfg.vit_heads, "vit.mlp": cfg.vit_mlp, "vit.ln_eps": f(cfg.vit_ln_eps),
        "fuse.channels": cfg.fuse_channels,
        "att.stages": cfg.att_stages, "att.reduction": cfg.att_reduction, "att.kernel": cfg.att_kernel,
        "cls.dim": cfg.cls_dim, "cls.hidden": cfg.cls_hidden, "cls.blocks": cfg.cls_blocks,
        "cls.multiscale": cfg.cls_multiscale,
        "heads.malignancy": cfg.head_malignancy,
        "heads.segmentation": cfg.head_segmentation,
        "seg.channels": cfg.seg_channels,
        "norm.bn_eps": f(cfg.bn_eps),
        "norm.ln_eps": f(cfg.ln_eps),
    }
    # Written only when they differ from the defaults, so that files without
    # them (every file written before region geometry and descriptor heads
    # existed) mean exactly what they always meant.
    if cfg.region_mode != "stretch" or cfg.region_margin or cfg.region_fill:
        m["csasn.region_mode"] = cfg.region_mode
        m["csasn.region_margin"] = f(cfg.region_margin)
        m["csasn.region_fill"] = f(cfg.region_fill)
    if cfg.descriptors:
        m["heads.descriptors"] = list(cfg.descriptors)
        for name, labels in zip(cfg.descriptors, cfg.descriptor_labels):
            m["descriptor." + name] = list(labels)
    return m


def meta_to_config(meta):
    c = Config()
    c.name = meta["general.name"]
    c.source = meta.get("general.source", "")
    c.description = meta.get("general.description", "")
    c.input_size = meta["csasn.input_size"]
    c.mean, c.std = tuple(meta["csasn.mean"]), tuple(meta["csasn.std"])
    c.labels, c.malignant_labels = list(meta["csasn.labels"]), list(meta["csasn.malignant_labels"])
    c.temperature = meta["csasn.temperature"]
    c.malignancy_temperature = meta["csasn.malignancy_temperature"]
    c.malignancy_threshold = meta["csasn.malignancy_threshold"]
    c.cnn_family, c.cnn_act = meta["cnn.family"], meta["cnn.act"]
    c.width_mult, c.depth_mult = meta["cnn.width_mult"], meta["cnn.depth_mult"]
    c.cnn_bn_eps, c.cnn_stem, c.cnn_head = meta["cnn.bn_eps"], meta["cnn.stem"], meta["cnn.head"]
    b = list(meta["cnn.blocks"])
    c.cnn_blocks = [b[i:i + 7] for i in range(0, len(b), 7)]
    for k in ("patch", "dim", "depth", "heads", "mlp"):
        setattr(c, "vit_" + k, meta["vit." + k])
    c.vit_ln_eps = meta["vit.ln_eps"]
    c.fuse_channels = meta["fuse.channels"]
    c.att_stages, c.att_reduction, c.att_kernel = meta["att.stages"], meta["att.reduction"], meta["att.kernel"]
    c.cls_dim, c.cls_hidden, c.cls_blocks = meta["cls.dim"], meta["cls.hidden"], meta["cls.blocks"]
    c.cls_multiscale = meta["cls.multiscale"]
    c.head_malignancy, c.head_segmentation = meta["heads.malignancy"], meta["heads.segmentation"]
    c.seg_channels = meta["seg.channels"]
    c.bn_eps, c.ln_eps = meta["norm.bn_eps"], meta["norm.ln_eps"]
    c.region_mode = meta.get("csasn.region_mode", "stretch")
    c.region_margin = meta.get("csasn.region_margin", 0.0)
    c.region_fill = meta.get("csasn.region_fill", 0.0)
    c.descriptors = list(meta.get("heads.descriptors", []))
    c.descriptor_labels = [list(meta["descriptor." + n]) for n in c.descriptors]
    return c


# ---------------------------------------------------------------- building blocks

def act_fn(name):
    return {"silu": F.silu, "relu6": F.relu6, "relu": F.relu, "gelu": F.gelu,
            "none": lambda x: x}[name]


class ConvBN(nn.Module):
    """Conv (no bias, 'same' padding (k-1)/2) + BatchNorm; the engine folds the BN."""

    def __init__(self, cin, cout, k, stride=1, groups=1, eps=1e-5):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x):
        return self.bn(self.conv(x))


class SqueezeExcite(nn.Module):
    def __init__(self, c, squeeze):
        super().__init__()
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)

    def forward(self, x):                                  # x [C, H, W]
        s = F.adaptive_avg_pool2d(x, 1)                    # [C, 1, 1]
        s = torch.sigmoid(self.fc2(F.silu(self.fc1(s))))   # SE always uses SiLU (EfficientNet)
        return x * s


class MBConv(nn.Module):
    def __init__(self, row, act, eps):
        super().__init__()
        cin, mid, cout, k, stride, se, expand = row
        self.act = act_fn(act)
        self.residual = stride == 1 and cin == cout
        self.expand = ConvBN(cin, mid, 1, eps=eps) if expand else None
        self.dw = ConvBN(mid, mid, k, stride, groups=mid, eps=eps)
        self.se = SqueezeExcite(mid, se) if se else None
        self.project = ConvBN(mid, cout, 1, eps=eps)

    def forward(self, x):
        y = self.act(self.expand(x)) if self.expand is not None else x   # [mid, H, W]
        y = self.act(self.dw(y))                                          # [mid, H/s, W/s]
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)                                               # [out, H/s, W/s]
        return x + y if self.residual else y


class CNNBranch(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        eps = cfg.cnn_bn_eps
        self.act = act_fn(cfg.cnn_act)
        self.stem = ConvBN(3, cfg.cnn_stem, 3, 2, eps=eps)
        self.blocks = nn.ModuleList(MBConv(r, cfg.cnn_act, eps) for r in cfg.cnn_blocks)
        self.head = ConvBN(cfg.cnn_blocks[-1][2], cfg.cnn_head, 1, eps=eps)
        self.t8, self.t16 = tap_indices(cfg)

    def forward(self, x):                       # x [3, S, S]
        x = self.act(self.stem(x))              # [stem, S/2, S/2]
        taps = {}
        for i, b in enumerate(self.blocks):
            x = b(x)
            if i == self.t8:
                taps["tap8"] = x                # [C8, S/8, S/8]
            if i == self.t16:
                taps["tap16"] = x               # [C16, S/16, S/16]
        taps["head"] = self.act(self.head(x))   # [head, S/32, S/32]
        return taps


class ViTBlock(nn.Module):
    def __init__(self, d, heads, mlp, eps):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=eps)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=eps)
        self.fc1 = nn.Linear(d, mlp)
        self.fc2 = nn.Linear(mlp, d)

    def forward(self, x):                                        # x [B, T, D]
        B, T, D = x.shape
        hd = D // self.heads
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)          # 3 x [B, T, D]
        q, k, v = (t.reshape(B, T, self.heads, hd).transpose(1, 2) for t in (q, k, v))
        a = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(hd), dim=-1)  # [B, h, T, T]
        y = (a @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class ViTBranch(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, p = cfg.vit_dim, cfg.vit_patch
        self.grid = cfg.input_size // p
        self.patch = nn.Conv2d(3, d, p, p)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, self.grid * self.grid + 1, d) * 0.02)
        self.blocks = nn.ModuleList(ViTBlock(d, cfg.vit_heads, cfg.vit_mlp, cfg.vit_ln_eps)
                                    for _ in range(cfg.vit_depth))
        self.ln = nn.LayerNorm(d, eps=cfg.vit_ln_eps)
        nn.init.normal_(self.cls, std=0.02)

    def forward(self, x):                                        # x [B, 3, S, S]
        t = self.patch(x).flatten(2).transpose(1, 2)             # [B, N, D], N = (S/P)^2
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos  # [B, N+1, D]
        for b in self.blocks:
            t = b(t)
        return self.ln(t)                                        # [B, N+1, D]


class CBAMStage(nn.Module):
    """Channel attention then spatial attention, residual around the stage."""

    def __init__(self, c, r, k):
        super().__init__()
        self.fc1 = nn.Linear(c, max(1, c // r))
        self.fc2 = nn.Linear(max(1, c // r), c)
        self.conv = nn.Conv2d(2, 1, k, padding=(k - 1) // 2)

    def forward(self, x):                                        # x [B, C, H, W]
        mlp = lambda v: self.fc2(F.relu(self.fc1(v)))
        ca = torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))  # [B, C]
        y = x * ca[:, :, None, None]
        s = torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], 1)  # [B, 2, H, W]
        sa = torch.sigmoid(self.conv(s))                         # [B, 1, H, W]
        return x + y * sa, sa[:, 0]


class ResMLP(nn.Module):
    def __init__(self, e, hidden, eps):
        super().__init__()
        self.ln = nn.LayerNorm(e, eps=eps)
        self.fc1 = nn.Linear(e, hidden)
        self.fc2 = nn.Linear(hidden, e)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.ln(x))))


class CSASN(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        S = cfg.input_size
        assert S % 32 == 0 and S % cfg.vit_patch == 0 and (S // cfg.vit_patch) % (S // 32) == 0
        self.vit_pool = (S // cfg.vit_patch) // (S // 32)
        self.cnn = CNNBranch(cfg) if cfg.use_cnn else None
        self.vit = ViTBranch(cfg) if cfg.use_vit else None
        cin = (cfg.cnn_head if cfg.use_cnn else 0) + (cfg.vit_dim if cfg.use_vit else 0)
        C, E = cfg.fuse_channels, cfg.cls_dim
        self.fuse = ConvBN(cin, C, 1, eps=cfg.bn_eps)
        self.att = nn.ModuleList(CBAMStage(C, cfg.att_reduction, cfg.att_kernel)
                                 for _ in range(cfg.att_stages))
        t8, t16 = tap_indices(cfg)
        c8, c16 = cfg.cnn_blocks[t8][2], cfg.cnn_blocks[t16][2]
        self.multiscale = bool(cfg.cls_multiscale and cfg.use_cnn)
        n_desc = 1
        if self.multiscale:
            self.proj8, self.proj16 = nn.Linear(c8, E), nn.Linear(c16, E)
            n_desc += 2
        self.projf = nn.Linear(C, E)
        if cfg.use_vit:
            self.projt = nn.Linear(cfg.vit_dim, E)
            n_desc += 1
        self.mix = nn.Linear(n_desc * E, E)
        self.cls_blocks = nn.ModuleList(ResMLP(E, cfg.cls_hidden, cfg.ln_eps) for _ in range(cfg.cls_blocks))
        self.cls_ln = nn.LayerNorm(E, eps=cfg.ln_eps)
        self.head_subtype = nn.Linear(E, len(cfg.labels))
        self.head_malig = nn.Linear(E, 1) if cfg.head_malignancy else None
        self.head_desc = nn.ModuleList(nn.Linear(E, len(l)) for l in cfg.descriptor_labels)
        if cfg.head_segmentation:
            D = cfg.seg_channels
            self.seg_reduce = ConvBN(C, D, 1, eps=cfg.bn_eps)
            self.seg_fuse = ConvBN(D + c8, D, 3, eps=cfg.bn_eps)
            self.seg_out = nn.Conv2d(D, 1, 1)

    def forward(self, x):
        """x [B, 3, S, S] normalised -> dict of logits, malignancy logit, maps."""
        taps, vit_map, vit_cls, out = None, None, None, {}
        if self.cnn is not None:
            taps = self.cnn(x)                                     # tap8, tap16, head [B, head, S/32, S/32]
        if self.vit is not None:
            tok = self.vit(x)                                      # [B, N+1, D]
            B, T, D = tok.shape
            g = self.vit.grid
            pm = tok[:, 1:].transpose(1, 2).reshape(B, D, g, g)    # [B, D, S/16, S/16]
            vit_map = F.avg_pool2d(pm, self.vit_pool)              # [B, D, S/32, S/32]
            vit_cls = tok[:, 0]                                    # [B, D]
            out["vit_tokens"] = tok
        out.update(self.forward_features(taps, vit_map, vit_cls))
        if self.cnn is not None:
            out.update({"cnn_" + k: v for k, v in taps.items()})
        return out

    def forward_features(self, taps, vit_map, vit_cls):
        """Everything after the two branches: fusion, attention, classifier,
        heads. Split out so training can run it on cached branch outputs
        (tools/train_heads.py) with the same modules and tensor names."""
        cfg = self.cfg
        out = {}
        maps = ([taps["head"]] if self.cnn is not None else []) + ([vit_map] if self.vit is not None else [])
        f = F.silu(self.fuse(torch.cat(maps, 1)))                  # [B, C, S/32, S/32]
        out["fused"] = f
        att = None
        for stage in self.att:
            f, att = stage(f)
        out["refined"], out["attention"] = f, att                  # att [B, S/32, S/32]
        desc = []
        if self.multiscale:
            desc += [self.proj8(taps["tap8"].mean((2, 3))), self.proj16(taps["tap16"].mean((2, 3)))]
        desc.append(self.projf(f.mean((2, 3))))
        if self.vit is not None:
            desc.append(self.projt(vit_cls))
        h = F.gelu(self.mix(torch.cat(desc, 1)))                   # [B, E]
        for b in self.cls_blocks:
            h = b(h)
        h = self.cls_ln(h)
        out["cls"] = h
        out["logits"] = self.head_subtype(h)                       # [B, K]
        if self.head_malig is not None:
            out["malignancy_logit"] = self.head_malig(h)[:, 0]     # [B]
        out["descriptor_logits"] = [hd(h) for hd in self.head_desc]  # each [B, n_i]
        if cfg.head_segmentation:
            s = F.relu(self.seg_reduce(f))                         # [B, D, S/32, S/32]
            s = F.interpolate(s, scale_factor=4, mode="bilinear", align_corners=False)  # S/8
            s = F.relu(self.seg_fuse(torch.cat([s, taps["tap8"]], 1)))
            s = F.interpolate(s, scale_factor=2, mode="bilinear", align_corners=False)  # S/4
            out["mask_logit"] = self.seg_out(s)[:, 0]              # [B, S/4, S/4]
        return out

    def predict(self, x):
        """What the engine returns: calibrated probabilities and maps."""
        o = self.forward(x)
        cfg = self.cfg
        r = {"probs": torch.softmax(o["logits"] / cfg.temperature, -1), "logits": o["logits"]}
        if "malignancy_logit" in o:
            r["malignancy"] = torch.sigmoid(o["malignancy_logit"] / cfg.malignancy_temperature)
        if o["attention"] is not None:
            r["attention"] = o["attention"]
        if "mask_logit" in o:
            r["mask"] = torch.sigmoid(o["mask_logit"])
        r["descriptors"] = [torch.softmax(z, -1) for z in o["descriptor_logits"]]
        return r


def export_state(model):
    """name -> float32 tensor, exactly what goes into the .csasn file."""
    return {k: v.detach().float().contiguous() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def calibrate_batchnorm(model, batch, chunk=4):
    """Measure every BatchNorm2d's running statistics on `batch` [N, 3, S, S]:
    cumulative averages (momentum=None) over train-mode passes of `chunk`
    images, then eval mode. Random weights need this before they are compared
    with anything: with the default statistics activations vanish or explode
    through the blocks and two engines would agree on constants."""
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(batch), chunk):
            model(batch[i:i + chunk])
    return model.eval()
