"""How fast a catalog takes neardup's writes: images/s and rows/s through `Catalog.write`.

    .venv/bin/python scripts/bench_pg.py postgresql+psycopg://neardup@localhost/bench [--images 2000]

Writes synthetic records shaped like a CNN catalog's (7 hashes of the image and of its
content box, a 1280-d float16 vector of each, 500 ORB keypoints of the image and of its
mirror: 19 rows and ~42 KB an image) in transactions of `pipeline.WRITE_BATCH` files, as
the indexer's writer does, from 1, 2 and 4 writer processes at once (disjoint paths), into
a fresh catalog in the given PostgreSQL database (emptied first: give it one of its own),
and from one writer into an SQLite file for comparison. Prints one table; the figures are the ceiling the
database puts on indexing, to compare with the files/s the decoding workers reach.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neardup.api import new_settings
from neardup.indexer.pipeline import WRITE_BATCH
from neardup.storage.catalog import Catalog
from neardup.storage.models import BOX, IMAGE
from neardup.storage.records import ImageRecord

ROWS_PER_IMAGE = 1 + 2 * 7 + 2 + 2  # image, hashes of two views, vectors of two views, keypoints ×2


def records(writer: int, n: int, seed: int) -> list[ImageRecord]:
    """`n` records of plausible sizes at paths only this writer uses."""
    rng = np.random.default_rng(seed)
    hashes = {"ahash": 8, "dhash": 8, "phash": 8, "phash256": 32, "whash": 8, "colorhash": 8, "pdq": 32}
    out = []
    for i in range(n):
        named = {name: rng.integers(0, 256, size, dtype=np.uint8) for name, size in hashes.items()}
        vector = rng.normal(size=1280).astype(np.float32)
        keypoints = (rng.random((500, 2), dtype=np.float32) * 384, rng.integers(0, 256, (500, 32), dtype=np.uint8))
        out.append(ImageRecord(
            path=f"/bench/w{writer}/{i:07d}.jpg", size=3_000_000 + i, mtime_ns=1_796_000_000_000_000_000 + i,
            sha256=f"{writer:04d}{i:060d}", width=4000, height=3000, format="JPEG", quality=90,
            hashes={IMAGE: named, BOX: named}, vectors={IMAGE: {"cnn": vector}, BOX: {"cnn": vector}},
            keypoints=keypoints, mirrored_keypoints=keypoints))
    return out


def write_all(location: str, writer: int, n: int, start) -> float:
    """Write `n` records in WRITE_BATCH transactions once `start` is set; seconds taken."""
    batch = records(writer, n, writer)
    catalog = Catalog.open(location)
    start.wait()
    began = time.perf_counter()
    for i in range(0, n, WRITE_BATCH):
        catalog.write(batch[i : i + WRITE_BATCH])
    took = time.perf_counter() - began
    catalog.close()
    return took


def run(location: str, writers: int, images: int) -> float:
    """Wall seconds for `writers` processes to write `images` records between them."""
    with multiprocessing.Manager() as manager:
        start = manager.Event()
        with multiprocessing.Pool(writers) as pool:
            pending = [pool.apply_async(write_all, (location, w, images // writers, start)) for w in range(writers)]
            time.sleep(2)  # every writer has built its records and opened the catalog
            began = time.perf_counter()
            start.set()
            for p in pending:
                p.get()
            return time.perf_counter() - began


def fresh(location: str) -> str:
    """An empty catalog at `location` (a PostgreSQL database's tables are dropped first)."""
    if "://" in location:
        from sqlalchemy import MetaData, create_engine

        engine = create_engine(location)
        meta = MetaData()
        meta.reflect(engine)
        meta.drop_all(engine)
        engine.dispose()
    Catalog.create(location, new_settings()).close()
    return location


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="a PostgreSQL database of its own: postgresql+psycopg://user@host/dbname")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    print(f"{'catalog':<12} {'writers':>7} {'images':>7} {'seconds':>8} {'images/s':>9} {'rows/s':>8}")
    with tempfile.TemporaryDirectory() as folder:
        # a file catalog has one writer at a time by design (others wait 5 s, then are told it is busy)
        for name, location, counts in (("postgresql", args.url, args.writers),
                                       ("sqlite", str(Path(folder) / "bench.db"), [1])):
            for writers in counts:
                if name == "sqlite":
                    Path(location).unlink(missing_ok=True)
                seconds = run(fresh(location), writers, args.images)
                rate = args.images / seconds
                print(f"{name:<12} {writers:>7} {args.images:>7} {seconds:>8.2f} {rate:>9.0f} {rate * ROWS_PER_IMAGE:>8.0f}")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
