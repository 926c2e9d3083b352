#!/usr/bin/env python3
"""Stored pair evidence: `duplicates --by auto` fresh, on an unchanged catalog, after adding and
after deleting images, on a real indexed catalog; and whether the groups equal a fresh run's.

    .venv/bin/python scripts/bench_incremental.py --catalog bench-out/duplicates/dev/neardup/auto.db \\
        --add 1,15,76 [--out bench-out/incremental]

The catalog is copied (never changed). For each n of --add: n random images are removed from
the copy, `duplicates` runs fresh (nothing stored) and again (unchanged); the n files are indexed
again (as newly added files: decoded, hashed, embedded) and `duplicates` runs incrementally; a
copy without stored evidence gives the fresh groups to compare with; then the same n images
are deleted and `duplicates` runs again, compared with a fresh run likewise. Only the
`duplicates` calls are timed (wall clock, one process, warm FAISS files). Prints a markdown
table and writes it to <out>/results.md.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

import neardup

ROOT = Path(__file__).resolve().parents[1]


def copy_catalog(source: Path, target: Path, *, drop_evidence: bool = False) -> Path:
    """An online copy of an SQLite catalog (WAL included), optionally without stored evidence
    (and stored groups)."""
    target.unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    with dst:
        src.backup(dst)
        tables = {r[0] for r in dst.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if drop_evidence and "evidence_sets" in tables:
            dst.execute("DELETE FROM evidence_segments")
            dst.execute("DELETE FROM evidence_sets")
        if drop_evidence and "decisions" in tables:
            dst.execute("DELETE FROM decisions")
    src.close()
    dst.close()
    return target


def groups_of(found) -> list[tuple]:
    return [(g.keeper, tuple(sorted(g.members)), tuple(sorted(g.contains))) for g in found.groups]


def timed(cat: neardup.Collection):
    start = time.perf_counter()
    found = cat.duplicate_report()
    return found, time.perf_counter() - start


def fresh(path: Path, scratch: Path):
    """Groups and time of a run from nothing on a copy of the catalog at `path`."""
    cat = neardup.open(copy_catalog(path, scratch, drop_evidence=True))
    found, seconds = timed(cat)
    cat.close()
    assert found.evidence.reused == 0
    return found, seconds


def row(label: str, n: int, images: int, found, seconds: float, same: str) -> str:
    e = found.evidence
    return (f"| {label} | {n} | {images:,} | {seconds:.2f} | {e.reused:,} | {e.computed:,} | {e.verified:,} | "
            f"{e.images:,} | {e.dropped:,} | {len(found.groups):,} | {same} |")


def run(source: Path, add: int, out: Path, seed: int) -> list[str]:
    # without the source's stored evidence and groups, so that the first run is from nothing
    work = copy_catalog(source, out / "work.db", drop_evidence=True)
    cat = neardup.open(work)
    present = sorted(s.image_id for s in cat.catalog.file_states().values() if s.status == "ok")
    roots = cat.catalog.roots()
    chosen = np.random.default_rng(seed).choice(present, add, replace=False).tolist()
    paths = [p for p, s in cat.catalog.file_states().items() if s.image_id in set(chosen)]
    cat.catalog.remove(chosen)
    total = cat.catalog.present()
    lines = []
    first, t = timed(cat)
    assert first.evidence.reused == 0, first.evidence
    lines.append(row("fresh (nothing stored)", add, total, first, t, "—"))
    again, t = timed(cat)
    lines.append(row("unchanged catalog", add, total, again, t, str(groups_of(again) == groups_of(first))))
    report = cat.index(roots, workers=2)
    assert report.new == add, report
    added, t = timed(cat)
    base, t_fresh = fresh(work, out / "fresh.db")
    lines.append(row(f"after adding {add}", add, cat.catalog.present(), added, t,
                     f"{groups_of(added) == groups_of(base)} (fresh {t_fresh:.2f} s)"))
    cat.catalog.remove(list(cat.catalog.image_ids(paths).values()))  # re-indexed files get new ids
    assert cat.catalog.present() == total
    deleted, t = timed(cat)
    base, t_fresh = fresh(work, out / "fresh.db")
    lines.append(row(f"after deleting {add}", add, cat.catalog.present(), deleted, t,
                     f"{groups_of(deleted) == groups_of(base)} (fresh {t_fresh:.2f} s)"))
    cat.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", type=Path, required=True, help="an indexed catalog (copied, never changed)")
    ap.add_argument("--add", default="1,15", help="numbers of images added, then deleted, one run each")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "incremental")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    header = ["| run | n | images | duplicates s | pairs reused | pairs computed | verified | new images "
              "| images dropped | groups | groups equal a fresh run's |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    lines = list(header)
    for n in (int(x) for x in args.add.split(",")):
        print(f"[bench] n = {n}", file=sys.stderr)
        lines += run(args.catalog, n, args.out, args.seed)
        print("\n".join(lines), file=sys.stderr)
    text = "\n".join(lines)
    print(text)
    (args.out / "results.md").write_text(text + "\n")
    for name in ("work.db", "fresh.db"):
        for f in args.out.glob(name.replace(".db", "*")):
            f.unlink() if f.is_file() else shutil.rmtree(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
