"""DICOM test files built at test time (not a suite itself): from real images in
../shared/data with pydicom, DCMTK and GDCM, into build/dicom/. Used by
tests/test_dicom.py and (through `dicomgen.py DIR`) tests/test_dicom_node.cjs.

Every file carries a fake patient (PatientName "Doe^Jane", PatientID
"CSASN-FAKE-ID-4711", a birth date) so that the tests can show that none of it
ever leaves the engine.
"""
import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as L  # noqa: E402

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit,  # noqa: E402
                         RLELossless, generate_uid)
from PIL import Image  # noqa: E402

OUT = os.path.join(L.ROOT, "build", "dicom")
FAKE_NAME, FAKE_ID, FAKE_BIRTH = "Doe^Jane", "CSASN-FAKE-ID-4711", "19700101"
FRAMES_DIR = os.path.join(L.DATA, "ddti_frames", "frames")
# The tissue region written into the files that have one (inclusive corners), and its calibration.
REGION = (60, 20, 480, 300)
DELTA_CM = (0.0123, 0.0117)


def frames(n=3):
    """n real scanner frames (gray, 560x360), sorted, deterministic."""
    names = sorted(f for f in os.listdir(FRAMES_DIR) if f.endswith(".png"))[:n]
    return [np.asarray(Image.open(os.path.join(FRAMES_DIR, f)).convert("L")) for f in names]


def colour(fr):
    """A colour picture from real pixels: three different frames as R, G, B."""
    return np.stack(fr[:3], axis=-1)


def region(rtype=1, x=REGION, units=(3, 3), delta=DELTA_CM):
    r = Dataset()
    r.RegionSpatialFormat = 1
    r.RegionDataType = rtype
    r.RegionFlags = 0
    r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x
    r.PhysicalUnitsXDirection, r.PhysicalUnitsYDirection = units
    r.PhysicalDeltaX, r.PhysicalDeltaY = delta
    return r


def dataset(shape, spp, photo, bits=8, stored=None, nframes=1, regions=None, ts=ExplicitVRLittleEndian,
            spacing=None):
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1" if nframes > 1 else "1.2.840.10008.5.1.4.1.1.6.1"
    fm.MediaStorageSOPInstanceUID = generate_uid()
    fm.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = fm
    ds.is_little_endian = True
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = FAKE_NAME, FAKE_ID, FAKE_BIRTH
    ds.InstitutionName = "Fake Hospital For Tests"
    ds.Modality, ds.Manufacturer = "US", "ACME Ultrasound"
    ds.Rows, ds.Columns = shape[:2]
    ds.SamplesPerPixel = spp
    ds.PhotometricInterpretation = photo
    if spp == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = bits
    ds.BitsStored = stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if nframes > 1:
        ds.NumberOfFrames = nframes
    if regions:
        ds.SequenceOfUltrasoundRegions = regions
    if spacing:
        ds.PixelSpacing = [spacing[1], spacing[0]]   # row spacing (y), column spacing (x)
    return ds


def save(ds, name):
    path = os.path.join(OUT, name)
    ds.save_as(path, write_like_original=False)
    return path


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: {p.stderr.strip()}")


def png(arr, name):
    """A lossless reference file of the same pixels: PNG (8/16-bit gray, RGB)."""
    path = os.path.join(OUT, name)
    if arr.dtype == np.uint16:
        if arr.ndim == 2:
            Image.fromarray(arr.astype(np.uint16)).save(path)   # I;16 -> 16-bit gray PNG
        else:   # PIL has no 16-bit RGB PNG writer: binary PPM (maxval 65535)
            path = path[:-4] + ".ppm"
            h, w, _ = arr.shape
            with open(path, "wb") as f:
                f.write(b"P6\n%d %d\n65535\n" % (w, h) + arr.astype(">u2").tobytes())
    else:
        Image.fromarray(arr).save(path)
    return path


def pgm(arr, maxval, name):
    path = os.path.join(OUT, name)
    h, w = arr.shape
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n%d\n" % (w, h, maxval) + arr.astype(">u2" if maxval > 255 else "u1").tobytes())
    return path


def ybr_full(rgb):
    """RGB -> YBR_FULL as PS3.3 C.7.6.3.1.2 defines it, rounded, clipped."""
    r, g, b = [rgb[..., i].astype(np.float64) for i in range(3)]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return np.clip(np.round(np.stack([y, cb, cr], -1)), 0, 255).astype(np.uint8)


def build():
    """-> list of cases: dict(path, ref (lossless reference image path or None), pixels (what a DICOM
    reader must decode: numpy array, or None), lossy, frames, frame, kind)."""
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    fr = frames(3)
    g = fr[0]
    rgb = colour(fr)
    cases = []

    def add(path, pixels, ref=None, lossy=False, frame=1, nframes=1, kind="", **kw):
        cases.append(dict(path=path, pixels=pixels, ref=ref, lossy=lossy, frame=frame, frames=nframes, kind=kind, **kw))

    reg = [region()]
    # native 8-bit gray, both VRs, with and without regions
    for ts, tsn in ((ExplicitVRLittleEndian, "ex"), (ImplicitVRLittleEndian, "im")):
        for rg in (0, 1):
            ds = dataset(g.shape, 1, "MONOCHROME2", regions=reg if rg else None, ts=ts)
            ds.PixelData = g.tobytes()
            add(save(ds, f"mono2_8_{tsn}_r{rg}.dcm"), g, png(g, "g8.png"), kind=f"native MONOCHROME2 8-bit {tsn}",
                regions=bool(rg))
    base8 = os.path.join(OUT, "mono2_8_ex_r1.dcm")
    # MONOCHROME1: stored inverted, decoded upright
    ds = dataset(g.shape, 1, "MONOCHROME1", regions=reg)
    ds.PixelData = (255 - g).astype(np.uint8).tobytes()
    add(save(ds, "mono1_8.dcm"), g, png(g, "g8.png"), kind="native MONOCHROME1 8-bit", regions=True)
    # 16-bit: BitsStored 16 (like a 16-bit PNG) and 12 (like a PGM of maxval 4095)
    g16 = g.astype(np.uint16) * 257
    ds = dataset(g.shape, 1, "MONOCHROME2", bits=16, regions=reg)
    ds.PixelData = g16.astype("<u2").tobytes()
    add(save(ds, "mono2_16.dcm"), g16, png(g16, "g16.png"), kind="native MONOCHROME2 16-bit", regions=True)
    g12 = (g.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    ds = dataset(g.shape, 1, "MONOCHROME2", bits=16, stored=12, regions=reg)
    # bits above HighBit carry junk that a reader must mask off (BitsStored honoured)
    ds.PixelData = (g12 | 0xA000).astype("<u2").tobytes()
    add(save(ds, "mono2_12.dcm"), g12, pgm(g12, 4095, "g12.pgm"), kind="native MONOCHROME2 12-of-16-bit",
        regions=True)
    ds = dataset(g.shape, 1, "MONOCHROME1", bits=16, stored=12)
    ds.PixelData = (4095 - g12).astype("<u2").tobytes()
    add(save(ds, "mono1_12.dcm"), g12, pgm(g12, 4095, "g12.pgm"), kind="native MONOCHROME1 12-bit")
    # RGB, planar 0 and 1, 8 and 16 bit
    for planar in (0, 1):
        ds = dataset(rgb.shape, 3, "RGB", regions=reg)
        ds.PlanarConfiguration = planar
        ds.PixelData = (rgb if planar == 0 else rgb.transpose(2, 0, 1)).tobytes()
        add(save(ds, f"rgb8_p{planar}.dcm"), rgb, png(rgb, "rgb8.png"), kind=f"native RGB 8-bit planar {planar}",
            regions=True)
    rgb16 = rgb.astype(np.uint16) * 257
    ds = dataset(rgb.shape, 3, "RGB", bits=16)
    ds.PlanarConfiguration = 1
    ds.PixelData = rgb16.transpose(2, 0, 1).astype("<u2").tobytes()
    add(save(ds, "rgb16_p1.dcm"), rgb16, png(rgb16, "rgb16.png"), kind="native RGB 16-bit planar 1")
    # YBR_FULL (planar 0 and 1) and YBR_FULL_422: the reference is what pydicom decodes them to
    ybr = ybr_full(rgb)
    for planar in (0, 1):
        ds = dataset(rgb.shape, 3, "YBR_FULL", regions=reg)
        ds.PlanarConfiguration = planar
        ds.PixelData = (ybr if planar == 0 else ybr.transpose(2, 0, 1)).tobytes()
        p = save(ds, f"ybr_full_p{planar}.dcm")
        ref = pydicom.pixel_data_handlers.util.convert_color_space(pydicom.dcmread(p).pixel_array, "YBR_FULL", "RGB")
        add(p, ref, png(ref, f"ybr_full_p{planar}_ref.png"), kind=f"native YBR_FULL planar {planar}", regions=True)
    y = ybr[..., 0]
    cb = ((ybr[:, 0::2, 1].astype(int) + ybr[:, 1::2, 1]) // 2).astype(np.uint8)
    cr = ((ybr[:, 0::2, 2].astype(int) + ybr[:, 1::2, 2]) // 2).astype(np.uint8)
    packed = np.stack([y[:, 0::2], y[:, 1::2], cb, cr], -1)
    ds = dataset(rgb.shape, 3, "YBR_FULL_422")
    ds.PixelData = packed.tobytes()
    p = save(ds, "ybr_full_422.dcm")
    ref = pydicom.pixel_data_handlers.util.convert_color_space(pydicom.dcmread(p).pixel_array, "YBR_FULL", "RGB")
    add(p, ref, png(ref, "ybr_full_422_ref.png"), kind="native YBR_FULL_422")
    # PALETTE COLOR: 8-bit indices, 16-bit lookup tables (256 entries), first mapped 0
    ds = dataset(g.shape, 1, "PALETTE COLOR", regions=reg)
    i = np.arange(256)
    luts = [(i * 257), ((255 - i) * 257), (np.abs(128 - i) * 2 * 257).clip(0, 65535)]
    for k, tag in enumerate(("Red", "Green", "Blue")):
        setattr(ds, f"{tag}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{tag}PaletteColorLookupTableData", np.asarray(luts[k], "<u2").tobytes())
    ds.PixelData = g.tobytes()
    p = save(ds, "palette.dcm")
    ref = pydicom.pixel_data_handlers.util.apply_color_lut(pydicom.dcmread(p).pixel_array, pydicom.dcmread(p))
    pal_ref = ref.astype(np.uint16)
    add(p, pal_ref, png(pal_ref, "palette_ref.png"), kind="native PALETTE COLOR", regions=True)
    # multi-frame native: every frame classifies like its own PNG
    mf = np.stack(fr)
    ds = dataset(g.shape, 1, "MONOCHROME2", nframes=3, regions=reg)
    ds.PixelData = mf.tobytes()
    mf_path = save(ds, "mono2_8_mf.dcm")
    for k in range(3):
        add(mf_path, fr[k], png(fr[k], f"frame{k + 1}.png"), frame=k + 1, nframes=3, kind="native multi-frame",
            regions=True)
    dsc = dataset(rgb.shape, 3, "RGB", nframes=2)
    dsc.PixelData = np.stack([rgb, rgb[::-1].copy()]).tobytes()
    mfc_path = save(dsc, "rgb8_mf.dcm")
    add(mfc_path, rgb[::-1].copy(), png(rgb[::-1].copy(), "rgb8_flip.png"), frame=2, nframes=2,
        kind="native RGB multi-frame")
    # Deflated Explicit VR Little Endian (DCMTK)
    for src, name, pix, refn in ((base8, "deflated_mono.dcm", g, "g8.png"), (mf_path, "deflated_mf.dcm", fr[1], "frame2.png")):
        run(["dcmconv", "+td", src, os.path.join(OUT, name)])
        add(os.path.join(OUT, name), pix, os.path.join(OUT, refn), frame=2 if "mf" in name else 1,
            nframes=3 if "mf" in name else 1, kind="deflated", regions=True)
    # RLE Lossless: DCMTK and GDCM, gray 8/16, RGB, multi-frame
    rle_src = [(base8, g, "g8.png", 1, 1), (os.path.join(OUT, "mono2_16.dcm"), g16, "g16.png", 1, 1),
               (os.path.join(OUT, "rgb8_p0.dcm"), rgb, "rgb8.png", 1, 1), (os.path.join(OUT, "palette.dcm"), pal_ref,
                                                                        "palette_ref.ppm", 1, 1),
               (mf_path, fr[2], "frame3.png", 3, 3), (os.path.join(OUT, "mono2_12.dcm"), g12, "g12.pgm", 1, 1)]
    for src, pix, refname, frame, nf in rle_src:
        stem = os.path.basename(src)[:-4]
        for tool in ("dcmcrle", "gdcmconv"):
            out = os.path.join(OUT, f"rle_{tool}_{stem}.dcm")
            run(["dcmcrle", src, out] if tool == "dcmcrle" else ["gdcmconv", "--rle", src, out])
            ref_path = os.path.join(OUT, refname)
            if stem == "palette":
                # GDCM rewrites the lookup tables (8-bit values in the high bytes): the reference is
                # what pydicom makes of the file written
                dso = pydicom.dcmread(out)
                pix = pydicom.pixel_data_handlers.util.apply_color_lut(dso.pixel_array, dso).astype(np.uint16)
                ref_path = png(pix, f"rle_{tool}_palette_ref.png")
            add(out, pix, ref_path, frame=frame, nframes=nf, kind=f"RLE ({tool}) {stem}", regions=True)
    # RLE written by pydicom (its own encoder), no offset table, one fragment per frame
    from pydicom.pixel_data_handlers.rle_handler import rle_encode_frame
    ds = dataset(g.shape, 1, "MONOCHROME2", nframes=3, ts=RLELossless)
    ds.PixelData = encapsulate([rle_encode_frame(f) for f in fr], has_bot=False)
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    p = save(ds, "rle_pydicom_mf.dcm")
    add(p, fr[1], os.path.join(OUT, "frame2.png"), frame=2, nframes=3, kind="RLE (pydicom) multi-frame, no table")
    # JPEG Baseline / Extended: DCMTK, GDCM, img2dcm; lossy, compared with a tolerance
    jpg_src = [(base8, g, 1, 1), (os.path.join(OUT, "rgb8_p0.dcm"), rgb, 1, 1), (mf_path, fr[1], 2, 3)]
    for src, pix, frame, nf in jpg_src:
        stem = os.path.basename(src)[:-4]
        for tool, cmd in (("dcmcjpeg_eb", ["dcmcjpeg", "+eb"]), ("dcmcjpeg_ee", ["dcmcjpeg", "+ee"]),
                          ("gdcmconv", ["gdcmconv", "--jpeg", "--lossy", "-q", "90"])):
            out = os.path.join(OUT, f"jpeg_{tool}_{stem}.dcm")
            run(cmd + [src, out])
            add(out, pix, None, lossy=True, frame=frame, nframes=nf, kind=f"JPEG ({tool}) {stem}")
    # img2dcm: a JPEG file wrapped as it is; pydicom: JPEG frames with and without a Basic Offset Table
    jpgs = []
    for k in range(3):
        jp = os.path.join(OUT, f"frame{k + 1}.jpg")
        Image.fromarray(fr[k]).save(jp, quality=90)
        jpgs.append(jp)
    out = os.path.join(OUT, "jpeg_img2dcm.dcm")
    run(["img2dcm", "-i", "JPEG", jpgs[0], out])
    add(out, None, jpgs[0], lossy=True, kind="JPEG (img2dcm)", same_as=jpgs[0])
    for bot in (True, False):
        ds = dataset(g.shape, 1, "MONOCHROME2", nframes=3, ts=JPEGBaseline8Bit, regions=reg)
        data = [open(j, "rb").read() for j in jpgs]
        ds.PixelData = encapsulate(data, has_bot=bot)
        ds["PixelData"].is_undefined_length = True
        ds["PixelData"].VR = "OB"
        p = save(ds, f"jpeg_pydicom_mf_bot{int(bot)}.dcm")
        for k in (1, 3):
            add(p, None, jpgs[k - 1], lossy=True, frame=k, nframes=3, kind=f"JPEG (pydicom) BOT={bot}",
                same_as=jpgs[k - 1], regions=True)
    # Extended Offset Table (pydicom), two fragments per frame
    try:
        from pydicom.encaps import encapsulate_extended
        ds = dataset(g.shape, 1, "MONOCHROME2", nframes=3, ts=JPEGBaseline8Bit)
        # even-length frames: pydicom 2.3.1 computes the offsets from the unpadded lengths
        data = [open(j, "rb").read() for j in jpgs]
        data = [x + b"\0" * (len(x) & 1) for x in data]
        px, eot, eotl = encapsulate_extended(data)
        ds.PixelData = px
        ds["PixelData"].is_undefined_length = True
        ds["PixelData"].VR = "OB"
        ds.ExtendedOffsetTable = eot
        ds.ExtendedOffsetTableLengths = eotl
        p = save(ds, "jpeg_pydicom_eot.dcm")
        add(p, None, jpgs[1], lossy=True, frame=2, nframes=3, kind="JPEG (pydicom) Extended Offset Table",
            same_as=jpgs[1])
    except ImportError:
        pass
    return cases


def hostile():
    """-> list of (name, path): files every reader must refuse with a clear error."""
    d = os.path.join(OUT, "hostile")
    os.makedirs(d, exist_ok=True)
    g = frames(1)[0][:64, :80].copy()
    out = []

    def put(name, data):
        p = os.path.join(d, name + ".dcm")
        with open(p, "wb") as f:
            f.write(data)
        out.append((name, p))

    def small(**kw):
        ds = dataset(g.shape, 1, "MONOCHROME2", regions=[region(x=(0, 0, 79, 63))])
        ds.PixelData = g.tobytes()
        for k, v in kw.items():
            setattr(ds, k, v)
        p = os.path.join(d, "tmp.dcm")
        ds.save_as(p, write_like_original=False)
        return open(p, "rb").read()

    good = small()
    pix_at = good.index(b"\xe0\x7f\x10\x00")
    for cut in sorted(set([131, 140, 200, 300, pix_at - 3, pix_at + 6, pix_at + 12, len(good) - 1] +
                          list(range(132, len(good), 997)))):
        put(f"truncated_at_{cut}", good[:cut])
    b = bytearray(good)
    struct.pack_into("<I", b, pix_at + 8, 0x7FFFFFF0)
    put("pixel_length_past_end", bytes(b))
    # an element length past the end: the Manufacturer (LO, 16-bit length)
    b = bytearray(good)
    m = b.index(b"\x08\x00\x70\x00LO")
    struct.pack_into("<H", b, m + 6, 0xFFF0)
    put("element_length_past_end", bytes(b[:m + 200]))
    b = bytearray(good)
    struct.pack_into("<H", b, m + 6, struct.unpack_from("<H", b, m + 6)[0] - 1)
    put("odd_length", bytes(b))
    put("huge_rows_columns", small(Rows=65535, Columns=65535))
    put("huge_frames", small(NumberOfFrames=2147483647))
    put("bits_allocated_7", small(BitsAllocated=7, BitsStored=7, HighBit=6))
    put("samples_per_pixel_4", small(SamplesPerPixel=4))
    put("pixel_data_short", small(Rows=65))
    put("high_bit_past_allocated", small(HighBit=9))
    put("frame_past_end", small(NumberOfFrames=2))
    # RLE: a segment offset outside the frame, a segment that ends early
    ds = dataset(g.shape, 1, "MONOCHROME2", ts=RLELossless)
    from pydicom.pixel_data_handlers.rle_handler import rle_encode_frame
    fr_rle = bytearray(rle_encode_frame(g))
    bad = bytearray(fr_rle)
    struct.pack_into("<I", bad, 4, 0x10000000)
    for name, frame in (("rle_offset_out_of_range", bad), ("rle_segment_short", fr_rle[:len(fr_rle) // 2])):
        frame = bytes(frame) + (b"\0" if len(frame) & 1 else b"")
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].is_undefined_length = True
        ds["PixelData"].VR = "OB"
        p = os.path.join(d, "tmp.dcm")
        ds.save_as(p, write_like_original=False)
        put(name, open(p, "rb").read())
    # an encapsulated fragment whose length runs past the end
    enc = open(os.path.join(d, "rle_segment_short.dcm"), "rb").read()
    k = enc.rindex(b"\xfe\xff\x00\xe0")
    b = bytearray(enc)
    struct.pack_into("<I", b, k + 4, 0x00FFFFF0)
    put("fragment_overflow", bytes(b))
    # a Basic Offset Table pointing past the fragments
    ds = dataset(g.shape, 1, "MONOCHROME2", nframes=2, ts=RLELossless)
    ds.PixelData = encapsulate([rle_encode_frame(g)] * 2, has_bot=True)
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    p = os.path.join(d, "tmp.dcm")
    ds.save_as(p, write_like_original=False)
    b = bytearray(open(p, "rb").read())
    k = b.index(b"\xfe\xff\x00\xe0")
    struct.pack_into("<I", b, k + 12, 0x7FFFFFF0)
    put("bot_out_of_range", bytes(b))
    # 10,000 nested sequences of undefined length, before the pixel data
    nest = b""
    for _ in range(10000):
        nest += b"\x09\x00\x10\x10SQ\0\0\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    mpos = good.index(b"\x08\x00\x70\x00")
    put("nested_10000", good[:mpos] + nest)
    # transfer syntaxes: unknown, and known but not decoded (JPEG-LS, JPEG 2000 via DCMTK/GDCM)
    put("unknown_transfer_syntax", good.replace(b"1.2.840.10008.1.2.1\0", b"1.2.3.4.5.6.7.8.9.0\0"))
    src = os.path.join(d, "tmp.dcm")
    with open(src, "wb") as f:
        f.write(good)
    for name, cmd in (("jpeg_ls", ["dcmcjpls", src]), ("jpeg_2000", ["gdcmconv", "--j2k", src]),
                      ("jpeg_lossless", ["dcmcjpeg", src]), ("big_endian", ["dcmconv", "+tb", src])):
        p = os.path.join(d, name + ".dcm")
        run(cmd + [p])
        out.append((name, p))
    put("no_pixel_data", good[:pix_at])
    # the decoder's limits: a deflated dataset inflating to 300 MiB (past the 256 MiB a file may
    # have), a frame whose decode needs more than the 1 GiB decode memory (10000 x 10000 16-bit
    # RGB RLE: 600 MB of output and 600 MB of segments)
    import zlib
    defl = os.path.join(d, "tmp_defl.dcm")
    run(["dcmconv", "+td", src, defl])
    b = open(defl, "rb").read()
    pos = 132
    while struct.unpack_from("<H", b, pos)[0] == 2:
        vr = b[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
            pos += 12 + struct.unpack_from("<I", b, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", b, pos + 6)[0]
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = z.compress(b"\0" * (300 << 20)) + z.flush()
    put("deflate_bomb", b[:pos] + bomb)
    ds = dataset((10000, 10000), 3, "RGB", bits=16, ts=RLELossless)
    ds.PixelData = encapsulate([b"\0" * 64])
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    p = os.path.join(d, "tmp.dcm")
    ds.save_as(p, write_like_original=False)
    put("over_decode_memory", open(p, "rb").read())
    put("signed_pixels", small(PixelRepresentation=1))
    return out


if __name__ == "__main__":
    # `dicomgen.py` builds the files and prints their list as JSON (for the node suite).
    import json
    cases = build()
    print(json.dumps({"cases": [{k: v for k, v in c.items() if k != "pixels"} for c in cases],
                      "hostile": hostile(), "fake": [FAKE_NAME, FAKE_ID, FAKE_BIRTH]}))
