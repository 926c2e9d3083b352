#!/usr/bin/env python3
"""`duplicates --by auto` at a scale no corpus here reaches: from nothing, unchanged, after adding 1 %.

    .venv/bin/python scripts/bench_replicas.py --catalog CATALOG.db --size 100000 [--add 0.01] [--work DIR]

Issue 17 asks how `duplicates` scales to a million images with real features. The corpus has
1,272 pictures; perturbed copies of them (`bench_real_scale.py`) make every picture a group of
~80, far denser than a photo library. This builds a catalog of --size images from the real
features of one indexed catalog (e.g. a duplicates-bench catalog: its copies, composites and
look-alikes at their real density) by *replicas*: replica k holds every source image under a new
id (i + k * step) and path (`<work>/files/<k>/<name>`, a symbolic link to the source's file, so
that what `duplicates` reads from the files is read: the regions searched for a pasted picture,
`search.pasted`), with every stored feature passed through one isometry of replica k's own,
drawn at random:
- each hash (every algorithm, every view) XOR one random mask per algorithm: Hamming distances
  within a replica are the source's, bit for bit; across replicas they are those of random codes;
- each learned vector (float16) permuted and sign-flipped by one random signed permutation:
  cosines within a replica are the source's exactly, across replicas about zero;
- each ORB descriptor (plain and mirrored) XOR one random 32-byte mask: ratio tests within a
  replica match the source's; across replicas they are those of random descriptors;
- each SHA-256 suffixed with the replica, so exact copies stay exact within a replica only.
Keypoint positions and colours, colour layouts and keeper traits are copied as they are: colour
thumbnails may still bring another replica's picture up as a strip candidate (the table counts
groups that span two replicas: none means the replicas stayed apart). Replicas of a real
collection are a collection of N distinct pictures with the source's share of copies, which is
what a photo library of N images is closer to than N perturbed copies of a few.

A region cut from a replica's file is embedded and described by the CNN and ORB as they are, not
through the replica's isometry, so its search finds the source's picture (replica 0), never
its own replica's: the time of those searches is the real one, what they find is not, and a
replica's composite may be listed as holding a picture of the source.

The catalog gets the replicas but for --add of its images (new replicas, the last one partial); each
step is one `neardup duplicates --format json` process, timed (wall, peak RSS): from nothing
(no stored evidence), unchanged, then after the held-back images are inserted (a new
generation, as `neardup index` would leave it), and unchanged again. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_incremental import copy_catalog  # noqa: E402
from bench_stored import timed, work_dir  # noqa: E402


FILES = "files"  # the folder beside the scaled catalog that holds each replica's links to the source's files


class Source:
    """The source catalog's rows, read once."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.image_columns = [r[1] for r in db.execute("PRAGMA table_info(images)")]
        self.images = db.execute(f"SELECT {', '.join(self.image_columns)} FROM images ORDER BY id").fetchall()
        self.ids = np.array([r[0] for r in self.images], np.int64)
        self.hashes = db.execute("SELECT image_id, algo, view, bits FROM hashes").fetchall()
        self.vectors = db.execute("SELECT image_id, model, view, data FROM vectors").fetchall()
        self.keypoints = {t: db.execute(f"SELECT image_id, points, descriptors, colours FROM {t}").fetchall()
                          for t in ("keypoints", "mirrored_keypoints")}
        self.layouts = db.execute("SELECT image_id, width, height, cells FROM colour_layouts").fetchall()
        self.step = 10 ** len(str(int(self.ids.max())))  # copy k of id i is i + k * step


def insert_replica(db: sqlite3.Connection, src: Source, k: int, rng: np.random.Generator, files: Path,
                   only: set[int] | None = None) -> int:
    """Replica k of the source (only the source ids in `only`, when given), its files linked
    under `files`/k; the rows inserted."""
    shift = k * src.step
    folder = (files / str(k)).absolute()  # the catalog is read from other folders too
    folder.mkdir(parents=True, exist_ok=True)
    keep = (lambda i: i in only) if only is not None else (lambda i: True)
    cols = src.image_columns
    at = {c: n for n, c in enumerate(cols)}
    rows = []
    for r in src.images:
        if not keep(r[0]):
            continue
        r = list(r)
        r[at["id"]] += shift
        source = Path(r[at["path"]])
        link = folder / f"{r[at['id']]}-{source.name}"  # the id: two source folders may hold one name
        if not link.is_symlink():
            link.symlink_to(source)
        r[at["path"]] = str(link)
        if r[at["sha256"]]:
            r[at["sha256"]] = f"{r[at['sha256']]}#{k}"
        rows.append(r)
    db.executemany(f"INSERT INTO images ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
    masks: dict[str, np.ndarray] = {}

    def mask(algo: str, nbytes: int) -> np.ndarray:
        if algo not in masks:
            masks[algo] = rng.integers(0, 256, nbytes, dtype=np.uint8)
        return masks[algo]

    db.executemany("INSERT INTO hashes (image_id, algo, view, bits) VALUES (?, ?, ?, ?)",
                   [(i + shift, algo, view, (np.frombuffer(bits, np.uint8) ^ mask(algo, len(bits))).tobytes())
                    for i, algo, view, bits in src.hashes if keep(i)])
    signed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, model, view, data in src.vectors:
        if keep(i):
            v = np.frombuffer(data, np.float16)
            if model not in signed:
                signed[model] = (rng.permutation(len(v)), rng.choice(np.array([-1, 1], np.float16), len(v)))
            order, signs = signed[model]
            db.execute("INSERT INTO vectors (image_id, model, view, data) VALUES (?, ?, ?, ?)",
                       (i + shift, model, view, (v[order] * signs).tobytes()))
    descriptor_mask = rng.integers(0, 256, 32, dtype=np.uint8)
    for table, found in src.keypoints.items():
        db.executemany(f"INSERT INTO {table} (image_id, points, descriptors, colours) VALUES (?, ?, ?, ?)",
                       [(i + shift, points, (np.frombuffer(d, np.uint8).reshape(-1, 32) ^ descriptor_mask).tobytes(),
                         colours) for i, points, d, colours in found if keep(i)])
    db.executemany("INSERT INTO colour_layouts (image_id, width, height, cells) VALUES (?, ?, ?, ?)",
                   [(i + shift, w, h, cells) for i, w, h, cells in src.layouts if keep(i)])
    return len(rows)


def new_generation(db: sqlite3.Connection) -> None:
    """What every catalog write does: whatever was built from the catalog is stale now."""
    db.execute("UPDATE settings SET value = ? WHERE key = 'generation'", (json.dumps(uuid.uuid4().hex),))


def build(source: Path, target: Path, size: int, add: float, seed: int) -> tuple[Source, int, int, int]:
    """The scaled catalog without its held-back images, the replicas' files linked in the
    folder `files` beside it: (source, replicas, held-back images, images)."""
    db = sqlite3.connect(copy_catalog(source, target, drop_evidence=True))
    src = Source(db)
    replicas = max(1, -(-size // len(src.ids)))
    held = max(1, round(add * size))
    rng = np.random.default_rng(seed)
    with db:
        for k in range(1, replicas):
            insert_replica(db, src, k, rng, target.parent / FILES)
        new_generation(db)
    images = db.execute("SELECT count(*) FROM images").fetchone()[0]
    db.close()
    return src, replicas, held, images


def spanning(output: Path) -> tuple[int, int]:
    """(groups, groups whose members come from two replicas or more) of a JSON report: the
    files of replica k > 0 are in `FILES`/k."""
    def replica(path: str) -> int:
        parts = Path(path).parts
        return int(parts[-2]) if len(parts) > 2 and parts[-3] == FILES else 0

    groups = json.loads(output.read_text())
    return len(groups), sum(len({replica(m["path"]) for m in g["members"]}) > 1 for g in groups)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", type=Path, required=True, help="an SQLite catalog indexed by neardup (with keypoints)")
    ap.add_argument("--size", type=int, default=100_000, help="images in the scaled catalog, once all are added")
    ap.add_argument("--add", type=float, default=0.01, help="share of --size held back and added at the end")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--work", type=Path, default=None, help="where the scaled catalog goes (default: a temp dir)")
    args = ap.parse_args()
    work = work_dir(args.catalog, args.work, "neardup-replicas-")
    catalog = work / "catalog.db"
    start = time.perf_counter()
    src, replicas, held, images = build(args.catalog, catalog, args.size, args.add, args.seed)
    print(f"[bench] {images:,} images in {replicas - 1} full replicas and the source, built in "
          f"{time.perf_counter() - start:.0f} s at {catalog}", file=sys.stderr, flush=True)
    rows = []

    def step(name: str, count: int) -> None:
        seconds, peak, said = timed(catalog, "json", work / "groups.json")
        groups, spans = spanning(work / "groups.json")
        rows.append(f"| {name} | {count:,} | {seconds:.1f} | {1e3 * seconds / count:.2f} | {peak:,.0f} | "
                    f"{groups:,} | {spans} | {said} |")
        print(rows[-1], file=sys.stderr, flush=True)

    step("from nothing", images)
    step("unchanged", images)
    db = sqlite3.connect(catalog)
    added, k = 0, replicas
    with db:  # new replicas, the last one partial
        while added < held:
            take = set(src.ids[:min(held - added, len(src.ids))].tolist())
            added += insert_replica(db, src, k, np.random.default_rng(args.seed + k), work / FILES, only=take)
            k += 1
        new_generation(db)
    db.close()
    step(f"after adding {added:,}", images + added)
    step("unchanged again", images + added)
    print(f"`neardup duplicates --by auto` on {images:,} + {added:,} images: replicas of {args.catalog.name}'s "
          f"{len(src.ids):,}\n")
    print("| step | images | wall s | ms per image | peak RSS MB | groups | groups across replicas "
          "| what it said |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print("\n".join(rows))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
