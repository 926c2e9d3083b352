#!/usr/bin/env python3
"""Scale benchmark: query latency and duplicate finding as the collection grows, beside all-pairs.

    .venv/bin/python scripts/bench_scale.py                  # full run, ~20 min on 2 cores
    .venv/bin/python scripts/bench_scale.py --quick          # smoke run, ~1 min, bench-out/scale-quick
    .venv/bin/python scripts/bench_scale.py --sizes binary:10k,100k float:10k
    .venv/bin/python scripts/bench_scale.py --from-json bench-out/scale/results.json   # redraw only

Synthetic collections (scripts/bench/scale_data.py): 256-bit codes and 1280-d unit vectors, 1 % of
rows with 1–3 planted near-copies. For every kind and size, each method runs in its own fresh
process under the same address-space cap (RLIMIT_AS):
- neardup: build_binary/build_float, 100 warm single knn queries (k=10), then duplicates as
  find_duplicates does them (within at the default threshold + single_linkage). When the first
  --probe-* queries predict more than --full-limit seconds, the total is extrapolated from them.
- all-pairs (imagededup-style): a NumPy scan per query; duplicates from one N×N float32 matrix,
  killed after --time-cap seconds. Sizes whose matrix alone exceeds the cap are not run; one extra
  size just under the cap is tried to find where it really fails.
Writes results.md, results.json, records.jsonl (one line per finished job) and
scale_{time,memory,latency}.png to --out, and (full runs) the charts to docs/charts/ too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
FULL = {"sizes": ["binary:10k,20k,40k,100k,1M", "float:10k,20k,40k,100k"], "mem_cap_gib": 12.0,
        "time_cap_s": 300.0, "full_limit_s": 900.0, "probe_binary": 4096, "probe_float": 1024,
        "unionfind_edges": 1_000_000}
QUICK = {"sizes": ["binary:2k,5k,30k", "float:2k,5k"], "mem_cap_gib": 1.5, "time_cap_s": 60.0,
         "full_limit_s": 1.0, "probe_binary": 1024, "probe_float": 512, "unionfind_edges": 100_000}


def parse_size(text: str) -> int:
    """'10k' -> 10_000, '1M' -> 1_000_000, '2500' -> 2500."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def parse_sizes(tokens: list[str]) -> dict[str, list[int]]:
    """['binary:10k,100k', 'float:10k'] -> {'binary': [10000, 100000], 'float': [10000]}."""
    sizes = {}
    for token in tokens:
        kind, _, values = token.partition(":")
        if kind not in ("binary", "float") or not values:
            raise SystemExit(f"error: --sizes takes binary:N,N… and/or float:N,N…, got {token!r}")
        sizes[kind] = sorted({parse_size(v) for v in values.split(",")})
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options; those left unset take the --quick or full defaults."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", help=f"kind:N,N… (default {' '.join(FULL['sizes'])})")
    ap.add_argument("--quick", action="store_true", help="small smoke run (1.5 GiB cap, so the failure paths run too)")
    ap.add_argument("--out", type=Path, help="output dir (default bench-out/scale, or scale-quick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--queries", type=int, default=100, help="timed single queries per size")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--mem-cap-gib", type=float, help=f"address-space cap per process ({FULL['mem_cap_gib']:g})")
    ap.add_argument("--time-cap-s", type=float, help=f"time cap of an all-pairs process ({FULL['time_cap_s']:g})")
    ap.add_argument("--full-limit-s", type=float,
                    help=f"extrapolate neardup's duplicates when predicted above this ({FULL['full_limit_s']:g})")
    ap.add_argument("--probe-binary", type=int, help=f"queries timed to predict binary duplicates ({FULL['probe_binary']})")
    ap.add_argument("--probe-float", type=int, help=f"queries timed to predict float duplicates ({FULL['probe_float']})")
    ap.add_argument("--unionfind-edges", type=int, help=f"edges of the union-find alone job ({FULL['unionfind_edges']:,})")
    ap.add_argument("--no-oom-probe", action="store_true", help="do not try all-pairs at the largest N under the cap")
    ap.add_argument("--from-json", type=Path, metavar="RESULTS_JSON",
                    help="only redraw results.md and the charts from a results.json (written beside it)")
    ap.add_argument("--job", help=argparse.SUPPRESS)   # internal: run one job in this (child) process
    args = ap.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.sizes = parse_sizes(args.sizes)
    if args.out is None:
        args.out = ROOT / "bench-out" / ("scale-quick" if args.quick else "scale")
    return args


# --- the child side --------------------------------------------------------------------------

def run_job(spec: str) -> None:
    """Child process: run one job, one JSON line per measurement on stdout, then the peak RSS."""
    from bench import scale_jobs

    job = json.loads(spec)

    def emit(record: dict) -> None:
        print(json.dumps(record), flush=True)

    scale_jobs.JOBS[job["method"]](job, emit)
    emit({"peak_mb": scale_jobs.proc_status_mb("VmHWM")})


# --- the parent side -------------------------------------------------------------------------

def thresholds() -> dict[str, float]:
    """neardup's default duplicate thresholds: 256-bit hashes (pdq, phash256) and the CNN cosine."""
    from neardup.indexer.hashes import HASHES
    from neardup.search.features import default_threshold

    if HASHES["pdq"].threshold != HASHES["phash256"].threshold:
        raise SystemExit(f"error: pdq and phash256 thresholds differ ({HASHES['pdq'].threshold}, "
                         f"{HASHES['phash256'].threshold}); pick one for the binary rows")
    return {"binary": float(HASHES["pdq"].threshold), "float": default_threshold("cnn")}


def largest_fitting(cap_gib: float) -> int:
    """The largest multiple of 1,000 whose N×N float32 matrix alone fits in the cap."""
    return int(math.sqrt(cap_gib * GIB / 4) // 1000 * 1000)


def plan(args: argparse.Namespace) -> list[dict]:
    """Every job, by kind, then N, neardup before all-pairs; the union-find job last."""
    limits = thresholds()
    edge = largest_fitting(args.mem_cap_gib)
    jobs = []
    for kind, sizes in args.sizes.items():
        brute_sizes = sorted(set(sizes) | ({edge} if not args.no_oom_probe and sizes[0] < edge < sizes[-1] else set()))
        for n in brute_sizes:
            common = {"kind": kind, "n": n, "seed": args.seed, "queries": args.queries, "k": args.k,
                      "threshold": limits[kind]}
            if n in sizes:
                jobs.append({**common, "method": "neardup", "full_limit": args.full_limit_s,
                             "probe": args.probe_binary if kind == "binary" else args.probe_float})
            jobs.append({**common, "method": "brute", "run_dups": n * n * 4 <= args.mem_cap_gib * GIB})
    jobs.append({"method": "unionfind", "kind": "-", "n": args.unionfind_edges, "seed": args.seed})
    return jobs


def run_child(job: dict, *, cap_bytes: int, timeout: float | None) -> dict:
    """Run one job in a fresh process under the address-space cap; its merged records + status."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))

    cmd = [sys.executable, str(Path(__file__).resolve()), "--job", json.dumps(job)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    record = {k: v for k, v in job.items() if k in ("method", "kind", "n")}
    for line in out.splitlines():
        if line.startswith("{"):
            record.update(json.loads(line))
    record["wall_s"] = time.perf_counter() - start
    if timed_out:
        record["status"] = "timeout"
    elif proc.returncode != 0 or "status" not in record:
        record.update(status="oom" if "MemoryError" in err else "crashed", rc=proc.returncode, stderr=err[-1500:])
    return record


def run_all(jobs: list[dict], args: argparse.Namespace) -> list[dict]:
    """Run the jobs in order; after all-pairs fails at some N, larger N run queries only."""
    records, failed_at = [], {}
    cap = int(args.mem_cap_gib * GIB)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "records.jsonl").unlink(missing_ok=True)
    for i, job in enumerate(jobs, 1):
        if job["method"] == "brute" and job["run_dups"] and job["kind"] in failed_at:
            job = {**job, "run_dups": False, "failed_at": failed_at[job["kind"]]}
        print(f"[{i}/{len(jobs)}] {job['method']} {job['kind']} N={job['n']:,} …", end=" ", file=sys.stderr, flush=True)
        record = run_child(job, cap_bytes=cap, timeout=args.time_cap_s if job["method"] == "brute" else None)
        if "failed_at" in job and record.get("status") == "too_big":
            record.update(status="skipped", failed_at=job["failed_at"])
        if job["method"] == "brute" and record["status"] in ("oom", "timeout", "crashed"):
            failed_at.setdefault(job["kind"], job["n"])
        print(f"{record['status']} in {record['wall_s']:.1f} s", file=sys.stderr, flush=True)
        if record["status"] == "crashed":
            print(record.get("stderr", ""), file=sys.stderr)
        records.append(record)
        with open(args.out / "records.jsonl", "a") as f:   # kept even if the report step fails
            f.write(json.dumps(record) + "\n")
    return records


def notes(records: list[dict], meta: dict) -> list[str]:
    """Plain-language findings computed from the records."""
    from bench.scale_report import matrix_gib

    lines = []
    for kind in ("binary", "float"):
        brute = sorted((r for r in records if r["method"] == "brute" and r["kind"] == kind), key=lambda r: r["n"])
        ran = [r for r in brute if r["status"] == "ok"]
        fail = next((r for r in brute if r["status"] in ("oom", "timeout", "crashed")), None)
        big = next((r for r in brute if r["status"] == "too_big"), None)
        if not brute:
            continue
        text = f"- All-pairs, {kind}: "
        if ran:
            r = ran[-1]
            text += f"largest N that ran is {r['n']:,} ({r['dups_s']:.1f} s, peak {r['peak_mb'] / 1024:.1f} GiB). "
        if fail:
            why = {"oom": f"out of memory (the {matrix_gib(fail['n']):.1f} GiB matrix plus working memory "
                          f"exceeds the {meta['mem_cap_gib']:g} GiB cap)",
                   "timeout": f"over the {meta['time_cap_s']:g} s time cap",
                   "crashed": f"crashed (rc {fail.get('rc')})"}[fail["status"]]
            text += f"It fails at N = {fail['n']:,}: {why}. "
        if big:
            text += (f"From N = {big['n']:,} the matrix alone needs {matrix_gib(big['n']):,.0f} GiB "
                     f"(computed, not run); a {meta['mem_cap_gib']:g} GiB cap holds at most "
                     f"N ≈ {int(math.sqrt(meta['mem_cap_gib'] * GIB / 4)):,}.")
        lines.append(text)
    for r in sorted((r for r in records if r["method"] == "neardup" and r.get("probe_queries", r["n"]) < r["n"]),
                    key=lambda r: (r["kind"], r["n"])):
        if r.get("extrapolated"):
            lines.append(f"- neardup {r['kind']} N = {r['n']:,}: `within` over the first {r['probe_queries']:,} "
                         f"queries took {r['probe_s']:.1f} s, so all {r['n']:,} queries would take "
                         f"≈ {r['within_s']:,.0f} s (linear: every query scans the whole index); figure extrapolated.")
        elif r.get("status") == "ok" and r["within_s"] >= 1:
            err = (r["probe_estimate_s"] - r["within_s"]) / r["within_s"] * 100
            lines.append(f"- neardup {r['kind']} N = {r['n']:,}: the {r['probe_queries']:,}-query probe predicted "
                         f"{r['probe_estimate_s']:.1f} s, measured {r['within_s']:.1f} s ({err:+.0f} %): the check on "
                         f"the extrapolation rule.")
    for kind in ("binary", "float"):
        for method in ("neardup", "brute"):
            done = [r for r in records if r["kind"] == kind and r["method"] == method and r.get("status") == "ok"]
            if done:
                r = max(done, key=lambda r: r["n"])
                lines.append(f"- Cost per pair, {kind}, {method} at N = {r['n']:,}: "
                             f"{r['within_s'] / r['n'] ** 2 * 1e9:.2f} ns per (query, row) pair of the N² "
                             f"({'FAISS range search, both orders of every pair' if method == 'neardup' else 'matrix + threshold'}).")
    uf = next((r for r in records if r["method"] == "unionfind" and r.get("status") == "ok"), None)
    if uf:
        lines.append(f"- Grouping alone (`single_linkage` fed a Python list of (a, b, cost) tuples, as "
                     f"find_duplicates does): {uf['edges']:,} random edges in {uf['group_s']:.2f} s "
                     f"({uf['us_per_edge']:.2f} µs/edge, of which building the list {uf['list_s']:.2f} s), "
                     f"+{uf['extra_mb']:.0f} MB peak.")
    return lines


def write_outputs(records: list[dict], meta: dict, out: Path, docs: bool) -> str:
    """results.json, results.md and the charts in ``out`` (and docs/charts/); returns the markdown."""
    from bench import scale_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    kinds = [k for k in ("binary", "float") if any(r["kind"] == k for r in records)]
    md = [f"# Scale benchmark ({meta['date']})", "",
          f"`{meta['command']}` — {meta['cores']} cores, {meta['machine']}, load average {meta['load_start']} at "
          f"start and {meta['load_end']} at end (shared machine: read ratios, not absolute figures). "
          f"Every cell is one fresh process capped at {meta['mem_cap_gib']:g} GiB of address space; all-pairs "
          f"processes are also killed after {meta['time_cap_s']:g} s. Thresholds: Hamming ≤ "
          f"{meta['thresholds']['binary']:g}/256, cosine ≥ {meta['thresholds']['float']:.2f}. "
          f"Run took {meta['wall_s'] / 60:.1f} min.", ""]
    for kind in kinds:
        md += [scale_report.results_table(records, meta, kind), ""]
    md += ["**All-pairs ÷ neardup** (above 1: neardup is faster / smaller)", "", scale_report.ratio_table(records), "",
           "**Notes**", "", *notes(records, meta), "",
           "Columns: *find duplicates* = candidate pairs (neardup `within`; all-pairs: matrix + threshold) + grouping "
           "(union-find). *Planted recall* = planted (source, copy) pairs that end in one group (for an extrapolated "
           "row: pairs whose lower row was among the probe queries). *Spurious pairs* = found pairs that are not two "
           "planted copies of one source. *Peak RSS* = VmHWM of the process (data + index + search). "
           "All-pairs query = NumPy scan of every row (XOR + popcount, or one matrix–vector product).", ""]
    for name in scale_report.CHARTS:
        md.append(f"![{name}]({name})")
    text = "\n".join(md) + "\n"
    (out / "results.md").write_text(text)
    for name, draw in scale_report.CHARTS.items():
        draw(records, meta, out / name)
        if docs:
            (ROOT / "docs" / "charts").mkdir(parents=True, exist_ok=True)
            shutil.copy(out / name, ROOT / "docs" / "charts" / name)
    return text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.job:
        run_job(args.job)
        return
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        print(write_outputs(saved["records"], saved["meta"], args.from_json.parent, docs=not args.quick))
        return
    started = time.perf_counter()
    load_start = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    records = run_all(plan(args), args)
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([".venv/bin/python", "scripts/bench_scale.py", *sys.argv[1:]]),
        "cores": os.cpu_count(), "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "load_start": load_start, "load_end": "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg()),
        "mem_cap_gib": args.mem_cap_gib, "time_cap_s": args.time_cap_s, "full_limit_s": args.full_limit_s,
        "queries": args.queries, "k": args.k, "seed": args.seed, "thresholds": thresholds(),
        "sizes": args.sizes, "wall_s": time.perf_counter() - started,
    }
    print(write_outputs(records, meta, args.out, docs=not args.quick))
    print(f"wrote {args.out}/results.md, results.json, scale_*.png"
          + ("" if args.quick else " and docs/charts/scale_*.png"), file=sys.stderr)


if __name__ == "__main__":
    main()
