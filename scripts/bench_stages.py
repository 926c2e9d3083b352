"""Where indexing time goes, per image: each stage of `extract` and of the writer timed alone.

    .venv/bin/python scripts/bench_stages.py --corpus /work/corpus/normal [--limit 400] [--min-mp 0]

One process, one thread everywhere (OpenCV, LiteRT), page cache warm: the figures are CPU
milliseconds per image (process time, so that a busy machine's waits are not counted) of each
step as the indexer runs it, so that their sum can be set
against the wall time per image of `scripts/bench_speed.py`. The catalog write is timed
per batch of 64 records, as the pipeline writes them, and divided by 64. The IPC row is the
cost of pickling a worker's result and unpickling it again (what the pool sends back).
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import select_files  # noqa: E402

from neardup.indexer import decode as decode_module  # noqa: E402
from neardup.indexer.embed import CnnEmbedder, resize_square  # noqa: E402
from neardup.indexer.extract import Extracted, extract, image_hashes  # noqa: E402
from neardup.indexer.features import FEATURES_ID, orb_and_mirror  # noqa: E402
from neardup.indexer.hashes import HASH_VERSION, HASHES  # noqa: E402
from neardup.indexer.regions import content_box  # noqa: E402
from neardup.indexer.traits import exif_record  # noqa: E402
from neardup.indexer.walk import FileEntry  # noqa: E402
from neardup.storage.catalog import Catalog  # noqa: E402
from neardup.storage.settings import CatalogSettings  # noqa: E402

NOISE = "noise (keeper, in decode)"
ENLARGEMENT = "enlargement (keeper, in decode; its full-size luma included)"
SETTINGS = CatalogSettings(hashes=tuple(HASHES), hash_version=HASH_VERSION, local_features=FEATURES_ID)


def timed(times: dict[str, float], stage: str, fn, *args):
    start = time.process_time()
    out = fn(*args)
    times[stage] += time.process_time() - start
    return out


def stages(files: list[str], cnn: CnnEmbedder | None) -> tuple[dict[str, float], list]:
    """Run each stage of `extract` separately over `files`: seconds per stage, and the records."""
    times: dict[str, float] = defaultdict(float)
    # measured inside decode, each a row of its own
    noise, enlargement, luma = decode_module._noise, decode_module.enlargement, decode_module._full_size_luma
    decode_module._noise = lambda *a: timed(times, NOISE, noise, *a)
    decode_module.enlargement = lambda *a: timed(times, ENLARGEMENT, enlargement, *a)
    decode_module._full_size_luma = lambda *a: timed(times, ENLARGEMENT, luma, *a)
    for path in files:
        data = timed(times, "read file", Path(path).read_bytes)
        timed(times, "SHA-256", lambda: hashlib.sha256(data).hexdigest())
        image = timed(times, "decode (reduced)", decode_module.decode, data)
        timed(times, "EXIF date and camera (keeper)", exif_record, data)
        pixels = image.pixels
        timed(times, "7 hashes + PDQ quality", image_hashes, pixels, SETTINGS.hashes)
        box = timed(times, "content box", content_box, pixels)
        if box is not None:
            timed(times, "box hashes", image_hashes, box, SETTINGS.hashes)
        timed(times, "ORB of the image and its mirror", lambda: orb_and_mirror(pixels, side=SETTINGS.decode_side))
        views = [pixels] if box is None else [pixels, box]
        small = timed(times, "resize to 224 (CNN input)", lambda: [resize_square(v, 224) for v in views])
        if cnn is not None:
            timed(times, "CNN (LiteRT, 1 thread)", cnn.embed_batch, np.stack(small))
    decode_module._noise, decode_module.enlargement, decode_module._full_size_luma = noise, enlargement, luma
    times["decode (reduced)"] -= times[NOISE] + times[ENLARGEMENT]
    return times


def records_and_ipc(files: list[str], times: dict[str, float]) -> list[Extracted]:
    out = []
    for path in files:
        st = Path(path).stat()
        found = extract(FileEntry(path, st.st_size, st.st_mtime_ns), SETTINGS, {}, [224])
        blob = timed(times, "IPC (pickle + unpickle result)", pickle.dumps, found, pickle.HIGHEST_PROTOCOL)
        timed(times, "IPC (pickle + unpickle result)", pickle.loads, blob)
        out.append(found)
    return out


def write_time(records: list[Extracted], times: dict[str, float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog.create(Path(tmp) / "t.db", SETTINGS)
        for start in range(0, len(records), 64):
            batch = [x.record for x in records[start : start + 64]]
            timed(times, "catalog write (64 per transaction)", catalog.write, batch)
        catalog.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("/work/corpus/normal"))
    ap.add_argument("--min-mp", type=float, default=0.0)
    ap.add_argument("--limit", type=int, default=400)
    ap.add_argument("--no-cnn", action="store_true")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    files = select_files(args.corpus, args.min_mp)[: args.limit]
    for f in files:
        Path(f).read_bytes()
    cnn = None
    if not args.no_cnn:
        from neardup.indexer import litert

        cnn = CnnEmbedder()
        cnn._forward = litert.load_network(cnn._litert_spec(), threads=1)
        cnn.embed_batch(np.zeros((1, 224, 224, 3), np.uint8))
    start = time.perf_counter()
    times = stages(files, cnn)
    records = records_and_ipc(files, times)
    write_time(records, times)
    wall = time.perf_counter() - start
    total = sum(times.values())
    print(f"\n{len(files)} images from {args.corpus} (>= {args.min_mp:g} MP), one process, one thread\n")
    print("| stage | ms per image | share |")
    print("| --- | ---: | ---: |")
    for stage, seconds in times.items():
        print(f"| {stage} | {1000 * seconds / len(files):.2f} | {seconds / total:.0%} |")
    print(f"| **sum** | **{1000 * total / len(files):.2f}** | 100% |")
    print(f"\n(wall {wall:.1f} s, including the second extract pass for the IPC and write rows)")


if __name__ == "__main__":
    main()
