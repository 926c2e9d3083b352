"""Whether two catalogs of the same files hold the same features, byte for byte.

    .venv/bin/python scripts/compare_catalogs.py A.db B.db

A speed change must not change what is stored: index one folder with two checkouts (e.g.
`bench-out/base/.venv/bin/neardup index DIR --db A.db` and `.venv/bin/neardup index DIR --db
B.db`), then compare. Images are matched by path; per table (hashes, vectors, keypoints,
mirrored keypoints, colour layouts, the images' own columns) it prints how many rows are identical, differ,
or are only in one catalog, and for differing vectors the largest absolute difference.
Columns and tables only one catalog has (a newer schema) are left out. Exits 1 when anything differs.
"""

from __future__ import annotations

import sqlite3
import sys

import numpy as np

IMAGE_COLUMNS = ("size", "mtime_ns", "sha256", "width", "height", "format", "quality", "status", "error",
                 "noise", "taken_at", "camera", "enlargement")
TABLES = {  # table -> (key columns besides the image, value columns)
    "hashes": (("algo", "view"), ("bits",)),
    "vectors": (("model", "view"), ("data",)),
    "keypoints": ((), ("points", "descriptors")),
    "mirrored_keypoints": ((), ("points", "descriptors")),
    "colour_layouts": ((), ("width", "height", "cells")),
}


def rows(db: sqlite3.Connection, table: str, keys: tuple[str, ...], values: tuple[str, ...]) -> dict:
    """(path, *keys) -> values of every row of `table`."""
    cols = ", ".join([f"t.{c}" for c in (*keys, *values)])
    join = "images t JOIN images i ON i.id = t.id" if table == "images" else f"{table} t JOIN images i ON i.id = t.image_id"
    q = f"SELECT i.path, {cols} FROM {join}"
    return {tuple(r[: 1 + len(keys)]): tuple(r[1 + len(keys):]) for r in db.execute(q)}


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def compare(a: dict, b: dict, name: str, vectors: bool = False) -> bool:
    same = sum(1 for k in a.keys() & b.keys() if a[k] == b[k])
    differ = [k for k in a.keys() & b.keys() if a[k] != b[k]]
    line = f"{name:20} identical {same:6}  differ {len(differ):5}  only A {len(a.keys() - b.keys()):4}  only B {len(b.keys() - a.keys()):4}"
    if vectors and differ:
        gap = max(float(np.abs(np.frombuffer(a[k][0], "<f2").astype(np.float32)
                               - np.frombuffer(b[k][0], "<f2").astype(np.float32)).max()) for k in differ)
        line += f"  largest |difference| {gap:.2e}"
    print(line)
    return not differ and a.keys() == b.keys()


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = (sqlite3.connect(f"file:{p}?mode=ro", uri=True) for p in sys.argv[1:])
    shared = [c for c in IMAGE_COLUMNS if c in columns(a, "images") & columns(b, "images")]
    ok = compare(rows(a, "images", (), tuple(shared)), rows(b, "images", (), tuple(shared)),
                 f"images ({len(shared)} columns)")
    for table, (keys, values) in TABLES.items():
        if not (columns(a, table) and columns(b, table)):  # a catalog from before the table
            print(f"{table:20} only in {'B' if columns(b, table) else 'A'}: not compared")
            continue
        ok &= compare(rows(a, table, keys, values), rows(b, table, keys, values), table, vectors=table == "vectors")
    print("identical" if ok else "DIFFERENT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
