#!/usr/bin/python3
"""Worst cases of the image decoders under the engine's limits: time and memory.

    tools/decode_worst.py [--model FILE] [--wasm] [--only SUBSTRING]

Writes, into build/worst/, the most expensive file of each format that the
limits still accept (100 MP, 256 MiB file, 1 GiB decode memory, 16 scans and
4 refinement passes per JPEG component, GIF LZW bounded by the frame) and the
bombs they refuse, runs `csasn preprocess` on each (the decode and the resize,
not the network) and prints a Markdown table: CPU time (wall time in
brackets: on a shared machine the CPU time is the comparable figure) and peak
RSS of the CLI, the engine's decode-memory estimate, and with --wasm the same
times and the wasm memory of the JS API in node (a fresh engine per file: wasm memory never
shrinks). Not a test (no timing is asserted anywhere); README's Limits table
comes from it.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "hostile"))
import make_corpus as M  # noqa: E402

OUT = os.path.join(ROOT, "build", "worst")
CLI = os.path.join(ROOT, "build", "csasn")


def big_scan(w, h, seed):
    return M.scan(w, h, seed)


def png_stream(path, w, h, depth, color, interlace, row):
    """Writes a PNG row by row (row(y) -> filtered bytes, filter byte included)
    without holding the image: zlib level 1, one IDAT per MiB."""
    z = zlib.compressobj(1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + M.chunk(b"IHDR", M.struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)))
        buf = b""
        for y in range(h):
            buf += z.compress(row(y))
            if len(buf) > 1 << 20:
                f.write(M.chunk(b"IDAT", buf))
                buf = b""
        buf += z.flush()
        f.write(M.chunk(b"IDAT", buf) + M.chunk(b"IEND", b""))


def files():
    """-> [(name, what, path, expect_ok)] after writing what is missing."""
    os.makedirs(OUT, exist_ok=True)
    out = []

    def want(name, what, make, ok=True):
        p = os.path.join(OUT, name)
        if not os.path.exists(p):
            t = time.time()
            make(p + ".tmp")
            os.replace(p + ".tmp", p)
            print(f"# wrote {name} in {time.time() - t:.0f} s", file=sys.stderr, flush=True)
        out.append((name, what, p, ok))

    W = H = 10000
    g = None

    def scan100():
        nonlocal g
        if g is None:
            g = big_scan(W, H, 21)
        return g

    def rgba_png(p):
        s = scan100()
        png_stream(p, W, H, 8, 6, 0, lambda y: b"\0" + np.stack([s[y], s[y], s[y], 255 - s[y]], -1).tobytes())
    want("png_rgba8_100mp.png", "PNG 10000x10000 RGBA 8-bit", rgba_png)

    def gray16_lace(p):
        # Adam7 by hand: the passes' rows, each pass a sub-image of the scan.
        s = scan100().astype(np.uint16) * 257
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        rows = [(x0, y0, dx, dy, y) for x0, y0, dx, dy in passes for y in range(y0, H, dy)]
        z = zlib.compressobj(1)
        data = b"".join(z.compress(b"\0" + s[y, x0::dx].astype(">u2").tobytes()) for x0, y0, dx, dy, y in rows)
        data += z.flush()
        with open(p, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + M.chunk(b"IHDR", M.struct.pack(">IIBBBBB", W, H, 16, 0, 0, 0, 1)))
            for i in range(0, len(data), 1 << 20):
                f.write(M.chunk(b"IDAT", data[i:i + (1 << 20)]))
            f.write(M.chunk(b"IEND", b""))
    want("png_gray16_interlaced_100mp.png", "PNG 10000x10000 16-bit gray, interlaced", gray16_lace)

    def png_bomb(p):
        # header RGBA 10000x10000, data inflating to twice what it needs
        need = W * 4 + 1
        png_stream(p, W, H * 2, 8, 6, 0, lambda y: b"\0" * need)
        b = bytearray(open(p, "rb").read())
        b[16:24] = M.struct.pack(">II", W, H)
        b[29:33] = M.struct.pack(">I", zlib.crc32(bytes(b[12:29])))
        open(p, "wb").write(bytes(b))
    want("png_bomb_100mp.png", "PNG bomb: RGBA 10000x10000 header, data inflating to 2x", png_bomb, ok=False)

    def jpeg444(p):
        s = Image.fromarray(scan100())
        Image.merge("RGB", (s, s.point(lambda v: v * 3 // 4 + 30), s.point(lambda v: 255 - v))).save(
            p, "JPEG", quality=95, subsampling=0)
    want("jpeg_444_100mp.jpg", "JPEG 10000x10000 colour 4:4:4 baseline q95", jpeg444)

    def jpeg_prog(p):
        s = Image.fromarray(scan100())
        Image.merge("RGB", (s, s.point(lambda v: v * 3 // 4 + 30), s.point(lambda v: 255 - v))).save(
            p, "JPEG", quality=95, progressive=True)
    want("jpeg_progressive_420_100mp.jpg", "JPEG 10000x10000 colour 4:2:0 progressive (libjpeg's 10 scans)", jpeg_prog)

    want("jpeg_scan_bomb_max_100mp.jpg", "JPEG 10000x10000 gray, 16 empty scans (12 first, 4 full refinements): the "
         "most the bounds allow", lambda p: open(p, "wb").write(M.jpeg_scan_bomb(W, H, 16, 12)))
    want("jpeg_scan_bomb_over_100mp.jpg", "JPEG 10000x10000 gray, 200 empty refinement scans",
         lambda p: open(p, "wb").write(M.jpeg_scan_bomb(W, H, 200, 1)), ok=False)

    def gif100(p):
        Image.fromarray(scan100() // 4 * 4).save(p, "GIF")
    want("gif_100mp.gif", "GIF 10000x10000 (PIL's LZW)", gif100)

    def gif_bomb(p):
        pix = (big_scan(64, 64, 3) // 4).ravel()
        open(p, "wb").write(M.gif_file(64, 64, M.lzw_bytes(M.lzw_codes(pix, 6, M.lzw_long_chains(5 << 20))),
                                       cs=6, colors=64))
    want("gif_lzw_bomb.gif", "GIF 64x64 with 5 MB of long-chain LZW codes past the frame", gif_bomb, ok=False)

    def bmp24(p):
        Image.fromarray(np.repeat(big_scan(9000, 9000, 22)[..., None], 3, -1)).save(p, "BMP")
    want("bmp_24bit_81mp.bmp", "BMP 9000x9000 24-bit (243 MB)", bmp24)

    def bmp8(p):
        Image.fromarray(scan100()).save(p, "BMP")
    want("bmp_8bit_100mp.bmp", "BMP 10000x10000 8-bit palette (read in place)", bmp8)

    def ppm16(p):
        s = big_scan(6600, 6700, 23).astype(np.uint16) * 257
        open(p, "wb").write(M.pgm16(np.stack([s, s, s], -1), rgb=True))
    want("ppm_16bit_44mp.ppm", "PPM 6600x6700 16-bit RGB (265 MB, read in place)", ppm16)
    return out


def run_cli(model, path):
    code = ("import resource, subprocess, sys, time\n"
            "t = time.time(); p = subprocess.run(sys.argv[1:], capture_output=True)\n"
            "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "sys.stdout.write('%.3f %.3f %d\\n' % (time.time() - t, u.ru_utime + u.ru_stime, u.ru_maxrss))\n"
            "sys.stdout.write(p.stdout.decode() + p.stderr.decode())\n")
    p = subprocess.run([sys.executable, "-c", code, CLI, "preprocess", "--model", model, "--out",
                        os.path.join(OUT, "input.f32"), path], capture_output=True, text=True)
    first, rest = p.stdout.split("\n", 1)
    t, cpu, rss = first.split()
    return float(t), float(cpu), int(rss) / 1024, rest.strip()


NODE = r"""
const fs = require('fs'), path = require('path');
(async () => {
  const api = await import(path.join(process.argv[1], 'build/wasm/csasn.js'));
  const wasmBinary = fs.readFileSync(path.join(process.argv[1], 'build/wasm/csasn.wasm'));
  const c = await api.createClassifier(fs.readFileSync(process.argv[2]), { wasmBinary });
  // Warm-up on the small corpus files of every format: V8 compiles wasm functions on first
  // use, which would otherwise count in the first large decode.
  const hv = path.join(process.argv[1], 'tests/hostile/valid');
  for (const f of ['gray.png', 'interlaced.png', 'progressive.jpg', 'rgb.jpg', 'animated.gif', 'rgb24.bmp', 'gray8.bmp', 'gray16.pgm']) {
    await c.classify(fs.readFileSync(path.join(hv, f)));
  }
  const m0 = c.memoryBytes(), bytes = fs.readFileSync(process.argv[3]);
  const t = performance.now(), u = process.cpuUsage();
  let err = null;
  try { await c.classify(bytes); } catch (e) { err = e.message; }
  const cu = process.cpuUsage(u);
  console.log(JSON.stringify({ ms: performance.now() - t, cpu: (cu.user + cu.system) / 1000, mem0: m0, mem: c.memoryBytes(), err }));
})();
"""


def run_wasm(model, path):
    p = subprocess.run(["node", "-e", NODE, ROOT, model, path], capture_output=True, text=True,
                       env=dict(os.environ, NODE_PATH="/usr/share/nodejs"))
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"err": (p.stdout + p.stderr)[-300:]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "weights", "thyroid-ddti.csasn"))
    ap.add_argument("--wasm", action="store_true")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    rows = []
    for name, what, path, ok in files():
        if a.only not in name:
            continue
        t, cpu, rss, out = run_cli(a.model, path)
        try:
            j = json.loads(out)
            est = f"{j['decode_bytes']['estimate'] / 2**20:.0f} MiB"
            res = "decoded"
        except ValueError:
            est, res = "-", "refused: " + out.split(": ", 2)[-1][:90]
        row = (f"| {what} | {os.path.getsize(path) / 2**20:.1f} MiB | {res} | {cpu:.2f} s ({t:.2f} s) "
               f"| {rss:.0f} MiB | {est} |")
        if a.wasm:
            w = run_wasm(a.model, path)
            row += (f" {w['cpu'] / 1000:.2f} s ({w['ms'] / 1000:.2f} s) | {w['mem'] / 2**20:.0f} MiB |" if "ms" in w
                    else f" error {w.get('err')} | |")
        rows.append(row)
        print(row, flush=True)
        if ok != (res == "decoded"):
            print(f"# unexpected: {name} should {'decode' if ok else 'be refused'}", flush=True)
    head = "| file | size | CLI | CLI CPU (wall) | CLI peak RSS | decode estimate |"
    if a.wasm:
        head += " wasm in node CPU (wall) | wasm memory |"
    print("\n" + head)
    print("|" + "---|" * (head.count("|") - 1))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
