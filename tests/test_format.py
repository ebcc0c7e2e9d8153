#!/usr/bin/python3
"""Malformed model files through the CLI: every one must be rejected with exit
status 1, a message that names the problem, and no crash (no signal).

The files are derived from a valid small model (tests/tinymodel.py) by
editing bytes at positions found by parsing its header, so each case breaks
exactly one rule of src/FORMAT.md.
"""
import os
import random
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as L  # noqa: E402
import tinymodel as T  # noqa: E402

import numpy as np  # noqa: E402

import csasn_format  # noqa: E402

BAD = os.path.join(T.OUT, "bad")


def run(args):
    return subprocess.run([T.CSASN] + args, capture_output=True, text=True, errors="replace", timeout=600)


def layout(buf):
    """Byte positions in a valid file: kv entries, tensor table entries, data start."""
    pos = 16
    n_kv, n_t = struct.unpack_from("<II", buf, 8)
    kvs = []
    for _ in range(n_kv):
        (kl,) = struct.unpack_from("<I", buf, pos)
        key = buf[pos + 4:pos + 4 + kl].decode()
        start = pos
        pos += 4 + kl
        (t,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if t == 3:
            (n,) = struct.unpack_from("<I", buf, pos)
            pos += 4 + n
        elif t == 4:
            et, n = struct.unpack_from("<II", buf, pos)
            pos += 8
            for _ in range(n):
                if et == 3:
                    (sl,) = struct.unpack_from("<I", buf, pos)
                    pos += 4 + sl
                else:
                    pos += 4
        else:
            pos += 4
        kvs.append((key, start, t))
    tensors = []
    for _ in range(n_t):
        (nl,) = struct.unpack_from("<I", buf, pos)
        name = buf[pos + 4:pos + 4 + nl].decode()
        start = pos
        pos += 4 + nl
        dt, rank = struct.unpack_from("<II", buf, pos)
        dims_at = pos + 8
        pos += 8 + 4 * rank
        (off,) = struct.unpack_from("<Q", buf, pos)
        tensors.append(dict(name=name, start=start, dtype_at=start + 4 + nl, rank=rank,
                            dims_at=dims_at, off_at=pos, off=off, end=pos + 8))
        pos += 8
    return kvs, tensors, (pos + 63) // 64 * 64


def expect_rejected(name, data, words, cmd="info"):
    """Writes data as a model file and checks the CLI rejects it cleanly."""
    os.makedirs(BAD, exist_ok=True)
    path = os.path.join(BAD, name + ".csasn")
    with open(path, "wb") as f:
        f.write(data)
    args = ["info", "--model", path] if cmd == "info" else ["classify", "--model", path, IMAGE]
    p = run(args)
    err = p.stderr.lower()
    missing = [w for w in words if w.lower() not in err]
    if p.returncode < 0:
        L.check(name, False, f"killed by signal {-p.returncode}")
    elif p.returncode != 1:
        L.check(name, False, f"exit status {p.returncode}, expected 1; stderr: {p.stderr.strip()[:300]}")
    elif missing:
        L.check(name, False, f"message lacks {missing}: {p.stderr.strip()[:300]}")
    elif p.stdout.strip():
        L.check(name, False, f"printed output for a bad model: {p.stdout[:200]}")
    else:
        L.check(name, True)


def write_variant(name, tensors, meta=None, dtype="f32"):
    path = os.path.join(BAD, name + ".src.csasn")
    os.makedirs(BAD, exist_ok=True)
    with np.errstate(over="ignore"):   # inf_weight_f16 overflows on purpose
        csasn_format.write(path, meta if meta is not None else META, tensors, dtype)
    with open(path, "rb") as f:
        return f.read()


GOOD = T.write_model("tiny", "f32")
GOOD16 = T.write_model("tiny16", "f16")
IMAGE = T.data_images(2, 0)[0]
with open(GOOD, "rb") as f:
    good = f.read()
META, TENSORS = T.read(GOOD)
kvs, tabs, data_start = layout(good)
kv_pos = {k: (s, t) for k, s, t in kvs}


def patched(buf, at, fmt, *vals):
    b = bytearray(buf)
    struct.pack_into(fmt, b, at, *vals)
    return bytes(b)


# The valid files load (otherwise every rejection below would prove nothing).
for path in (GOOD, GOOD16):
    p = run(["info", "--model", path])
    L.check(f"valid model loads ({os.path.basename(path)})", p.returncode == 0 and '"tensors": %d' % len(tabs) in p.stdout,
            f"status {p.returncode}: {p.stderr.strip()[:300]}")
p = run(["classify", "--model", GOOD, IMAGE])
L.check("valid model classifies", p.returncode == 0 and '"probs"' in p.stdout, p.stderr[:300] + p.stdout[:300])

# --- container
expect_rejected("zero_bytes", b"", ["empty"])
expect_rejected("three_bytes", good[:3], ["bad magic"])
expect_rejected("wrong_magic", b"GGUF" + good[4:], ["bad magic", "not a .csasn"])
with open(IMAGE, "rb") as f:
    expect_rejected("png_as_model", f.read(), ["bad magic"])
expect_rejected("text_as_model", b"this is not a model file\n" * 10, ["bad magic"])
expect_rejected("wrong_version", patched(good, 4, "<I", 7), ["unsupported format version 7", "reads 1"])
expect_rejected("n_kv_huge", patched(good, 8, "<I", 0xFFFFFFF0), ["too many metadata entries", "1024"])
expect_rejected("n_tensors_huge", patched(good, 12, "<I", 100000), ["too many tensors", "4096"])
# n_tensors within the limit but more than the file holds: the table runs out.
expect_rejected("n_tensors_more_than_file", patched(good, 12, "<I", len(tabs) + 5),
                ["tensor table entry %d" % len(tabs)])

# --- truncation at several points: header, metadata, tensor table, data, last byte
mid_kv = kvs[len(kvs) // 2][1] + 6
mid_tab = tabs[len(tabs) // 2]
expect_rejected("truncated_header", good[:10], ["truncated", "header"])
expect_rejected("truncated_in_metadata", good[:mid_kv], ["truncated", "metadata entry %d" % (len(kvs) // 2)])
expect_rejected("truncated_in_tensor_table", good[:mid_tab["start"] + 10],
                ["truncated", "tensor table entry %d" % (len(tabs) // 2)])
expect_rejected("truncated_before_data", good[:data_start - 1], ["truncated"])
mid_data = data_start + tabs[len(tabs) // 2]["off"] + 8
expect_rejected("truncated_in_data", good[:mid_data], ["truncated", tabs[len(tabs) // 2]["name"]])
# The last byte of tensor data (the file goes on with alignment padding).
last_end = data_start + tabs[-1]["off"] + 4 * int(np.prod(TENSORS[tabs[-1]["name"]].shape))
expect_rejected("truncated_last_data_byte", good[:last_end - 1], ["truncated", tabs[-1]["name"]])

# --- bad lengths, offsets, sizes
k0 = kvs[0][1]
expect_rejected("key_length_past_end", patched(good, k0, "<I", 0x7FFFFFFF), ["metadata entry 0", "limit"])
s_name = kv_pos["general.name"][0] + 4 + len("general.name") + 4
expect_rejected("string_length_past_end", patched(good, s_name, "<I", 0xFFFFFF00), ["truncated", "general.name"])
t0 = tabs[0]
expect_rejected("name_length_past_end", patched(good, t0["start"], "<I", 200), ["tensor"])
last = tabs[-1]
expect_rejected("offset_past_end", patched(good, last["off_at"], "<Q", 1 << 40), ["truncated", last["name"], "past end"])
expect_rejected("offset_overflow", patched(good, last["off_at"], "<Q", 0xFFFFFFFFFFFFFFC0), [last["name"], "overflow"])
expect_rejected("offset_unaligned", patched(good, last["off_at"], "<Q", last["off"] + 4), [last["name"], "multiple of 64"])
r4 = next(t for t in tabs if t["rank"] == 4)
expect_rejected("dims_overflow", patched(good, r4["dims_at"], "<IIII", 1 << 24, 1 << 24, 1 << 24, 1 << 24),
                [r4["name"], "overflow"])
expect_rejected("dim_too_big", patched(good, r4["dims_at"], "<I", (1 << 24) + 1), [r4["name"], "dimension"])
expect_rejected("dim_zero", patched(good, r4["dims_at"], "<I", 0), [r4["name"], "dimension"])
expect_rejected("rank_zero", patched(good, t0["dtype_at"] + 4, "<I", 0), [t0["name"], "rank"])
expect_rejected("rank_five", patched(good, t0["dtype_at"] + 4, "<I", 5), [t0["name"], "rank"])
expect_rejected("unknown_dtype", patched(good, t0["dtype_at"], "<I", 9), [t0["name"], "dtype"])
kt = kv_pos["csasn.input_size"]
expect_rejected("unknown_kv_type", patched(good, kt[0] + 4 + len("csasn.input_size"), "<I", 9),
                ["csasn.input_size", "unknown value type"])

# --- duplicates (same-length names overwritten in place)
a, b = kv_pos["vit.dim"][0], kv_pos["vit.mlp"][0]
dup = bytearray(good)
dup[b + 4:b + 4 + 7] = b"vit.dim"
expect_rejected("duplicate_key", bytes(dup), ["duplicate metadata key", "vit.dim"])
by_len = {}
for t in tabs:
    by_len.setdefault(len(t["name"]), []).append(t)
pair = next(v for v in by_len.values() if len(v) >= 2)
dup = bytearray(good)
dup[pair[1]["start"] + 4:pair[1]["start"] + 4 + len(pair[0]["name"])] = pair[0]["name"].encode()
expect_rejected("duplicate_tensor", bytes(dup), ["duplicate tensor", pair[0]["name"]])

# --- model-level checks (need the architecture: src/model_load.c)
name = "vit.blocks.1.fc1.weight"
bad = dict(TENSORS)
bad[name] = bad[name].copy()
bad[name].flat[7] = np.nan
expect_rejected("nan_weight", write_variant("nan_weight", bad), ["nan", name])
bad[name] = TENSORS[name].copy()
bad[name].flat[3] = 1e6            # beyond the f16 range: stored as +inf
expect_rejected("inf_weight_f16", write_variant("inf_weight_f16", bad, dtype="f16"), ["infinite", name])
bad = {k: v for k, v in TENSORS.items() if k != "att.1.conv.weight"}
expect_rejected("missing_tensor", write_variant("missing_tensor", bad), ["missing", "att.1.conv.weight"])
bad = dict(TENSORS)
bad["cnn.blocks.99.extra.weight"] = np.zeros(4, np.float32)
expect_rejected("unexpected_tensor", write_variant("unexpected_tensor", bad), ["unexpected", "cnn.blocks.99.extra.weight"])
bad = dict(TENSORS)
bad["cls_ln.weight"] = np.ones(T.tiny_config().cls_dim + 1, np.float32)
expect_rejected("wrong_shape", write_variant("wrong_shape", bad), ["shape", "cls_ln.weight"])
bad = dict(TENSORS)
bad["vit.patch.weight"] = np.ascontiguousarray(bad["vit.patch.weight"].transpose(1, 0, 2, 3))
expect_rejected("transposed_weight", write_variant("transposed_weight", bad), ["shape", "vit.patch.weight"])
meta = {k: v for k, v in META.items() if k != "csasn.input_size"}
expect_rejected("missing_metadata", write_variant("missing_metadata", TENSORS, meta), ["csasn.input_size", "missing"])
meta = dict(META, **{"csasn.input_size": "64"})
expect_rejected("metadata_wrong_type", write_variant("metadata_wrong_type", TENSORS, meta), ["csasn.input_size", "type"])
# The model is also rejected by classify (not only info), with status 1.
expect_rejected("missing_tensor_classify", write_variant("missing_tensor", {k: v for k, v in TENSORS.items()
                if k != "head_subtype.bias"}), ["missing", "head_subtype.bias"], cmd="classify")

# --- a missing model file is a usage error (2), not a load failure
p = run(["info", "--model", os.path.join(BAD, "does-not-exist.csasn")])
L.check("missing_model_file_status_2", p.returncode == 2 and "usage" in p.stderr.lower(),
        f"status {p.returncode}: {p.stderr[:200]}")

# --- random damage: single bytes in the header and table, random truncations.
# Anything may happen to the result (a flipped byte in a description string
# is harmless), but never a crash and never a status other than 0 or 1.
rng = random.Random(1234)
crashes = []
for i in range(60):
    b = bytearray(good)
    if i % 3 == 2:
        b = b[:rng.randrange(0, len(good))]
    else:
        at = rng.randrange(0, data_start)
        b[at] = rng.randrange(256)
    path = os.path.join(BAD, "fuzz.csasn")
    with open(path, "wb") as f:
        f.write(b)
    p = run(["info", "--model", path])
    if p.returncode not in (0, 1) or (p.returncode == 1 and not p.stderr.strip()):
        crashes.append((i, p.returncode, p.stderr[:100]))
L.check("random_damage_no_crash (60 files)", not crashes, str(crashes[:3]))

# --- tools/convert.py (checkpoint -> file) and tools/dump.py
import dataclasses  # noqa: E402
import json  # noqa: E402

import torch  # noqa: E402

PY = sys.executable
TOOLS = os.path.join(T.ROOT, "tools")
cfg = T.tiny_config(name="tiny-from-checkpoint")
model = T.random_model(cfg, seed=5)
ck = os.path.join(BAD, "ck.pt")
torch.save({"config": dataclasses.asdict(cfg), "state_dict": model.state_dict(), "epoch": 3}, ck)
outs = {}
for dt in ("f32", "f16"):
    outs[dt] = os.path.join(BAD, f"converted_{dt}.csasn")
    p = subprocess.run([PY, os.path.join(TOOLS, "convert.py"), "--checkpoint", ck, "--out", outs[dt], "--dtype", dt,
                        "--source", "unit test"], capture_output=True, text=True, timeout=600)
    info = run(["info", "--model", outs[dt]]) if p.returncode == 0 else None
    meta = json.loads(info.stdout) if info is not None and info.returncode == 0 else {}
    L.check(f"convert_checkpoint_{dt}", p.returncode == 0 and meta.get("general.name") == "tiny-from-checkpoint"
            and meta.get("general.source") == "unit test" and meta.get("storage") == dt
            and meta.get("tensors") == len(M_state := {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}),
            p.stderr[-300:] + (info.stderr[-300:] if info else ""))
# The converted file holds exactly the checkpoint's weights (f32 bit-exact,
# f16 to its rounding: relative 2^-11 = 4.9e-4).
sd = {k: v.numpy() for k, v in model.state_dict().items() if k in M_state}
if all(os.path.exists(o) for o in outs.values()):
    _, t32 = T.read(outs["f32"])
    _, t16 = T.read(outs["f16"])
    L.check("convert_f32_exact", all(np.array_equal(t32[k], sd[k]) for k in sd), "")
    rel = max(float(np.abs(t16[k] - sd[k]).max() / max(np.abs(sd[k]).max(), 1e-30)) for k in sd)
    L.check(f"convert_f16_rounding (max rel {rel:.1e})", rel <= 4.9e-4 * 1.01, f"{rel}")
else:
    L.check("convert_outputs_exist", False, str(outs))
# Ablation configs cannot be run by the engine: refused with a clear message.
cfg_nv = T.tiny_config(use_vit=0)
ck2 = os.path.join(BAD, "ck_novit.pt")
torch.save({"config": dataclasses.asdict(cfg_nv), "state_dict": T.random_model(cfg_nv).state_dict()}, ck2)
p = subprocess.run([PY, os.path.join(TOOLS, "convert.py"), "--checkpoint", ck2, "--out", os.path.join(BAD, "x.csasn")],
                   capture_output=True, text=True, timeout=600)
L.check("convert_rejects_single_branch", p.returncode == 1 and "use_vit=0" in p.stderr, p.stderr[-300:])
torch.save({"state_dict": model.state_dict()}, ck2)
p = subprocess.run([PY, os.path.join(TOOLS, "convert.py"), "--checkpoint", ck2, "--out", os.path.join(BAD, "x.csasn")],
                   capture_output=True, text=True, timeout=600)
L.check("convert_rejects_checkpoint_without_config", p.returncode == 1 and "not a csasn checkpoint" in p.stderr,
        p.stderr[-300:])
p = subprocess.run([PY, os.path.join(TOOLS, "dump.py"), "--json", outs["f16"]], capture_output=True, text=True, timeout=600)
d = json.loads(p.stdout) if p.returncode == 0 else {}
L.check("dump_tool_table", p.returncode == 0 and d["totals"]["tensors"] == len(M_state)
        and all(r["offset"] % 64 == 0 and r["dtype"] == "f16" for r in d["tensors"])
        and d["totals"]["parameters"] == sum(v.size for v in sd.values()), p.stderr[-300:])
p = subprocess.run([PY, os.path.join(TOOLS, "dump.py"), os.path.join(BAD, "wrong_magic.csasn")],
                   capture_output=True, text=True, timeout=600)
L.check("dump_tool_rejects_bad_file", p.returncode == 1 and "magic" in p.stderr, p.stderr[-300:])

sys.exit(L.exit_code())
