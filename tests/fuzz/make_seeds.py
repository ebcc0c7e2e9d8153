#!/usr/bin/python3
"""Writes the libFuzzer seed corpora tests/fuzz/corpus_{model_load,image,classify}/
from synthetic content (reproducible; reuses tests/hostile/make_corpus.py's
generators). Small files only: libFuzzer mutates them, so every format and
each of its variants (16-bit, palette, alpha, progressive, interlaced, ...)
should be present once, small.

Image seeds start with the fuzz targets' control prefix: one flag byte (bit 0:
a 16-byte ROI x,y,w,h int32 LE follows; bits 1..6: output size - 1 for
fuzz_image), see fuzz_image.c.
"""
import os
import shutil
import struct
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "hostile"))
import make_corpus as mc  # noqa: E402


def small_images():
    g = mc.scan(24, 16, 7)
    im = Image.fromarray(g)
    g16 = g.astype(np.uint16) * 257
    out = {
        "gray.png": mc.png_bytes(im),
        "gray16.png": mc.png_bytes(Image.fromarray(g16, "I;16")),
        "palette.png": mc.png_bytes(im.convert("RGB").convert("P", palette=Image.ADAPTIVE, colors=16)),
        "la.png": mc.png_bytes(Image.merge("LA", (im, im))),
        "rgba.png": mc.png_bytes(Image.merge("RGBA", (im, im, im, im))),
        "interlaced.png": mc.png_raw_interlaced(g),
        "gray.jpg": mc.enc(im, "JPEG", quality=80),
        "rgb.jpg": mc.enc(im.convert("RGB"), "JPEG", quality=80, subsampling=2),
        "progressive.jpg": mc.enc(im.convert("RGB"), "JPEG", quality=80, progressive=True),
        "cmyk.jpg": mc.enc(im.convert("CMYK"), "JPEG", quality=80),
        "anim.gif": mc.enc(im, "GIF", save_all=True, append_images=[Image.fromarray(255 - g)]),
        "gray8.bmp": mc.enc(im, "BMP"),
        "rgb24.bmp": mc.enc(im.convert("RGB"), "BMP"),
        "rgba32.bmp": mc.enc(Image.merge("RGBA", (im, im, im, im)), "BMP"),
        "gray.pgm": mc.enc(im, "PPM"),
        "rgb.ppm": mc.enc(im.convert("RGB"), "PPM"),
        "gray16.pgm": b"P5\n24 16\n65535\n" + g16.astype(">u2").tobytes(),
        "1x1.png": mc.png_bytes(Image.fromarray(np.array([[9]], np.uint8))),
        "1x40.png": mc.png_bytes(Image.fromarray(mc.scan(1, 40, 8))),
        "40x1.bmp": mc.enc(Image.fromarray(mc.scan(40, 1, 9)), "BMP"),
        "trunc.jpg": mc.enc(im, "JPEG")[:-2],
        "huge.png": mc.png_raw(30000, 30000, b"\0" * 16),
        "huge.gif": mc.gif_header(30000, 30000),
    }
    # The decoders' own paths: EXIF orientation, restart intervals, a many-scan
    # progression, JPEG colour markers, palette BMPs (OS/2, 4- and 1-bit), PNM
    # maxval and 16-bit colour, APNG, a hand-written LZW stream.
    tiff = mc.tiff_orientation(6, big_endian=True)
    jpg = mc.enc(im, "JPEG", quality=80)
    rgbj = mc.enc(Image.merge("RGB", (im, im.point(lambda v: v // 2), im)), "JPEG", quality=80)
    script = "0: 0 0 0 1; 0: 1 5 0 2; 0: 6 63 0 2; 0: 1 63 2 1; 0: 0 0 1 0; 0: 1 63 1 0;"
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(script)
        f.flush()
        scans = mc.tool("jpegtran", "-scans", f.name, "-restart", "1", data=jpg)
    out.update({
        "exif6.jpg": mc.enc(im, "JPEG", quality=80, exif=b"Exif\0\0" + tiff),
        "exif6.png": mc.png_bytes(im, exif=b"Exif\0\0" + tiff),
        "restart.jpg": mc.tool("jpegtran", "-restart", "1B", data=jpg),
        "scans_restart.jpg": scans,
        "ids_rgb.jpg": mc.jpeg_set_component_ids(rgbj, b"RGB"),
        "adobe1.jpg": mc.jpeg_insert(mc.jpeg_drop(rgbj, 0xE0), mc.app14(1)),
        "os2.bmp": mc.bmp_palette(g, 8, [(i, i, i) for i in range(256)], os2=True),
        "pal4.bmp": mc.bmp_palette(g[:, :23] // 16, 4, [(i * 17,) * 3 for i in range(16)]),
        "pal1.bmp": mc.bmp_palette((g[:15] > 90).astype(np.uint8), 1, [(0, 0, 0), (255, 255, 255)], top_down=True),
        "maxval100.pgm": b"P5\n24 16\n100\n" + (g.astype(np.uint16) * 100 // 255).astype(np.uint8).tobytes(),
        "rgb16.ppm": mc.pgm16(np.stack([g16, g16 // 3, g16], -1), rgb=True),
        "apng.png": mc.png_apng(g, [255 - g], True),
        "lzw.gif": mc.gif_file(24, 16, mc.lzw_bytes(mc.lzw_codes((g // 4).ravel(), 6)), cs=6, colors=64),
    })
    return out


def main():
    dirs = {k: os.path.join(HERE, "corpus_" + k) for k in ("model_load", "image", "classify")}
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    imgs = small_images()
    roi = struct.pack("<iiii", 3, 2, 15, 11)
    for name, data in imgs.items():
        # fuzz_image: output size 32 (flags bits 1..6 = 31), whole image
        open(os.path.join(dirs["image"], name), "wb").write(bytes([31 << 1]) + data)
        open(os.path.join(dirs["classify"], name), "wb").write(b"\0" + data)
    # A few with a ROI and other output sizes.
    for name in ("gray.png", "gray.jpg", "rgb24.bmp", "gray16.pgm"):
        open(os.path.join(dirs["image"], "roi_" + name), "wb").write(bytes([1 | (6 << 1)]) + roi + imgs[name])
        open(os.path.join(dirs["classify"], "roi_" + name), "wb").write(b"\x01" + roi + imgs[name])
    meta, state = mc.tiny_model()
    good = mc.model_bytes(meta, state, "f16")
    m = os.path.join(dirs["model_load"], "tiny_f16.csasn")
    open(m, "wb").write(good)
    open(os.path.join(dirs["model_load"], "header_only.csasn"), "wb").write(good[:16])
    # Metadata only (no tensors): reaches the hyperparameter checks cheaply.
    hdr = mc.model_bytes(meta, {}, "f16")
    open(os.path.join(dirs["model_load"], "meta_only.csasn"), "wb").write(hdr)
    n = sum(len(os.listdir(d)) for d in dirs.values())
    print(f"wrote {n} seeds")


if __name__ == "__main__":
    main()
