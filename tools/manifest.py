#!/usr/bin/env python3
"""Write a model manifest (schema: src/MANIFEST.md), the one writer of that file.

  /usr/bin/python3 tools/manifest.py DIR [--default ID] [--title ID=TEXT ...] [FILE.csasn ...]

Lists the given .csasn files of DIR (default: every *.csasn in DIR, sorted) in
DIR/manifest.json. Every field but the title comes from the file itself: id = file
name without .csasn, sha256 and bytes of its bytes, labels, malignant labels,
input size and segmentation head from its metadata (tools/csasn_format.py), card
= ID.md when DIR has one. Title: --title, else the file's general.name. Default:
--default, else the first file. `make weights` writes weights/manifest.json with
it (through tools/evaluate.py --write-manifest); the tests and tools/bench.cjs
write theirs with it.
"""
import argparse
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import csasn_format  # noqa: E402

FORMAT = "csasn-manifest"
VERSION = 1
ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def entry(folder, file, title=None):
    """The manifest entry of folder/file (a .csasn name inside folder)."""
    path = os.path.join(folder, file)
    blob = open(path, "rb").read()
    meta = csasn_format.read(blob)[0]
    mid = os.path.basename(file)[:-len(".csasn")] if file.endswith(".csasn") else None
    if not mid or not ID.match(mid):
        raise ValueError(f"{file}: the file name (without .csasn) must match {ID.pattern} to be an id")
    e = {"id": mid, "title": title or meta.get("general.name") or mid, "file": file,
         "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    if os.path.exists(os.path.join(folder, mid + ".md")):
        e["card"] = mid + ".md"
    e.update(labels=list(meta["csasn.labels"]), malignant_labels=list(meta["csasn.malignant_labels"]),
             input_size=int(meta["csasn.input_size"]), segmentation=bool(meta.get("heads.segmentation", 0)))
    return e


def write(folder, files=None, default=None, titles=None):
    """folder/manifest.json listing files (names inside folder; None: every *.csasn there).
    -> the path written."""
    titles = titles or {}
    if files is None:
        files = sorted(f for f in os.listdir(folder) if f.endswith(".csasn"))
    if not files:
        raise ValueError(f"{folder}: no model files to list")
    models = [entry(folder, f, titles.get(f[:-len(".csasn")])) for f in files]
    ids = [m["id"] for m in models]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate ids: {ids}")
    unknown = set(titles) - set(ids)
    if unknown:
        raise ValueError(f"--title for a model not listed: {sorted(unknown)}")
    default = default or ids[0]
    if default not in ids:
        raise ValueError(f"default {default!r} is not one of {ids}")
    out = os.path.join(folder, "manifest.json")
    with open(out, "w") as fh:
        json.dump({"format": FORMAT, "version": VERSION, "default": default, "models": models}, fh, indent=1)
        fh.write("\n")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("files", nargs="*", help=".csasn files inside DIR (default: all of them)")
    ap.add_argument("--default", help="id of the model a page starts with (default: the first)")
    ap.add_argument("--title", action="append", default=[], metavar="ID=TEXT")
    a = ap.parse_args(argv)
    titles = {}
    for t in a.title:
        k, sep, v = t.partition("=")
        if not sep or not v:
            ap.error(f"--title {t!r}: expected ID=TEXT")
        titles[k] = v
    try:
        print("wrote", write(a.dir, a.files or None, a.default, titles))
    except (OSError, ValueError, KeyError) as e:
        ap.exit(1, f"manifest.py: {e}\n")


if __name__ == "__main__":
    main()
