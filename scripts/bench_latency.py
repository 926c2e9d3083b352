"""Query latency of `neardup search` at collection scale, on a real catalog grown by replication.

    .venv/bin/python scripts/bench_latency.py [--catalog DB] [--size 100000] [--queries 40]

Copies an indexed catalog (default: the quality benchmark's references + queries, with CNN
vectors and keypoints) and replicates its rows (images, hashes, vectors, keypoints) under new
ids until it holds ``--size`` images, so every FAISS index and SQLite lookup works at that
size on real data. Then times one warm process answering single queries (image files from
the benchmark's queries folder, decoded each time, as `neardup search` does) by auto, cnn and
pdq: p50 and p95 milliseconds. The first query of each feature (FAISS index build or load,
TensorFlow start-up) is reported apart, and so is the process's peak resident memory.
Replicas are exact copies, so results hold ties; the work per query is what it would be.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUALITY = ROOT / "bench-out" / "quality"


def grow(db: Path, size: int) -> int:
    """Replicate the catalog's rows under new ids until it holds at least ``size`` images."""
    con = sqlite3.connect(db)
    (base,) = con.execute("SELECT count(*) FROM images").fetchone()
    (top,) = con.execute("SELECT max(id) FROM images").fetchone()
    count, copy = base, 1
    while count < size:
        take, offset = min(base, size - count), copy * (top + 1)
        con.execute("BEGIN")
        con.execute(f"""INSERT INTO images (id, path, size, mtime_ns, sha256, width, height, format, quality,
                        status, error, noise, taken_at, camera, jpeg_quality, enlargement, created_at, updated_at)
                        SELECT id + {offset}, path || '#{copy}', size, mtime_ns, sha256 || '#{copy}', width,
                        height, format, quality, status, error, noise, taken_at, camera, jpeg_quality, enlargement,
                        created_at, updated_at
                        FROM images WHERE id <= {top} ORDER BY id LIMIT {take}""")
        # a search never reads the mirrored keypoints (it mirrors its query): not replicated
        for table, columns in (("hashes", 'algo, "view", bits'), ("vectors", 'model, "view", data'),
                               ("keypoints", "points, descriptors")):
            con.execute(f"""INSERT INTO {table} (image_id, {columns})
                            SELECT image_id + {offset}, {columns} FROM {table}
                            WHERE image_id <= {top} AND image_id + {offset} IN
                            (SELECT id FROM images WHERE id > {offset} AND id <= {offset + top})""")
        con.execute("UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'")
        con.execute("COMMIT")
        count, copy = count + take, copy + 1
    con.close()
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, default=QUALITY / "neardup" / "cnn-queries+refs" / "catalog.db")
    ap.add_argument("--queries-dir", type=Path, default=QUALITY / "queries")
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=40, help="timed queries per feature")
    ap.add_argument("--work", type=Path, default=ROOT / "bench-out" / "latency")
    args = ap.parse_args()
    if not args.catalog.is_file():
        sys.exit(f"no catalog at {args.catalog}: run scripts/bench_quality.py first (it builds it)")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    db = args.work / "catalog.db"
    start = time.perf_counter()
    shutil.copyfile(args.catalog, db)
    images = grow(db, args.size)
    print(f"catalog of {images:,} images built in {time.perf_counter() - start:.0f} s "
          f"({db.stat().st_size / 2**30:.2f} GiB)", flush=True)

    import neardup

    queries = sorted(args.queries_dir.glob("*.jpg"))[: args.queries + 1]
    cat = neardup.open(db)
    print(f"\n{len(queries) - 1} queries, k = 10, one warm process\n")
    print("| --by | first query ms (index load / model start) | p50 ms | p95 ms |")
    print("| --- | ---: | ---: | ---: |")
    for by in ("pdq", "cnn", "auto"):
        t = time.perf_counter()
        cat.search(queries[0], k=10, by=by)
        first = 1000 * (time.perf_counter() - t)
        times = []
        for q in queries[1:]:
            t = time.perf_counter()
            cat.search(q, k=10, by=by)
            times.append(1000 * (time.perf_counter() - t))
        p95 = statistics.quantiles(times, n=20)[-1]
        print(f"| {by} | {first:.0f} | {statistics.median(times):.0f} | {p95:.0f} |", flush=True)
    # the whole run's peak, index builds included: what a first search in a fresh process costs
    print(f"\npeak RSS of the search process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
