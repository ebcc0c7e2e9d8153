#!/usr/bin/python3
"""Writes the seed corpus tests/fuzz/corpus_dicom/ for fuzz_dicom.c: small DICOM
files of synthetic content (tests/hostile/make_corpus.py's speckle frames, never
real images) in every transfer syntax, photometric and depth the reader decodes,
made the way tests/dicomgen.py makes the test files (pydicom, DCMTK, GDCM).
Each file starts with the target's one control byte (the frame: 1 + byte % 4).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "hostile"))
import make_corpus as mc  # noqa: E402
import dicomgen as G  # noqa: E402
from pydicom.uid import ImplicitVRLittleEndian  # noqa: E402

OUT = os.path.join(HERE, "corpus_dicom")


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    tmp = tempfile.mkdtemp()
    G.OUT = tmp
    g = mc.scan(24, 16, 3)
    rgb = np.stack([mc.scan(24, 16, s) for s in (4, 5, 6)], -1)
    reg = [G.region(x=(2, 2, 21, 13))]
    files = {}
    ds = G.dataset(g.shape, 1, "MONOCHROME2", regions=reg)
    ds.PixelData = g.tobytes()
    files["mono8.dcm"] = G.save(ds, "mono8.dcm")
    ds = G.dataset(g.shape, 1, "MONOCHROME1", bits=16, stored=12, ts=ImplicitVRLittleEndian)
    ds.PixelData = (g.astype("<u2") * 16).tobytes()
    files["mono1_12_implicit.dcm"] = G.save(ds, "mono1_12_implicit.dcm")
    ds = G.dataset(rgb.shape, 3, "RGB", nframes=2)
    ds.PlanarConfiguration = 1
    ds.PixelData = np.stack([rgb, rgb]).transpose(0, 3, 1, 2).tobytes()
    files["rgb_planar_mf.dcm"] = G.save(ds, "rgb_planar_mf.dcm")
    ds = G.dataset(rgb.shape, 3, "YBR_FULL_422")
    y = G.ybr_full(rgb)
    ds.PixelData = np.stack([y[:, 0::2, 0], y[:, 1::2, 0], y[:, 0::2, 1], y[:, 0::2, 2]], -1).tobytes()
    files["ybr422.dcm"] = G.save(ds, "ybr422.dcm")
    ds = G.dataset(g.shape, 1, "PALETTE COLOR")
    for tag in ("Red", "Green", "Blue"):
        setattr(ds, f"{tag}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{tag}PaletteColorLookupTableData", (np.arange(256, dtype="<u2") * 257).tobytes())
    ds.PixelData = g.tobytes()
    files["palette.dcm"] = G.save(ds, "palette.dcm")
    for name, cmd, src in (("rle.dcm", ["dcmcrle"], "mono8.dcm"), ("rle_rgb_mf.dcm", ["gdcmconv", "--rle"], "rgb_planar_mf.dcm"),
                           ("jpeg.dcm", ["dcmcjpeg", "+eb"], "mono8.dcm"), ("jpeg_rgb_mf.dcm", ["dcmcjpeg", "+eb"], "rgb_planar_mf.dcm"),
                           ("deflated.dcm", ["dcmconv", "+td"], "mono8.dcm")):
        out = os.path.join(tmp, name)
        subprocess.run(cmd + [files[src], out], check=True, capture_output=True)
        files[name] = out
    for i, (name, path) in enumerate(sorted(files.items())):
        with open(path, "rb") as f:
            data = f.read()
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([i % 2]) + data)
    shutil.rmtree(tmp)
    print(f"{len(files)} seeds in {OUT}")


if __name__ == "__main__":
    main()
