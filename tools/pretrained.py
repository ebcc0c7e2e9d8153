"""Load the GluonCV ImageNet MobileNetV2-1.0 (.npy files in
../shared/pretrained/mobilenetv2-1.0-imagenet) into the CNN branch of a
CSASN built from make_config(cnn='mobilenetv2-gluon', ...).

Name mapping (GluonCV -> csasn_model state_dict, prefix `cnn.`):
  features_conv0 + features_batchnorm0              -> stem.conv / stem.bn
  features_linearbottleneckN_conv0 + _batchnorm0    -> blocks.N.expand   (1x1)
  features_linearbottleneckN_conv1 + _batchnorm1    -> blocks.N.dw       (3x3 depthwise)
  features_linearbottleneckN_conv2 + _batchnorm2    -> blocks.N.project  (1x1)
  features_conv1 + features_batchnorm1              -> head (320 -> 1280)
BatchNorm gamma/beta/running_mean/running_var -> weight/bias/running_mean/running_var.

`python3 tools/pretrained.py --check` loads it and checks that it behaves like an
ImageNet network on real images. The ONNX test_data_set_* outputs in the folder
are 1000-class logits of the full network, whose 1280x1000 classifier is not
shipped, so they cannot be reproduced; instead the check verifies, layer by
layer, that the pre-BatchNorm activations on real images have statistics of the
order of the stored running statistics (a wrong mapping, transposed weights or
a missing block shows up as ratios far from 1), and that the block table
matches every file's shape.
"""
import glob
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import csasn_model as M  # noqa: E402

DEFAULT_DIR = "../shared/pretrained/mobilenetv2-1.0-imagenet"
PREFIX = "mobilenetv2_batchnorm_nchw_weights_mobilenetv20_features_"
BN_MAP = {"gamma": "weight", "beta": "bias", "running_mean": "running_mean", "running_var": "running_var"}


def gluon_to_state(folder, cfg):
    """-> dict of cnn.* state_dict entries (torch tensors) for `cfg`."""
    files = glob.glob(os.path.join(folder, PREFIX + "*.npy"))
    if not files:
        raise FileNotFoundError(f"no MobileNetV2 .npy files in {folder!r}")
    if cfg.cnn_family != "mobilenetv2" or not all(r[6] for r in cfg.cnn_blocks):
        raise ValueError("config is not make_config(cnn='mobilenetv2-gluon')")
    src = {os.path.basename(f)[len(PREFIX):-4]: f for f in files}
    out = {}

    def put(dst, conv, bn):
        out[f"cnn.{dst}.conv.weight"] = torch.from_numpy(np.load(src[conv + "_weight"]))
        for g, t in BN_MAP.items():
            out[f"cnn.{dst}.bn.{t}"] = torch.from_numpy(np.load(src[f"{bn}_{g}"]))

    put("stem", "conv0", "batchnorm0")
    for i in range(len(cfg.cnn_blocks)):
        p = f"linearbottleneck{i}_"
        put(f"blocks.{i}.expand", p + "conv0", p + "batchnorm0")
        put(f"blocks.{i}.dw", p + "conv1", p + "batchnorm1")
        put(f"blocks.{i}.project", p + "conv2", p + "batchnorm2")
    put("head", "conv1", "batchnorm1")
    used = {k for k in src if any(k.startswith(x) for x in ("conv", "batchnorm", "linearbottleneck"))}
    n_loaded = len(out)
    if n_loaded != len(used):
        raise ValueError(f"mapped {n_loaded} tensors but the folder has {len(used)}")
    return out


def load_into(model, folder=DEFAULT_DIR):
    """Copy the ImageNet weights into model.cnn (shapes checked). Returns the count."""
    sd = gluon_to_state(folder, model.cfg)
    own = model.state_dict()
    for k, v in sd.items():
        if k not in own:
            raise KeyError(f"pretrained tensor {k} has no place in the model")
        if tuple(own[k].shape) != tuple(v.shape):
            raise ValueError(f"{k}: file shape {tuple(v.shape)} != model {tuple(own[k].shape)}")
    model.load_state_dict(sd, strict=False)
    return len(sd)


def bn_ratio_check(model, x):
    """Per BatchNorm of the CNN: median over channels of batch-var/running-var of
    its input, on input x [B,3,S,S]. Sane ImageNet weights give O(1) ratios."""
    ratios, hooks = {}, []
    for name, m in model.cnn.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            def hook(mod, inp, out, name=name):
                v = inp[0].transpose(0, 1).flatten(1).var(1)
                ratios[name] = float((v / (mod.running_var + mod.eps)).median())
            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model.cnn(x)
    for h in hooks:
        h.remove()
    return ratios


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=DEFAULT_DIR)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--images", nargs="*", default=None,
                    help="real images for the check (default: 16 DDTI + 16 BUSI images)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    cfg = M.make_config("mnv2-check", cnn="mobilenetv2-gluon", vit=(192, 1, 3, 384))
    torch.manual_seed(0)
    model = M.CSASN(cfg).eval()
    n = load_into(model, a.dir)
    print(f"loaded {n} tensors from {a.dir}")
    if not a.check:
        return
    import data
    imgs = a.images or (sorted(glob.glob("../shared/data/ddti/images/malignant/*.png"))[:16]
                        + sorted(glob.glob("../shared/data/busi/images/benign/*.png"))[:16])
    mean = torch.tensor(cfg.mean)[:, None, None]
    std = torch.tensor(cfg.std)[:, None, None]
    x = torch.stack([(torch.from_numpy(data.resize_gray(data.load_gray(p), 224))[None].expand(3, -1, -1)
                      - mean) / std for p in imgs])
    r = bn_ratio_check(model, x)
    vals = np.array(list(r.values()))
    print(f"BN input variance / running variance over {len(r)} layers on {len(imgs)} real images: "
          f"median {np.median(vals):.2f}, min {vals.min():.3f}, max {vals.max():.2f}")
    # Same network with random weights (BN at default stats) for contrast.
    rnd = M.CSASN(cfg).eval()
    rr = np.array(list(bn_ratio_check(rnd, x).values()))
    print(f"random-init network for contrast: median {np.median(rr):.3g}, min {rr.min():.3g}, max {rr.max():.3g}")
    with torch.no_grad():
        f = model.cnn(x)["head"].mean((2, 3))
    print(f"pooled 1280-d features: mean {f.mean():.3f}, fraction of zeros {(f == 0).float().mean():.2f}, "
          f"fraction at the ReLU6 ceiling {(f >= 6).float().mean():.3f}")
    ok = 0.05 < np.median(vals) < 20 and vals.max() < 1e3
    t = np.load(os.path.join(a.dir, "test_data_set_0_output_0.npy"))
    print(f"ONNX test outputs have shape {t.shape} (1000-class logits; classifier absent: not comparable)")
    print("check:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
