#!/usr/bin/python3
"""On-device adaptation (src/adapt.c, `csasn adapt`).

1. One C training step (tests/c/test_adapt_net.c --step: loss, gradient, AdamW) against
   the same step in PyTorch on descriptors the engine computed, from the same weights
   (the shipped thyroid classifier, a fresh subtype head) and the same batch.
2. The shipped thyroid model adapted to a sample of ../shared/data/busi laid out as a
   hospital's class folders (3 classes, malignant = malignant): the CLI's cross-validated
   figures against an independent cross-validation (scikit-learn logistic regression) on
   the same engine descriptors; the descriptors are the engine's own (csasn dump);
   the adapted file loads, shows the user's labels, records its provenance and no file
   name, keeps the lesion mask and attention of the base model exactly, and classifies
   a held-out image the same in the CLI and node (wasm); determinism for a seed. The same for
   the breast model on DDTI folders grouped by patient.
3. Hostile input: empty class folder, one class, corrupt files mixed in, a class whose
   files are all corrupt, a class name with HTML, 10,000 tiny files, the image limit,
   a base model without the classifier's tensors, grouping by regex and by CSV.

Under make test-asan (CSASN_SANITIZED=1) the samples are smaller and the statistical
comparison is skipped (it needs the full sample); everything else runs.
"""
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys

import numpy as np

from testlib import CLI, DATA, ROOT, SANITIZED, check, cli_built, exit_code

BUILD = os.environ.get("CSASN_BUILD", "build")
STEP = os.path.join(ROOT, BUILD, "tests", "test_adapt_net")
BASE = os.path.join(ROOT, "weights", "thyroid-ddti.csasn")
WORK = os.path.join(ROOT, "build", "test_adapt" + ("_asan" if SANITIZED else ""))
BUSI = os.path.join(DATA, "busi", "images")
WASM = os.path.join(ROOT, "build", "wasm")
PER_CLASS = 6 if SANITIZED else 40


def run(args, timeout=1800):
    p = subprocess.run([CLI] + args, capture_output=True, text=True, timeout=timeout * (10 if SANITIZED else 1))
    return p.returncode, p.stdout, p.stderr


def adapt(data, out, *extra):
    rc, so, se = run(["adapt", "--model", BASE, "--data", data, "--out", out] + list(extra))
    js = None
    if rc == 0:
        try:
            js = json.loads(so.strip().splitlines()[-1])
        except (ValueError, IndexError):
            js = None
    return rc, js, se


def read_desc(path):
    b = open(path, "rb").read()
    n, V, dim = struct.unpack_from("<3i", b, 0)
    cls = np.frombuffer(b, np.int32, n, 12)
    grp = np.frombuffer(b, np.int32, n, 12 + 4 * n)
    x = np.frombuffer(b, np.float32, n * V * dim, 12 + 8 * n).reshape(n, V, dim)
    return cls, grp, x


def busi_files(cls):
    # BUSI's masks live apart (busi/masks); keep to images and a deterministic order
    fs = sorted(f for f in os.listdir(os.path.join(BUSI, cls)) if f.endswith(".png"))
    return fs


def make_folders(root, per_class, offset=0):
    """DIR/<class>/ with every k-th BUSI image of each class; returns the held-out ones."""
    shutil.rmtree(root, ignore_errors=True)
    held = {}
    for c in ("benign", "malignant", "normal"):
        fs = busi_files(c)
        step = max(1, len(fs) // (per_class + 1))
        pick = fs[offset::step][:per_class]
        os.makedirs(os.path.join(root, c))
        for f in pick:
            os.symlink(os.path.join(BUSI, c, f), os.path.join(root, c, f))
        held[c] = [f for f in fs if f not in pick]
    return held


# ------------------------------------------------------------ metrics (independent)

def auc(y, s):
    y = np.asarray(y, bool)
    s = np.asarray(s, float)
    n1, n0 = y.sum(), (~y).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    from scipy.stats import rankdata
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def macro_f1(y, p, K):
    from sklearn.metrics import f1_score
    present = sorted(set(y.tolist()))
    return float(f1_score(y, p, labels=present, average="macro", zero_division=0))


def boot_ci(fn, n, B=1000, seed=1):
    rng = np.random.default_rng(seed)
    v = [fn(rng.integers(0, n, n)) for _ in range(B)]
    v = [x for x in v if x == x]
    return float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))


# ------------------------------------------------------------------ 1. one step

def torch_step_check(desc_file):
    import torch
    import torch.nn.functional as F
    import csasn_format as CF
    torch.set_num_threads(1)
    cls, grp, x = read_desc(desc_file)
    meta, T, _ = CF.read(BASE)
    B = min(32, len(cls))
    xb = torch.from_numpy(np.ascontiguousarray(x[:B, 0]))
    y = torch.from_numpy(cls[:B].astype(np.int64))
    K = 3
    ym = (y == 1).float()        # class 1 = malignant (folders in byte order: benign, malignant, normal)
    names = ["proj8", "proj16", "projf", "projt"]
    din = [T[n + ".weight"].shape[1] for n in names]
    E = T["mix.weight"].shape[0]
    H = T["cls_blocks.0.fc1.weight"].shape[0]
    nb = 2
    g = torch.Generator().manual_seed(3)
    P = {}
    for n in names:
        P[n + ".weight"], P[n + ".bias"] = T[n + ".weight"], T[n + ".bias"]
    P["mix.weight"], P["mix.bias"] = T["mix.weight"], T["mix.bias"]
    for i in range(nb):
        for k in ("ln", "fc1", "fc2"):
            P[f"cls_blocks.{i}.{k}.weight"] = T[f"cls_blocks.{i}.{k}.weight"]
            P[f"cls_blocks.{i}.{k}.bias"] = T[f"cls_blocks.{i}.{k}.bias"]
    P["cls_ln.weight"], P["cls_ln.bias"] = T["cls_ln.weight"], T["cls_ln.bias"]
    bound = 1 / np.sqrt(E)
    P["head_subtype.weight"] = ((torch.rand(K, E, generator=g) * 2 - 1) * bound).numpy()
    P["head_subtype.bias"] = ((torch.rand(K, generator=g) * 2 - 1) * bound).numpy()
    P["head_malig.weight"], P["head_malig.bias"] = T["head_malig.weight"], T["head_malig.bias"]
    P["log_vars"] = np.array([0.1, -0.2], np.float32)
    order = []                   # src/adapt_net.c's parameter layout
    for n in names:
        order += [n + ".weight", n + ".bias"]
    order += ["mix.weight", "mix.bias"]
    for i in range(nb):
        order += [f"cls_blocks.{i}.{k}.{w}" for k in ("ln", "fc1", "fc2") for w in ("weight", "bias")]
    order += ["cls_ln.weight", "cls_ln.bias", "head_subtype.weight", "head_subtype.bias",
              "head_malig.weight", "head_malig.bias", "log_vars"]
    flat = np.concatenate([np.asarray(P[k], np.float32).ravel() for k in order])
    cw = np.array([0.8, 1.3, 0.9], np.float32)
    lr, wd, smooth, pw = 1e-3, 0.05, 0.05, 2.0
    inp = os.path.join(WORK, "step.in")
    with open(inp, "wb") as f:
        f.write(struct.pack("<11i", 4, *din, E, H, nb, K, 1, B))
        f.write(struct.pack("<6f", 1e-5, smooth, pw, lr, wd, 0))
        f.write(flat.tobytes())
        f.write(xb.numpy().astype(np.float32).tobytes())
        f.write(y.numpy().astype(np.int32).tobytes())
        f.write(ym.numpy().astype(np.float32).tobytes())
        f.write(cw.tobytes())
    outp = os.path.join(WORK, "step.out")
    r = subprocess.run([STEP, "--step", inp, outp], capture_output=True, text=True)
    if not check("step: the C step ran", r.returncode == 0 and os.path.exists(outp), r.stdout + r.stderr):
        return
    ob = open(outp, "rb").read()
    n = struct.unpack_from("<I", ob, 0)[0]
    c_loss = struct.unpack_from("<f", ob, 4)[0]
    c_grad = np.frombuffer(ob, np.float32, n, 8)
    c_new = np.frombuffer(ob, np.float32, n, 8 + 4 * n)
    check("step: same parameter count", n == flat.size, f"{n} vs {flat.size}")

    # the same step in PyTorch: tools/train_heads.py's loss, torch.optim.AdamW
    tp = {k: torch.tensor(np.asarray(P[k], np.float32), requires_grad=True) for k in order}
    off, d = 0, []
    for nm, k in zip(names, din):
        d.append(F.linear(xb[:, off:off + k], tp[nm + ".weight"], tp[nm + ".bias"]))
        off += k
    h = F.gelu(F.linear(torch.cat(d, 1), tp["mix.weight"], tp["mix.bias"]))
    for i in range(nb):
        u = F.layer_norm(h, (E,), tp[f"cls_blocks.{i}.ln.weight"], tp[f"cls_blocks.{i}.ln.bias"], 1e-5)
        h = h + F.linear(F.gelu(F.linear(u, tp[f"cls_blocks.{i}.fc1.weight"], tp[f"cls_blocks.{i}.fc1.bias"])),
                         tp[f"cls_blocks.{i}.fc2.weight"], tp[f"cls_blocks.{i}.fc2.bias"])
    o = F.layer_norm(h, (E,), tp["cls_ln.weight"], tp["cls_ln.bias"], 1e-5)
    z = F.linear(o, tp["head_subtype.weight"], tp["head_subtype.bias"])
    zm = F.linear(o, tp["head_malig.weight"], tp["head_malig.bias"])[:, 0]
    Ls = F.cross_entropy(z, y, weight=torch.tensor(cw), label_smoothing=smooth)
    Lm = F.binary_cross_entropy_with_logits(zm, ym, pos_weight=torch.tensor(pw))
    lv = tp["log_vars"]
    loss = torch.exp(-lv[0]) * Ls + lv[0] / 2 + torch.exp(-lv[1]) * Lm + lv[1] / 2
    opt = torch.optim.AdamW(list(tp.values()), lr=lr, weight_decay=wd)
    opt.zero_grad()
    loss.backward()
    t_grad = np.concatenate([tp[k].grad.numpy().ravel() for k in order])
    opt.step()
    t_new = np.concatenate([tp[k].detach().numpy().ravel() for k in order])
    # Loss: both sum ~B*K terms in float32 / float64 with different orders: 1e-5 relative
    # is ~100x float32 rounding of a value ~1 and far below any change a wrong term makes.
    tl = float(loss)
    check(f"step: loss {c_loss:.6f} vs torch {tl:.6f} (1e-5 relative)", abs(c_loss - tl) <= 1e-5 * max(1, abs(tl)),
          f"{c_loss} vs {tl}")
    # Gradients: float32 GEMMs over K up to 1024 in different summation orders (the engine's
    # 4x8 tiles vs MKL/OpenBLAS): errors ~1e-6 of the largest gradient; allow 1e-4 of it.
    gscale = np.abs(t_grad).max()
    gerr = np.abs(c_grad - t_grad).max()
    check(f"step: gradients agree (max error {gerr / gscale:.2e} of the largest, bound 1e-4)",
          gerr <= 1e-4 * gscale, f"{gerr} vs scale {gscale}")
    # Updated weights: AdamW's first step moves each weight by -lr * g / (|g| + eps) (plus the
    # decay, which is exact), i.e. by ~lr whatever |g|: where |g| is at float noise level its
    # sign is arbitrary and both implementations are right. The gradients agree to ~1e-7 of
    # the largest (measured above), so weights whose gradient is above 1e-6 of the largest
    # have the same sign on both sides and must move the same to 1e-3 * lr; the rest (at
    # the noise level) by at most 2 lr.
    big = np.abs(t_grad) > 1e-6 * gscale
    derr = np.abs(c_new - t_new)
    check(f"step: updated weights agree ({big.sum()} of {n} to 1e-3 lr, max {derr[big].max() / lr:.2e} lr)",
          derr[big].max() <= 1e-3 * lr + 1e-6 * np.abs(t_new[big]).max(), f"{derr[big].max()}")
    check(f"step: weights with noise-level gradients ({(~big).sum()}) move by at most 2 lr",
          (~big).sum() == 0 or derr[~big].max() <= 2.0001 * lr, f"{derr[~big].max() if (~big).any() else 0}")
    moved = np.abs(c_new - flat).max()
    check("step: the step moved the weights (~lr)", 0.5 * lr < moved < 3 * lr, f"{moved}")


# ------------------------------------------------------------- 2. BUSI adaptation

def engine_descriptor_check(data, cls, x):
    """Image 0 of the dump (first file of the first class) against `csasn dump` pooled here."""
    first = sorted(os.listdir(os.path.join(data, sorted(os.listdir(data))[0])))[0]
    img = os.path.join(data, sorted(os.listdir(data))[0], first)
    parts = []
    for name in ("cnn.tap8", "cnn.tap16", "refined", "vit.tokens"):
        f = os.path.join(WORK, name + ".f32")
        rc, so, se = run(["dump", "--model", BASE, "--tensor", name, "--out", f, img])
        if rc:
            return check("descriptors: csasn dump", False, se)
        t = np.fromfile(f, np.float32)
        if name == "vit.tokens":
            parts.append(t[:192])
        else:
            C = {"cnn.tap8": 32, "cnn.tap16": 96, "refined": 256}[name]
            parts.append(t.reshape(-1, C).astype(np.float64).mean(0))
    ref = np.concatenate(parts)
    if ref.size != x.shape[2]:
        return check("descriptors: sizes", False, f"{ref.size} vs {x.shape[2]}")
    err = np.abs(ref - x[0, 0]).max()
    # the engine's pooling kernel (float32, 4 lanes) vs float64 mean: ~1e-6 relative
    check(f"descriptors are the engine's: pooled maps and class token of csasn dump (max error {err:.1e})",
          err <= 1e-5 * max(1.0, np.abs(ref).max()), f"{err}")


def independent_cv(js, cls, x):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X = x[:, 0].astype(np.float64)
    n = len(cls)
    prob = np.zeros((n, 3))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(X, cls):
        m = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000, class_weight="balanced"))
        m.fit(X[tr], cls[tr])
        prob[te] = m.predict_proba(X[te])
    pred = prob.argmax(1)
    f1 = macro_f1(cls, pred, 3)
    f1_ci = boot_ci(lambda i: macro_f1(cls[i], pred[i], 3), n)
    mal = cls == 1
    a = auc(mal, prob[:, 1])
    a_ci = boot_ci(lambda i: auc(mal[i], prob[i, 1]), n)
    cv = js["cv"]
    lo, hi = cv["macro_f1_ci"]
    print(f"# CLI macro-F1 {cv['macro_f1']:.3f} [{lo:.3f}, {hi:.3f}], malignancy AUC {cv['malignancy_auc']:.3f} "
          f"{cv['malignancy_auc_ci']}; independent (logistic regression): macro-F1 {f1:.3f} "
          f"[{f1_ci[0]:.3f}, {f1_ci[1]:.3f}], AUC {a:.3f} [{a_ci[0]:.3f}, {a_ci[1]:.3f}]", flush=True)
    check("cv: macro-F1 of the CLI and of the independent CV agree within their 95% intervals",
          lo <= f1_ci[1] and f1_ci[0] <= hi, f"CLI [{lo}, {hi}] vs [{f1_ci[0]}, {f1_ci[1]}]")
    mlo, mhi = cv["malignancy_auc_ci"]
    check("cv: malignancy AUC of the CLI and of the independent CV agree within their 95% intervals",
          mlo <= a_ci[1] and a_ci[0] <= mhi, f"CLI [{mlo}, {mhi}] vs [{a_ci[0]}, {a_ci[1]}]")
    check("cv: the adapted model beats chance (balanced accuracy interval above 1/3)",
          cv["balanced_accuracy_ci"][0] > 1 / 3, str(cv["balanced_accuracy_ci"]))


def node_classify(model, img):
    if not os.path.exists(os.path.join(WASM, "csasn.wasm")):
        return None
    js = f"""
const fs = require('fs');
(async () => {{
  const api = await import({json.dumps(os.path.join(WASM, 'csasn.js'))});
  const c = await api.createClassifier(fs.readFileSync({json.dumps(model)}),
                                       {{ wasmBinary: fs.readFileSync({json.dumps(os.path.join(WASM, 'csasn.wasm'))}) }});
  const r = await c.classify(fs.readFileSync({json.dumps(img)}));
  console.log(JSON.stringify({{ labels: c.info().labels, probs: Array.from(r.probs), malignancy: r.malignancy }}));
}})().catch(e => {{ console.error(e.message); process.exit(1); }});
"""
    p = subprocess.run(["node", "-e", js], capture_output=True, text=True, timeout=600)
    if p.returncode:
        return {"error": p.stderr}
    return json.loads(p.stdout.strip().splitlines()[-1])


def busi_adaptation():
    data = os.path.join(WORK, "hospital")
    held = make_folders(data, PER_CLASS)
    out = os.path.join(WORK, "busi-adapted.csasn")
    desc = os.path.join(WORK, "busi.desc")
    extra = ["--malignant", "malignant", "--descriptors", desc, "--name", "busi <local>"]
    if SANITIZED:
        extra += ["--epochs", "3", "--folds", "3"]
    rc, js, se = adapt(data, out, *extra)
    if not check("busi: csasn adapt succeeded", rc == 0 and js is not None, se[-2000:]):
        return None
    check("busi: progress with an ETA on stderr", re.search(r"features \d+/\d+ images .*ETA \d+ s", se) is not None
          and re.search(r"training \d+%, ETA \d+ s", se) is not None, se[-500:])
    check("busi: JSON summary: classes, counts, output, figures",
          js["classes"] == ["benign", "malignant", "normal"] and js["counts"] == [PER_CLASS] * 3 and js["out"] == out
          and "macro_f1" in js["cv"] and len(js["cv"]["confusion"]) == 3, json.dumps(js)[:300])
    cv = js["cv"]
    check("busi: report has per-class recall/precision/AUC with intervals and a confusion matrix summing to the images",
          all(all(k in c for k in ("recall", "recall_ci", "precision", "precision_ci", "auc", "auc_ci")) for c in cv["classes"])
          and sum(map(sum, cv["confusion"])) == 3 * PER_CLASS, json.dumps(cv)[:300])
    cls, grp, x = read_desc(desc)
    check("busi: descriptor dump: every image, 2 views", x.shape[0] == 3 * PER_CLASS and x.shape[1] == 2, str(x.shape))
    check("busi: the mirrored view differs from the image's", np.abs(x[:, 0] - x[:, 1]).max() > 1e-3, "identical views")
    engine_descriptor_check(data, cls, x)
    if not SANITIZED:
        independent_cv(js, cls, x)
    torch_step_check(desc)

    # the adapted file
    rc, so, se = run(["info", "--model", out])
    if not check("adapted: csasn info loads it", rc == 0, se):
        return None
    info = json.loads(so)
    base_sha = hashlib.sha256(open(BASE, "rb").read()).hexdigest()
    check("adapted: the user's labels and malignant grouping",
          info["csasn.labels"] == ["benign", "malignant", "normal"] and info["csasn.malignant_labels"] == ["malignant"],
          str(info.get("csasn.labels")))
    check("adapted: provenance: base name and SHA-256, counts, date, figures, adapted locally",
          info.get("adapt.base_name") == "csasn-thyroid-ddti" and info.get("adapt.base_sha256") == base_sha
          and info.get("adapt.counts") == [PER_CLASS] * 3 and re.match(r"\d{4}-\d\d-\d\d$", info.get("adapt.date", ""))
          and json.loads(info["adapt.cv"])["macro_f1"] == cv["macro_f1"] and "adapted locally" in info.get("adapt.note", "")
          and info["general.name"] == "busi <local>", json.dumps({k: v for k, v in info.items() if "adapt" in k})[:400])
    raw = open(out, "rb").read()
    leaked = [f for c in ("benign", "malignant", "normal") for f in os.listdir(os.path.join(data, c)) if f.encode() in raw]
    check("adapted: no file name in the file", not leaked and b".png" not in raw, str(leaked[:3]))
    # held-out image: CLI and node agree; the frozen heads (lesion mask, attention) are the base model's
    img = os.path.join(BUSI, "malignant", held["malignant"][0])
    rc, so, se = run(["classify", "--model", out, "--mask", "--attention", img])
    rb, sb, eb = run(["classify", "--model", BASE, "--mask", "--attention", img])
    if check("adapted: classifies a held-out image", rc == 0 and rb == 0, se + eb):
        a, b = json.loads(so), json.loads(sb)
        check("adapted: result shows the user's labels", a["labels"] == ["benign", "malignant", "normal"] and len(a["probs"]) == 3,
              str(a["labels"]))
        check("adapted: lesion mask and attention exactly the base model's (frozen part, kept tensors)",
              a.get("mask") == b.get("mask") and a.get("attention") == b.get("attention") and a.get("mask") is not None,
              "maps differ")
        nd = node_classify(out, img)
        if nd is None:
            print("# build/wasm missing: the node comparison needs make wasm", flush=True)
            check("adapted: node (wasm) build present for the comparison", SANITIZED, "run make wasm")
        elif check("adapted: node loads and classifies it", "error" not in nd, str(nd)[:300]):
            d = max(abs(p - q) for p, q in zip(a["probs"], nd["probs"]))
            dm = abs(a["malignancy"] - nd["malignancy"])
            # the native/wasm bound of tests/test_wasm_node.cjs: same C code, float rounding only
            check(f"adapted: CLI and node agree on the held-out image (max diff {max(d, dm):.1e}, bound 1e-5)",
                  nd["labels"] == a["labels"] and d <= 1e-5 and dm <= 1e-5, f"{a['probs']} vs {nd['probs']}")
    # determinism: the same seed gives the same file from the same descriptors, another seed another
    o1, o2, o3 = (os.path.join(WORK, f"det{i}.csasn") for i in range(3))
    common = ["--malignant", "malignant", "--from-descriptors", desc, "--name", "det"] + (
        ["--epochs", "3", "--folds", "3"] if SANITIZED else ["--epochs", "10"])
    r1 = adapt(data, o1, *common, "--seed", "7")
    r2 = adapt(data, o2, *common, "--seed", "7")
    r3 = adapt(data, o3, *common, "--seed", "8")
    if check("determinism: three runs from cached descriptors", r1[0] == r2[0] == r3[0] == 0, r1[2] + r2[2] + r3[2]):
        h = [hashlib.sha256(open(o, "rb").read()).hexdigest() for o in (o1, o2, o3)]
        check("determinism: same seed -> identical file; another seed -> another", h[0] == h[1] and h[0] != h[2], str(h))
    return data


def ddti_breast_adaptation():
    """The breast model adapted to DDTI thyroid crops (2 classes, malignant = malignant),
    grouped by patient (case id, the file-name prefix): the CLI's grouped CV against an
    independent grouped CV (StratifiedGroupKFold, logistic regression) on its descriptors."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    src = os.path.join(DATA, "ddti", "images")
    data = os.path.join(WORK, "ddti_hospital")
    shutil.rmtree(data, ignore_errors=True)
    per = 8 if SANITIZED else 59   # every benign image DDTI has
    for c in ("benign", "malignant"):
        fs = sorted(os.listdir(os.path.join(src, c)))
        step = max(1, len(fs) // per)
        os.makedirs(os.path.join(data, c))
        for f in fs[::step][:per]:
            os.symlink(os.path.join(src, c, f), os.path.join(data, c, f))
    out = os.path.join(WORK, "ddti-adapted.csasn")
    desc = os.path.join(WORK, "ddti.desc")
    breast = os.path.join(ROOT, "weights", "breast-busi.csasn")
    extra = ["--malignant", "malignant", "--group", r"^([0-9]+)_", "--descriptors", desc]
    if SANITIZED:
        extra += ["--epochs", "3", "--folds", "3"]
    p = subprocess.run([CLI, "adapt", "--model", breast, "--data", data, "--out", out] + extra, capture_output=True,
                       text=True, timeout=3600)
    if not check("ddti: the breast model adapts to DDTI folders grouped by patient", p.returncode == 0, p.stderr[-1000:]):
        return
    js = json.loads(p.stdout.strip().splitlines()[-1])
    cls, grp, x = read_desc(desc)
    names = [sorted(os.listdir(os.path.join(data, c))) for c in ("benign", "malignant")]
    want = len(set(f.split("_")[0] for fs in names for f in fs))
    check(f"ddti: the report counts the patients as groups ({want})", js["cv"]["groups"] == want == len(set(grp.tolist())),
          f"{js['cv']['groups']} vs {want}")
    if SANITIZED:
        return
    X = x[:, 0].astype(np.float64)
    prob = np.zeros(len(cls))
    for tr, te in StratifiedGroupKFold(5, shuffle=True, random_state=0).split(X, cls, grp):
        m = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000, class_weight="balanced"))
        m.fit(X[tr], cls[tr])
        prob[te] = m.predict_proba(X[te])[:, 1]
    a = auc(cls == 1, prob)
    ug = np.unique(grp)
    members = {g: np.nonzero(grp == g)[0] for g in ug}
    rng = np.random.default_rng(2)
    vals = []
    for _ in range(1000):
        idx = np.concatenate([members[g] for g in rng.choice(ug, len(ug))])
        v = auc(cls[idx] == 1, prob[idx])
        if v == v:
            vals.append(v)
    a_ci = (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5)))
    lo, hi = js["cv"]["malignancy_auc_ci"]
    print(f"# DDTI (breast model adapted, {len(cls)} images, {want} patients): CLI malignancy AUC "
          f"{js['cv']['malignancy_auc']:.3f} [{lo:.3f}, {hi:.3f}]; independent grouped CV {a:.3f} "
          f"[{a_ci[0]:.3f}, {a_ci[1]:.3f}]", flush=True)
    check("ddti: malignancy AUC of the CLI and of the independent grouped CV agree within their 95% intervals",
          lo <= a_ci[1] and a_ci[0] <= hi, f"CLI [{lo}, {hi}] vs [{a_ci[0]}, {a_ci[1]}]")


def node_adaptation():
    """The same adaptation API in wasm (shell/csasn.js createAdapter), as the page's worker
    runs it: a small hospital set; the file it writes loads in the CLI with the user's
    labels, its report has the figures; views and epochs cut to keep it short."""
    if not os.path.exists(os.path.join(WASM, "csasn.wasm")):
        return check("node adaptation: build/wasm present", SANITIZED, "run make wasm")
    data = os.path.join(WORK, "node_hospital")
    make_folders(data, 4, offset=1)
    out = os.path.join(WORK, "node-adapted.csasn")
    classes = sorted(os.listdir(data))
    files = [[os.path.join(data, c, f) for f in sorted(os.listdir(os.path.join(data, c)))] for c in classes]
    js = f"""
const fs = require('fs');
(async () => {{
  const api = await import({json.dumps(os.path.join(WASM, 'csasn.js'))});
  const wasmBinary = fs.readFileSync({json.dumps(os.path.join(WASM, 'csasn.wasm'))});
  const files = {json.dumps(files)};
  const a = await api.createAdapter(fs.readFileSync({json.dumps(BASE)}),
    {{ classes: {json.dumps(classes)}, malignant: ['malignant'], views: 2, epochs: 4, folds: 3, seed: 1 }}, {{ wasmBinary }});
  const t0 = Date.now();
  let n = 0, bad = null;
  files.forEach((fs_, c) => fs_.forEach(f => {{ a.addImage(c, fs.readFileSync(f)); n++; }}));
  try {{ a.addImage(0, new Uint8Array([1, 2, 3])); }} catch (e) {{ bad = e.code + ': ' + e.message; }}
  const tFeat = Date.now() - t0;
  let r, steps = 0, last = -1, monotone = true;
  do {{ r = a.step(); steps++; if (r.progress < last) monotone = false; last = r.progress; }} while (!r.done);
  const tTrain = Date.now() - t0 - tFeat;
  fs.writeFileSync({json.dumps(out)}, a.write('node <adapted>', '2026-01-02'));
  const rep = a.report();
  console.log(JSON.stringify({{ n, bad, steps, monotone, progress: r.progress, rep, counts: [0, 1, 2].map(i => a.count(i)),
                                msPerImage: tFeat / n, msTrain: tTrain }}));
  a.free();
}})().catch(e => {{ console.error(e.stack || e.message); process.exit(1); }});
"""
    p = subprocess.run(["node", "-e", js], capture_output=True, text=True, timeout=1200)
    if not check("node adaptation: createAdapter, addImage, step, report, write", p.returncode == 0, p.stderr[-1500:]):
        return
    r = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"# wasm in node: feature pass {r['msPerImage']:.0f} ms per image (2 views), training {r['msTrain']} ms "
          f"for {r['steps']} steps", flush=True)
    check("node adaptation: counts, a refused image reported as an image error, progress monotone to 1",
          r["counts"] == [4, 4, 4] and (r["bad"] or "").startswith("image") and r["monotone"] and r["progress"] == 1
          and r["steps"] == 4 * 4, json.dumps(r)[:400])
    check("node adaptation: report with figures and the confusion matrix",
          r["rep"] and "macro_f1" in r["rep"] and sum(map(sum, r["rep"]["confusion"])) == 12, json.dumps(r["rep"])[:300])
    rc, so, se = run(["info", "--model", out])
    info = json.loads(so) if rc == 0 else {}
    check("node adaptation: the file it wrote loads in the CLI with the user's labels",
          rc == 0 and info.get("csasn.labels") == classes and info.get("general.name") == "node <adapted>"
          and info.get("adapt.date") == "2026-01-02", se[-300:])


# ------------------------------------------------------------------- 3. hostile

def small_set(root, classes, per=3, names=None):
    shutil.rmtree(root, ignore_errors=True)
    src = busi_files("benign")
    k = 0
    for c in classes:
        os.makedirs(os.path.join(root, c))
        for i in range(per):
            nm = names(c, i) if names else f"img{i}.png"
            shutil.copy(os.path.join(BUSI, "benign", src[k % len(src)]), os.path.join(root, c, nm))
            k += 1


def hostile():
    fast = ["--views", "1", "--epochs", "2", "--folds", "2"]
    out = os.path.join(WORK, "h.csasn")
    d = os.path.join(WORK, "h_empty")
    small_set(d, ["a"], 2)
    os.makedirs(os.path.join(d, "b"))
    rc, js, se = adapt(d, out, *fast)
    check("hostile: an empty class folder is a clear error", rc == 2 and "empty" in se and "b" in se, se)
    d = os.path.join(WORK, "h_one")
    small_set(d, ["only"], 3)
    rc, js, se = adapt(d, out, *fast)
    check("hostile: a single class is a clear error", rc == 2 and "at least two class" in se, se)
    # corrupt files mixed in: listed and skipped
    d = os.path.join(WORK, "h_corrupt")
    small_set(d, ["a", "b"], 3)
    good = os.path.join(BUSI, "benign", busi_files("benign")[0])
    open(os.path.join(d, "a", "random.png"), "wb").write(os.urandom(3000))
    open(os.path.join(d, "a", "truncated.png"), "wb").write(open(good, "rb").read()[:200])
    open(os.path.join(d, "b", "notes.txt"), "w").write("not an image\n")
    rc, js, se = adapt(d, out, *fast)
    check("hostile: corrupt files are listed on stderr and skipped",
          rc == 0 and js["skipped"] == 3 and js["counts"] == [3, 3] and all(f in se for f in ("random.png", "truncated.png", "notes.txt")),
          f"rc {rc}: {se[-800:]}")
    # a class whose every file is corrupt
    d = os.path.join(WORK, "h_allbad")
    small_set(d, ["a"], 3)
    os.makedirs(os.path.join(d, "b"))
    for i in range(3):
        open(os.path.join(d, "b", f"x{i}.jpg"), "wb").write(b"\xff\xd8\xff garbage")
    rc, js, se = adapt(d, out, *fast)
    check("hostile: a class left with no readable image is a clear error", rc == 1 and "no readable image" in se and "'b'" in se, se[-500:])
    # HTML in a class name: stored and reported as text
    html = '<img src=x onerror=alert(1)>&"q\''
    d = os.path.join(WORK, "h_html")
    small_set(d, [html, "plain"], 3)
    rc, js, se = adapt(d, out, *fast, "--malignant", html)
    ok = rc == 0 and js["classes"][0] == html
    if ok:
        rc2, so, se2 = run(["info", "--model", out])
        info = json.loads(so) if rc2 == 0 else {}
        ok = info.get("csasn.labels") == [html, "plain"] and info.get("csasn.malignant_labels") == [html]
    check("hostile: a class name with HTML is stored and reported as the same text", ok, se[-300:])
    # 10,000 tiny files: each refused quickly, the list on stderr bounded
    d = os.path.join(WORK, "h_tiny")
    small_set(d, ["a", "b"], 2)
    n_tiny = 2000 if SANITIZED else 10000
    for i in range(n_tiny):
        with open(os.path.join(d, "a", f"t{i:05d}.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + bytes([i % 256]))
    rc, js, se = adapt(d, out, *fast)
    check(f"hostile: {n_tiny} tiny files: skipped, the stderr list bounded",
          rc == 0 and js["skipped"] == n_tiny and se.count("skipped '") <= 20 and "not listed" in se,
          f"rc {rc}, {se.count(chr(10))} stderr lines")
    # the image limit: refused before any work, clearly
    d = os.path.join(WORK, "h_limit")
    small_set(d, ["a", "b"], 1)
    for i in range(20001):
        open(os.path.join(d, "a", f"e{i:05d}.png"), "wb").close()
    rc, js, se = adapt(d, out, *fast)
    check("hostile: more files than the 20000-image limit is a clear error", rc == 2 and "limit" in se, se[-300:])
    shutil.rmtree(d, ignore_errors=True)
    # bad options and a base model without the classifier
    d = os.path.join(WORK, "h_corrupt")
    rc, js, se = adapt(d, out, *fast, "--malignant", "nope")
    check("hostile: --malignant naming no class is a clear error", rc == 1 and "'nope'" in se, se)
    rc, js, se = adapt(d, out, *fast, "--malignant", "a,b")
    check("hostile: every class malignant is a clear error", rc == 1 and "benign" in se, se)
    import csasn_format as CF
    meta, T, _ = CF.read(BASE)
    T = {k: v for k, v in T.items() if not k.startswith("mix.")}
    broken = os.path.join(WORK, "nomix.csasn")
    CF.write(broken, meta, T, "f16")
    rc, so, se = run(["adapt", "--model", broken, "--data", d, "--out", out] + fast)
    check("hostile: a base model without the classifier's tensors is a clear error", rc == 1 and "base model" in se and "mix" in se, se)
    # grouping: by regex on file names, and by a CSV patient column
    d = os.path.join(WORK, "h_groups")
    small_set(d, ["a", "b"], 6, names=lambda c, i: f"p{i // 2}{c}_{i}.png")   # 3 patients per class, 2 images each
    desc = os.path.join(WORK, "groups.desc")
    rc, js, se = adapt(d, out, *fast, "--group", r"^(p[0-9]+[a-z])_", "--descriptors", desc)
    ok = rc == 0 and js["cv"]["groups"] == 6
    if ok:
        cls, grp, x = read_desc(desc)
        ok = all(grp[2 * k] == grp[2 * k + 1] for k in range(6)) and len(set(grp.tolist())) == 6
    check("groups: --group REGEX groups the images (6 patients of 2 images)", ok, f"rc {rc}: {se[-300:]}")
    csv = os.path.join(WORK, "groups.csv")
    with open(csv, "w") as f:
        f.write("file,patient\n")
        for c in ("a", "b"):
            for i in range(6):
                f.write(f"{c}/p{i // 2}{c}_{i}.png,P{c}{i // 3}\n")   # 2 patients per class
    rc, js, se = adapt(d, out, *fast, "--groups", csv)
    check("groups: --groups CSV (patient column) groups the images", rc == 0 and js["cv"]["groups"] == 4, f"rc {rc}: {se[-300:]}")
    rc, js, se = adapt(d, out, *fast, "--group", "(unclosed")
    check("groups: a bad regular expression is a usage error", rc == 2 and "regular expression" in se, se)


def main():
    if not cli_built():
        return 1
    check("test_adapt_net built", os.access(STEP, os.X_OK), "make build/tests/test_adapt_net")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    busi_adaptation()
    ddti_breast_adaptation()
    node_adaptation()
    hostile()
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
