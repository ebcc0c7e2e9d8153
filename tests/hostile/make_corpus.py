#!/usr/bin/python3
"""Generates the hostile-input corpus (every bad file gets a clear error), reproducibly.

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


def png_raw(w, h, rows=b"", color=0, depth=8, idat=True, interlace=0):
    """A PNG whose IHDR claims w x h (any u32), with `rows` as (filtered) image data."""
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
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


def png_interlaced(a, color, depth):
    """Adam7 PNG of a [h, w] or [h, w, c] uint8/uint16 array, written by hand."""
    h, w = a.shape[:2]
    dt = ">u2" if depth == 16 else "u1"
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b"".join(b"\0" + a[y, x0::dx].astype(dt).tobytes()
                   for x0, y0, dx, dy in passes if x0 < w for y in range(y0, h, dy))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 1))
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


# ------------------------------------------------- decoders: hand-made pieces

def tool(*args, data=None):
    """Runs an encoder of libjpeg-turbo-progs (jpegtran, cjpeg): an independent
    writer of restart intervals, scan scripts and arithmetic coding."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        argv = [a.replace("@D", d) if isinstance(a, str) else a for a in args]
        p = subprocess.run(argv, input=data, capture_output=True, check=True)
        return p.stdout


def jpeg_scans(data):
    """[(start, end)] of the entropy-coded data of each scan of a JPEG."""
    out, pos = [], 2
    while pos + 4 <= len(data):
        m = data[pos + 1]
        if m == 0xD9:
            break
        seg = data[pos + 2] << 8 | data[pos + 3]
        pos += 2 + seg
        if m == 0xDA:
            q = pos
            while not (data[q] == 0xFF and data[q + 1] not in (0x00, 0xFF) and not 0xD0 <= data[q + 1] <= 0xD7):
                q += 1
            out.append((pos, q))
            pos = q
    return out


def jpeg_cut_scan(data, scan, frac):
    """The JPEG up to `frac` of scan `scan`'s data, then FF D9: a cut file that
    still ends like a whole one."""
    s, e = jpeg_scans(data)[scan]
    return data[:s + int((e - s) * frac)] + b"\xFF\xD9"


def jpeg_short_interval(data, k):
    """A JPEG with restart markers whose interval k lost half its bytes (the
    markers all there): stb_image pads the interval with zero bits."""
    s, e = jpeg_scans(data)[0]
    rst = [i for i in range(s, e - 1) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]
    a, b = rst[k - 1] + 2, rst[k]
    return data[:a + (b - a) // 2] + data[b:]


def jpeg_set_component_ids(data, ids):
    """Component ids in the frame header and in every scan header."""
    b = bytearray(data)
    pos, _ = jpeg_find(b, (0xC0, 0xC1, 0xC2))
    old = [b[pos + 10 + 3 * i] for i in range(b[pos + 9])]
    for i, v in enumerate(ids):
        b[pos + 10 + 3 * i] = v
    pos = 2
    while b[pos + 1] != 0xD9:
        seg = b[pos + 2] << 8 | b[pos + 3]
        if b[pos + 1] == 0xDA:
            for j in range(b[pos + 4]):
                b[pos + 5 + 2 * j] = ids[old.index(b[pos + 5 + 2 * j])]
            s, e = [x for x in jpeg_scans(bytes(b)) if x[0] == pos + 2 + seg][0]
            pos = e
            continue
        pos += 2 + seg
    return bytes(b)


def jpeg_drop(data, marker):
    """Drops every segment with this marker before the first scan."""
    out, pos = bytearray(data[:2]), 2
    while True:
        m, seg = data[pos + 1], data[pos + 2] << 8 | data[pos + 3]
        if m == 0xDA:
            return bytes(out + data[pos:])
        if m != marker:
            out += data[pos:pos + 2 + seg]
        pos += 2 + seg


def jpeg_insert(data, segment):
    """Inserts a marker segment right after SOI."""
    return data[:2] + segment + data[2:]


def app14(transform):
    body = b"Adobe" + struct.pack(">HHHB", 100, 0, 0, transform)
    return b"\xFF\xEE" + struct.pack(">H", len(body) + 2) + body


def jpeg_patch_sof(data, marker, precision=None):
    """Changes the frame header's marker (SOF0 -> another SOFn) and precision."""
    b = bytearray(data)
    pos, _ = jpeg_find(b, (0xC0, 0xC1, 0xC2))
    b[pos + 1] = marker
    if precision is not None:
        b[pos + 4] = precision
    return bytes(b)


def tiff_orientation(o, big_endian=False):
    """A TIFF structure (as in EXIF) whose IFD0 holds ImageWidth then
    Orientation = o (SHORT); written here, read back by PIL and the engine."""
    e = ">" if big_endian else "<"
    head = (b"MM\0*" if big_endian else b"II*\0") + struct.pack(e + "I", 8)
    ifd = struct.pack(e + "H", 2) + struct.pack(e + "HHII", 0x0100, 4, 1, 64) \
        + struct.pack(e + "HHIHH", 0x0112, 3, 1, o, 0) + struct.pack(e + "I", 0)
    return head + ifd


def huff_segment(tc, th, lengths):
    """DHT segment: lengths = {symbol: code length}, canonical order."""
    counts = [0] * 16
    for s, l in lengths.items():
        counts[l - 1] += 1
    syms = bytes(sorted(lengths, key=lambda s: (lengths[s], s)))
    body = bytes([tc << 4 | th]) + bytes(counts) + syms
    return b"\xFF\xC4" + struct.pack(">H", len(body) + 2) + body


class BitWriter:
    def __init__(self):
        self.bits = []

    def put(self, v, n):
        self.bits += [(v >> (n - 1 - i)) & 1 for i in range(n)]

    def bytes(self):
        bits = self.bits + [1] * (-len(self.bits) % 8)   # pad with 1s, as encoders do
        out = bytearray()
        for i in range(0, len(bits), 8):
            byte = int("".join(map(str, bits[i:i + 8])), 2)
            out.append(byte)
            if byte == 0xFF:
                out.append(0)   # byte stuffing
        return bytes(out)


def jpeg_scan_bomb(w, h, n_scans, n_first=1):
    """A progressive gray JPEG of n_scans empty AC scans (n_first first scans,
    then refinements), each covering every block with end-of-band runs: a few
    bytes a scan, while stb_image visits all 63 coefficients of every block
    for each refinement."""
    blocks = ((w + 7) // 8) * ((h + 7) // 8)
    # EOBr symbols r << 4 (run 2^r + r extra bits), all with 4-bit codes
    syms = {r << 4: 4 for r in range(15)}
    codes = {s: i for i, s in enumerate(sorted(syms))}
    out = b"\xFF\xD8"
    out += b"\xFF\xDB" + struct.pack(">H", 67) + b"\x00" + bytes([1] * 64)
    out += b"\xFF\xC2" + struct.pack(">HBHHB", 11, 8, h, w, 1) + bytes([1, 0x11, 0])
    out += huff_segment(1, 0, syms)
    for i in range(n_scans):
        ah, al = (0, 1) if i < n_first else (1, 0)
        out += b"\xFF\xDA" + struct.pack(">HB", 8, 1) + bytes([1, 0x00, 1, 63, ah << 4 | al])
        bw, left = BitWriter(), blocks
        while left:
            r = min(14, left.bit_length() - 1)
            run = min(left, (1 << r) + (1 << r) - 1)
            bw.put(codes[r << 4], 4)
            if r:
                bw.put(run - (1 << r), r)
            left -= run
        out += bw.bytes()
    return out + b"\xFF\xD9"


def lzw_codes(pixels, cs, extra=None):
    """A GIF LZW stream for `pixels` (palette indices) written with literal
    codes only (the decoder still grows its table: code sizes follow it), then
    the codes of `extra` (a callable that gets the encoder state and yields
    codes), then the end code. -> list of (code, size)."""
    clear, end = 1 << cs, (1 << cs) + 1
    out = []
    st = {"avail": clear + 2, "size": cs + 1, "old": None}

    def emit(code):
        out.append((code, st["size"]))
        if code == clear:
            st.update(avail=clear + 2, size=cs + 1, old=None)
            return
        if st["old"] is not None:
            st["avail"] += 1
            if st["avail"] & ((1 << st["size"]) - 1) == 0 and st["avail"] <= 0xFFF:
                st["size"] += 1
        st["old"] = code

    emit(clear)
    for p in pixels:
        if st["avail"] >= 4094:
            emit(clear)
        emit(int(p))
    if extra:
        for code in extra(st, clear):
            emit(code)
    out.append((end, st["size"]))
    return out


def lzw_bytes(codes):
    acc = nbits = 0
    out = bytearray()
    for code, size in codes:
        acc |= code << nbits
        nbits += size
        while nbits >= 8:
            out.append(acc & 255)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 255)
    return bytes(out)


def gif_file(w, h, data, cs=8, colors=256):
    """GIF89a, one w x h image with a gray global palette and this LZW data
    (cut into sub-blocks)."""
    bits = max(1, (colors - 1).bit_length())
    pal = b"".join(bytes((i * 255 // ((1 << bits) - 1),) * 3) for i in range(1 << bits))
    out = b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80 | (bits - 1), 0, 0) + pal
    out += b"\x2C" + struct.pack("<HHHHB", 0, 0, w, h, 0) + bytes([cs])
    for i in range(0, len(data), 255):
        out += bytes([len(data[i:i + 255])]) + data[i:i + 255]
    return out + b"\x00\x3B"


def lzw_long_chains(limit_bytes):
    """Extra codes after a complete frame: clear, a literal, then each code the
    one just being defined (KwKwK), so the chains grow by one pixel a code,
    up to 4093; repeated until about limit_bytes of data."""
    def gen(st, clear):
        total = 0
        while total < limit_bytes * 8:
            yield clear
            yield 0
            total += 2 * 9
            while st["avail"] < 4094:
                total += st["size"]
                yield st["avail"]
    return gen


def png_apng(g_default, frames, default_in_animation):
    """APNG of 8-bit gray frames. default_in_animation: an fcTL before IDAT
    (the default image is frame 0); otherwise the default image is a separate
    picture and every frame is in fdAT chunks."""
    h, w = g_default.shape
    raw = lambda g: zlib.compress(b"".join(b"\0" + row.tobytes() for row in g))
    fctl = lambda seq: chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, w, h, 0, 0, 1, 10, 0, 0))
    n = len(frames) + (1 if default_in_animation else 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    out += chunk(b"acTL", struct.pack(">II", n, 0))
    seq = 0
    if default_in_animation:
        out += fctl(seq)
        seq += 1
    out += chunk(b"IDAT", raw(g_default))
    for f in frames:
        out += fctl(seq)
        out += chunk(b"fdAT", struct.pack(">I", seq + 1) + raw(f))
        seq += 2
    return out + chunk(b"IEND", b"")


def png_with_chunk_after_idat(data, typ, body):
    i = data.index(b"IEND") - 4
    return data[:i] + chunk(typ, body) + data[i:]


def bmp_palette(idx, bpp, palette, os2=False, top_down=False, clr_used=None):
    """Palette BMP written by hand: idx [h, w] indices, bpp 1/4/8, palette a
    list of (r, g, b); OS/2 1.x core header (3-byte entries) or Windows
    BITMAPINFOHEADER (4-byte entries)."""
    h, w = idx.shape
    stride = (bpp * w + 31) // 32 * 4
    rows = []
    for row in idx:
        bits = "".join(format(int(v), f"0{bpp}b") for v in row)
        bits += "0" * (stride * 8 - len(bits))
        rows.append(int(bits, 2).to_bytes(stride, "big"))
    if not top_down:
        rows = rows[::-1]
    pix = b"".join(rows)
    if os2:
        info = struct.pack("<IHHHH", 12, w, h, 1, bpp)
        pal = b"".join(bytes((b, g, r)) for r, g, b in palette)
    else:
        info = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, bpp, 0, len(pix), 2835, 2835,
                           len(palette) if clr_used is None else clr_used, 0)
        pal = b"".join(bytes((b, g, r, 0)) for r, g, b in palette)
    off = 14 + len(info) + len(pal)
    return b"BM" + struct.pack("<IHHI", off + len(pix), 0, 0, off) + info + pal + pix


def pgm16(g16, maxval=65535, rgb=False):
    return (b"P6" if rgb else b"P5") + f"\n{g16.shape[1]} {g16.shape[0]}\n{maxval}\n".encode() \
        + g16.astype(">u2").tobytes()


def decoder_rejects():
    """Files the decoders used to read wrong, or slowly: each must now be an
    error naming the problem."""
    g = scan(64, 48, 7)
    im = Image.fromarray(g)
    jpg = enc(im, "JPEG", quality=90)
    prog = enc(im.convert("RGB"), "JPEG", quality=90, progressive=True)
    restart = tool("jpegtran", "-restart", "1", data=jpg)
    gif_pixels = (g // 64).ravel()
    out = []

    def add(name, data, what, expect):
        out.append((name, data, what, expect))

    add("cut_ff_d9.jpg", jpeg_cut_scan(jpg, 0, 0.35),
        "baseline JPEG cut at a third of its scan, FF D9 appended (stb_image pads the scan with "
        "zero bits: two thirds of the picture flat grey, no error)", ["truncated"])
    add("cut_ff_d9_progressive.jpg", jpeg_cut_scan(prog, 2, 0.5),
        "progressive JPEG cut in its third scan, FF D9 appended", ["truncated"])
    add("short_restart_interval.jpg", jpeg_short_interval(restart, 3),
        "JPEG with restart markers whose 3rd interval lost half its bytes (stb pads it)", ["truncated"])
    add("scan_bomb.jpg", jpeg_scan_bomb(2048, 2048, 200),
        "4 KB progressive 2048x2048 JPEG of 200 empty refinement scans (each costs stb_image a pass "
        "over all 65536 blocks)", ["scans"])
    add("scan_count.jpg", jpeg_scan_bomb(256, 256, 17, 17),
        "progressive JPEG whose one component is in 17 scans (at most 16 are allowed)", ["17", "16 scans"])
    for m, kind in ((0xC3, "lossless"), (0xC5, "hierarchical"), (0xC9, "arithmetic")):
        add(f"sof_{kind}.jpg", jpeg_patch_sof(jpg, m), f"JPEG whose frame header says {kind} (SOF {m:#x})",
            ["unsupported jpeg variant"])
    add("arithmetic.jpg", tool("cjpeg", "-arithmetic", data=enc(im, "PPM")),
        "arithmetic-coded JPEG written by cjpeg", ["unsupported jpeg variant"])
    add("12bit.jpg", jpeg_patch_sof(jpg, 0xC1, precision=12), "extended JPEG with 12-bit samples",
        ["unsupported jpeg variant"])
    cmyk = enc(im.convert("CMYK"), "JPEG", quality=90)
    pos, _ = jpeg_find(cmyk, (0xEE,))
    add("cmyk_adobe_transform1.jpg", cmyk[:pos + 15] + b"\x01" + cmyk[pos + 16:],
        "4-component JPEG with Adobe transform 1: libjpeg reads YCCK, stb_image YCbCr dropping K",
        ["adobe", "4 components"])
    add("lzw_cut.gif", gif_file(64, 48, lzw_bytes(lzw_codes(gif_pixels[:1500], 8))),
        "GIF whose LZW data ends (with an end code) after 1500 of 3072 pixels: stb_image leaves "
        "the rest black", ["truncated"])
    add("lzw_past_frame.gif", gif_file(64, 48, lzw_bytes(lzw_codes(gif_pixels, 8, lzw_long_chains(256 * 1024)))),
        "GIF with 256 KB of LZW codes after its 64x48 frame is complete, each a chain of up to 4093 "
        "pixels (stb_image walks every chain: seconds)", ["past the end", "lzw"])
    add("lzw_code_size_13.gif", gif_file(64, 48, b"\x00" * 16, cs=13),
        "GIF with LZW minimum code size 13 (stb_image fails without saying why)", ["code size"])
    add("inflate_bomb.png", png_raw(1, 1, b"\0" * (32 << 20)),
        "1x1 gray PNG whose 32 KB of image data inflate to 32 MiB (stb_image inflates it all)",
        ["inflates"])
    add("decode_memory.png", png_raw(10000, 10000, b"\0" * 64, color=6, depth=16, interlace=1),
        "100 MP 16-bit RGBA interlaced PNG header: about 2.7 GB to decode (refused from the header)",
        ["memory"])
    f0, f1 = scan(64, 48, 8), scan(64, 48, 9)
    add("apng_hidden_default.png", png_apng(g, [f0, f1], False),
        "APNG whose default image (IDAT) is not part of the animation: the page shows frame 1, "
        "stb_image the hidden default image", ["apng"])
    png = png_bytes(im)
    add("exif_after_idat.png", png_with_chunk_after_idat(png, b"eXIf", tiff_orientation(6)),
        "PNG with an eXIf orientation chunk after the image data", ["exif"])
    add("ascii.pgm", b"P2\n4 2\n255\n" + b" ".join(b"%d" % v for v in range(8)) + b"\n",
        "plain (ASCII) PGM: refused by name, not as 'not an image'", ["plain", "ascii"])
    add("over_maxval.pgm", b"P5\n4 2\n100\n" + bytes([10, 20, 30, 200, 50, 60, 70, 80]),
        "PGM with a sample (200) over its maxval (100)", ["maxval"])
    return out


def decoder_valid():
    """Files the decoders used to read wrong (or refuse) that are valid: the
    engine must decode them as PIL does. -> (name, data, what, extra keys)."""
    g = scan(64, 48, 10)
    im = Image.fromarray(g)
    rng = np.random.default_rng(11)
    out = []

    def add(name, data, what, **kw):
        out.append((name, data, what, kw))

    for o in range(1, 9):
        tiff = tiff_orientation(o, big_endian=o % 2 == 0)
        add(f"exif_{o}.jpg", enc(im, "JPEG", quality=95, exif=b"Exif\0\0" + tiff),
            f"JPEG with EXIF orientation {o} ({'MM' if o % 2 == 0 else 'II'} byte order): analysed upright",
            orientation=o)
        if o > 1:
            add(f"exif_{o}.png", png_bytes(im, exif=b"Exif\0\0" + tiff),
                f"PNG with an eXIf chunk, orientation {o}", orientation=o)
    # 16-bit samples whose two bytes differ (g * 257 hides a byte swap).
    g16 = (g.astype(np.uint16) << 8) | rng.integers(0, 256, g.shape, dtype=np.uint16)
    add("gray16_be.pgm", pgm16(g16), "16-bit PGM, high and low bytes different")
    rgb16 = np.stack([g16, g16 // 2, 65535 - g16], -1)
    # PIL reduces 16-bit colour to 8 bits: half a level, 0.0087 after normalisation.
    add("rgb16_be.ppm", pgm16(rgb16, rgb=True), "16-bit PPM, colour", tol=0.01)
    # PIL scales maxval to 8 (or 16) bits and rounds: within half a level of
    # the engine's exact v / maxval, i.e. 0.5/255/0.225 = 0.0087 after
    # normalisation (16 bit: 3.4e-5).
    add("maxval4095.pgm", pgm16(g16 >> 4, maxval=4095), "12-bit data in a 16-bit PGM (maxval 4095)", tol=5e-5)
    add("maxval100.pgm", b"P5\n64 48\n100\n" + (g.astype(np.uint16) * 100 // 255).astype(np.uint8).tobytes(),
        "PGM with maxval 100", tol=0.01)
    add("maxval15.ppm", b"P6\n64 48\n15\n" + np.stack([g >> 4, g >> 5, 15 - (g >> 4)], -1).astype(np.uint8).tobytes(),
        "PPM with maxval 15", tol=0.01)
    tinted = Image.merge("RGB", (im, Image.fromarray((g * 0.8 + 20).astype(np.uint8)),
                                 Image.fromarray((g * 0.6 + 50).astype(np.uint8))))
    ycc = enc(tinted, "JPEG", quality=95)
    add("ycc_ids_rgb_jfif.jpg", jpeg_set_component_ids(ycc, b"RGB"),
        "YCbCr JPEG (JFIF marker) whose component ids are 'R','G','B': libjpeg reads YCbCr")
    add("ycc_ids_rgb_adobe1.jpg", jpeg_insert(jpeg_drop(jpeg_set_component_ids(ycc, b"RGB"), 0xE0), app14(1)),
        "YCbCr JPEG with ids 'R','G','B', no JFIF, Adobe transform 1: libjpeg reads YCbCr")
    add("rgb_ids_rgb.jpg", tool("cjpeg", "-rgb", "-quality", "95", data=enc(tinted, "PPM")),
        "RGB JPEG written by cjpeg -rgb (ids 'R','G','B', Adobe transform 0): RGB for everyone")
    idx = g.copy()
    idx[0, :8] = [252, 253, 254, 255, 252, 253, 254, 255]
    inv = [(255 - i, 255 - i, 255 - i) for i in range(256)]
    add("os2_palette256.bmp", bmp_palette(idx, 8, inv, os2=True),
        "OS/2 1.x BMP, 256-entry palette (inverted gray), indices 252..255 used")
    odd = g[:47, :61]
    pal16 = [(i * 17, i * 17, i * 17) for i in range(16)]
    add("palette4.bmp", bmp_palette(odd // 16, 4, pal16), "4-bit palette BMP, 61x47 (odd width)")
    add("palette1_topdown.bmp", bmp_palette((odd > 100).astype(np.uint8), 1, [(10, 20, 30), (240, 230, 220)],
                                            top_down=True), "1-bit top-down BMP, 61x47, colour palette")
    jpg = enc(im, "JPEG", quality=95)
    add("restart.jpg", tool("jpegtran", "-restart", "2B", data=jpg), "baseline JPEG, restart every 2 blocks")
    add("restart_progressive.jpg", tool("jpegtran", "-progressive", "-restart", "1", data=enc(tinted, "JPEG", quality=95)),
        "progressive colour JPEG with restart intervals")
    script = ("0: 0 0 0 1; 0: 1 2 0 1; 0: 3 5 0 1; 0: 6 9 0 1; 0: 10 14 0 1; 0: 15 20 0 1; 0: 21 27 0 1;"
              "0: 28 35 0 1; 0: 36 44 0 1; 0: 45 54 0 1; 0: 55 63 0 1; 0: 0 0 1 0;"
              "0: 1 9 1 0; 0: 10 27 1 0; 0: 28 44 1 0; 0: 45 63 1 0;")
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(script)
        f.flush()
        many = tool("jpegtran", "-scans", f.name, data=jpg)
    add("progressive_16_scans.jpg", many, "progressive gray JPEG of 16 scans (the most a component may have)")
    add("apng_default_first.png", png_apng(g, [scan(64, 48, 12)], True),
        "APNG whose default image is its first frame (analysed, like a GIF's first frame)")
    return out


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
    for name, data, what, expect in decoder_rejects():
        open(os.path.join(rej, name), "wb").write(data)
        manifest["images"].append({"file": "reject/" + name, "kind": "reject", "what": what,
                                   "expect": expect})
    for name, data, what in valid_images():
        open(os.path.join(val, name), "wb").write(data)
        manifest["images"].append({"file": "valid/" + name, "kind": "valid", "what": what})
    # extra keys: "orientation" (EXIF), "tol" (engine vs PIL, when PIL rounds)
    for name, data, what, extra in decoder_valid():
        open(os.path.join(val, name), "wb").write(data)
        manifest["images"].append({"file": "valid/" + name, "kind": "valid", "what": what, **extra})
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
