#!/usr/bin/python3
"""Generates the hostile-input corpus (issue 6 item 4), reproducibly.

    tests/hostile/make_corpus.py            small files -> tests/hostile/{reject,valid}/
                                            + tests/hostile/corpus.json (what each file is)
    tests/hostile/make_corpus.py --large D  the big valid files (>= 50 MP scan, 1x3000,
                                            4000x2) -> D/ (build/hostile/ at test time;
                                            too big to commit)

Everything is synthetic (seeded numpy noise shaped like a speckled ultrasound
frame with a dark lesion); no file of ../shared/data is copied. Hostile files
are built by hand (PNG chunks with valid CRCs, JPEG markers, BMP/GIF/PNM
headers) so that each one breaks exactly one thing and the engine's message
can be checked against what was broken.

corpus.json: {"images": [{"file", "kind": "reject"|"valid", "what", "expect"}],
              "models": [...same...], "tiny_model": "valid/model_tiny.csasn",
              "large": [{"file", "what", "w", "h"}]}
`expect` (reject only) is a list of lowercase alternatives; the error message
must contain one of them. Reused by the node and page tests (tests/test_wasm_node.cjs, tests/test_browser.cjs).
"""
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


# ------------------------------------------------------------------ content

def scan(w, h, seed=0):
    """Synthetic ultrasound-like frame, uint8 [h, w]: smooth speckle, a dark
    elliptical lesion with a bright rim, darker with depth. Cheap for huge
    sizes (computed on a coarse grid and upsampled when big)."""
    rng = np.random.default_rng(seed)
    if w * h > 4_000_000:
        cw, ch = max(1, w // 16), max(1, h // 16)
        small = Image.fromarray(scan(cw, ch, seed))
        return np.asarray(small.resize((w, h), Image.BILINEAR))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w * 0.55, h * 0.45
    rx, ry = max(w * 0.22, 0.5), max(h * 0.18, 0.5)
    r = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
    base = 150.0 - 70.0 * (y / max(h - 1, 1))
    img = base * rng.gamma(4.0, 0.25, size=(h, w)).astype(np.float32)
    img = np.where(r < 1.0, img * 0.3, img)
    img = np.where(np.abs(r - 1.0) < 0.15, img + 60.0, img)
    return np.clip(img, 0, 255).astype(np.uint8)


def png_bytes(im, **kw):
    b = io.BytesIO()
    im.save(b, "PNG", **kw)
    return b.getvalue()


def enc(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


# ------------------------------------------------------------- hand-made PNG

def chunk(typ, data):
    return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data) & 0xFFFFFFFF)


def png_raw(w, h, rows=b"", color=0, depth=8, idat=True):
    """A PNG whose IHDR claims w x h (any u32), with `rows` as (filtered) image data."""
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
    if idat:
        out += chunk(b"IDAT", zlib.compress(rows))
    return out + chunk(b"IEND", b"")


# ------------------------------------------------------------- hand-made JPEG

def jpeg_find(data, markers):
    """(position, segment length) of the first marker segment of a real JPEG
    whose marker is in `markers`; segments are walked from the SOI up to it."""
    pos = 2
    while pos + 4 <= len(data):
        assert data[pos] == 0xFF
        seg = data[pos + 2] << 8 | data[pos + 3]
        if data[pos + 1] in markers:
            return pos, seg
        pos += 2 + seg
    raise ValueError(f"no marker {markers} before the data ends")


def jpeg_set_size(data, w, h):
    """Rewrites the frame header (SOF0/1/2) size fields of a real JPEG."""
    b = bytearray(data)
    pos, _ = jpeg_find(b, (0xC0, 0xC1, 0xC2))
    struct.pack_into(">HH", b, pos + 5, h, w)
    return bytes(b)


def jpeg_dht_overflow(data):
    """A well-formed JPEG whose first Huffman table (DHT) declares 16 x 255 =
    4080 codes (the maximum is 256). stb_image 2.27 writes past its 257-entry
    tables for this (memory corruption; fixed upstream in 2.28): the engine
    must refuse it before the decoder sees it."""
    pos, seg = jpeg_find(data, (0xC4,))
    tc_th = data[pos + 4]
    table = bytes([tc_th]) + bytes([255] * 16) + bytes(range(256)) * 15 + bytes(range(240))
    new = b"\xFF\xC4" + struct.pack(">H", 2 + len(table)) + table
    return bytes(data[:pos]) + new + bytes(data[pos + 2 + seg:])


def jpeg_undefined_table(data):
    """A JPEG whose scan uses Huffman tables 1 (DC and AC) that no DHT defines.
    stb_image 2.27 does not zero its tables, so it decodes with uninitialised
    heap memory (MemorySanitizer: use-of-uninitialized-value in
    stbi__jpeg_huff_decode); with stale tables of an earlier image the symbol
    index can run far out of bounds (found by fuzz_image)."""
    b = bytearray(data)
    pos, _ = jpeg_find(b, (0xDA,))
    for i in range(b[pos + 4]):
        b[pos + 5 + 2 * i + 1] = 0x11
    return bytes(b)


def jpeg_empty_scan(data):
    """A JPEG cut at its first scan, ending with a start-of-scan segment whose
    length (2) leaves no room for the scan header itself. The engine's own
    JPEG walk read one byte past the buffer here (found by fuzz_classify)."""
    pos, _ = jpeg_find(data, (0xDA,))
    return data[:pos] + b"\xFF\xDA\x00\x02"


# ----------------------------------------------------------- hand-made others

def bmp_header(w, h, bpp=24, pixel_bytes=b"", colors=256, comp=0):
    """BITMAPINFOHEADER BMP; w, h are signed 32-bit as in the format; 8-bit
    files get a gray palette of `colors` entries."""
    off = 14 + 40 + (4 * colors if bpp == 8 else 0)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, bpp, comp, len(pixel_bytes), 2835, 2835,
                       colors if bpp == 8 else 0, 0)
    pal = b"".join(struct.pack("<BBBB", i, i, i, 0) for i in range(colors)) if bpp == 8 else b""
    body = info + pal + pixel_bytes
    return b"BM" + struct.pack("<IHHI", 14 + len(body), 0, 0, off) + body


def gif_header(w, h, iw=None, ih=None):
    """GIF89a claiming a w x h screen and one iw x ih image with a tiny LZW stream."""
    iw = w if iw is None else iw
    ih = h if ih is None else ih
    pal = b"".join(bytes((i, i, i)) for i in range(0, 256, 128))  # 2 colours
    out = b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + pal
    out += b"\x2C" + struct.pack("<HHHHB", 0, 0, iw, ih, 0)
    out += b"\x02\x02\x44\x01\x00"   # LZW min code size 2, one sub-block, terminator
    return out + b"\x3B"


# -------------------------------------------------------------------- model

def tiny_config():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import csasn_model as cm
    # S = 32, strides 2 (stem) * 2*2*2*2 = 32; taps at blocks 1 (S/8) and 2
    # (S/16); block 4 is stride 1 without expand conv and residual, block 3 a
    # 5x5 kernel, so every MBConv variant is exercised. ViT: 2x2 patches.
    return cm, cm.Config(
        name="tiny-hostile", source="random initialisation, torch seed 0 (tests/hostile/make_corpus.py)",
        description="11k-parameter CSASN for hostile-input tests and fuzzing; not a classifier",
        input_size=32, cnn_family="efficientnet", cnn_act="silu", cnn_stem=4,
        cnn_blocks=[[4, 8, 4, 3, 2, 2, 1], [4, 8, 8, 3, 2, 2, 1], [8, 16, 8, 3, 2, 2, 1],
                    [8, 16, 8, 5, 2, 2, 1], [8, 8, 8, 3, 1, 2, 0]],
        cnn_head=8, vit_patch=16, vit_dim=8, vit_depth=1, vit_heads=2, vit_mlp=16,
        fuse_channels=8, att_stages=2, att_reduction=2, att_kernel=3, cls_dim=8, cls_hidden=16,
        cls_blocks=1, head_segmentation=1, seg_channels=4, labels=["benign", "malignant"])


def tiny_model():
    """-> (meta, state) of the tiny model; deterministic (seeded)."""
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cm, cfg = tiny_config()
    m = cm.CSASN(cfg).eval()
    # BatchNorm statistics away from the (0, 1) defaults so that folding is not an identity.
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return cm.config_to_meta(cfg), {k: v.numpy() for k, v in cm.export_state(m).items()}


def model_bytes(meta, state, dtype="f16"):
    """fp16 by default: half the size in git; the loader paths are the same."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import csasn_format
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".csasn") as f:
        csasn_format.write(f.name, meta, state, dtype=dtype)
        return open(f.name, "rb").read()


def tensor_info_pos(data, name):
    """Byte offset of tensor `name`'s info entry (at its u32 name_len)."""
    nb = name.encode()
    key = struct.pack("<I", len(nb)) + nb
    i = data.index(key)
    return i


def hostile_models(meta, state):
    good = model_bytes(meta, state)   # fp16, the base every broken file is cut from
    out = []

    def add(name, data, what, expect):
        out.append((name, data, what, expect))

    add("model_empty.csasn", b"", "zero bytes", ["empty"])
    add("model_truncated_header.csasn", good[:10], "cut inside the 16-byte header", ["truncated"])
    add("model_truncated_meta.csasn", good[:200], "cut inside the metadata", ["truncated"])
    add("model_truncated_data.csasn", good[:len(good) // 2 + 7], "cut inside the tensor data",
        ["truncated"])
    add("model_bad_magic.csasn", b"GGUF" + good[4:], "wrong magic", ["magic"])
    add("model_text.csasn", b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n",
        "an HTML error page saved as a model", ["magic"])
    add("model_wrong_version.csasn", good[:4] + struct.pack("<I", 2) + good[8:], "version 2",
        ["version"])
    add("model_too_many_tensors.csasn", good[:12] + struct.pack("<I", 0xFFFFFFFF) + good[16:],
        "n_tensors = 2^32-1", ["too many tensors"])
    add("model_too_many_kv.csasn", good[:8] + struct.pack("<I", 1 << 30) + good[12:],
        "n_kv = 2^30", ["too many metadata"])
    # The last tensor's u64 offset pointing past the end of the file.
    last = list(state)[-1]
    p = tensor_info_pos(good, last)
    rank = state[last].ndim if state[last].ndim else 1
    op = p + 4 + len(last.encode()) + 8 + 4 * rank
    b = bytearray(good)
    struct.pack_into("<Q", b, op, (len(good) + 64 * 1024) // 64 * 64)
    add("model_offset_past_end.csasn", bytes(b), f"offset of '{last}' past the end",
        ["past end", "truncated"])
    struct.pack_into("<Q", b, op, 0xFFFFFFFFFFFFFFC0)
    add("model_offset_overflow.csasn", bytes(b), f"offset of '{last}' = 2^64-64 (overflows)",
        ["overflow", "past end", "truncated"])
    # A dimension of 2^24+1 (over the limit) in the first tensor.
    first = list(state)[0]
    p = tensor_info_pos(good, first) + 4 + len(first.encode()) + 8
    b = bytearray(good)
    struct.pack_into("<I", b, p, (1 << 24) + 1)
    add("model_dim_over_limit.csasn", bytes(b), f"dimension 2^24+1 in '{first}'", ["dimension"])
    b = bytearray(good)
    struct.pack_into("<I", b, p - 4, 0)
    add("model_rank0.csasn", bytes(b), f"rank 0 for '{first}'", ["rank"])
    # Architecture-level problems, written with the real writer.
    st = dict(state)
    st["head_subtype.weight"] = state["head_subtype.weight"].T.copy()
    add("model_wrong_shape.csasn", model_bytes(meta, st),
        "head_subtype.weight stored transposed [8,2] instead of [2,8]",
        ["head_subtype.weight"])
    st = dict(state)
    w = state["vit.blocks.0.fc1.weight"].copy()
    w[3, 5] = np.nan
    st["vit.blocks.0.fc1.weight"] = w
    add("model_nan.csasn", model_bytes(meta, st), "one NaN in vit.blocks.0.fc1.weight", ["nan"])
    st = dict(state)
    w = state["cnn.stem.conv.weight"].copy()
    w[0, 0, 0, 0] = np.inf
    st["cnn.stem.conv.weight"] = w
    add("model_inf_f32.csasn", model_bytes(meta, st, "f32"), "+inf in cnn.stem.conv.weight (fp32)",
        ["infinite", "inf"])
    st = {k: (v * np.float32(1e18) if k.endswith(".weight") and "bn" not in k and "ln" not in k else v)
          for k, v in state.items()}
    add("model_overflowing_weights.csasn", model_bytes(meta, st, "f32"),
        "every conv/linear weight x 1e18: finite, but the activations overflow to inf/NaN; the "
        "engine must report that instead of returning NaN probabilities",
        ["non-finite", "not finite", "overflow"])
    st = dict(state)
    del st["cls_ln.bias"]
    add("model_missing_tensor.csasn", model_bytes(meta, st), "cls_ln.bias missing",
        ["missing"])
    st = dict(state)
    st["extra.weight"] = np.ones(4, np.float32)
    add("model_unexpected_tensor.csasn", model_bytes(meta, st), "an extra tensor", ["unexpected"])
    mt = dict(meta)
    del mt["csasn.labels"]
    add("model_missing_meta.csasn", model_bytes(mt, state), "csasn.labels missing",
        ["csasn.labels"])
    mt = dict(meta)
    mt["csasn.input_size"] = 30
    add("model_bad_input_size.csasn", model_bytes(mt, state), "input size 30 (not a multiple of 32)",
        ["input_size", "inconsistent"])
    return good, out


# -------------------------------------------------------------------- images

def hostile_images():
    g = Image.fromarray(scan(64, 48, 1))
    png = png_bytes(g)
    jpg = enc(g, "JPEG", quality=90)
    out = []

    def add(name, data, what, expect):
        out.append((name, data, what, expect))

    add("empty.png", b"", "zero bytes", ["empty", "0 bytes"])
    add("empty.jpg", b"", "zero bytes", ["empty", "0 bytes"])
    add("trunc_mid_idat.png", png[:len(png) // 2], "PNG cut in the middle of IDAT", ["truncated"])
    add("trunc_no_iend.png", png[:-12], "PNG cut after its last IDAT (no IEND)", ["truncated"])
    add("trunc_header.png", png[:20], "PNG cut inside IHDR", ["truncated"])
    add("trunc_mid_scan.jpg", jpg[:len(jpg) // 2], "JPEG cut in the middle of the scan",
        ["truncated"])
    add("trunc_no_eoi.jpg", jpg[:-2], "JPEG without its end-of-image marker (FF D9)", ["truncated"])
    add("trunc_header.jpg", jpg[:30], "JPEG cut inside the APP0 / tables", ["truncated"])
    add("dht_overflow.jpg", jpeg_dht_overflow(jpg),
        "JPEG Huffman table with 4080 codes (max 256): stb_image 2.27 overflows its tables",
        ["huffman", "corrupt"])
    add("undefined_huffman_table.jpg", jpeg_undefined_table(jpg),
        "JPEG scan using Huffman tables no DHT defines (stb reads uninitialised memory)",
        ["huffman"])
    add("empty_scan_header.jpg", jpeg_empty_scan(jpg),
        "JPEG ending in a start-of-scan segment too short to hold its header (the engine's "
        "own header walk read past the buffer, found by fuzz_classify)", ["scan header", "empty"])
    add("index_past_palette.bmp", bmp_header(64, 48, 8, scan(64, 48, 1).tobytes(), colors=16),
        "8-bit BMP with a 16-colour palette and pixel values up to 255 (stb_image reads the "
        "unset palette entries from uninitialised stack memory)", ["palette"])
    add("cmyk_no_adobe.jpg", jpeg_strip_app14(enc(g.convert("CMYK"), "JPEG", quality=90)),
        "4-component (CMYK) JPEG without the Adobe APP14 marker: stb_image decodes it as YCbCr "
        "and drops K (wrong pixels, max error 2.7 after normalisation); refused instead",
        ["cmyk", "adobe"])
    add("negative_compression.bmp", bmp_header(64, 48, 24, b"\0" * 100, comp=0xFFFFFF00),
        "BMP with compression 0xFFFFFF00 (negative as int: stb_image takes it for uncompressed) "
        "and 100 of its 9216 pixel bytes", ["compression", "truncated"])
    add("trunc.bmp", enc(g, "BMP")[:-500], "BMP with 500 bytes of pixels missing", ["truncated"])
    add("trunc.pgm", enc(g, "PPM")[:-100], "PGM with 100 bytes of pixels missing", ["truncated"])
    gif = enc(g, "GIF")
    add("trunc.gif", gif[:len(gif) // 2], "GIF cut in the LZW data", ["truncated"])
    add("wrong_magic.png", b"\x89PNX" + png[4:], "PNG signature with one byte changed",
        ["not an image", "unrecognised"])
    add("wrong_magic.jpg", b"\xFF\xD8\x00" + jpg[3:], "JPEG SOI followed by a non-marker",
        ["not an image", "unrecognised"])
    add("text.png", b"This is a plain text file, not an image.\n" * 4, "text named .png",
        ["not an image", "unrecognised"])
    add("page.jpg", b"<!DOCTYPE html>\n<html><head><title>Scan</title></head>"
        b"<body><img src=\"scan.jpg\"></body></html>\n", "HTML named .jpg",
        ["not an image", "unrecognised"])
    add("json.png", b'{"image": "scan.png"}\n', "JSON named .png", ["not an image", "unrecognised"])
    # Headers claiming enormous sizes: must be refused before any allocation.
    big = "over the limit", "too large", "limit"
    add("huge_30000.png", png_raw(30000, 30000, b"\0" * 64), "PNG IHDR 30000x30000", list(big))
    add("huge_65535.png", png_raw(65535, 65535, b"\0" * 64), "PNG IHDR 65535x65535", list(big))
    add("huge_side_70000.png", png_raw(70000, 1, b"\0" * 64), "PNG IHDR 70000x1 (side > 65535)",
        list(big))
    add("huge_2g.png", png_raw(0x7FFFFFFF, 0x7FFFFFFF, b"\0" * 64), "PNG IHDR 2^31-1 square",
        list(big))
    add("huge_30000.jpg", jpeg_set_size(jpg, 30000, 30000), "JPEG SOF 30000x30000", list(big))
    add("huge_65535.jpg", jpeg_set_size(jpg, 65535, 65535), "JPEG SOF 65535x65535", list(big))
    add("huge_30000.bmp", bmp_header(30000, 30000, 24, b"\0" * 256), "BMP 30000x30000 24-bit",
        list(big))
    add("huge_topdown_30000.bmp", bmp_header(30000, -30000, 8, b"\0" * 256),
        "BMP 30000x-30000 (top-down) 8-bit", list(big))
    add("huge_30000.gif", gif_header(30000, 30000), "GIF screen and image 30000x30000", list(big))
    add("huge_65535.gif", gif_header(65535, 65535), "GIF 65535x65535", list(big))
    add("huge_30000.pgm", b"P5\n30000 30000\n255\n" + b"\0" * 256, "PGM 30000x30000", list(big))
    add("huge_100000.pgm", b"P5\n100000 100000\n255\n" + b"\0" * 256, "PGM 100000x100000",
        list(big))
    # Zero and negative sizes.
    # A generic "cannot read header / corrupt" is not enough: the message must say what is wrong.
    zero = ["no pixels", "0-pixel", "zero", "negative", "width", "height"]
    add("zero_width.png", png_raw(0, 16, b"\0"), "PNG IHDR width 0", zero)
    add("zero_height.png", png_raw(16, 0, b"\0"), "PNG IHDR height 0", zero)
    add("negative_width.png", png_raw(0xFFFFFFC0, 16, b"\0"), "PNG width 2^32-64 (negative as int)",
        zero + list(big))
    add("zero_height.jpg", jpeg_set_size(jpg, 64, 0), "JPEG SOF height 0", zero)
    add("zero_width.jpg", jpeg_set_size(jpg, 0, 48), "JPEG SOF width 0", zero)
    add("zero.bmp", bmp_header(0, 0, 24), "BMP 0x0", zero)
    add("negative_width.bmp", bmp_header(-64, 48, 24, b"\0" * (64 * 48 * 3)), "BMP width -64", zero)
    add("int_min_height.bmp", bmp_header(64, -2**31, 24, b"\0" * 256), "BMP height -2^31", zero + list(big))
    add("zero.gif", gif_header(0, 0), "GIF 0x0", zero)
    add("zero.pgm", b"P5\n0 0\n255\n", "PGM 0x0", zero)
    add("negative.pgm", b"P5\n-64 48\n255\n" + b"\0" * 3072, "PGM width -64", zero)
    add("maxval0.pgm", b"P5\n4 4\n0\n" + b"\0" * 16, "PGM maxval 0", ["maxval"])
    return out


def valid_images():
    g = scan(64, 48, 2)
    im = Image.fromarray(g)
    out = []

    def add(name, data, what):
        out.append((name, data, what))

    add("gray.png", png_bytes(im), "8-bit gray PNG (the reference the others are compared to)")
    add("1x1.png", png_bytes(Image.fromarray(np.array([[128]], np.uint8))), "1x1 gray PNG")
    g16 = (g.astype(np.uint16) * 257)
    add("gray16.png", png_bytes(Image.fromarray(g16, "I;16")), "16-bit gray PNG (same pixels)")
    add("palette.png", png_bytes(im.convert("P", palette=Image.ADAPTIVE, colors=256)),
        "8-bit palette PNG")
    add("gray_alpha.png", png_bytes(Image.merge("LA", (im, Image.new("L", im.size, 200)))),
        "gray + alpha PNG")
    add("rgba.png", png_bytes(Image.merge("RGBA", (im, im, im, Image.new("L", im.size, 90)))),
        "RGBA PNG (gray in colour, alpha ignored)")
    add("rgb.png", png_bytes(im.convert("RGB")), "RGB PNG")
    add("interlaced.png", png_raw_interlaced(g), "Adam7-interlaced gray PNG")
    add("baseline.jpg", enc(im, "JPEG", quality=95), "baseline gray JPEG")
    add("rgb.jpg", enc(im.convert("RGB"), "JPEG", quality=95), "baseline YCbCr JPEG")
    add("progressive.jpg", enc(im.convert("RGB"), "JPEG", quality=95, progressive=True),
        "progressive JPEG")
    add("cmyk.jpg", enc(im.convert("CMYK"), "JPEG", quality=95), "CMYK JPEG (Adobe APP14)")
    add("exif_thumb.jpg", jpeg_with_thumbnail(im), "JPEG with an EXIF thumbnail (inner FF D9)")
    frames = [im, Image.fromarray(255 - g), Image.fromarray(g // 2)]
    add("animated.gif", enc(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100,
                            loop=0), "3-frame animated GIF (first frame used)")
    add("gray8.bmp", enc(im, "BMP"), "8-bit palette BMP")
    add("rgb24.bmp", enc(im.convert("RGB"), "BMP"), "24-bit BMP")
    add("topdown.bmp", bmp_header(64, -48, 8, np.ascontiguousarray(g).tobytes()),
        "8-bit top-down BMP (negative height is valid)")
    add("gray.pgm", enc(im, "PPM"), "binary PGM (P5)")
    add("gray16.pgm", b"P5\n64 48\n65535\n" + g16.astype(">u2").tobytes(), "16-bit PGM")
    add("rgb.ppm", enc(im.convert("RGB"), "PPM"), "binary PPM (P6)")
    add("comment.pgm", b"P5\n# scanner export\n64 48\n# depth\n255\n" + g.tobytes(),
        "PGM with comments in the header")
    return out


def png_raw_interlaced(g):
    """Adam7 gray PNG written by hand (PIL cannot write interlaced PNG)."""
    h, w = g.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = g[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\0" + row.tobytes()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg_strip_app14(data):
    """Drops the Adobe APP14 segment (colour transform) of a JPEG."""
    b, pos, out = data, 2, bytearray(data[:2])
    while True:
        m = b[pos + 1]
        seg = b[pos + 2] << 8 | b[pos + 3]
        if m != 0xEE:
            out += b[pos:pos + 2 + seg]
        if m == 0xDA:
            return bytes(out + b[pos + 2 + seg:])
        pos += 2 + seg


def jpeg_with_thumbnail(im):
    """A JPEG whose APP1 holds a complete JPEG (its own FF D9): the end-marker
    check must not be fooled by it, nor reject the file."""
    thumb = enc(im.resize((16, 12)), "JPEG", quality=50)
    main = enc(im, "JPEG", quality=90)
    app1 = b"Exif\0\0" + thumb
    seg = b"\xFF\xE1" + struct.pack(">H", len(app1) + 2) + app1
    return main[:2] + seg + main[2:]


def large_images(d):
    """Big valid files, written at test time (not committed)."""
    os.makedirs(d, exist_ok=True)
    out = []

    def save(name, im, what, **kw):
        p = os.path.join(d, name)
        if not os.path.exists(p):
            im.save(p + ".tmp", format=name.rsplit(".", 1)[1].upper().replace("JPG", "JPEG"), **kw)
            os.replace(p + ".tmp", p)
        out.append({"file": name, "what": what, "w": im.size[0], "h": im.size[1]})

    save("1x3000.png", Image.fromarray(scan(1, 3000, 3)), "1 pixel wide, 3000 tall")
    save("4000x2.png", Image.fromarray(scan(4000, 2, 4)), "4000 wide, 2 tall")
    save("3000x1.jpg", Image.fromarray(scan(3000, 1, 5)), "3000x1 JPEG", quality=90)
    big = Image.fromarray(scan(7100, 7100, 6))   # 50.41 megapixels
    save("scan_50mp.png", big, "7100x7100 (50.4 MP) gray PNG", compress_level=1)
    save("scan_50mp.jpg", big, "7100x7100 (50.4 MP) gray JPEG", quality=85)
    with open(os.path.join(d, "large.json"), "w") as f:
        json.dump(out, f, indent=1)
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--large":
        for e in large_images(sys.argv[2]):
            print(e["file"], e["w"], e["h"])
        return 0
    if len(sys.argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    rej, val = os.path.join(HERE, "reject"), os.path.join(HERE, "valid")
    os.makedirs(rej, exist_ok=True)
    os.makedirs(val, exist_ok=True)
    manifest = {"images": [], "models": [], "tiny_model": "valid/model_tiny.csasn"}
    for name, data, what, expect in hostile_images():
        open(os.path.join(rej, name), "wb").write(data)
        manifest["images"].append({"file": "reject/" + name, "kind": "reject", "what": what,
                                   "expect": expect})
    for name, data, what in valid_images():
        open(os.path.join(val, name), "wb").write(data)
        manifest["images"].append({"file": "valid/" + name, "kind": "valid", "what": what})
    meta, state = tiny_model()
    good, models = hostile_models(meta, state)
    open(os.path.join(val, "model_tiny.csasn"), "wb").write(model_bytes(meta, state, "f32"))
    open(os.path.join(val, "model_tiny_f16.csasn"), "wb").write(good)
    manifest["models"].append({"file": "valid/model_tiny.csasn", "kind": "valid",
                               "what": "tiny CSASN, fp32"})
    manifest["models"].append({"file": "valid/model_tiny_f16.csasn", "kind": "valid",
                               "what": "tiny CSASN, fp16"})
    for name, data, what, expect in models:
        open(os.path.join(rej, name), "wb").write(data)
        e = {"file": "reject/" + name, "kind": "reject", "what": what, "expect": expect}
        if "overflow" in expect and "non-finite" in expect:
            e["loads"] = True   # a well-formed file: refused at the forward pass, not at load
        manifest["models"].append(e)
    manifest["large"] = "generated at test time: tests/hostile/make_corpus.py --large build/hostile"
    with open(os.path.join(HERE, "corpus.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    n = len(manifest["images"]) + len(manifest["models"])
    print(f"wrote {n} files to {rej} and {val}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
