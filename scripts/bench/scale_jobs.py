"""The measured work of the scale benchmark; each job runs alone in a fresh child process.

A job is a dict ``{"method", "kind", "n", "seed", "threshold", ...}`` (see ``bench_scale.py``).
It reports as it goes through ``emit(record)`` (one JSON line per call on stdout), so what was
measured before a crash, a ``MemoryError`` or a kill for running over time is not lost.

- ``neardup``: ``build_binary``/``build_float`` → 100 warm single ``knn`` queries (k=10) →
  duplicates exactly as ``find_duplicates`` does them: ``within`` at the threshold, then the
  ``(a, b, cost)`` list and ``single_linkage``. When the probe of the first ``probe`` queries
  predicts more than ``full_limit`` seconds for all N, the figure is extrapolated from the probe.
- ``brute``: imagededup-style all pairs. Queries are a NumPy scan of the whole collection; the
  duplicates are one N × N float32 matrix (Hamming through products of the unpacked bits, or
  ``X @ X.T``, in blocks of rows), thresholded in row blocks, then union-find.
- ``unionfind``: ``single_linkage`` alone on random edges, to see its cost per edge.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from bench import scale_data

Emit = Callable[[dict], None]
WARMUP = 10
CHUNK = 1000       # rows of the N × N matrix computed at a time (imagededup's chunk_size)
ROW_BLOCK = 2048   # rows of the N × N matrix thresholded at a time


def proc_status_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` (peak) of this process in MB, from /proc/self/status."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    return kb / 1024


def collection(kind: str, n: int, seed: int) -> tuple[NDArray, scale_data.Planted]:
    return scale_data.binary_collection(n, seed=seed) if kind == "binary" else scale_data.float_collection(n, seed=seed)


def median_latency_ms(search: Callable[[NDArray], object], queries: NDArray) -> tuple[float, float]:
    """Median and 90th percentile ms of ``search`` on one (1, ·) query at a time, after warm-up."""
    for q in queries[:WARMUP]:
        search(q[None, :])
    times = []
    for q in queries[WARMUP:]:
        start = time.perf_counter()
        search(q[None, :])
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3), float(np.percentile(times, 90) * 1e3)


def planted_recall(clusters: list[list[int]], planted: scale_data.Planted, below: int | None = None) -> float:
    """Share of planted pairs (a < b) whose two rows share a cluster; only pairs with a < ``below``."""
    pairs = planted.pairs if below is None else planted.pairs[planted.pairs[:, 0] < below]
    if not len(pairs):
        return float("nan")
    label = {x: i for i, c in enumerate(clusters) for x in c}
    found = sum(1 for a, b in pairs.tolist() if a in label and label.get(b) == label[a])
    return found / len(pairs)


def spurious(src: NDArray[np.int64], dst: NDArray[np.int64], planted: scale_data.Planted) -> int:
    """Found pairs that are not a planted pair nor two copies of one source (should be ~0)."""
    family = planted.family()
    return sum(1 for a, b in zip(src.tolist(), dst.tolist()) if a not in family or family[a] != family.get(b))


# --- neardup ---------------------------------------------------------------------------------

def neardup_job(job: dict, emit: Emit) -> None:
    from neardup.storage.vectors import build_binary, build_float

    kind, n = job["kind"], job["n"]
    data, planted = collection(kind, n, job["seed"])
    ids = np.arange(n, dtype=np.int64)
    emit({"data_mb": proc_status_mb("VmRSS")})
    start = time.perf_counter()
    index = build_binary(ids, data) if kind == "binary" else build_float(ids, data)
    emit({"build_s": time.perf_counter() - start, "index_mb": proc_status_mb("VmRSS")})
    emit(neardup_latency(index, data, job))
    neardup_duplicates(index, data, planted, job, emit)


def neardup_latency(index, data: NDArray, job: dict) -> dict:
    """Median ms of single ``knn`` queries, on FAISS's default OpenMP threads and on one thread."""
    import faiss

    from neardup.storage.vectors import knn

    queries, rows = scale_data.query_rows(data, WARMUP + job["queries"], seed=job["seed"])
    p50, p90 = median_latency_ms(lambda q: knn(index, q, job["k"]), queries)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)   # the same queries on one OpenMP thread: no fork/join per query
    p50_1, _ = median_latency_ms(lambda q: knn(index, q, job["k"]), queries)
    faiss.omp_set_num_threads(threads)
    top1 = np.mean([hits[0].image_id == r for hits, r in zip(knn(index, queries, 1), rows)])
    return {"query_ms": p50, "query_p90_ms": p90, "query_1thread_ms": p50_1, "omp_threads": threads,
            "top1": float(top1)}


def neardup_duplicates(index, data: NDArray, planted: scale_data.Planted, job: dict, emit: Emit) -> None:
    """``within`` + ``single_linkage`` as find_duplicates runs them; extrapolated from the first
    ``probe`` queries when those predict more than ``full_limit`` seconds for all N."""
    from neardup.search.linkage import single_linkage
    from neardup.storage.vectors import within

    kind, n = job["kind"], len(data)
    ids = np.arange(n, dtype=np.int64)
    limit = job["threshold"] if kind == "float" else int(job["threshold"])
    batch = 4096 if kind == "binary" else 1024    # as find_duplicates calls within
    probe = min(job["probe"], n)
    start = time.perf_counter()
    edges = within(index, data[:probe], ids[:probe], limit, batch=batch)
    probe_s = time.perf_counter() - start
    estimate = probe_s * n / probe
    emit({"probe_queries": probe, "probe_s": probe_s, "probe_estimate_s": estimate})
    extrapolated = probe < n and estimate > job["full_limit"]
    within_s = estimate
    if probe < n and not extrapolated:
        start = time.perf_counter()
        edges = within(index, data, ids, limit, batch=batch)
        within_s = time.perf_counter() - start
    emit({"within_s": within_s, "extrapolated": extrapolated, "within_peak_mb": proc_status_mb("VmHWM")})

    start = time.perf_counter()
    cost = edges.value if kind == "binary" else -edges.value
    clusters = single_linkage(list(zip(edges.src.tolist(), edges.dst.tolist(), cost.tolist())))
    group_s = (time.perf_counter() - start) * (n / probe if extrapolated else 1.0)
    emit({
        "group_s": group_s, "dups_s": within_s + group_s, "pairs": len(edges.src),
        "recall": planted_recall(clusters, planted, below=probe if extrapolated else None),
        "spurious": spurious(edges.src, edges.dst, planted), "groups": len(clusters), "status": "ok",
    })


# --- brute force -----------------------------------------------------------------------------

def scan_binary(codes: NDArray[np.uint8], k: int) -> Callable[[NDArray[np.uint8]], NDArray[np.int64]]:
    """A query (1, B) uint8 → its k nearest rows by Hamming: XOR and popcount of every row."""
    def search(q: NDArray[np.uint8]) -> NDArray[np.int64]:
        dist = np.bitwise_count(codes ^ q).sum(axis=1, dtype=np.int32)
        top = np.argpartition(dist, k)[:k]
        return top[np.argsort(dist[top], kind="stable")]
    return search


def scan_float(vectors: NDArray[np.float32], k: int) -> Callable[[NDArray[np.float32]], NDArray[np.int64]]:
    """A query (1, D) float32 → its k most similar rows: one product with every row."""
    def search(q: NDArray[np.float32]) -> NDArray[np.int64]:
        sim = vectors @ q[0]
        top = np.argpartition(-sim, k)[:k]
        return top[np.argsort(-sim[top], kind="stable")]
    return search


def distance_matrix(kind: str, data: NDArray) -> NDArray[np.float32]:
    """All pairs at once: (N, N) float32 Hamming distances, or cosine similarities.

    Filled ``CHUNK`` rows at a time, as imagededup's ``get_cosine_similarity`` does above 10k
    images (one GEMM per block). A single ``X @ X.T`` would be half the arithmetic (NumPy turns
    it into SYRK), but with NumPy 2.4 / scipy-openblas 0.3.31 it segfaults at 40,000 × 1280.
    """
    n = len(data)
    matrix = np.empty((n, n), np.float32)
    if kind == "float":
        for lo in range(0, n, CHUNK):
            np.matmul(data[lo : lo + CHUNK], data.T, out=matrix[lo : lo + CHUNK])
        return matrix
    bits = np.unpackbits(data, axis=1).astype(np.float32)    # (N, 256) of 0/1
    ones = bits.sum(axis=1)
    for lo in range(0, n, CHUNK):
        block = matrix[lo : lo + CHUNK]
        np.matmul(bits[lo : lo + CHUNK], bits.T, out=block)   # bits set in both
        block *= -2
        block += ones[lo : lo + CHUNK, None]
        block += ones[None, :]                                # |a| + |b| - 2 |a & b|
    return matrix


def matrix_pairs(kind: str, matrix: NDArray[np.float32], threshold: float) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Pairs (a < b) of the matrix within the threshold, ``ROW_BLOCK`` rows at a time."""
    src, dst = [], []
    for lo in range(0, len(matrix), ROW_BLOCK):
        block = matrix[lo : lo + ROW_BLOCK]
        r, c = np.nonzero(block <= threshold if kind == "binary" else block >= threshold)
        keep = c > r + lo
        src.append(r[keep] + lo)
        dst.append(c[keep])
    return np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64)


def brute_job(job: dict, emit: Emit) -> None:
    from bench.bruteforce import components

    kind, n = job["kind"], job["n"]
    data, planted = collection(kind, n, job["seed"])
    emit({"data_mb": proc_status_mb("VmRSS")})

    queries, rows = scale_data.query_rows(data, WARMUP + job["queries"], seed=job["seed"])
    scan = (scan_binary if kind == "binary" else scan_float)(data, job["k"])
    p50, p90 = median_latency_ms(scan, queries)
    top1 = np.mean([scan(q[None, :])[0] == r for q, r in zip(queries, rows)])
    emit({"query_ms": p50, "query_p90_ms": p90, "top1": float(top1), "query_peak_mb": proc_status_mb("VmHWM")})
    if not job["run_dups"]:
        emit({"status": "too_big"})
        return

    start = time.perf_counter()
    try:
        matrix = distance_matrix(kind, data)
        emit({"matrix_s": time.perf_counter() - start})
        src, dst = matrix_pairs(kind, matrix, job["threshold"])
    except MemoryError as e:
        emit({"status": "oom", "error": str(e)[:200], "failed_after_s": time.perf_counter() - start,
              "peak_mb": proc_status_mb("VmHWM")})
        return
    del matrix
    pairs_s = time.perf_counter() - start
    start = time.perf_counter()
    clusters = components(n, np.stack([src, dst], axis=1))
    group_s = time.perf_counter() - start
    emit({
        "within_s": pairs_s, "group_s": group_s, "dups_s": pairs_s + group_s, "pairs": len(src),
        "recall": planted_recall(clusters, planted), "spurious": spurious(src, dst, planted),
        "groups": len(clusters), "status": "ok",
    })


# --- union-find alone ------------------------------------------------------------------------

def unionfind_job(job: dict, emit: Emit) -> None:
    """``single_linkage`` on ``n`` random edges among ``n`` nodes, as find_duplicates feeds it."""
    from neardup.search.linkage import single_linkage

    rng = np.random.default_rng(job["seed"])
    a, b = rng.integers(0, job["n"], job["n"]), rng.integers(0, job["n"], job["n"])
    cost = rng.integers(0, 70, job["n"]).astype(np.float32)
    before = proc_status_mb("VmRSS")
    start = time.perf_counter()
    pairs = list(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), cost.tolist()))
    list_s = time.perf_counter() - start
    clusters = single_linkage(pairs)
    total_s = time.perf_counter() - start
    emit({"edges": job["n"], "list_s": list_s, "group_s": total_s, "us_per_edge": total_s / job["n"] * 1e6,
          "extra_mb": proc_status_mb("VmHWM") - before, "groups": len(clusters), "status": "ok"})


JOBS: dict[str, Callable[[dict, Emit], None]] = {"neardup": neardup_job, "brute": brute_job, "unionfind": unionfind_job}
