#!/usr/bin/env python3
"""`neardup` on a large real indexed collection, command by command: index, `duplicates` from
nothing, `duplicates` again (unchanged catalog), index a further folder (e.g. 1 % more
images), `duplicates` after adding them. Each step is the CLI as a user runs it, in its own
process: wall time, CPU time and peak RSS (that process and its workers, the largest one).

    .venv/bin/python scripts/bench_real_scale.py --base DIR --added DIR --db CAT.db [--embedder cnn]

Make a collection with `scripts/bench_speed.py`'s `build_10k(small, out, count)` (the corpus and
perturbed copies of it) and move some of its files to the --added folder. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

NEARDUP = Path(sys.executable).with_name("neardup")


def step(label: str, args: list[str]) -> tuple[str, float, float, float, str]:
    """(label, wall s, CPU s, peak RSS MB, its last line on stderr) of one CLI call. CPU and
    peak RSS are the process's and its workers' (the largest one), as wait4 reports them."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(NEARDUP), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{label} failed ({os.waitstatus_to_exitcode(status)}): {err[-2000:]}")
    said = [line for line in re.split(r"[\r\n]", err) if line.strip()]
    said = [line for line in said if "evidence" in line] + said[-1:]  # duplicates: what it reused, then its groups
    return label, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, "; ".join(said)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="the folder indexed first")
    ap.add_argument("--added", type=Path, required=True, help="the folder indexed after the first duplicates")
    ap.add_argument("--db", type=Path, required=True, help="a new catalog file")
    ap.add_argument("--embedder", default="cnn", help="the catalog's embedder [default: cnn, as `index` uses]")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here (for charts)")
    args = ap.parse_args(argv)
    if args.db.exists():
        raise SystemExit(f"{args.db} exists: the benchmark starts from a new catalog")
    base = sum(1 for _ in args.base.rglob("*") if _.is_file())
    added = sum(1 for _ in args.added.rglob("*") if _.is_file())
    db = ["--db", str(args.db)]
    dup = ["duplicates", *db, "--format", "json", "-o", str(args.db.with_suffix(".groups.json"))]
    rows = []
    for label, cli in [
        (f"index {base:,} images", ["index", str(args.base), *db, "--embedder", args.embedder, "-q"]),
        ("duplicates from nothing", dup),
        ("duplicates, unchanged catalog", dup),
        (f"index {added:,} more ({100 * added / base:.1f} %)", ["index", str(args.base), str(args.added), *db, "-q"]),
        ("duplicates after adding them", dup),
    ]:
        rows.append(step(label, cli))
        print(f"[bench] {rows[-1]}", file=sys.stderr, flush=True)
    lines = ["| step | wall s | CPU s | peak RSS MB (largest process) | what it said |",
             "| --- | ---: | ---: | ---: | --- |"]
    lines += [f"| {label} | {wall:,.1f} | {cpu:,.1f} | {rss:,.0f} | {said} |" for label, wall, cpu, rss, said in rows]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"images": base, "added": added, "steps": [
            {"step": label, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss, "said": said}
            for label, wall, cpu, rss, said in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
