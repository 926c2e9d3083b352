#!/usr/bin/env python3
"""`neardup duplicates` on an unchanged catalog of a million images: reading stored groups.

    .venv/bin/python scripts/bench_stored.py --catalog CATALOG.db [--size 1000000] [--work DIR]

Issue 17 asks for `duplicates` on an unchanged catalog of a million images in at most 2 s. What
such a run does is read the stored decision and the records of the images it groups, then
write the report; so this builds a catalog with exactly those at scale. The source (an SQLite
catalog indexed by neardup, e.g. a duplicates-bench catalog) is copied, `duplicates` decides
and stores its groups, then its image rows (and their box-view hash rows, which say `has_box`)
are replicated under new ids and paths ("<path>#k") until there are --size of them, and its
stored decision is replicated the same way, under the same key and generation: every copy of
an image in the copy of its group. Nothing else is replicated (no features, no pair evidence):
only the unchanged run is measured. Each format's run is timed as a separate `neardup
duplicates` process (wall clock, peak RSS of the process), --repeat times: the first writes the
stored groups as text and stores it (`storage.rendered`), the next ones give that text (a
neardup before stored reports wrote it each time). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import neardup
from neardup.storage.pairs import columns_from_bytes, columns_to_bytes

ROOT = Path(__file__).resolve().parents[1]
NEARDUP = ROOT / ".venv" / "bin" / "neardup"


def build(source: Path, target: Path, size: int) -> tuple[int, int, int]:
    """The scaled catalog at `target`; (images, groups, grouped images)."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
        dst.execute("DELETE FROM decisions")  # the one left is the decision of this code's key
    with neardup.open(target) as cat:
        cat.duplicate_report()  # decides and stores the groups under the key this code computes
    db = sqlite3.connect(target)
    first, top = db.execute("SELECT count(*), max(id) FROM images").fetchone()
    step = 10 ** len(str(top))  # copy k of id i is i + k * step: ids stay apart and ascending
    copies = -(-size // first)
    columns = [r[1] for r in db.execute("PRAGMA table_info(images)") if r[1] not in ("id", "path")]
    listed = ", ".join(columns)
    with db:
        for k in range(1, copies):
            db.execute(f"INSERT INTO images (id, path, {listed}) SELECT id + {k * step}, path || '#{k}', {listed} "
                       f"FROM images WHERE id <= {top}")
            db.execute(f"INSERT INTO hashes (image_id, algo, view, bits) SELECT image_id + {k * step}, algo, view, bits "
                       f"FROM hashes WHERE image_id <= {top} AND view = 'box'")
        key, generation, data = db.execute("SELECT key, generation, data FROM decisions").fetchone()
        stored = columns_from_bytes(data)
        offsets = np.arange(copies, dtype=np.int64) * step

        def shifted(ids: np.ndarray) -> np.ndarray:
            return (ids[None, :] + offsets[:, None]).ravel()

        scaled = dict(stored, members=shifted(stored["members"]), composites=shifted(stored["composites"]),
                      inside=shifted(stored["inside"]), sizes=np.tile(stored["sizes"], copies),
                      reasons=np.tile(stored["reasons"], copies), inside_sizes=np.tile(stored["inside_sizes"], copies))
        db.execute("UPDATE decisions SET data = ? WHERE key = ? AND generation = ?",
                   (columns_to_bytes(scaled), key, generation))
    images = db.execute("SELECT count(*) FROM images").fetchone()[0]
    db.close()
    return images, len(scaled["sizes"]) + len(scaled["composites"]), len(scaled["members"])


def timed(catalog: Path, fmt: str, output: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, what it said) of one `neardup duplicates` process."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(NEARDUP), "duplicates", "--db", str(catalog), "--format", fmt, "-o", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this process's own peak, not the largest child's so far
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"error: neardup duplicates failed:\n{err[-2000:]}")
    said = [line for line in err.splitlines() if "reused" in line or "computed" in line]
    return seconds, usage.ru_maxrss / 1024, said[-1].strip() if said else ""


def work_dir(catalog: Path, work: Path | None, prefix: str) -> Path:
    """The folder a scaled copy of `catalog` goes in (made; a temporary one without `work`);
    exits with an error when `catalog` is no file."""
    if not catalog.is_file():
        sys.exit(f"error: {catalog} is not a catalog file")
    work = work or Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    return work


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", type=Path, required=True, help="an SQLite catalog indexed by neardup")
    ap.add_argument("--size", type=int, default=1_000_000, help="images in the scaled catalog")
    ap.add_argument("--formats", default="json,table", help="report formats to time (comma-separated)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="where the scaled catalog goes (default: a temp dir)")
    args = ap.parse_args()
    work = work_dir(args.catalog, args.work, "neardup-stored-")
    catalog = work / "catalog.db"
    start = time.perf_counter()
    images, groups, grouped = build(args.catalog, catalog, args.size)
    print(f"[bench] {images:,} images, {groups:,} stored groups of {grouped:,} images, built in "
          f"{time.perf_counter() - start:.0f} s at {catalog}", file=sys.stderr)
    rows = []
    for fmt in args.formats.split(","):
        for run in range(1, args.repeat + 1):
            seconds, peak, said = timed(catalog, fmt, work / f"groups.{fmt}")
            rows.append(f"| {fmt} | {run} | {seconds:.2f} | {peak:,.0f} | {said} |")
    print(f"`neardup duplicates` on an unchanged catalog of {images:,} images ({grouped:,} in {groups:,} groups)\n")
    print("| format | run | wall s | peak RSS MB | what it said |")
    print("| --- | ---: | ---: | ---: | --- |")
    print("\n".join(rows))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
