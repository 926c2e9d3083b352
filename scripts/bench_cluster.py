"""Files/s of `neardup index` on a Dask cluster of 1 and 2 local workers, beside a local run
into SQLite, and whether the PostgreSQL and SQLite catalogs of one folder answer alike.

    .venv/bin/python scripts/bench_cluster.py FOLDER postgresql+psycopg://neardup@localhost/bench \\
        [--embedder cnn|none] [--clusters local:1 local:2] [--workers 2] [--queries 20]

Indexes FOLDER from scratch with the `neardup index` command, as a user would: into an SQLite
file with `--workers N` local processes, then into the given PostgreSQL database (emptied
first: give it one of its own) through each `--cluster`. Files/s is the command's own figure
(from the walk to the last write). Then searches the SQLite catalog and the PostgreSQL one
(as the last cluster left it) with `--queries` files of the folder, each shrunk to half size
and re-saved as a JPEG of quality 70, and counts the queries whose five best matches (path
and score) differ. Prints one table and that count.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

import neardup

NEARDUP = [sys.executable, "-m", "neardup.cli"]
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}


def index(folder: Path, db: str, embedder: str, *options: str) -> tuple[float, str]:
    """(files/s, the command's summary line) of one `neardup index` run."""
    run = subprocess.run([*NEARDUP, "index", str(folder), "--db", db, "--embedder", embedder, "-q", *options],
                         capture_output=True, text=True, check=True)
    summary = run.stderr.strip().splitlines()[-1]
    rate = re.search(r"\(([\d.]+) files/s\)", summary)
    return (float(rate[1]) if rate else 0.0), summary


def empty(url: str) -> None:
    """Drop every table of the database, so the next run creates its catalog afresh."""
    from sqlalchemy import MetaData, create_engine

    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    engine.dispose()


def queries(folder: Path, out: Path, n: int) -> list[Path]:
    """`n` files spread over the folder, each shrunk to half size and saved as a JPEG of quality 70."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    made = []
    for i, path in enumerate(files[:: max(1, len(files) // n)][:n]):
        image = Image.open(path).convert("RGB")
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)))
        made.append(out / f"q{i:03d}.jpg")
        image.save(made[-1], quality=70)
    return made


def top5(cat: neardup.Collection, query: Path) -> list[tuple[str, float]]:
    """The five best (path, score), ties in path order (ids, which break ties, differ by catalog)."""
    found = [(m.path, round(m.score, 3)) for m in cat.search(query, k=5)]
    return sorted(found, key=lambda r: (-r[1], r[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("url", help="a PostgreSQL database of its own: postgresql+psycopg://user@host/dbname")
    parser.add_argument("--embedder", choices=["cnn", "none"], default="cnn")
    parser.add_argument("--clusters", nargs="+", default=["local:1", "local:2"])
    parser.add_argument("--workers", type=int, default=2, help="local processes of the SQLite run")
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    print(f"{'run':<44} {'files/s':>8}")
    with tempfile.TemporaryDirectory() as work:
        sqlite = str(Path(work) / "local.db")
        rate, _ = index(args.folder, sqlite, args.embedder, "--workers", str(args.workers))
        print(f"{f'SQLite, --workers {args.workers}':<44} {rate:>8.1f}", flush=True)
        for cluster in args.clusters:
            empty(args.url)
            rate, summary = index(args.folder, args.url, args.embedder, "--cluster", cluster)
            print(f"{f'PostgreSQL, --cluster {cluster}':<44} {rate:>8.1f}", flush=True)
        print(f"\nlast cluster run: {summary}")
        asked = queries(args.folder, Path(work), args.queries)
        with neardup.open(sqlite) as left, neardup.open(args.url) as right:
            differ = [q.name for q in asked if top5(left, q) != top5(right, q)]
        print(f"{len(asked)} queries (by auto, k=5): {len(asked) - len(differ)} answered alike by both catalogs"
              + (f"; differ: {', '.join(differ)}" if differ else ""))


if __name__ == "__main__":
    main()
