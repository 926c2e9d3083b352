"""Indexing speed and memory, side by side with a decode-only loop and the tools people use.

    .venv/bin/python scripts/bench_speed.py [--tables large,small,10k] [--repeat 3]
                                            [--chart-dir docs/charts]

Three tables, each over one folder of JPEGs:
  large  the ≥ 4 MP images of the original-size corpus (--large, default /work/corpus/large,
         built by `CORPUS_MAX_SIDE=0 ../shared/data/gather_corpus.sh DIR`)
  small  the 1,272 images (long side ≤ 1024) of the shared corpus (--small)
  10k    10,000 small images: the small corpus and perturbed copies of it (a few pixels
         cropped, brightness and JPEG quality changed), made once into bench-out/corpus-10k;
         the table adds re-indexing the unchanged collection into the default catalog

Methods, each in its own fresh process over the same files (hard-linked into one folder,
page cache warm), all with --workers processes (threads for czkawka, which uses every core):
  decode-only loop   PIL `draft('RGB', (384, 384))` + `convert('RGB')`, a process pool: the
                     floor, what reading the pixels alone costs
  czkawka            `czkawka.ImageSimilarity().find_similar()` over the folder, default hash
  imagehash loop     `imagehash.phash(Image.open(f))`, a process pool
  neardup            `neardup index FOLDER --embedder none`, and with default settings (CNN)

Ratios are to the decode-only loop of the same run; with --repeat, every method runs that
many times round-robin and the fastest run counts ("spread" is slowest / fastest - 1, a
measure of the machine's noise). CPU ms per image is the whole process tree's user + system
time (the least of the runs), steadier than wall time on a shared machine. Peak RSS is the
whole process tree's, sampled every 20 ms.
Peers (imagehash, czkawka) come from scripts/bench_setup.sh, not from neardup's dependencies.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
NEARDUP = str(Path(PY).with_name("neardup"))
DECODE_LOOP = "decode-only loop"

POOL_LOOP = """
import multiprocessing, sys
from PIL import Image
files = open(sys.argv[1]).read().split("\\n")
def work(f):
{body}
if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool({workers}) as pool:
        for _ in pool.imap_unordered(work, files, chunksize=4):
            pass
"""
DECODE_BODY = "    with Image.open(f) as im:\n        im.draft('RGB', (384, 384))\n        im.convert('RGB')"
IMAGEHASH_BODY = "    import imagehash\n    imagehash.phash(Image.open(f))"
CZKAWKA = """
import sys
from czkawka import ImageSimilarity
finder = ImageSimilarity()
finder.set_directories([sys.argv[1]])
finder.find_similar()
"""


@dataclass
class Row:
    method: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: int = 0

    def add(self, seconds: float, cpu: float, rss: int) -> None:
        self.seconds.append(seconds)
        self.cpu.append(cpu)
        self.rss = max(self.rss, rss)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def spread(self) -> float:
        return max(self.seconds) / min(self.seconds) - 1


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


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system, the whole process tree) and peak tree RSS
    (sampled every 20 ms) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{err[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu, peak


def linked_folder(files: list[str], folder: Path) -> Path:
    """A folder holding exactly `files`, hard-linked (copied across file systems): czkawka and
    neardup skip symbolic links inside a folder."""
    folder.mkdir(parents=True)
    for f in files:
        target = folder / Path(f).name
        try:
            os.link(f, target)
        except OSError:
            shutil.copyfile(f, target)
    return folder


def perturbed(job: tuple[str, str, int]) -> tuple[str, int, int]:
    """One perturbed copy of a corpus image: a few pixels cropped, brightness and JPEG quality
    changed, all drawn from `seed`. Returns (file name, width, height)."""
    from PIL import Image, ImageEnhance

    source, target, seed = job
    rng = random.Random(seed)
    with Image.open(source) as im:
        im = im.convert("RGB")
        w, h = im.size
        box = (rng.randint(0, 4), rng.randint(0, 4), w - rng.randint(0, 4), h - rng.randint(0, 4))
        im = ImageEnhance.Brightness(im.crop(box)).enhance(rng.uniform(0.95, 1.05))
        im.save(target, quality=rng.randint(80, 95))
        return Path(target).name, *im.size


def build_10k(small: Path, out: Path, count: int = 10_000, workers: int = 2) -> Path:
    """`count` images in `out`: the small corpus, then perturbed copies of it (made once)."""
    if (out / "manifest.csv").exists():
        return out
    building = out.with_name(out.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    originals = select_files(small, 0)
    jobs, rows = [], []
    for f in originals[:count]:
        shutil.copyfile(f, building / Path(f).name)
    for i in range(count - min(count, len(originals))):
        source = originals[i % len(originals)]
        jobs.append((source, str(building / f"v{i // len(originals) + 1}_{Path(source).name}"), i))
    with ProcessPoolExecutor(workers) as pool:
        rows = list(pool.map(perturbed, jobs, chunksize=32))
    from PIL import Image

    for f in originals[:count]:
        with Image.open(f) as im:
            rows.append((Path(f).name, *im.size))
    with open(building / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "w", "h"])
        writer.writerows(sorted(rows))
    building.rename(out)
    return out


def methods(folder: Path, listing: Path, workers: int, embedders: list[str], tmp: Path,
            baseline: Path | None = None, peers: bool = True) -> dict[str, list[str]]:
    """Each method's command line; `baseline`: also neardup as installed in that checkout's .venv."""
    out = {
        f"{DECODE_LOOP} ({workers} processes)": [PY, "-c", POOL_LOOP.format(body=DECODE_BODY, workers=workers), str(listing)],
        "czkawka ImageSimilarity (Rust, all cores)": [PY, "-c", CZKAWKA, str(folder)],
        f"imagehash.phash loop ({workers} processes)": [PY, "-c", POOL_LOOP.format(body=IMAGEHASH_BODY, workers=workers),
                                                       str(listing)],
    }
    if not peers:
        out = dict(list(out.items())[:1])
    for embedder in embedders:
        label = "default (CNN)" if embedder == "default" else f"--embedder {embedder}"
        flags = [] if embedder == "default" else ["--embedder", embedder]
        for tag, program in ([("baseline ", str(baseline / ".venv" / "bin" / "neardup"))] if baseline else []) + [("", NEARDUP)]:
            out[f"neardup {tag}index {label} ({workers} workers)"] = [
                program, "index", str(folder), "--db", str(tmp / f"{tag.strip()}{embedder}.db"), "-q",
                "--workers", str(workers), *flags]
    return out


def run_table(files: list[str], workers: int, embedders: list[str], repeat: int, reindex: bool,
              baseline: Path | None = None, peers: bool = True) -> list[Row]:
    with tempfile.TemporaryDirectory(dir=ROOT / "bench-out") as tmp:
        tmp = Path(tmp)
        listing = tmp / "files.txt"
        listing.write_text("\n".join(files))
        folder = linked_folder(files, tmp / "images")
        for f in files:  # warm the page cache so every method reads from memory
            Path(f).read_bytes()
        commands = methods(folder, listing, workers, embedders, tmp, baseline, peers)
        rows = {name: Row(name) for name in commands}
        if reindex:
            rows["neardup re-index, unchanged (default catalog)"] = Row("neardup re-index, unchanged (default catalog)")
        peer_env = {**os.environ, "HOME": str(tmp), "XDG_CACHE_HOME": str(tmp / "cache")}  # no peer caches
        for _ in range(repeat):
            for name, cmd in commands.items():
                for db in tmp.glob("*.db*"):
                    db.unlink()
                rows[name].add(*run_measured(cmd, env=peer_env if name.startswith("czkawka") else None))
            if reindex:
                default = commands[f"neardup index default (CNN) ({workers} workers)"]
                rows["neardup re-index, unchanged (default catalog)"].add(*run_measured(default))
        return list(rows.values())


def print_table(title: str, rows: list[Row], count: int) -> None:
    base = count / next(r.best for r in rows if r.method.startswith(DECODE_LOOP))
    print(f"\n{title}\n")
    print("| method | seconds | images/s | × decode-only loop | spread | CPU ms per image | peak RSS (MB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        rate = count / r.best
        ratio = f"{rate / base:.2f}" if "re-index" not in r.method else "–"
        shown = f"{rate:.1f}" if "re-index" not in r.method else "–"
        print(f"| {r.method} | {r.best:.2f} | {shown} | {ratio} | {r.spread:.0%} | {1000 * min(r.cpu) / count:.1f} "
              f"| {r.rss / 2**20:.0f} |")


def chart(rows: list[Row], count: int, title: str, path: Path) -> None:
    """Horizontal bars of images/s, each labelled with its ratio to the decode-only loop."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if "re-index" not in r.method][::-1]
    base = count / next(r.best for r in rows if r.method.startswith(DECODE_LOOP))
    rates = [count / r.best for r in rows]
    fig, ax = plt.subplots(figsize=(8.5, 0.6 * len(rows) + 1.2))
    colours = ["#4c72b0" if r.method.startswith("neardup") else "#999999" for r in rows]
    bars = ax.barh([r.method for r in rows], rates, color=colours)
    for bar, rate in zip(bars, rates):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {rate:.0f}/s ({rate / base:.2f}x)",
                va="center", fontsize=9)
    ax.set_xlabel("images per second (higher is better); ratio to the decode-only loop")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, max(rates) * 1.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compile_sources(root: Path) -> None:
    """Byte-compile a checkout's packages, as installing a wheel does: an editable install in
    an environment with PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module of
    neardup from source at each start (~0.3 s of every command)."""
    folders = [str(root / name) for name in ("neardup", "indexer", "search", "storage", "clean") if (root / name).is_dir()]
    subprocess.run([PY, "-m", "compileall", "-q", *folders], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", type=Path, default=Path("/work/corpus/large"))
    ap.add_argument("--small", type=Path, default=Path("/work/corpus/normal"))
    ap.add_argument("--tables", default="large,small,10k")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--embedders", default="none,default", help="neardup rows: comma list of --embedder values")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--chart-dir", type=Path, help="write one bar chart per table (PNG) into this folder")
    ap.add_argument("--baseline", type=Path, help="a neardup checkout with its own .venv: its rows too, for A/B")
    ap.add_argument("--no-peers", action="store_true", help="only the decode-only loop and neardup")
    args = ap.parse_args()
    (ROOT / "bench-out").mkdir(exist_ok=True)
    embedders = args.embedders.split(",")
    for checkout in (ROOT, args.baseline):
        if checkout:
            compile_sources(checkout)
    tables = {
        "large": (lambda: select_files(args.large, 4.0), "JPEGs of >= 4 MP", "throughput.png"),
        "small": (lambda: select_files(args.small, 0.0), "small JPEGs (long side <= 1024)", "throughput-normal.png"),
        "10k": (lambda: select_files(build_10k(args.small, ROOT / "bench-out" / "corpus-10k"), 0.0),
                "small JPEGs and perturbed copies", "throughput-10k.png"),
    }
    load = os.getloadavg()[0]
    for name in args.tables.split(","):
        pick, what, png = tables[name]
        files = pick()
        rows = run_table(files, args.workers, embedders, args.repeat, name == "10k", args.baseline, not args.no_peers)
        title = f"{len(files)} {what}, {args.workers} cores"
        print_table(f"{title} (best of {args.repeat}; load average {load:.1f} at start)", rows, len(files))
        sys.stdout.flush()
        if args.chart_dir:
            chart(rows, len(files), f"Indexing throughput: {title}", args.chart_dir / png)
            print(f"\nchart: {args.chart_dir / png}")
        load = os.getloadavg()[0]


if __name__ == "__main__":
    main()
