"""Small random CSASN model files for the CLI tests (not a test suite itself).

tiny_config() is a real configuration (the MobileNetV2 block table, a 2-layer
ViT) at input 64 so that a forward pass takes milliseconds. write_model()
writes it with tools/convert.export, caching files under build/test_models/.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402  (puts tools/ on sys.path)

import torch  # noqa: E402

import csasn_format  # noqa: E402
import csasn_model as M  # noqa: E402

ROOT, DATA, CSASN = testlib.ROOT, testlib.DATA, testlib.CLI
OUT = os.path.join(ROOT, "build", "test_models")


def tiny_config(**kw):
    c = dict(name="tiny-mbv2-test", input_size=64, fuse_channels=32, att_reduction=8, cls_dim=32,
             cls_hidden=64, labels=["benign", "malignant"], malignant_labels=["malignant"],
             source="random initialisation (tests/tinymodel.py)")
    c.update(kw)
    return M.make_config(c.pop("name"), cnn="mobilenetv2", vit=(64, 2, 2, 128), **c)


def random_model(cfg, seed=0):
    """CSASN(cfg) with random weights and non-trivial BatchNorm statistics (so
    that folding BN is exercised), in eval mode."""
    torch.manual_seed(seed)
    m = M.CSASN(cfg).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
    return m


def write_model(name="tiny", dtype="f32", seed=0, **kw):
    """-> path of build/test_models/<name>.csasn (written once per build)."""
    import convert
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"{name}.csasn")
    if not os.path.exists(path):
        torch.set_num_threads(1)
        cfg = tiny_config(**kw)
        convert.export(random_model(cfg, seed), cfg, path + ".tmp", dtype)
        os.replace(path + ".tmp", path)
    return path


def read(path):
    """-> (meta, tensors as float32 arrays in file order)."""
    meta, tensors, _ = csasn_format.read(path)
    return meta, tensors


def data_images(n_ddti=4, n_busi=4):
    """Real images from ../shared/data (sorted, deterministic)."""
    out = []
    for ds, cls, n in (("ddti", "malignant", n_ddti // 2), ("ddti", "benign", n_ddti - n_ddti // 2),
                       ("busi", "benign", n_busi // 2), ("busi", "malignant", n_busi - n_busi // 2)):
        d = os.path.join(DATA, ds, "images", cls)
        out += [os.path.join(d, f) for f in sorted(os.listdir(d))[:n]]
    return out
