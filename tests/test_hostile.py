#!/usr/bin/python3
"""The hostile-input corpus (tests/hostile/: bad input gets a clear error) through the native CLI.

- Every file of tests/hostile/reject/ is refused: an image with a JSON error line
  that contains one of the words listed for it in tests/hostile/corpus.json, a
  model with a message naming the problem; exit status 1 (not a signal, not a
  sanitizer abort, not 0), no probability printed, within the timeout.
- All rejected images in one call next to a good one: the good one is still
  classified, the status is 1.
- Every file of tests/hostile/valid/ classifies: status 0, probabilities that
  sum to 1, the decoded size PIL reports, and the input tensor the engine builds
  equals the Python twin of the preprocessing (tools/preprocess.py) decoding the
  same bytes with PIL - i.e. the unusual format is read as the picture it is.
- The large files (1x3000, 4000x2, 3000x1, two 50.4-megapixel scans), generated
  into build/hostile/ by tests/hostile/make_corpus.py --large, classify too, and
  the 50 MP scans stay within a memory bound (no full-size float copy).
- A real ultrasound image from ../shared/data re-encoded in every valid format
  gives the same probabilities as the original PNG.
- --roi at the int32 limits or malformed: status 1 or 2, never a crash.
- The raw images of past fuzz crashes (tests/fuzz/regress/) through the CLI.
- Metadata sweep: each metadata value of the tiny model set to a boundary value
  (0, 2^31, 2^32-1, NaN, inf, empty, huge, wrong type, missing): refused with an
  error, or classifies to probabilities summing to 1.

CLI: $CSASN_CLI (default build/csasn). Under $CSASN_SANITIZED=1 (make test-asan)
timeouts are longer and the memory bound is not checked (ASan's shadow memory
and quarantine inflate the RSS).
"""
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as L  # noqa: E402
from testlib import CLI, DATA, ROOT, SANITIZED  # noqa: E402
import preprocess as P  # noqa: E402

HOSTILE = os.path.join(ROOT, "tests", "hostile")
LARGE = os.path.join(ROOT, "build", "hostile")
# A reject must be answered quickly: 30 s is ~100x what any of them takes natively
# (they are refused from the header); ASan is up to ~10x slower.
T_REJECT = 300 if SANITIZED else 30
T_LARGE = 900 if SANITIZED else 120

with open(os.path.join(HOSTILE, "corpus.json")) as f:
    CORPUS = json.load(f)
MODEL = os.path.join(HOSTILE, CORPUS["tiny_model"])
MODEL16 = os.path.join(HOSTILE, "valid", "model_tiny_f16.csasn")


def run(args, timeout=T_REJECT):
    """-> (returncode, stdout, stderr); returncode 'timeout' on a hang."""
    try:
        p = subprocess.run([CLI] + args, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", "", ""
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def sanitizer_report(err):
    return any(s in err for s in ("Sanitizer", "runtime error:", "LeakSanitizer"))


def json_lines(out):
    rows = []
    for line in out.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            rows.append({"unparsable": line})
    return rows


def status_problem(rc, err):
    """Why rc/stderr are not 'a handled error', or None."""
    if rc == "timeout":
        return "hung (timeout)"
    if rc < 0:
        return f"killed by signal {-rc}"
    if sanitizer_report(err):
        return "sanitizer report: " + err.strip().splitlines()[0][:200]
    if rc != 1:
        return f"exit status {rc}, expected 1"
    return None


# ------------------------------------------------------------------ rejects

def test_reject_images():
    rejects = [e for e in CORPUS["images"] if e["kind"] == "reject"]
    messages = {}
    for e in rejects:
        path = os.path.join(HOSTILE, e["file"])
        name = f"reject image {e['file']} ({e['what']})"
        rc, out, err = run(["classify", "--model", MODEL, path])
        why = status_problem(rc, err)
        if why:
            L.check(name, False, why)
            continue
        rows = json_lines(out)
        if len(rows) != 1 or "error" not in rows[0]:
            L.check(name, False, f"expected one JSON error line, got {out[:300]!r}")
            continue
        msg = rows[0]["error"]
        messages[e["file"]] = msg
        low = msg.lower()
        ok = (any(w in low for w in e["expect"]) and "probs" not in out
              and rows[0].get("image") == path)
        L.check(name, ok, f"error {msg!r} does not contain any of {e['expect']}"
                if "probs" not in out else "printed probabilities")
    # "Its own clear error": categories of damage are told apart (truncated vs
    # too large vs not an image), not one catch-all message.
    kinds = {("truncated" in m.lower(), "limit" in m.lower(), "not an image" in m.lower())
             for m in messages.values()}
    L.check("reject messages distinguish truncated / over the limit / not an image", len(kinds) >= 3,
            f"only {len(kinds)} kinds of message")

    # All of them in one call, with a good image in the middle: it is still classified.
    good = os.path.join(HOSTILE, "valid", "gray.png")
    paths = [os.path.join(HOSTILE, e["file"]) for e in rejects]
    mid = len(paths) // 2
    rc, out, err = run(["classify", "--model", MODEL] + paths[:mid] + [good] + paths[mid:],
                       timeout=T_REJECT * 4)
    rows = json_lines(out)
    why = status_problem(rc, err)
    ok_rows = [r for r in rows if "probs" in r]
    L.check("all rejects in one call: each gets an error line, the good image is classified",
            why is None and len(rows) == len(paths) + 1 and len(ok_rows) == 1
            and ok_rows[0]["image"] == good and sum("error" in r for r in rows) == len(paths),
            why or f"{len(rows)} lines, {len(ok_rows)} classified")


def test_reject_models():
    img = os.path.join(HOSTILE, "valid", "gray.png")
    for e in CORPUS["models"]:
        if e["kind"] != "reject":
            continue
        path = os.path.join(HOSTILE, e["file"])
        cmds = [["classify", "--model", path, img]] + ([] if e.get("loads") else [["info", "--model", path]])
        for cmd in cmds:
            name = f"reject model {e['file']} ({e['what']}) [{cmd[0]}]"
            rc, out, err = run(cmd)
            why = status_problem(rc, err)
            if why:
                L.check(name, False, why)
                continue
            text = (out + err).lower()
            ok = any(w in text for w in e["expect"]) and "probs" not in out
            L.check(name, ok, f"output {(out + err)[:300]!r} lacks any of {e['expect']}")


# ------------------------------------------------------------------ valid

def engine_input(model, path, S, timeout=T_REJECT, roi=None):
    """-> (input tensor [3, S, S], None, the preprocess JSON line) or (None, why, None)."""
    out = os.path.join(LARGE, "input.f32")
    os.makedirs(LARGE, exist_ok=True)
    args = ["preprocess", "--model", model, "--out", out] + (["--roi", ",".join(map(str, roi))] if roi else [])
    rc, o, err = run(args + [path], timeout=timeout)
    if rc != 0:
        return None, f"preprocess exit {rc}: {(o + err)[:300]}", None
    return np.fromfile(out, dtype="<f4").reshape(3, S, S), None, json.loads(o)


def classify_ok(name, model, path, size, timeout=T_REJECT):
    """Classifies one valid file; checks status, JSON and size. -> result dict or None."""
    rc, out, err = run(["classify", "--model", model, path], timeout=timeout)
    if rc != 0 or sanitizer_report(err):
        L.check(name, False, f"exit {rc}: {(out + err)[:300]}")
        return None
    rows = json_lines(out)
    r = rows[0] if len(rows) == 1 else {}
    probs = r.get("probs")
    ok = (probs is not None and abs(sum(probs) - 1.0) < 1e-5
          and all(np.isfinite(probs)) and r.get("top") in r.get("labels", [])
          and (size is None or (r.get("image_w"), r.get("image_h")) == tuple(size)))
    L.check(name, ok, f"bad result {out[:300]!r} (expected size {size})")
    return r if ok else None


def meta():
    rc, out, _ = run(["info", "--model", MODEL])
    m = json.loads(out)
    return m["csasn.input_size"], m["csasn.mean"], m["csasn.std"]


def upright_size(path):
    """The size PIL reports once the EXIF orientation is applied (JPEG, PNG)."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).size if im.format in ("JPEG", "PNG") else im.size


def check_decode_bytes(name, info):
    """The decode-memory estimate (what the limit is checked against) must
    bound what stb_image really allocated, and not by much: 25% + 64 KiB (its
    decoder states, probed whatever the format, are ~35 KB)."""
    d = info.get("decode_bytes") if info else None
    if not d:
        return L.check(f"{name}: decode_bytes reported", False, str(info)[:200])
    est, peak = d["estimate"], d["peak"]
    return L.check(f"{name}: decode memory peak {peak} <= estimate {est} <= 1.25 peak + 64 KiB",
                   peak <= est <= 1.25 * peak + 65536, str(d))


def test_valid_images():
    S, mean, std = meta()
    for e in CORPUS["images"]:
        if e["kind"] != "valid":
            continue
        path = os.path.join(HOSTILE, e["file"])
        size = upright_size(path)
        r = classify_ok(f"valid {e['file']} classifies ({e['what']})", MODEL, path, size)
        if r is None:
            continue
        # The same tensor as the Python twin. Lossless formats: 1e-5 (float
        # rounding of the resize sums; tests/test_preprocess.py's bound). JPEG:
        # PIL (libjpeg) and stb_image use different IDCTs / chroma upsampling,
        # about one grey level apart = 1/255/0.225 = 0.017 after normalisation;
        # 0.05 leaves room for a level or two more at edges. Files where PIL
        # rounds (PNM maxval) carry their own bound in the corpus ("tol").
        tol = e.get("tol", 0.05 if e["file"].endswith(".jpg") else 1e-5)
        with open(path, "rb") as f:
            gray = P.load_gray(f.read())   # PIL decodes
        # EXIF files: a ROI too, in upright pixels, must crop the same region.
        rois = [None] + ([(5, 7, 30, 20)] if "orientation" in e else [])
        for roi in rois:
            c, why, info = engine_input(MODEL, path, S, roi=roi)
            if c is None:
                L.check(f"valid {e['file']}: input tensor (roi {roi})", False, why)
                continue
            py = P.resize_normalize(gray, roi, S, mean, std)
            d = float(np.abs(c - py).max())
            L.check(f"valid {e['file']}: engine input == Python twin, roi {roi} (max diff {d:.2g} <= {tol})",
                    d <= tol, f"max |C - Python| = {d}")
            if roi is None:
                check_decode_bytes(f"valid {e['file']}", info)
    # fp16 model on the same files: loads and classifies.
    classify_ok("valid model_tiny_f16.csasn classifies", MODEL16,
                os.path.join(HOSTILE, "valid", "gray.png"), None)


def test_decode_memory():
    """Mid-size files of the formats whose decode memory has the most parts
    (interlaced 16-bit RGBA, palette and colour-key transparency, progressive
    and subsampled JPEG, GIF, 32-bit BMP): the estimate made from the header
    bounds what stb_image allocates (check_decode_bytes), and the pixels are
    still PIL's."""
    sys.path.insert(0, HOSTILE)
    import make_corpus as M
    S, mean, std = meta()
    d = os.path.join(LARGE, "mem")
    os.makedirs(d, exist_ok=True)
    g = M.scan(1200, 900, 31)
    im = Image.fromarray(g)
    rgb = Image.merge("RGB", (im, im.point(lambda v: v // 2 + 60), im.point(lambda v: 255 - v)))
    g16 = g.astype(np.uint16) * 257
    files = {
        # PIL keeps 8 bits of 16-bit colour: half a level, 0.0087 after normalisation
        "rgba16_interlaced.png": (M.png_interlaced(np.stack([g16, g16 // 2, 65535 - g16, g16], -1), 6, 16), 0.01),
        "gray16_interlaced.png": (M.png_interlaced(g16, 0, 16), 1e-5),
        "palette_trns.png": (M.png_bytes(im.convert("P", palette=Image.ADAPTIVE), transparency=0), 1e-5),
        "rgb_trns.png": (M.png_bytes(rgb, transparency=(0, 0, 0)), 1e-5),
        "progressive_420.jpg": (M.enc(rgb, "JPEG", quality=90, progressive=True), 0.05),
        "baseline_444.jpg": (M.enc(rgb, "JPEG", quality=90, subsampling=0), 0.05),
        "gray_progressive.jpg": (M.enc(im, "JPEG", quality=90, progressive=True), 0.05),
        "screen.gif": (M.enc(im, "GIF"), 1e-5),
        "rgba32.bmp": (M.enc(Image.merge("RGBA", (im, im, im, im)), "BMP"), 1e-5),
    }
    for name, (data, tol) in files.items():
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        c, why, info = engine_input(MODEL, path, S)
        if c is None:
            L.check(f"decode memory {name}", False, why)
            continue
        check_decode_bytes(f"decode memory {name} (1200x900)", info)
        diff = float(np.abs(c - P.resize_normalize(P.load_gray(data), None, S, mean, std)).max())
        L.check(f"decode memory {name}: engine input == Python twin (max diff {diff:.2g} <= {tol})", diff <= tol,
                f"max |C - Python| = {diff}")


def peak_rss_mb(args, timeout):
    """Runs the CLI in a child python so that RUSAGE_CHILDREN is this run's own peak."""
    code = ("import resource, subprocess, sys\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, timeout=%d)\n"
            "sys.stdout.write('%%d\\n' %% resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            "sys.stdout.write(p.stdout.decode())\n"
            "sys.exit(p.returncode)\n" % timeout)
    p = subprocess.run([sys.executable, "-c", code, CLI] + args, capture_output=True, timeout=timeout + 30)
    lines = p.stdout.decode().splitlines()
    return p.returncode, int(lines[0]) / 1024.0, "\n".join(lines[1:]), p.stderr.decode("utf-8", "replace")


def test_large():
    t0 = time.time()
    gen = subprocess.run([sys.executable, os.path.join(HOSTILE, "make_corpus.py"), "--large", LARGE],
                         capture_output=True, text=True, timeout=900)
    if gen.returncode != 0:
        L.check("generate the large files", False, gen.stderr[-500:])
        return
    with open(os.path.join(LARGE, "large.json")) as f:
        large = json.load(f)
    print(f"# large files generated in {time.time() - t0:.1f} s", flush=True)
    for e in large:
        path = os.path.join(LARGE, e["file"])
        px = e["w"] * e["h"]
        name = f"large {e['file']} classifies ({e['what']})"
        if px < 10_000_000:
            classify_ok(name, MODEL, path, (e["w"], e["h"]), timeout=T_LARGE)
            continue
        t = time.time()
        rc, rss, out, err = peak_rss_mb(["classify", "--model", MODEL, path], T_LARGE)
        dt = time.time() - t
        rows = json_lines(out)
        ok = (rc == 0 and len(rows) == 1 and "probs" in rows[0]
              and (rows[0].get("image_w"), rows[0].get("image_h")) == (e["w"], e["h"]))
        L.check(name + f" in {dt:.1f} s, peak RSS {rss:.0f} MB", ok, f"exit {rc}: {(out + err)[:300]}")
        S = meta()[0]
        _, why, info = engine_input(MODEL, path, S, timeout=T_LARGE)
        check_decode_bytes(f"large {e['file']}", info) if info else L.check(f"large {e['file']}: preprocess", False, why)
        if SANITIZED:
            continue
        # Memory: the decoder needs the 8-bit pixels (1 byte/px for gray) plus its own
        # working copy (PNG: the inflated scanlines, ~1 byte/px; JPEG: per-component
        # planes, ~1 byte/px), so ~2 bytes/px; a full-size float copy would add 4 bytes/px
        # (+200 MB here). Bound: 3 bytes/px + 64 MB for the process, model and small buffers.
        bound = 3 * px / 2**20 + 64
        L.check(f"large {e['file']}: peak RSS {rss:.0f} MB <= {bound:.0f} MB (no float copy of the image)",
                rss <= bound, f"{rss:.0f} MB")


def test_real_image_reencoded():
    """A real ultrasound frame in every valid container gives the original's probabilities."""
    cands = sorted(glob.glob(os.path.join(DATA, "ddti", "images", "*", "*.png")))[:1]
    if not cands:
        L.check("real image from ../shared/data/ddti", False, "no images found")
        return
    src = cands[0]
    g = np.asarray(Image.open(src).convert("L"))
    im = Image.fromarray(g)
    d = os.path.join(LARGE, "real")
    os.makedirs(d, exist_ok=True)
    variants = {
        "gray.png": lambda p: im.save(p),
        "gray16.png": lambda p: Image.fromarray(g.astype(np.uint16) * 257, "I;16").save(p),
        "rgba.png": lambda p: Image.merge("RGBA", (im, im, im, Image.new("L", im.size, 7))).save(p),
        "gray_alpha.png": lambda p: Image.merge("LA", (im, im)).save(p),
        "gray.bmp": lambda p: im.save(p),
        "rgb.bmp": lambda p: im.convert("RGB").save(p),
        "gray.pgm": lambda p: im.save(p),
        "gray.gif": lambda p: im.save(p),
    }
    rc, out, err = run(["classify", "--model", MODEL, src])
    ref = json_lines(out)[0].get("probs") if rc == 0 else None
    if ref is None:
        L.check(f"real image {os.path.basename(src)} classifies", False, (out + err)[:300])
        return
    for name, save in variants.items():
        p = os.path.join(d, name)
        save(p)
        rc, out, err = run(["classify", "--model", MODEL, p])
        probs = json_lines(out)[0].get("probs") if rc == 0 else None
        # Identical pixels after decoding (16-bit v*257/65535 == v/255 up to float
        # rounding; luma of R=G=B is the value up to 1 ulp): 1e-5 allows for that.
        diff = None if probs is None else max(abs(a - b) for a, b in zip(probs, ref))
        L.check(f"real image re-encoded as {name}: same probabilities (diff {diff})",
                diff is not None and diff <= 1e-5, (out + err)[:300])


def sweep_variants(meta, state):
    """(name, meta) pairs: the tiny model's metadata with one value at a boundary.
    The tensors stay those of the original, so most variants must be refused by the
    consistency checks; the others must still classify sanely."""
    u32 = [0, 1, 3, 33, 1 << 16, 1 << 31, 0xFFFFFFFF]
    f32 = [0.0, -1.0, float("nan"), float("inf"), 1e30, 1e-30]
    out = []
    for k, v in meta.items():
        if isinstance(v, bool) or isinstance(v, int):
            out += [(f"{k}={x}", dict(meta, **{k: x})) for x in u32 if x != v]
        elif isinstance(v, float):
            out += [(f"{k}={x}", dict(meta, **{k: x})) for x in f32]
        elif isinstance(v, str):
            out += [(f"{k}=''", dict(meta, **{k: ""})), (f"{k}=x*5000", dict(meta, **{k: "x" * 5000})),
                    (f"{k}=5", dict(meta, **{k: 5}))]
        elif isinstance(v, list) and v and isinstance(v[0], float):
            out += [(f"{k}=[1,1]", dict(meta, **{k: [1.0, 1.0]})),
                    (f"{k}=[0,0,0]", dict(meta, **{k: [0.0, 0.0, 0.0]})),
                    (f"{k}=[nan,1,1]", dict(meta, **{k: [float("nan"), 1.0, 1.0]}))]
        elif isinstance(v, list) and v and isinstance(v[0], str):
            out += [(f"{k}=[]", dict(meta, **{k: []})), (f"{k}=[a]", dict(meta, **{k: ["a"]})),
                    (f"{k}=1000 labels", dict(meta, **{k: [str(i) for i in range(1000)]})),
                    (f"{k}=[benign,benign]", dict(meta, **{k: ["benign", "benign"]}))]
        elif isinstance(v, list) and v and isinstance(v[0], int):
            for i in range(0, 7):          # every field of the first block row
                for x in (0, 1 << 31, 0xFFFFFFFF):
                    w = list(v)
                    w[i] = x
                    out.append((f"{k}[{i}]={x}", dict(meta, **{k: w})))
            out += [(f"{k}=[] ", dict(meta, **{k: []})), (f"{k}=6 fields", dict(meta, **{k: v[:6]})),
                    (f"{k}=+1 field", dict(meta, **{k: v + [1]}))]
    missing = [(f"without {k}", {j: w for j, w in meta.items() if j != k}) for k in meta]
    return out + missing


def test_metadata_sweep():
    """Every metadata value of the tiny model at a boundary (0, 2^31, 2^32-1, NaN,
    inf, empty, huge, wrong type, missing): the engine refuses the file with an
    error, or classifies with probabilities that sum to 1. Never a crash or hang."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import csasn_format
    meta, state, _ = csasn_format.read(MODEL)
    d = os.path.join(LARGE, "sweep")
    os.makedirs(d, exist_ok=True)
    img = os.path.join(HOSTILE, "valid", "gray.png")
    bad = []
    n_load = n_rej = 0
    for i, (name, m) in enumerate(sweep_variants(meta, state)):
        path = os.path.join(d, f"v{i}.csasn")
        try:
            csasn_format.write(path, m, state, dtype="f16")
        except Exception:   # the writer cannot express it (e.g. NaN in a u32 field)
            continue
        rc, out, err = run(["classify", "--model", path, img])
        if rc == 1 and not sanitizer_report(err) and "probs" not in out and err.strip():
            n_rej += 1
            continue
        rows = json_lines(out)
        probs = rows[0].get("probs") if rc == 0 and len(rows) == 1 else None
        if probs is not None and all(np.isfinite(probs)) and abs(sum(probs) - 1) < 1e-5 \
                and not sanitizer_report(err):
            n_load += 1
            continue
        bad.append(f"{name}: exit {rc} {(out + err).strip()[:160]!r}")
    L.check(f"metadata sweep: {n_rej} variants refused, {n_load} classify sanely, {len(bad)} bad",
            not bad, "; ".join(bad[:8]))


def test_hostile_roi():
    """--roi at the int32 limits and malformed: refused with status 1 (a bad ROI
    for this image) or 2 (not X,Y,W,H integers), never a crash; a ROI reaching
    outside the image is clipped and classifies."""
    img = os.path.join(HOSTILE, "valid", "gray.png")
    cases = [("0,0,0,0", 1), ("5,5,-3,4", 1), ("-2147483648,-2147483648,2147483647,2147483647", 1),
             ("2147483647,2147483647,2147483647,2147483647", 1), ("64,0,5,5", 1),
             ("1,2,3", 2), ("1,2,3,4,5", 2), ("a,b,c,d", 2), ("99999999999999999999,0,1,1", 2), ("", 2),
             ("0,0,1,1", 0), ("-5,-5,10,10", 0), ("63,47,2147483647,2147483647", 0)]
    for roi, want in cases:
        rc, out, err = run(["classify", "--model", MODEL, "--roi", roi, img])
        ok = rc == want and not sanitizer_report(err) and (("probs" in out) == (want == 0))
        L.check(f"--roi '{roi}' -> status {want}", ok, f"exit {rc}: {(out + err)[:200]}")


def test_regressions():
    """Raw images of the fuzz crashes (tests/fuzz/regress/, not the .bin fuzz
    inputs): through the whole CLI they give status 0 or 1, never a crash."""
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "fuzz", "regress", "*"))):
        if path.endswith(".bin") or path.endswith(".md"):
            continue
        rc, out, err = run(["classify", "--model", MODEL, path])
        rows = json_lines(out)
        ok = (rc in (0, 1) and not sanitizer_report(err) and len(rows) == 1
              and (("error" in rows[0]) == (rc == 1)))
        L.check(f"fuzz regression {os.path.basename(path)} through the CLI: no crash "
                f"({rows[0].get('error', 'classified') if rows else '?'})", ok,
                f"exit {rc}: {(out + err)[:300]}")


def main():
    if not os.access(CLI, os.X_OK):
        L.check(f"{CLI} exists", False, "run make first")
        return 1
    test_reject_images()
    test_reject_models()
    test_hostile_roi()
    test_regressions()
    test_metadata_sweep()
    test_valid_images()
    test_decode_memory()
    test_real_image_reencoded()
    test_large()
    return L.exit_code()


if __name__ == "__main__":
    sys.exit(main())
