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
