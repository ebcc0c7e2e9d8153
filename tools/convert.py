#!/usr/bin/python3
"""PyTorch checkpoint -> .csasn model file (src/FORMAT.md).

    tools/convert.py --checkpoint X.pt --out Y.csasn [--dtype f16|f32]
                     [--name NAME] [--source TEXT] [--description TEXT]

A checkpoint is what tools/train.py saves with torch.save:
    {"config": dataclasses.asdict(cfg), "state_dict": model.state_dict(), ...}
(other keys, e.g. "metrics" or "epoch", are ignored). `cfg` is a
tools/csasn_model.Config.

From Python: export(model_or_state, cfg, path, dtype="f16").
"""
import argparse
import dataclasses
import os
import pickle
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import csasn_format  # noqa: E402
from csasn_model import CSASN, Config, config_to_meta, export_state  # noqa: E402

F16_MAX = 65504.0


def config_from_dict(d):
    """dataclasses.asdict(Config) (possibly from an older/newer run) -> Config."""
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise ValueError(f"checkpoint config has unknown fields {unknown} (not in csasn_model.Config)")
    d = dict(d)
    for k in ("mean", "std"):
        if k in d:
            d[k] = tuple(float(x) for x in d[k])
    return Config(**d)


def check_engine_can_run(cfg):
    if not cfg.use_cnn or not cfg.use_vit:
        raise ValueError(f"config '{cfg.name}' has use_cnn={cfg.use_cnn}, use_vit={cfg.use_vit}: the engine "
                         "runs both branches, so single-branch (ablation) models cannot be exported")
    S = cfg.input_size
    if S % 32 or S % cfg.vit_patch or (S // cfg.vit_patch) % (S // 32):
        raise ValueError(f"input_size {S} must be a multiple of 32 and of the patch size {cfg.vit_patch}")


def export(model_or_state, cfg, path, dtype="f16"):
    """Write a model (nn.Module or its state_dict) with config cfg to path.
    The tensors must be exactly those of csasn_model.CSASN(cfg) (names and
    shapes), all finite; returns the number of tensors written."""
    if isinstance(model_or_state, (str, os.PathLike)) and not isinstance(path, (str, os.PathLike)):
        # Also accept export(path, cfg, model): an easy slip, and unambiguous.
        model_or_state, path = path, model_or_state
    if dtype not in ("f16", "f32"):
        raise ValueError(f"dtype must be f16 or f32, not {dtype!r}")
    check_engine_can_run(cfg)
    if isinstance(model_or_state, torch.nn.Module):
        state = export_state(model_or_state)
    else:
        state = {k: torch.as_tensor(v).detach().float().contiguous() for k, v in model_or_state.items()
                 if not k.endswith("num_batches_tracked")}
    # Compare with the reference architecture: the engine would reject a
    # mismatch at load time; say it here, at export, with all names at once.
    ref = {k: tuple(v.shape) for k, v in export_state(CSASN(cfg)).items()}
    missing = [k for k in ref if k not in state]
    extra = [k for k in state if k not in ref]
    shape = [f"{k}: {tuple(state[k].shape)} vs {ref[k]}" for k in ref
             if k in state and tuple(state[k].shape) != ref[k]]
    if missing or extra or shape:
        raise ValueError("state_dict does not match the config: "
                         f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                         f"unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}, "
                         f"wrong shapes {shape[:5]}")
    tensors = {}
    for k in ref:   # reference order: the file reads like the architecture
        a = state[k].cpu().numpy().astype(np.float32)
        if not np.isfinite(a).all():
            raise ValueError(f"tensor '{k}' contains NaN or infinite values")
        if dtype == "f16" and np.abs(a).max(initial=0.0) > F16_MAX:
            raise ValueError(f"tensor '{k}' has values beyond the f16 range (|x| > {F16_MAX}); "
                             "export with dtype='f32'")
        tensors[k] = a
    csasn_format.write(path, config_to_meta(cfg), tensors, dtype=dtype)
    return len(tensors)


def load_checkpoint(path):
    """-> (Config, state_dict) from a checkpoint saved by tools/train.py."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (TypeError, pickle.UnpicklingError, RuntimeError):
        # torch without weights_only, or one (1.13) whose safe unpickler cannot
        # read plain floats in the config: checkpoints are our own training
        # runs' files, so load them fully.
        ck = torch.load(path, map_location="cpu")
    if not isinstance(ck, dict) or "config" not in ck or "state_dict" not in ck:
        raise ValueError(f"{path}: not a csasn checkpoint (expected a dict with 'config' and 'state_dict')")
    return config_from_dict(ck["config"]), ck["state_dict"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="torch.save'd {'config', 'state_dict'}")
    ap.add_argument("--out", required=True, help="output .csasn file")
    ap.add_argument("--dtype", default="f16", choices=("f16", "f32"), help="weight storage (default f16)")
    ap.add_argument("--name", help="override general.name")
    ap.add_argument("--source", help="override general.source")
    ap.add_argument("--description", help="override general.description")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        cfg, state = load_checkpoint(a.checkpoint)
        for k in ("name", "source", "description"):
            if getattr(a, k) is not None:
                setattr(cfg, k, getattr(a, k))
        n = export(state, cfg, a.out, a.dtype)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"convert: {e}", file=sys.stderr)
        return 1
    print(f"wrote {a.out}: {cfg.name}, {n} tensors, {a.dtype}, {os.path.getsize(a.out)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
