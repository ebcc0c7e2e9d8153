#!/usr/bin/python3
"""The CLI on bad images and bad command lines.

A bad image gives its own JSON error line naming the problem and exit status
1; the good images of the same call are still classified; nothing crashes.
Also: the same picture in every supported lossless format classifies the
same; --roi, --attention, --mask; usage errors exit with status 2.
"""
import io
import json
import os
import struct
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as L  # noqa: E402
import tinymodel as T  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

WORK = os.path.join(T.OUT, "images")
os.makedirs(WORK, exist_ok=True)


def run(args):
    return subprocess.run([T.CSASN] + args, capture_output=True, text=True, errors="replace", timeout=600)


def put(name, data):
    path = os.path.join(WORK, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(w, h):
    """A PNG that declares w x h (8-bit gray) but has no pixel data."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


MODEL = T.write_model("tiny", "f32")
SEG = T.write_model("tiny_seg", "f32", head_segmentation=1, seg_channels=16)
good = T.data_images(2, 2)
with open(good[0], "rb") as f:
    png = f.read()
gray = np.asarray(Image.open(good[0]))
jpg_buf = io.BytesIO()
Image.fromarray(gray).save(jpg_buf, "JPEG", quality=90)
jpg = jpg_buf.getvalue()
idat = png.index(b"IDAT")
corrupt = bytearray(png)
corrupt[idat + 40:idat + 400] = b"\xff" * 360   # deflate stream destroyed, structure intact

# A Huffman table claiming 16 x 255 codes: stb_image 2.27 would write past a
# 257-entry array (found by fuzzing under -fsanitize); src/image.c rejects it.
dht = bytearray(jpg)
d = dht.index(b"\xff\xc4")
dht[d + 5:d + 21] = b"\xff" * 16

# name -> (path, words the error must contain)
bad = {
    "zero_bytes": (put("zero.png", b""), ["empty"]),
    "truncated_png": (put("truncated.png", png[:len(png) // 2]), ["truncated png"]),
    "truncated_png_header": (put("truncated_hdr.png", png[:20]), ["truncated png"]),
    "truncated_jpeg": (put("truncated.jpg", jpg[:len(jpg) // 2]), ["truncated jpeg"]),
    "text_named_png": (put("text.png", b"hello, I am a text file, not a picture\n" * 4), ["not an image"]),
    "model_file_as_image": (MODEL, ["not an image"]),
    "random_bytes": (put("random.bin", np.random.RandomState(0).bytes(5000)), ["not an image"]),
    "corrupt_png_data": (put("corrupt.png", bytes(corrupt)), ["cannot decode png"]),
    "png_too_wide": (put("wide.png", png_header_only(70000, 10)), ["70000x10", "limit"]),
    "png_too_many_pixels": (put("huge.png", png_header_only(20000, 20000)), ["20000x20000", "limit"]),
    "png_zero_size": (put("empty_dims.png", png_header_only(0, 10)), ["png"]),
    "jpeg_huffman_overflow": (put("dht.jpg", bytes(dht)), ["corrupt jpeg", "huffman", "256"]),
}

# All bad images in one call, with good ones interleaved: order kept, good ones classified.
order = []
for i, (name, (path, words)) in enumerate(bad.items()):
    order.append((name, path, words))
    if i % 4 == 0:
        g = good[(i // 4) % len(good)]
        order.append(("good", g, None))
p = run(["classify", "--model", MODEL] + [o[1] for o in order])
lines = p.stdout.splitlines()
L.check("mixed_call_exit_status_1", p.returncode == 1, f"status {p.returncode}: {p.stderr[:300]}")
L.check("mixed_call_one_line_per_image", len(lines) == len(order), f"{len(lines)} lines for {len(order)} images")
for (name, path, words), line in zip(order, lines):
    try:
        r = json.loads(line)
    except ValueError:
        L.check(f"{name}_json", False, f"not JSON: {line[:200]}")
        continue
    if r.get("image") != path:
        L.check(f"{name}_order", False, f"line for {r.get('image')}, expected {path}")
    elif words is None:
        probs = r.get("probs", [])
        ok = ("error" not in r and len(probs) == 2 and abs(sum(probs) - 1) < 1e-5
              and r["top"] == r["labels"][int(np.argmax(probs))] and 0 <= r["malignancy"] <= 1)
        L.check(f"good_image_classified_among_bad ({os.path.basename(path)})", ok, line[:300])
    else:
        msg = r.get("error", "").lower()
        missing = [w for w in words if w.lower() not in msg]
        L.check(f"{name}_error", "error" in r and not missing and "probs" not in r,
                f"message lacks {missing}: {line[:300]}")

# Random damage to every format (truncation, changed header bytes, changed
# bytes anywhere): one JSON line per file, good or error, no crash, in one call.
rng = np.random.RandomState(3)
small = gray[:96, :128]
srcs = []
for fmt, im in (("PNG", Image.fromarray(small)), ("JPEG", Image.fromarray(small)), ("GIF", Image.fromarray(small)),
                ("BMP", Image.fromarray(np.stack([small] * 3, -1))), ("PPM", Image.fromarray(small)),
                ("PNG", Image.fromarray(small.astype(np.uint16) * 257))):
    b = io.BytesIO()
    im.save(b, fmt)
    srcs.append(b.getvalue())
fuzz = []
for i in range(240):
    b = bytearray(srcs[i % len(srcs)])
    kind = (i // len(srcs)) % 3
    if kind == 0:
        b = b[:rng.randint(1, len(b))]
    else:
        span = min(len(b), 300) if kind == 1 else len(b)
        for j in rng.randint(0, span, size=rng.randint(1, 12)):
            b[j] = rng.randint(256)
    fuzz.append(put(f"fuzz{i}.img", bytes(b)))
p = run(["classify", "--model", MODEL] + fuzz)
lines = p.stdout.splitlines()
parsed = [json.loads(x) for x in lines]
L.check(f"damaged_images_no_crash ({len(fuzz)} files, {sum('error' in r for r in parsed)} rejected)",
        p.returncode in (0, 1) and len(parsed) == len(fuzz) and [r["image"] for r in parsed] == fuzz
        and all(("error" in r) != ("probs" in r) for r in parsed), f"status {p.returncode}, {len(lines)} lines")

# A missing image file: its own error line, the rest still classified, status 2.
p = run(["classify", "--model", MODEL, os.path.join(WORK, "no-such-file.png"), good[0]])
lines = [json.loads(x) for x in p.stdout.splitlines()]
L.check("missing_image_file", p.returncode == 2 and len(lines) == 2 and "no such file" in lines[0].get("error", "").lower()
        and "probs" in lines[1], f"status {p.returncode}: {p.stdout[:300]}")

# A file name that is not UTF-8: the JSON line must still be valid UTF-8 JSON, and the
# name must come back exactly (bytes that are not UTF-8 are escaped as \udcXX, Python's
# surrogateescape, so os.fsencode() restores them); a well-formed multibyte name passes as is.
for raw in (b"scan-\xff\xfe-\xc3(.png", "échographie-甲状腺.png".encode()):
    bpath = os.path.join(os.fsencode(WORK), raw)
    with open(good[0], "rb") as f, open(bpath, "wb") as g:
        g.write(f.read())
    p = subprocess.run([os.fsencode(T.CSASN), b"classify", b"--model", os.fsencode(MODEL), bpath],
                       capture_output=True, timeout=600)
    try:
        r = json.loads(p.stdout.decode("utf-8"))   # strict: invalid UTF-8 raises
        back = os.fsencode(r["image"])
    except (UnicodeDecodeError, ValueError, KeyError) as e:
        r, back = {}, repr(e)
    L.check(f"file name {raw!r}: JSON line is valid UTF-8 and gives back the name", p.returncode == 0
            and back == bpath and "probs" in r, f"status {p.returncode}: {p.stdout[:200]!r} -> {back!r}")
    os.remove(bpath)

# One image-size limit (CSASN_MAX_IMAGE_BYTES = 256 MiB, as the API and the page): a file of
# exactly the limit is read (and refused as what it is), one byte more is refused for its size.
for size, words in ((256 << 20, "not an image"), ((256 << 20) + 1, "larger than the 256 mib limit")):
    path = os.path.join(WORK, f"size-{size}.bin")
    with open(path, "wb") as f:
        f.truncate(size)   # sparse: zeros
    p = run(["classify", "--model", MODEL, path])
    os.remove(path)
    r = json.loads(p.stdout) if p.stdout.strip() else {}
    L.check(f"image file of {size} bytes: {words}", p.returncode == 1 and words in r.get("error", "").lower(),
            f"status {p.returncode}: {p.stdout[:200]}")

# --- the same picture in every lossless format classifies identically
rgb = np.stack([gray] * 3, -1)
variants = {
    "gray.png": Image.fromarray(gray), "gray.bmp": Image.fromarray(gray), "gray.pgm": Image.fromarray(gray),
    "gray.gif": Image.fromarray(gray), "gray16.png": Image.fromarray(gray.astype(np.uint16) * 257),
    "rgb.png": Image.fromarray(rgb), "rgba.png": Image.fromarray(np.concatenate([rgb, gray[..., None] // 2], -1)),
    "rgb.ppm": Image.fromarray(rgb), "rgb.bmp": Image.fromarray(rgb),
}
paths = []
for n, im in variants.items():
    paths.append(os.path.join(WORK, n))
    im.save(paths[-1])
p = run(["classify", "--model", MODEL] + paths)
rs = [json.loads(x) for x in p.stdout.splitlines()]
L.check("formats_all_classified", p.returncode == 0 and len(rs) == len(paths) and all("probs" in r for r in rs),
        p.stdout[:500] + p.stderr[:300])
if len(rs) == len(paths) and all("probs" in r for r in rs):
    ref = np.array(rs[0]["probs"])
    for n, r in zip(variants, rs):
        # Every variant holds the same 8-bit values: 16-bit v * 257 gives v / 255
        # exactly, and a colour pixel with R = G = B (RGB, or a palette as in BMP
        # and GIF) is taken as gray without the luma sum. So the input tensor is
        # bit-identical and the probabilities equal (0 difference expected).
        tol = 0.0
        d = float(np.abs(np.array(r["probs"]) - ref).max())
        L.check(f"format_{n}_same_probs", d <= tol, f"max diff {d} > {tol}")

# --- ROI
img = good[2]   # a BUSI image (not square)
w, h = Image.open(img).size
cases = [("roi_outside", f"{w + 5},0,10,10", ["does not overlap"]),
         ("roi_negative_outside", "-50,-50,40,40", ["does not overlap"]),
         ("roi_zero_width", "10,10,0,20", ["positive"])]
for name, roi, words in cases:
    p = run(["classify", "--model", MODEL, "--roi", roi, img])
    r = json.loads(p.stdout) if p.stdout.strip() else {}
    msg = r.get("error", "").lower()
    L.check(name, p.returncode == 1 and all(x in msg for x in words), f"status {p.returncode}: {p.stdout[:300]}")
p1 = run(["classify", "--model", MODEL, "--roi", f"-20,-30,{w + 100},{h + 100}", img])
p2 = run(["classify", "--model", MODEL, img])
L.check("roi_covering_image_is_whole_image", p1.returncode == 0 and
        json.loads(p1.stdout)["probs"] == json.loads(p2.stdout)["probs"], p1.stdout[:200] + p2.stdout[:200])
p3 = run(["classify", "--model", MODEL, "--roi", "40,30,120,90", img])
L.check("roi_changes_result", p3.returncode == 0 and json.loads(p3.stdout)["probs"] != json.loads(p2.stdout)["probs"],
        p3.stdout[:200])

# --- --attention / --mask
S = T.tiny_config().input_size
p = run(["classify", "--model", SEG, "--attention", "--mask", img])
r = json.loads(p.stdout) if p.returncode == 0 else {}
att, mask = np.array(r.get("attention", [])), np.array(r.get("mask", []))
L.check("attention_map", att.shape == (S // 32, S // 32) and ((att >= 0) & (att <= 1)).all(), f"shape {att.shape}")
L.check("mask_map", mask.shape == (S // 4, S // 4) and ((mask >= 0) & (mask <= 1)).all(), f"shape {mask.shape}")
p = run(["classify", "--model", MODEL, "--mask", img])
L.check("mask_null_without_head", p.returncode == 0 and json.loads(p.stdout).get("mask", 0) is None, p.stdout[:200])
p = run(["classify", "--model", MODEL, img])
L.check("no_maps_unless_asked", p.returncode == 0 and "attention" not in json.loads(p.stdout), p.stdout[:200])

# --- usage errors: status 2, a usage message on stderr, nothing on stdout
usage_cases = {
    "no_command": [],
    "unknown_command": ["frobnicate", "--model", MODEL],
    "unknown_option": ["classify", "--model", MODEL, "--colour", good[0]],
    "no_model_option": ["classify", good[0]],
    "no_images": ["classify", "--model", MODEL],
    "bad_roi_syntax": ["classify", "--model", MODEL, "--roi", "1,2,3", good[0]],
    "roi_not_numbers": ["classify", "--model", MODEL, "--roi", "a,b,c,d", good[0]],
    "option_without_value": ["classify", good[0], "--model"],
    "bad_runs": ["bench", "--model", MODEL, "--runs", "0"],
    "dump_without_tensor": ["dump", "--model", MODEL, good[0]],
    "preprocess_without_out": ["preprocess", "--model", MODEL, good[0]],
    "missing_model_file": ["classify", "--model", os.path.join(WORK, "nope.csasn"), good[0]],
}
for name, args in usage_cases.items():
    p = run(args)
    L.check(f"usage_{name}", p.returncode == 2 and "usage" in p.stderr.lower() and not p.stdout.strip(),
            f"status {p.returncode}, stderr {p.stderr[:120]!r}, stdout {p.stdout[:120]!r}")

# --- dump of an unknown tensor: status 1, message
p = run(["dump", "--model", MODEL, "--tensor", "no.such.tensor", good[0]])
L.check("dump_unknown_tensor", p.returncode == 1 and "unknown debug tensor" in p.stderr, p.stderr[:200])

# --- bench: statistics line and JSON line, with and without an image
p = run(["bench", "--model", MODEL, "--runs", "5"])
js = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
ok = p.returncode == 0 and js and js[0]["runs"] == 5 and 0 < js[0]["min_ms"] <= js[0]["median_ms"] <= js[0]["p90_ms"]
L.check("bench_synthetic", bool(ok), p.stdout[:300] + p.stderr[:300])
p = run(["bench", "--model", MODEL, "--runs", "3", "--profile", good[0]])
js = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
L.check("bench_image_profile", p.returncode == 0 and len(js) == 2 and js[0]["runs"] == 3 and isinstance(js[1], dict)
        and len(js[1]) > 0, p.stdout[:300] + p.stderr[:300])

sys.exit(L.exit_code())
