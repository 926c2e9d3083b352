#!/usr/bin/env python3
"""Match-quality benchmark: neardup and its peers on near-duplicates made from the shared corpus.

    .venv/bin/python scripts/bench_quality.py [--quick] [--methods all|peers|neardup|a,b,…]

Builds (or reuses) references, transformed queries and truth.csv in --out, runs every method,
prints the tables and writes results.md, results.json, hits/<method>.json and charts (*.png)
there. Peers come from scripts/bench_setup.sh. Metrics: scripts/bench/metrics.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench import charts, dataset, methods, report, scoring
from bench.neardup_method import CATALOGS

ROOT = Path(__file__).resolve().parents[1]
FULL = {"refs": 600, "positives": 300, "negatives": 200, "per_image": 8}
QUICK = {"refs": 120, "positives": 60, "negatives": 40, "per_image": 4}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; sizes left unset take the --quick or full defaults."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "corpus" / "normal",
                    help="corpus dir with manifest.csv; built with shared/data/gather_corpus.sh if missing")
    ap.add_argument("--out", type=Path, help="work dir (default bench-out/quality, or quality-quick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--refs", type=int, help=f"reference images (default {FULL['refs']})")
    ap.add_argument("--positives", type=int, help=f"references with transformed copies ({FULL['positives']})")
    ap.add_argument("--negatives", type=int, help=f"held-out images with transformed copies ({FULL['negatives']})")
    ap.add_argument("--per-image", type=int, help=f"transformed copies per image ({FULL['per_image']})")
    ap.add_argument("--methods", default="all", help="comma list of method names, or all / peers / neardup")
    ap.add_argument("--k", type=int, default=10, help="candidates kept per query")
    ap.add_argument("--workers", type=int, default=2, help="processes writing queries")
    ap.add_argument("--quick", action="store_true", help=f"small smoke run: {QUICK}")
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for key, value in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = ROOT / "bench-out" / ("quality-quick" if args.quick else "quality")
    return args


def run_methods(factories: list[Callable[[], methods.Method]], work: Path, rows: list[dataset.Query], refs: list[str], k: int
                ) -> tuple[list[scoring.MethodScores], dict[str, dict], list[str]]:
    """Run and score every method; a failing method is reported and skipped, not fatal."""
    queries = [r.query for r in rows]
    scores, hits, failed = [], {}, []
    (work / "hits").mkdir(exist_ok=True)
    for factory in factories:
        method = factory()
        print(f"[bench] {method.name} …", file=sys.stderr, flush=True)
        try:
            run = methods.run(method, work, refs, queries, k=k)
        except Exception:   # a method under development must not sink the other rows
            traceback.print_exc()
            print(f"error: method {method.name} failed; continuing", file=sys.stderr)
            failed.append(method.name)
            continue
        (work / "hits" / f"{run.method}.json").write_text(json.dumps(run.hits))
        s = scoring.score_run(run, rows, refs)
        scores.append(s)
        hits[run.method] = run.hits
        print(f"[bench] {run.method}: R@1 {s.overall.recall_at_1:.3f}  μAP {s.overall.micro_ap:.3f}  "
              f"index {run.index_s:.1f}s  search {run.search_s:.1f}s  dup {run.duplicates_s:.1f}s",
              file=sys.stderr, flush=True)
    return scores, hits, failed


def intro(args: argparse.Namespace, rows: list[dataset.Query], refs: list[str], elapsed: float,
          catalogs: dict[str, float], failed: list[str]) -> str:
    """The header of results.md: what was measured, on what, and how to reproduce it."""
    pos = sum(1 for r in rows if r.expected)
    shared = ("" if not catalogs else
              "neardup rows with the same embedder share one catalog per collection, indexed once "
              "(workers=2) and charged to the first row that used it: "
              + ", ".join(f"{label} {s:.1f}s" for label, s in catalogs.items()) + ".\n\n")
    return (f"# neardup match-quality benchmark\n\n"
            f"{len(refs)} references, {len(rows)} queries ({pos} positive, {len(rows) - pos} negative) "
            f"from `{args.corpus}`; {len(dataset.transforms.FAMILIES)} transformation families × "
            f"mild/hard, {args.per_image} copies per image; seed {args.seed}; k = {args.k}. "
            f"Run took {elapsed / 60:.1f} min on {platform.machine()} ({platform.python_version()}).\n\n"
            f"Reproduce: `.venv/bin/python scripts/bench_quality.py --seed {args.seed} --refs {args.refs} "
            f"--positives {args.positives} --negatives {args.negatives} --per-image {args.per_image} "
            f"--methods {args.methods}`\n\n{shared}"
            + (f"**Failed (no row below):** {', '.join(failed)}; see the run's stderr.\n" if failed else ""))


def main(argv: list[str] | None = None) -> int:
    """Build the data, run the methods, write and print the report; 1 on error or a failed method."""
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        dataset.ensure_corpus(args.corpus)
        images = dataset.read_manifest(args.corpus / "manifest.csv")
        plan = dataset.Plan(args.seed, args.refs, args.positives, args.negatives, args.per_image,
                            dataset.digest(images))
        args.out.mkdir(parents=True, exist_ok=True)
        rows = dataset.build(args.corpus, args.out, plan, workers=args.workers)
        factories = methods.resolve(args.methods, args.out)
    except (dataset.CorpusError, methods.UnknownMethodError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    refs = sorted(f"refs/{p.name}" for p in (args.out / "refs").iterdir())
    scores, hits, failed = run_methods(factories, args.out, rows, refs, args.k)
    elapsed = time.perf_counter() - start
    if scores:
        text = report.render(scores, intro(args, rows, refs, elapsed, CATALOGS.seconds, failed))
        (args.out / "results.md").write_text(text)
        truth = {r.query: r.expected for r in rows}
        charts.pr_curves(hits, truth, args.out / "pr_curves.png")
        charts.family_heatmap(scores, args.out / "recall1_by_family.png")
        charts.source_bars(scores, args.out / "map_by_source.png")
        print(text)
    (args.out / "results.json").write_text(json.dumps({
        "plan": asdict(plan), "k": args.k, "methods": [scoring.to_json(s) for s in scores],
        "failed": failed, "neardup_catalog_index_s": CATALOGS.seconds, "elapsed_s": elapsed,
        "queries": len(rows), "references": len(refs)}, indent=1, default=str) + "\n")
    print(f"[bench] wrote {args.out}/results.md, results.json and charts in {elapsed:.0f}s", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} method(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or not scores else 0


if __name__ == "__main__":
    sys.exit(main())
