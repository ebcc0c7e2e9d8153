#!/usr/bin/python3
"""DICOM input, against tools no one here wrote (pydicom, DCMTK, GDCM).

The files are built now from real frames of ../shared/data (tests/dicomgen.py):
every transfer syntax the engine decodes x photometric x bit depth x planar
configuration x single/multi-frame x with/without ultrasound regions.
- the decoded frame (`csasn decode`) equals what pydicom decodes (lossless:
  max difference 0) and, where DCMTK writes the same depth, dcm2pnm / dcmj2pnm;
- lossless files classify exactly like the same pixels as PNG/PGM/PPM
  (probabilities within 1e-5), with the same ROI;
- JPEG frames classify exactly like the JPEG file they hold (same decoder), and
  their pixels are within the codec's tolerance of DCMTK's libjpeg decode;
- spacing_mm, roi_mm and the lesion diameters are recomputed here from the tags
  and the mask; the identifying tags never appear in the output;
- a hostile corpus is refused with a clear error, no crash, no probability.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import testlib as L  # noqa: E402
import dicomgen as G  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import csasn_format  # noqa: E402
import preprocess as P  # noqa: E402

CLI = L.CLI
MODEL = os.path.join(L.ROOT, "weights", "breast-busi.csasn")   # has a mask head
TIMEOUT = 1200 if L.SANITIZED else 300


def cli(args):
    return subprocess.run([CLI] + args, capture_output=True, text=True, errors="replace", timeout=TIMEOUT)


def classify(paths, extra=()):
    """-> one parsed JSON line per path (classify takes several files in one run)."""
    p = cli(["classify", "--model", MODEL, *extra, *paths])
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    assert len(rows) == len(paths), p.stderr
    return rows


def read_pnm(path):
    with open(path, "rb") as f:
        data = f.read()
    toks, pos = [], 2
    while len(toks) < 3:
        while data[pos:pos + 1].isspace():
            pos += 1
        s = pos
        while not data[pos:pos + 1].isspace():
            pos += 1
        toks.append(int(data[s:pos]))
    pos += 1
    w, h, mx = toks
    nc = 3 if data[:2] == b"P6" else 1
    a = np.frombuffer(data, ">u2" if mx > 255 else "u1", count=w * h * nc, offset=pos)
    return a.reshape((h, w, nc) if nc == 3 else (h, w)).astype(np.int64)


def decode(path, frame=1):
    out = os.path.join(G.OUT, "decoded.pnm")
    p = cli(["decode", "--frame", str(frame), "--out", out, path])
    if p.returncode != 0:
        return None, p.stderr.strip()
    return read_pnm(out), None


def main():
    if not L.cli_built():
        return 1
    cases = G.build()
    L.check("DICOM test files built with pydicom, DCMTK and GDCM", len(cases) >= 40, f"{len(cases)} cases")

    # 1. decoded pixels vs pydicom (our reference array) and DCMTK
    for c in cases:
        if c["pixels"] is None:
            continue
        got, err = decode(c["path"], c["frame"])
        name = f"{os.path.basename(c['path'])} frame {c['frame']} ({c['kind']})"
        if got is None:
            L.check(f"decode {name}", False, err)
            continue
        want = c["pixels"].astype(np.int64)
        tol = 0 if not c["lossy"] else 255
        diff = int(np.abs(got - want).max()) if got.shape == want.shape else None
        L.check(f"decode {name}: equals pydicom's pixels" + (" (lossless: max diff 0)" if not c["lossy"] else ""),
                diff is not None and diff <= tol, f"shape {got.shape} vs {want.shape}, max diff {diff}")
    # DCMTK's own decoder where it writes the same 8-bit samples. Not for MONOCHROME1 and YBR:
    # dcm2pnm renders those through its display pipeline (an inverse LUT, its own integer YBR
    # formula), 1-2 levels off pydicom's, which is the reference for them above.
    for c in cases:
        base = os.path.basename(c["path"])
        eight = not any(s in base for s in ("16", "12", "palette", "mono1", "ybr"))
        if not eight or (c["lossy"] and "rgb" in base):
            continue
        ref = os.path.join(G.OUT, "dcmtk.pnm")
        tool = "dcmj2pnm" if c["lossy"] else "dcm2pnm"
        p = subprocess.run([tool, "+F", str(c["frame"]), c["path"], ref], capture_output=True, text=True)
        if p.returncode != 0:
            L.check(f"{tool} reads {base}", False, p.stderr.strip())
            continue
        got, err = decode(c["path"], c["frame"])
        want = read_pnm(ref)
        # JPEG: both decoders are conformant IDCTs (ISO 10918-2 allows each output sample 1 level of error)
        tol = 0 if not c["lossy"] else 1
        diff = int(np.abs(got - want).max()) if got is not None and got.shape == want.shape else None
        L.check(f"{base} frame {c['frame']} decodes like {tool} (max diff <= {tol})",
                diff is not None and diff <= tol, f"max diff {diff} {err or ''}")

    # Colour JPEG frames against libjpeg (PIL) on the JPEG bytes the frame holds: stb_image upsamples
    # chroma by its own rounding, so single pixels at sharp colour edges differ (these frames put three
    # different scans in R, G, B: extreme chroma); the mean stays under one level.
    import io
    for c in cases:
        base = os.path.basename(c["path"])
        if not (c["lossy"] and "rgb" in base):
            continue
        data = open(c["path"], "rb").read()
        i, j = data.index(b"\xff\xd8\xff"), data.rindex(b"\xff\xd9")
        want = np.asarray(Image.open(io.BytesIO(data[i:j + 2])).convert("RGB")).astype(np.int64)
        got, err = decode(c["path"], c["frame"])
        d = float(np.abs(got - want).mean()) if got is not None else None
        L.check(f"{base}: colour JPEG frame decodes like libjpeg (mean diff {d:.3f} < 1 level)" if d is not None
                else f"{base}: decode", d is not None and d < 1.0, f"{err}")

    # 2. lossless: the same classification as the same pixels in a PNG/PGM/PPM (same ROI)
    lossless = [c for c in cases if not c["lossy"]]
    for c in lossless:
        dcm = classify([c["path"]], ["--frame", str(c["frame"]), "--mask"])[0]
        if "error" in dcm:
            L.check(f"classify {os.path.basename(c['path'])} frame {c['frame']}", False, dcm["error"])
            continue
        x, y, w, h = dcm["roi"]
        ref = classify([c["ref"]], ["--roi", f"{x},{y},{w},{h}", "--mask"])[0]
        d = max(abs(a - b) for a, b in zip(dcm["probs"], ref["probs"])) if "probs" in ref else None
        L.check(f"{os.path.basename(c['path'])} frame {c['frame']} ({c['kind']}) classifies like "
                f"{os.path.basename(c['ref'])} (probabilities within 1e-5)", d is not None and d <= 1e-5,
                f"max diff {d} {ref.get('error', '')}")
        L.check(f"{os.path.basename(c['path'])}: format, frame {c['frame']} of {c['frames']}",
                dcm["format"] == "dicom" and dcm["frame"] == c["frame"] and dcm["frames"] == c["frames"],
                f"{dcm['format']} {dcm['frame']}/{dcm['frames']}")
        c["row"] = dcm

    # 3. JPEG frames. Those that hold a JPEG file as it is (img2dcm, pydicom) classify exactly like that
    # file (the same decoder). The others classify like libjpeg's decode of the same frame saved as PNG
    # (dcmj2pnm for gray, PIL for colour) within 2e-2: the decoders differ by at most 1 level a gray
    # pixel (checked above, the IDCT accuracy ISO 10918-2 allows) and the probe below measures what
    # moving every pixel of a frame by 1 level does to the probabilities (must be under 2e-3, a
    # tenth of the tolerance; colour adds the chroma upsampling differences, mean < 1 level).
    g = G.frames(1)[0]
    a, b = G.png(g, "probe0.png"), G.png(np.clip(g.astype(int) + 1, 0, 255).astype(np.uint8), "probe1.png")
    ra, rb = classify([a, b])
    probe = max(abs(x - y) for x, y in zip(ra["probs"], rb["probs"]))
    L.check(f"a 1-level change of every pixel moves the probabilities by {probe:.2g} (< 2e-3)", probe < 2e-3,
            f"{probe}")
    import io
    for c in cases:
        if not c["lossy"]:
            continue
        base = os.path.basename(c["path"])
        dcm = classify([c["path"]], ["--frame", str(c["frame"])])[0]
        if "error" in dcm:
            L.check(f"{base} frame {c['frame']} ({c['kind']}) classifies", False, dcm["error"])
            continue
        x, y, w, h = dcm["roi"]
        if c.get("same_as"):
            ref = classify([c["same_as"]], ["--roi", f"{x},{y},{w},{h}"])[0]
            ok = "probs" in ref and dcm["probs"] == ref["probs"]
            L.check(f"{base} frame {c['frame']} ({c['kind']}) classifies exactly like "
                    f"{os.path.basename(c['same_as'])}", ok, f"{dcm['probs']} vs {ref.get('probs', ref.get('error'))}")
            continue
        if "rgb" in base:
            data = open(c["path"], "rb").read()
            i, j = data.index(b"\xff\xd8\xff"), data.rindex(b"\xff\xd9")
            pix = np.asarray(Image.open(io.BytesIO(data[i:j + 2])).convert("RGB"))
        else:
            pnm = os.path.join(G.OUT, "dcmtk.pnm")
            subprocess.run(["dcmj2pnm", "+F", str(c["frame"]), c["path"], pnm], check=True, capture_output=True)
            pix = read_pnm(pnm).astype(np.uint8)
        ref = classify([G.png(pix, "jpeg_ref.png")], ["--roi", f"{x},{y},{w},{h}"])[0]
        d = max(abs(p - q) for p, q in zip(dcm["probs"], ref["probs"]))
        L.check(f"{base} frame {c['frame']} ({c['kind']}) classifies like libjpeg's decode as PNG "
                f"(max diff {d:.2g} <= 2e-2)", d <= 2e-2, f"{d}")

    # 4. spacing, region, mm and diameters, recomputed here
    x0, y0, x1, y1 = G.REGION
    for c in lossless:
        r = c.get("row")
        if not r:
            continue
        name = os.path.basename(c["path"])
        if c.get("regions"):
            sx, sy = 10 * G.DELTA_CM[0], 10 * G.DELTA_CM[1]
            ok = (r["roi"] == [x0, y0, x1 - x0 + 1, y1 - y0 + 1] and r["roi_source"] == "tissue" and
                  r["spacing_mm"] is not None and abs(r["spacing_mm"][0] - sx) < 1e-6 and
                  abs(r["spacing_mm"][1] - sy) < 1e-6 and
                  abs(r["roi_mm"][0] - sx * (x1 - x0 + 1)) < 1e-3 and abs(r["roi_mm"][1] - sy * (y1 - y0 + 1)) < 1e-3)
            L.check(f"{name}: the tissue region is the ROI, spacing {sx:.3g} x {sy:.3g} mm, roi_mm", ok,
                    f"roi {r['roi']} spacing {r['spacing_mm']} roi_mm {r['roi_mm']}")
            # the mask covers the region the model read (its region geometry), not the ROI
            mask = np.asarray(r["mask"], np.float64)
            cw, ch = r["region"]["w"] / mask.shape[1], r["region"]["h"] / mask.shape[0]
            want = diameters(mask, cw, ch)
            want_mm = diameters(mask, cw * sx, ch * sy)
            if want is None:
                L.check(f"{name}: no lesion in the mask, none reported", r["lesion_px"] is None, f"{r['lesion_px']}")
            else:
                ok = (r["lesion_px"] is not None and np.allclose(r["lesion_px"], want, rtol=1e-4) and
                      r["lesion_mm"] is not None and np.allclose(r["lesion_mm"], want_mm, rtol=1e-4))
                L.check(f"{name}: lesion diameters {want[0]:.1f} x {want[1]:.1f} px = {want_mm[0]:.2f} x "
                        f"{want_mm[1]:.2f} mm, as recomputed from the mask", ok,
                        f"got {r['lesion_px']} px, {r['lesion_mm']} mm")
        else:
            ok = r["roi_source"] == "whole" and r["spacing_mm"] is None and r["roi_mm"] is None and r["lesion_mm"] is None
            L.check(f"{name}: no regions, no calibration: whole frame, mm null", ok, f"{r['roi_source']} {r['spacing_mm']}")
        L.check(f"{name}: modality and manufacturer", r["modality"] == "US" and r["manufacturer"] == "ACME Ultrasound",
                f"{r['modality']} {r['manufacturer']}")

    # The tissue region through a model's region geometry (square, letterbox): the region the
    # model read is tools/preprocess.py's region_geometry of the tissue box, and the lesion
    # diameters map the mask's cells through that region (letterbox: cells whose centre lies
    # outside the grown box show fill and do not count).
    meta, tensors, _ = csasn_format.read(MODEL)
    calibrated = [c for c in lossless if c.get("regions") and c.get("row")][:2]
    for mode, margin in (("square", 0.25), ("letterbox", 0.25)):
        model = os.path.join(G.OUT, f"busi_{mode}.csasn")
        csasn_format.write(model, dict(meta, **{"csasn.region_mode": mode, "csasn.region_margin": margin,
                                                "csasn.region_fill": 0.0}), tensors, "f32")
        m32 = float(np.float32(margin))
        for c in calibrated:
            name = f"{os.path.basename(c['path'])} ({mode} model)"
            p = cli(["classify", "--model", model, "--frame", str(c["frame"]), "--mask", c["path"]])
            r = json.loads(p.stdout.splitlines()[0])
            if "error" in r:
                L.check(f"{name}: classifies", False, r["error"])
                continue
            x0r, y0r, x1r, y1r, gx0, gy0, gx1, gy1 = P.region_geometry(r["roi"], r["image_w"], r["image_h"], mode, m32)
            L.check(f"{name}: the tissue region goes through the region geometry",
                    r["roi_source"] == "tissue" and r["roi"] == [x0, y0, x1 - x0 + 1, y1 - y0 + 1] and
                    r["region"] == {"x": x0r, "y": y0r, "w": x1r - x0r, "h": y1r - y0r} and x1r - x0r == y1r - y0r,
                    f"roi {r['roi']} region {r['region']}")
            sx, sy = 10 * G.DELTA_CM[0], 10 * G.DELTA_CM[1]
            mask = np.asarray(r["mask"], np.float64)
            cw, ch = (x1r - x0r) / mask.shape[1], (y1r - y0r) / mask.shape[0]
            if mode == "letterbox":
                cx = x0r + (np.arange(mask.shape[1]) + 0.5) * cw
                cy = y0r + (np.arange(mask.shape[0]) + 0.5) * ch
                inside = ((cy >= gy0) & (cy < gy1))[:, None] & ((cx >= gx0) & (cx < gx1))[None, :]
                mask = np.where(inside, mask, 0.0)
            want, want_mm = diameters(mask, cw, ch), diameters(mask, cw * sx, ch * sy)
            if want is None:
                L.check(f"{name}: no lesion in the mask, none reported", r["lesion_px"] is None, f"{r['lesion_px']}")
            else:
                ok = (r["lesion_px"] is not None and np.allclose(r["lesion_px"], want, rtol=1e-4) and
                      r["lesion_mm"] is not None and np.allclose(r["lesion_mm"], want_mm, rtol=1e-4))
                L.check(f"{name}: lesion {want[0]:.1f} x {want[1]:.1f} px = {want_mm[0]:.2f} x {want_mm[1]:.2f} mm "
                        f"from the mask over the region", ok, f"got {r['lesion_px']} px, {r['lesion_mm']} mm")

    # the calibration rules: a ROI outside the region, units that are not cm on both axes, PixelSpacing
    g = G.frames(1)[0]
    variants = [("roi_outside", [G.region()], None, ["--roi", "0,0,100,100"], None),
                ("units_mixed", [G.region(units=(3, 4))], None, [], None),
                ("regions_disagree", [G.region(), G.region(delta=(0.02, 0.02), x=(0, 0, 559, 359), rtype=0)], None,
                 [], None),
                ("pixel_spacing", None, (0.2, 0.25), [], (0.2, 0.25)),
                ("nested_agree", [G.region(), G.region(delta=G.DELTA_CM, x=(0, 0, 559, 359), rtype=0)], None,
                 [], (10 * G.DELTA_CM[0], 10 * G.DELTA_CM[1]))]
    for name, regs, spacing, extra, want in variants:
        ds = G.dataset(g.shape, 1, "MONOCHROME2", regions=regs, spacing=spacing)
        ds.PixelData = g.tobytes()
        p = G.save(ds, f"cal_{name}.dcm")
        r = classify([p], extra)[0]
        ok = r.get("spacing_mm") is None if want is None else (
            r.get("spacing_mm") is not None and np.allclose(r["spacing_mm"], want, rtol=1e-6))
        L.check(f"calibration {name}: spacing_mm {want}", ok, f"{r.get('spacing_mm')} {r.get('error', '')}")
    # colour: a Doppler-like overlay in the region, and a colour-flow region
    rgb = np.stack([g] * 3, -1).copy()
    rgb[150:200, 200:300] = (220, 30, 30)
    ds = G.dataset(rgb.shape, 3, "RGB", regions=[G.region()])
    ds.PixelData = rgb.tobytes()
    r = classify([G.save(ds, "doppler.dcm")])[0]
    L.check("a colour overlay in the region gives a warning", len(r.get("warnings", [])) == 1, f"{r.get('warnings')}")
    ds = G.dataset(g.shape, 1, "MONOCHROME2", regions=[G.region(), G.region(rtype=2, x=(200, 100, 300, 200))])
    ds.PixelData = g.tobytes()
    r = classify([G.save(ds, "colour_flow.dcm")])[0]
    L.check("a colour-flow region in the ROI gives a warning", any("colour-flow" in w for w in r.get("warnings", [])),
            f"{r.get('warnings')}")
    gray_rows = [c["row"] for c in lossless if c.get("row")]
    L.check("gray B-mode files have no warnings", all(not r["warnings"] for r in gray_rows[:5]), "")

    # 5. privacy: the fake patient never appears in anything the CLI prints
    p = cli(["classify", "--model", MODEL, "--mask", "--attention", *[c["path"] for c in cases[:10]]])
    text = p.stdout + p.stderr
    L.check("no identifying tag (PatientName, PatientID, BirthDate, Institution) in the CLI output",
            not any(s in text for s in (G.FAKE_NAME, "Doe", G.FAKE_ID, G.FAKE_BIRTH, "Fake Hospital")), "leaked")

    # 6. frames out of range, the hostile corpus
    r = classify([os.path.join(G.OUT, "mono2_8_mf.dcm")], ["--frame", "4"])[0]
    L.check("--frame 4 of 3 frames: a clear error", "error" in r and "3 frames" in r["error"], f"{r}")
    p = cli(["classify", "--model", MODEL, "--frame", "0", os.path.join(G.OUT, "mono2_8_mf.dcm")])
    L.check("--frame 0: usage error (frames count from 1)", p.returncode == 2, f"{p.returncode}")
    for name, path in G.hostile():
        p = cli(["classify", "--model", MODEL, path])
        try:
            r = json.loads(p.stdout.splitlines()[0])
        except (IndexError, ValueError):
            r = {}
        ok = p.returncode == 1 and "error" in r and "probs" not in r and len(r["error"]) > 10
        L.check(f"hostile {name}: refused ({r.get('error', '')[:160]})", ok, f"rc {p.returncode} {p.stderr[-300:]}")
    return L.exit_code()


def diameters(mask, cw, ch):
    """The lesion's longest diameter and the perpendicular one, by brute force over the corners of
    the largest 4-connected component's cells (independent of src/measure.c's convex hull)."""
    from scipy import ndimage
    fg = mask > 0.5
    if not fg.any():
        return None
    lab, n = ndimage.label(fg)   # 4-connectivity by default
    sizes = ndimage.sum(fg, lab, range(1, n + 1))
    comp = lab == 1 + int(np.argmax(sizes))
    ys, xs = np.nonzero(comp)
    pts = np.unique(np.concatenate([np.stack([(xs + dx) * cw, (ys + dy) * ch], -1)
                                    for dx in (0, 1) for dy in (0, 1)]), axis=0)
    d = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(np.argmax(d), d.shape)
    u = (pts[j] - pts[i]) / np.sqrt(d[i, j])
    t = pts @ np.array([-u[1], u[0]])
    return float(np.sqrt(d[i, j])), float(t.max() - t.min())


if __name__ == "__main__":
    sys.exit(main())
