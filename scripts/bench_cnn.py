"""Throughput of the CNN stage alone: MobileNetV2 on 224×224 batches, through each runtime.

First the cold start of each `CnnEmbedder` runtime: seconds from a fresh Python process's first
line to its first embedding (LiteRT with the compiled network already cached; Keras importing
TensorFlow and building the network). Then one row per runtime and batch size: images/s, ms
per batch, the CPU this process used, and the peak resident memory so far (LiteRT rows run
first, before this process imports TensorFlow; rows grow with the batch size). The images are
seeded noise already at 224×224, so decoding and resizing are not timed. ``--compare`` adds
rows for a traced ``tf.function`` of the same network (what `CnnEmbedder` ran before
2026-11-29).

    .venv/bin/python scripts/bench_cnn.py [--batch-sizes 1 8 32 64] [--seconds 10] [--compare]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from neardup.indexer.embed import CnnEmbedder
from neardup.indexer.litert import cache_dir

RUNTIMES = {"LiteRT": "litert", "Keras": "keras"}
# Seconds from this script's first line to its first embedding, in a fresh process.
COLD_START = """if True:
    import time
    start = time.perf_counter()
    import sys
    import numpy as np
    from neardup.indexer.embed import CnnEmbedder
    embedder = CnnEmbedder(pooling=sys.argv[1], runtime=sys.argv[2])
    embedder.embed_batch(np.zeros((1, 224, 224, 3), np.uint8))
    print(time.perf_counter() - start)
"""


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


def cold_start(pooling: str, runtime: str) -> float:
    """Seconds to the first embedding of a new process running ``runtime`` (`COLD_START`)."""
    command = [sys.executable, "-c", COLD_START, pooling, runtime]
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per row")
    parser.add_argument("--pooling", choices=["gem", "mean"], default="gem")
    parser.add_argument("--compare", action="store_true", help="also time a traced tf.function")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (max(args.batch_sizes), 224, 224, 3), dtype=np.uint8)
    print(f"cores available: {len(os.sched_getaffinity(0))}; load average: {os.getloadavg()}")
    embedders = {name: CnnEmbedder(pooling=args.pooling, runtime=r) for name, r in RUNTIMES.items()}
    start = time.perf_counter()
    embedders["LiteRT"].embed_batch(images[:1])  # compiles into the cache on first use
    print(f"LiteRT load + first call: {time.perf_counter() - start:.1f} s (cache: {cache_dir()})")
    litert_s, keras_s = (cold_start(args.pooling, runtime) for runtime in RUNTIMES.values())
    print(f"cold start to first embedding: LiteRT {litert_s:.2f} s (network cached), "
          f"Keras {keras_s:.2f} s (import TensorFlow, build, first batch)\n")
    header = f"{'method':<18} {'batch':>5} {'images/s':>9} {'ms/batch':>9} {'CPU %':>6}"
    print(f"{header} {'peak MiB':>9}")
    for name, embedder in embedders.items():
        for size in args.batch_sizes:
            print_row(name, size, *measure(embedder.embed_batch, images[:size], args.seconds))
    if args.compare:
        compare_tf_function(images, args)
    print(f"load average at end: {os.getloadavg()}")


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


if __name__ == "__main__":
    main()
