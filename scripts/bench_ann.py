#!/usr/bin/env python3
"""Exact against approximate indexes (storage.ann) at growing N: build time, memory, recall@10
measured at build and on held-out queries, single-query latency.

    .venv/bin/python scripts/bench_ann.py --catalog bench-out/duplicates/dev/neardup/auto.db \\
        --sizes 10k,100k [--feature pdq,cnn] [--out bench-out/ann]

Rows are derived from a real catalog's features (its whole-image pdq hashes and cnn vectors):
the real rows themselves, then rows made from two random real ones a and b with a mix w drawn
uniformly from [0, 0.5): a hash takes each bit from b with probability w, then flips each with
probability 0.03; a vector is (1 - w) a + w b plus Gaussian noise of norm about 0.3,
normalised. Real data has such structure (near copies, look-alikes, unrelated images), which
inverted lists exploit and uniform noise lacks. They are written to a real catalog, and each
index is built through `Catalog.index` as `neardup` builds it: exact (exact_below above N), then
approximate (exact_below 0, default memory budget). 200 held-out derived rows are the queries;
held-out recall counts an answer as a hit when it is at least as near as the exact 10th.
Queries run with one OpenMP thread: on a shared 2-core machine two threads made single
queries slower and far noisier.
Prints a markdown table and writes <out>/results.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np

from neardup.storage.ann import IndexPolicy
from neardup.storage.catalog import Catalog
from neardup.storage.records import ImageRecord

ROOT = Path(__file__).resolve().parents[1]
QUERIES = 200
WRITE_CHUNK = 10_000


def parse_size(text: str) -> int:
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def derived(codes: np.ndarray, vectors: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n rows made from pairs of real rows (see the module docstring): (n, B) uint8, (n, D) float32."""
    a, b = rng.integers(0, len(codes), n), rng.integers(0, len(codes), n)
    w = rng.uniform(0, 0.5, n)
    bits_a, bits_b = np.unpackbits(codes[a], axis=1), np.unpackbits(codes[b], axis=1)
    take_b = rng.random(bits_a.shape) < w[:, None]
    flips = rng.random(bits_a.shape) < 0.03
    out_codes = np.packbits(np.where(take_b, bits_b, bits_a) ^ flips, axis=1)
    d = vectors.shape[1]
    mixed = (1 - w)[:, None] * vectors[a] + w[:, None] * vectors[b] + rng.normal(0, 0.3 / np.sqrt(d), (n, d))
    return out_codes, (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(np.float32)


def make_catalog(path: Path, source: Catalog, n: int, seed: int) -> tuple[Catalog, np.ndarray, np.ndarray]:
    """A catalog of n rows (the source's real ones first), and held-out query rows. Derived rows
    are made and written WRITE_CHUNK at a time: a million vectors' float64 mixing alone would
    take 10 GB at once."""
    ids, codes = source.hashes("pdq")
    vids, vectors = source.vectors("cnn")
    common = np.intersect1d(ids, vids)
    codes, vectors = codes[np.isin(ids, common)], vectors[np.isin(vids, common)]
    rng = np.random.default_rng(seed)
    query_codes, query_vectors = derived(codes, vectors, QUERIES, rng)
    settings = replace(source.settings, hashes=("pdq",), local_features=None)
    path.unlink(missing_ok=True)
    catalog = Catalog.create(path, settings, [source.model("cnn")])
    for lo in range(0, n, WRITE_CHUNK):
        hi = min(lo + WRITE_CHUNK, n)
        real = max(min(hi, len(codes)) - lo, 0)
        made = derived(codes, vectors, hi - lo - real, rng)
        chunk_codes = np.concatenate([codes[lo : lo + real], made[0]])
        chunk_vectors = np.concatenate([vectors[lo : lo + real], made[1]])
        catalog.write([ImageRecord(path=f"/derived/{i}.jpg", size=1, mtime_ns=1, sha256=f"{i:064x}",
                                   hashes={"image": {"pdq": chunk_codes[i - lo]}},
                                   vectors={"image": {"cnn": chunk_vectors[i - lo]}})
                       for i in range(lo, hi)])
    return catalog, query_codes, query_vectors


def measure(catalog: Catalog, feature: str, queries: np.ndarray, policy: IndexPolicy) -> dict:
    catalog.set_index_policy(policy)
    for f in catalog.path.parent.glob(f"{catalog.path.stem}.{feature}.faiss*"):
        f.unlink()
    index = catalog.index(feature)
    start = time.perf_counter()
    len(index)
    build = time.perf_counter() - start
    state = index.state()
    times, answers = [], []
    for q in queries:
        start = time.perf_counter()
        answers.append(index.knn(q[None], 10)[0])
        times.append(time.perf_counter() - start)
    return {"kind": state.kind, "nprobe": state.nprobe, "memory": state.memory, "recall": state.recall,
            "build": build, "p50": 1e3 * float(np.median(times)), "answers": answers}


def held_out_recall(exact: list, found: list, binary: bool) -> float:
    hits = total = 0
    for truth, got in zip(exact, found):
        if not truth:
            continue
        kth = truth[-1].distance
        hits += sum((n.distance <= kth) if binary else (n.distance >= kth - 1e-6) for n in got[: len(truth)])
        total += len(truth)
    return hits / max(total, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", type=Path, required=True, help="a real catalog with pdq hashes and cnn vectors")
    ap.add_argument("--sizes", default="10k,100k")
    ap.add_argument("--feature", default="pdq,cnn")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "ann")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    faiss.omp_set_num_threads(1)
    source = Catalog.open(args.catalog, readonly=True)
    lines = ["| feature | N | index | nprobe | build s | memory MiB | recall@10 at build | recall@10 held-out "
             "| query p50 ms (k=10) |", "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n in (parse_size(s) for s in args.sizes.split(",")):
        start = time.perf_counter()
        catalog, codes, vectors = make_catalog(args.out / f"derived{n}.db", source, n, args.seed)
        print(f"[bench] {n:,} rows written in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        for feature in args.feature.split(","):
            binary = feature == "pdq"
            queries = codes if binary else vectors
            exact = measure(catalog, feature, queries, IndexPolicy(exact_below=10**9))
            approximate = measure(catalog, feature, queries, IndexPolicy(exact_below=0))
            for label, r in (("exact", exact), ("approximate", approximate)):
                held = held_out_recall(exact["answers"], r["answers"], binary)
                lines.append(f"| {feature} | {n:,} | {r['kind']} ({label}) | {r['nprobe']} | {r['build']:.1f} | "
                             f"{r['memory'] / 2**20:.1f} | {r['recall']:.4f} | {held:.4f} | {r['p50']:.2f} |")
            print("\n".join(lines), file=sys.stderr)
        catalog.close()
        for f in args.out.glob(f"derived{n}.*"):
            f.unlink()
    text = "\n".join(lines)
    print(text)
    (args.out / "results.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
