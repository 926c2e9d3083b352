"""Throughput of the CNN stage alone: MobileNetV2 on 224×224 batches, as `CnnEmbedder` runs it.

Prints one row per batch size: images/s, ms per batch, the CPU this process used, and the
peak resident memory so far (rows run from small to large batches, so it grows with them). The
images are seeded noise already at 224×224, so decoding and resizing are not timed.
`CnnEmbedder` runs Keras' ``predict_on_batch``; ``--compare`` adds rows for a traced
``tf.function`` of the same network (what it ran before 2026-11-29).

    .venv/bin/python scripts/bench_cnn.py [--batch-sizes 16 32 64] [--seconds 10] [--compare]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Callable

import numpy as np

from neardup.indexer.embed import CnnEmbedder


def measure(
    run: Callable[[np.ndarray], object], batch: np.ndarray, seconds: float
) -> tuple[float, float]:
    """Images per second of ``run(batch)`` over at least ``seconds``, after two warm-up calls,
    and the CPU this process used meanwhile (200 % = both of 2 cores; less means the machine
    was shared and images/s is understated)."""
    run(batch)
    run(batch)
    done, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        run(batch)
        done += len(batch)
    return done / elapsed, 100 * (time.process_time() - cpu_start) / elapsed


def print_row(method: str, size: int, rate: float, cpu: float) -> None:
    row = f"{method:<18} {size:>5} {rate:>9.1f} {1000 * size / rate:>9.1f} {cpu:>6.0f}"
    print(f"{row} {peak_rss_mib():>9.0f}", flush=True)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per row")
    parser.add_argument("--pooling", choices=["gem", "mean"], default="gem")
    parser.add_argument("--compare", action="store_true", help="also time a traced tf.function")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (max(args.batch_sizes), 224, 224, 3), dtype=np.uint8)
    embedder = CnnEmbedder(pooling=args.pooling)
    start = time.perf_counter()
    embedder.embed_batch(images[:1])
    print(f"cores available: {len(os.sched_getaffinity(0))}; load average: {os.getloadavg()}")
    print(f"model build + first call: {time.perf_counter() - start:.1f} s")
    print(f"peak RSS after build: {peak_rss_mib():.0f} MiB\n")
    header = f"{'method':<18} {'batch':>5} {'images/s':>9} {'ms/batch':>9} {'CPU %':>6}"
    print(f"{header} {'peak MiB':>9}")
    for size in args.batch_sizes:
        print_row("CnnEmbedder", size, *measure(embedder.embed_batch, images[:size], args.seconds))
    if args.compare:
        compare_tf_function(images, args)


def compare_tf_function(images: np.ndarray, args: argparse.Namespace) -> None:
    """The same network as a traced ``tf.function`` of any batch size (no XLA)."""
    from neardup.indexer.mobilenet import build_mobilenet_v2, import_keras, normalise

    import_keras()
    import tensorflow as tf

    network = build_mobilenet_v2(pooling=args.pooling)

    @tf.function(input_signature=[tf.TensorSpec((None, 224, 224, 3), tf.float32)], jit_compile=False)
    def forward(batch):
        return network(batch, training=False)["embedding"]

    def run(batch: np.ndarray) -> object:
        return forward(normalise(batch)).numpy()

    for size in args.batch_sizes:
        print_row("tf.function", size, *measure(run, images[:size], args.seconds))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
