"""Indexing speed and memory, side by side with the loops people write today.

    .venv/bin/python scripts/bench_speed.py [--corpus DIR] [--min-mp 4] [--embedders none,cnn]
                                            [--chart docs/charts/throughput.png]

Runs each method in its own fresh process over the same files (page cache warmed first) and
prints images/s, the ratio to a plain single-process `imagehash.phash(Image.open(f))` loop,
and peak RSS of the whole process tree; with --chart, the same as a bar chart (PNG). Peers (imagehash, pdqhash) come from
scripts/bench_setup.sh, not from neardup's dependencies.
The default corpus is the shared one at original size:
    CORPUS_MAX_SIDE=0 ../shared/data/gather_corpus.sh bench-out/corpus-large
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

LOOPS = {
    "imagehash.phash loop (1 process)": "import imagehash\nfrom PIL import Image\nfor f in files: imagehash.phash(Image.open(f))",
    "pdqhash loop (1 process)": (
        "import cv2, pdqhash\nfor f in files: pdqhash.compute(cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB))"
    ),
}


def select_files(corpus: Path, min_mp: float) -> list[str]:
    """Corpus JPEGs of at least `min_mp` megapixels, from its manifest.csv."""
    with open(corpus / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return sorted(str(corpus / r["file"]) for r in rows if int(r["w"]) * int(r["h"]) >= min_mp * 1e6)


def tree_rss(pid: int) -> int:
    """Resident set size in bytes of a process and all its descendants (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak tree RSS (sampled every 50 ms) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    t.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{err[-2000:]}")
    return seconds, peak


def loop_command(code: str, listing: Path) -> list[str]:
    return [PY, "-c", f"files = open({str(listing)!r}).read().split(chr(10))\n{code}"]


def neardup_command(listing_dir: Path, db: Path, embedder: str, workers: int) -> list[str]:
    return [str(Path(PY).with_name("neardup")), "index", str(listing_dir), "--db", str(db), "-q",
            "--workers", str(workers), *(["--embedder", embedder] if embedder != "default" else [])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT / "bench-out" / "corpus-large")
    ap.add_argument("--min-mp", type=float, default=4.0, help="only images of at least this many megapixels")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--embedders", default="none", help="comma list of neardup --embedder values to time")
    ap.add_argument("--chart", type=Path, help="write images/s per method as a bar chart to this PNG")
    args = ap.parse_args()
    if not (args.corpus / "manifest.csv").exists():
        env = {**os.environ, "CORPUS_MAX_SIDE": "0"}
        subprocess.run([str(ROOT.parent / "shared" / "data" / "gather_corpus.sh"), str(args.corpus)], check=True, env=env)
    files = select_files(args.corpus, args.min_mp)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        listing = tmp / "files.txt"
        listing.write_text("\n".join(files))
        folder = tmp / "images"
        folder.mkdir()
        for f in files:  # symlinks: neardup walks a folder of exactly these files
            (folder / Path(f).name).symlink_to(f)
        for f in files:  # warm the page cache so every method reads from memory
            Path(f).read_bytes()
        rows = []
        for name, code in LOOPS.items():
            rows.append((name, *run_measured(loop_command(code, listing))))
        for emb in args.embedders.split(","):
            db = tmp / f"bench-{emb}.db"
            label = f"neardup index --embedder {emb} ({args.workers} workers)"
            rows.append((label, *run_measured(neardup_command(folder, db, emb, args.workers))))
    base = len(files) / rows[0][1]
    first_neardup = rows[len(LOOPS)][1]
    print(f"\n{len(files)} images of >= {args.min_mp:g} MP from {args.corpus} ({os.cpu_count()} cores)\n")
    print("| method | seconds | images/s | × imagehash loop | time ÷ first neardup row | peak RSS (MB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, seconds, rss in rows:
        rate = len(files) / seconds
        print(f"| {name} | {seconds:.1f} | {rate:.1f} | {rate / base:.2f} | {seconds / first_neardup:.2f} | {rss / 2**20:.0f} |")
    if args.chart:
        title = f"Indexing throughput: {len(files)} images of >= {args.min_mp:g} MP, {os.cpu_count()} cores"
        chart(rows, len(files), base, title, args.chart)
        print(f"\nchart: {args.chart}")


def chart(rows: list[tuple[str, float, int]], count: int, base: float, title: str, path: Path) -> None:
    """Horizontal bars of images/s, each labelled with its ratio to the imagehash loop."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name, _, _ in rows][::-1]
    rates = [count / seconds for _, seconds, _ in rows][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.2))
    bars = ax.barh(names, rates, color=["#4c72b0" if n.startswith("neardup") else "#999999" for n in names])
    for bar, rate in zip(bars, rates):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {rate:.1f}/s ({rate / base:.2f}x)",
                va="center", fontsize=9)
    ax.set_xlabel("images per second (higher is better); ratio to the imagehash loop")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, max(rates) * 1.35)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
