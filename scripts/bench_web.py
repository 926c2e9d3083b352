"""Search latency through the REST API (`neardup serve`) against the Python API, side by side.

    .venv/bin/python scripts/bench_web.py [--images DIR] [--sizes 0,100000] [--queries 40] [--by auto,pdq]

Indexes the images of --images into a fresh catalog (with the CNN when it is installed), then
for each size of --sizes (0: as indexed) grows a copy of it by replicating its rows under new
ids (as scripts/bench_latency.py does, every table and view included), so every FAISS index and
SQLite lookup works at that size on real data. The queries are reduced, re-encoded copies of
indexed images (files outside the catalog). Each query is timed twice, one after the other:
`Collection.search(path)` in this process, and `POST /api/search` with the file's bytes to a
`neardup serve` on loopback (one warm server process, one keep-alive HTTP client; the file is
read inside the timing, as the Python API reads it). The first query of each feature (index
load, model start) is left out. Prints p50 and p95 in milliseconds and the REST overhead.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def grow(db: Path, size: int) -> int:
    """Replicate the catalog's images, with every row that belongs to them, under new ids
    until it holds at least `size` images; returns how many it holds."""
    con = sqlite3.connect(db)
    (base,) = con.execute("SELECT count(*) FROM images").fetchone()
    (top,) = con.execute("SELECT max(id) FROM images").fetchone()
    image_columns = [r[1] for r in con.execute("PRAGMA table_info(images)")]
    owned = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
             if "image_id" in [r[1] for r in con.execute(f"PRAGMA table_info({t})")] and t != "clean_entries"]
    count, copy = base, 1
    while count < size:
        take, offset = min(base, size - count), copy * (top + 1)
        picked = {"id": f"id + {offset}", "path": f"path || '#{copy}'", "sha256": f"sha256 || '#{copy}'"}
        select = ", ".join(picked.get(c, c) for c in image_columns)
        con.execute("BEGIN")
        con.execute(f"INSERT INTO images ({', '.join(image_columns)}) SELECT {select} FROM images "
                    f"WHERE id <= {top} ORDER BY id LIMIT {take}")
        for table in owned:
            columns = [r[1] for r in con.execute(f"PRAGMA table_info({table})") if r[1] != "id"]
            select = ", ".join(f"image_id + {offset}" if c == "image_id" else c for c in columns)
            con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select} FROM {table} "
                        f"WHERE image_id <= {top} AND image_id + {offset} IN "
                        f"(SELECT id FROM images WHERE id > {offset} AND id <= {offset + top})")
        con.execute("UPDATE settings SET value = '\"grown-' || hex(randomblob(8)) || '\"' WHERE key = 'generation'")
        con.execute("COMMIT")
        count, copy = count + take, copy + 1
    con.close()
    return count


def make_queries(images: list[Path], n: int, folder: Path) -> list[Path]:
    """n + 1 queries: evenly spaced indexed images at 70 % size, re-encoded as JPEG q75."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    step = max(1, len(images) // (n + 1))
    out = []
    for i, source in enumerate(images[::step][: n + 1]):
        with Image.open(source) as im:
            small = im.convert("RGB").resize((max(1, im.width * 7 // 10), max(1, im.height * 7 // 10)))
        out.append(folder / f"q{i:03d}.jpg")
        small.save(out[-1], "JPEG", quality=75)
    return out


class Served:
    """`neardup serve` on a free loopback port, with a token (so no CSRF cookie is needed)."""

    TOKEN = "bench"

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "neardup.cli", "serve", "--db", str(db), "--port", "0", "--token", self.TOKEN],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if " at http://" not in line:
            self.proc.kill()
            sys.exit(f"neardup serve did not start: {line}")
        self.url = line.split(" at ", 1)[1].split("?")[0].rstrip("/")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def percentiles(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), statistics.quantiles(times, n=20)[-1]


def bench(db: Path, queries: list[Path], features: list[str]) -> list[tuple[str, list[float], list[float]]]:
    import httpx

    import neardup

    server = Served(db)
    rows = []
    try:
        with neardup.open(db) as cat, httpx.Client(base_url=server.url, timeout=600,
                                                   headers={"Authorization": f"Bearer {Served.TOKEN}"}) as http:
            health = [_timed(lambda: http.get("/api/health").raise_for_status()) for _ in range(41)][1:]
            rows.append(("(GET /api/health)", [0.0] * len(health), health))
            for by in features:
                python, rest = [], []
                for n, q in enumerate(queries):
                    a = _timed(lambda: cat.search(q, k=10, by=by))
                    b = _timed(lambda: http.post(f"/api/search?k=10&by={by}",
                                                 files={"file": (q.name, q.read_bytes())}).raise_for_status())
                    if n:  # the first query builds or loads the indexes and starts the model
                        python.append(a)
                        rest.append(b)
                rows.append((by, python, rest))
    finally:
        server.stop()
    return rows


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=Path, default=ROOT / "bench-out" / "duplicates" / "dev" / "images",
                    help="a folder of images to index (default: the duplicates benchmark's dev images)")
    ap.add_argument("--sizes", default="0,100000", help="catalog sizes to time at (0: as indexed)")
    ap.add_argument("--queries", type=int, default=40, help="timed queries per feature (at least 40)")
    ap.add_argument("--by", default="auto,pdq", help="features to search by")
    ap.add_argument("--work", type=Path, default=ROOT / "bench-out" / "web")
    args = ap.parse_args()
    if not args.images.is_dir():
        sys.exit(f"no folder of images at {args.images}: run scripts/bench_duplicates.py first, or pass --images")

    import neardup
    from neardup.indexer.walk import walk

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    base = args.work / "indexed.db"
    start = time.perf_counter()
    with neardup.open(base, create=True) as cat:
        report = cat.index([args.images])
        features = cat.features()
    print(f"indexed {report.new} images in {time.perf_counter() - start:.0f} s; features: {', '.join(features)}")
    queries = make_queries(sorted(Path(p) for p in walk([args.images]).files), args.queries, args.work / "queries")
    print(f"{len(queries) - 1} timed queries per feature, k = 10, one warm process each\n")
    print("| catalog | --by | Python API p50 | p95 | REST API p50 | p95 | overhead p50 | overhead p95 |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        db = args.work / f"catalog-{size}.db"
        shutil.copyfile(base, db)
        images = grow(db, size) if size else report.new
        for by, python, rest in bench(db, queries, args.by.split(",")):
            (p50, p95), (r50, r95) = percentiles(python), percentiles(rest)
            print(f"| {images:,} | {by} | {p50:.1f} ms | {p95:.1f} ms | {r50:.1f} ms | {r95:.1f} ms | "
                  f"{r50 - p50:+.1f} ms | {r95 - p95:+.1f} ms |", flush=True)
        db.unlink()


if __name__ == "__main__":
    main()
