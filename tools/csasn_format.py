"""Reader and writer of the .csasn model file (src/FORMAT.md), the Python side of
the format. The C reader is src/format.c."""
import struct

import numpy as np

MAGIC = b"CSAN"
VERSION = 1
ALIGN = 64
T_U32, T_I32, T_F32, T_STR, T_ARR = 0, 1, 2, 3, 4
DT_F32, DT_F16 = 0, 1


def _kv_type(v):
    if isinstance(v, bool) or isinstance(v, int):
        return T_U32 if v >= 0 else T_I32
    if isinstance(v, float):
        return T_F32
    if isinstance(v, str):
        return T_STR
    raise TypeError(f"unsupported metadata value {v!r}")


def _enc_scalar(t, v):
    if t == T_U32:
        return struct.pack("<I", v)
    if t == T_I32:
        return struct.pack("<i", v)
    if t == T_F32:
        return struct.pack("<f", v)
    b = v.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def _enc_value(v):
    if isinstance(v, (list, tuple)):
        types = {_kv_type(x) for x in v} or {T_STR}
        if types == {T_U32, T_I32}:
            types = {T_I32}
        if len(types) != 1:
            raise TypeError(f"mixed array {v!r}")
        et = types.pop()
        return struct.pack("<III", T_ARR, et, len(v)) + b"".join(_enc_scalar(et, x) for x in v)
    t = _kv_type(v)
    return struct.pack("<I", t) + _enc_scalar(t, v)


def write(path, meta, tensors, dtype="f16"):
    """meta: key -> int | float | str | list of one of those.
    tensors: name -> array-like (float). dtype: 'f32' or 'f16' storage."""
    dt = {"f32": (DT_F32, np.float32), "f16": (DT_F16, np.float16)}[dtype]
    head = [MAGIC, struct.pack("<III", VERSION, len(meta), len(tensors))]
    for k, v in meta.items():
        kb = k.encode("utf-8")
        head.append(struct.pack("<I", len(kb)) + kb + _enc_value(v))
    blobs, offset = [], 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(np.asarray(t, dtype=np.float32).astype(dt[1]))
        if a.ndim == 0:
            a = a.reshape(1)
        nb = name.encode("utf-8")
        head.append(struct.pack("<I", len(nb)) + nb + struct.pack("<II", dt[0], a.ndim)
                    + struct.pack(f"<{a.ndim}I", *a.shape) + struct.pack("<Q", offset))
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        pad = (-len(raw)) % ALIGN
        blobs.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    h = b"".join(head)
    h += b"\0" * ((-len(h)) % ALIGN)
    with open(path, "wb") as f:
        f.write(h)
        for b in blobs:
            f.write(b)


def read(path_or_bytes):
    """-> (meta dict, tensors dict name -> float32 ndarray, info dict name -> (dtype, shape, offset))."""
    buf = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else open(path_or_bytes, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return v

    def take_str():
        nonlocal pos
        (n,) = take("I")
        s = bytes(buf[pos:pos + n]).decode("utf-8")
        if len(s.encode()) != n:
            raise ValueError("string past end of file")
        pos += n
        return s

    def scalar(t):
        if t == T_U32:
            return take("I")[0]
        if t == T_I32:
            return take("i")[0]
        if t == T_F32:
            return take("f")[0]
        if t == T_STR:
            return take_str()
        raise ValueError(f"bad metadata type {t}")

    if bytes(buf[:4]) != MAGIC:
        raise ValueError("not a .csasn file (bad magic)")
    version, n_kv, n_t = take("4xIII")
    if version != VERSION:
        raise ValueError(f"unsupported version {version}")
    meta = {}
    for _ in range(n_kv):
        k = take_str()
        (t,) = take("I")
        if t == T_ARR:
            et, n = take("II")
            meta[k] = [scalar(et) for _ in range(n)]
        else:
            meta[k] = scalar(t)
    info = {}
    for _ in range(n_t):
        name = take_str()
        dt, rank = take("II")
        shape = take(f"{rank}I")
        (off,) = take("Q")
        info[name] = (dt, tuple(shape), off)
    data_start = pos + ((-pos) % ALIGN)
    tensors = {}
    for name, (dt, shape, off) in info.items():
        npdt = np.dtype("<f4") if dt == DT_F32 else np.dtype("<f2")
        n = int(np.prod(shape))
        a = np.frombuffer(buf, dtype=npdt, count=n, offset=data_start + off)
        tensors[name] = a.astype(np.float32).reshape(shape)
    return meta, tensors, info
