#!/usr/bin/env python3
"""Duplicates benchmark: neardup and its peers on a collection built to expose the ways duplicate
grouping fails (shared overlays, composites, look-alike distinct images, copies larger than
their original) beside ordinary copies.

    .venv/bin/python scripts/bench_duplicates.py --seed dev|dev2…dev8|test [--methods all|a,b,…] [--quick]

Tune on ``--seed dev`` (and ``dev2`` to ``dev8``: more draws from the same half); only report ``--seed
test``: dev and test use disjoint halves of the corpus and their own randomness
(scripts/bench/dupset.py). The data set is reused while its plan is
unchanged; neardup's catalogs are rebuilt on every run, in ``<out>/neardup/`` (``--rejudge``:
reused, every pair judged again). Prints markdown
tables and writes ``results.md``, ``results.json`` and ``groups/<method>.json`` into ``<out>``
(default ``bench-out/duplicates/<seed>``, ``<seed>-quick`` with --quick).

neardup is driven through its public API (``neardup.open``, ``.index``, ``.duplicates``; a
group's optional ``reason`` and ``contains`` are read when present); only ``--rejudge`` reaches
into the catalog, to delete its stored judgements. Peers: SSCD
(scripts/bench/sscd.py) and pdqhash, as single-linkage groups with a naive keeper.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import dupscore, dupset, sscd
from bench.bruteforce import BruteForceMethod, cosine_similarity, hamming_similarity
from bench.dataset import ensure_corpus
from bench.dupscore import DupScores, Predicted
from bench.peers import _installed, pdq_bits

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2
NEARDUP_ROWS = {   # method -> (catalog embedder, duplicates(by=…))
    "neardup-auto": ("cnn", "auto"),
    "neardup-auto-hashes": ("none", "auto"),
    "neardup-pdq": ("none", "pdq"),
    "neardup-cnn": ("cnn", "cnn"),
}
PEER_ROWS = ("sscd", "pdqhash")
Run = tuple[list[Predicted], float, float]   # groups, index seconds, duplicates seconds


class NeardupCatalogs:
    """One fresh neardup catalog per embedder over the data set's images/, built on first use;
    with ``rejudge``, the catalog an earlier run built, its stored judgements forgotten."""

    def __init__(self, work: Path, folder: Path, *, rejudge: bool = False) -> None:
        self.work, self.folder, self.rejudge = work, folder, rejudge
        self._built: dict[str, tuple[Any, float]] = {}

    def get(self, embedder: str) -> tuple[Any, float]:
        """(catalog, seconds it took to index: 0 when reused) for ``embedder`` ("cnn" or "none")."""
        if embedder not in self._built and self.rejudge:
            self._built[embedder] = (_forgetting(self.work / "neardup" / embedder / "catalog.db"), 0.0)
        if embedder not in self._built:
            import neardup

            home = self.work / "neardup" / embedder
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            start = time.perf_counter()
            cat = neardup.open(home / "catalog.db", create=True, embedder=embedder)
            report = cat.index([str(self.folder)], workers=WORKERS)
            seconds = time.perf_counter() - start
            print(f"[bench] neardup {embedder} catalog indexed in {seconds:.1f}s "
                  f"(failed {getattr(report, 'failed', '?')})", file=sys.stderr)
            self._built[embedder] = (cat, seconds)
        return self._built[embedder]


def _forgetting(path: Path) -> Any:
    """The neardup catalog at ``path`` with its stored pair evidence and groups deleted, so
    that `duplicates` judges every pair again with the code as it is now (the stored evidence
    is reused while its EVIDENCE_VERSION stands, whatever the verification code says)."""
    import neardup
    from neardup.storage.models import Decision, EvidenceSegment, EvidenceSet
    from sqlalchemy import delete

    if not path.exists():
        raise SystemExit(f"error: --rejudge needs the catalog an earlier run built: {path} is missing")
    cat = neardup.open(path)
    with cat.catalog.transaction(derived=True) as s:
        for model in (Decision, EvidenceSegment, EvidenceSet):
            s.execute(delete(model))
    return cat


def neardup_run(catalogs: NeardupCatalogs, embedder: str, by: str) -> Run:
    """neardup's duplicate groups, keepers and optional reason / contains, by name."""
    cat, index_s = catalogs.get(embedder)
    start = time.perf_counter()
    groups = cat.duplicates(by=by)
    seconds = time.perf_counter() - start
    out = [Predicted(tuple(Path(m).name for m in g.members), Path(g.keeper).name,
                     str(getattr(g, "reason", "") or ""),
                     tuple(Path(str(c)).name for c in (getattr(g, "contains", ()) or ())))
           for g in groups]
    return out, index_s, seconds


def peer_run(method: BruteForceMethod, paths: list[Path]) -> Run:
    """A peer's single-linkage groups over ``paths`` with the naive keeper."""
    start = time.perf_counter()
    method.descriptors(paths)
    index_s = time.perf_counter() - start
    start = time.perf_counter()
    groups = [Predicted(tuple(p.name for p in g), sscd.naive_keeper(g).name) for g in method.duplicates(paths)]
    return groups, index_s, time.perf_counter() - start


def methods(work: Path, folder: Path, *, rejudge: bool = False) -> dict[str, tuple[Callable[[list[Path]], Run], bool]]:
    """Method name -> (run over the image paths, available)."""
    catalogs = NeardupCatalogs(work, folder, rejudge=rejudge)
    rows: dict[str, tuple[Callable[[list[Path]], Run], bool]] = {
        name: ((lambda _paths, e=emb, b=by: neardup_run(catalogs, e, b)), _installed("neardup.api"))
        for name, (emb, by) in NEARDUP_ROWS.items()}
    rows["sscd"] = (lambda paths: peer_run(BruteForceMethod("sscd", sscd.SscdDescriber(), cosine_similarity,
                                                            sscd.THRESHOLD), paths), sscd.installed())
    rows["pdqhash"] = (lambda paths: peer_run(BruteForceMethod("pdqhash", pdq_bits, hamming_similarity,
                                                               1 - 31 / 256), paths), _installed("pdqhash"))
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", choices=sorted(dupset.SEEDS), required=True,
                    help="dev: tune on it; test: report it only")
    ap.add_argument("--methods", default="all",
                    help=f"comma list of {', '.join([*NEARDUP_ROWS, *PEER_ROWS])}, or all / neardup / peers")
    ap.add_argument("--quick", action="store_true", help="a ~200-image smoke run")
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "corpus" / "normal",
                    help="corpus dir with manifest.csv; built with shared/data/gather_corpus.sh if missing")
    ap.add_argument("--out", type=Path, help="work dir (default bench-out/duplicates/<seed>[-quick])")
    ap.add_argument("--rejudge", action="store_true",
                    help="reuse the neardup catalogs an earlier run left in the work dir (no indexing), "
                         "forget their stored judgements and judge every pair again: a search or keeper "
                         "change measured in seconds; changes to indexing need a full run")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "bench-out" / "duplicates" / (args.seed + ("-quick" if args.quick else ""))
    return args


def chosen(spec: str, available: list[str]) -> list[str]:
    """Method names selected by ``--methods``."""
    groups = {"all": available, "neardup": list(NEARDUP_ROWS), "peers": list(PEER_ROWS)}
    names = groups.get(spec) or [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"error: unknown method(s) {unknown}; known: {available}")
    return names


def dataset_table(truth: list[dupset.Item]) -> str:
    """Images, origins and true pairs of each class of the data set."""
    by_class: dict[str, Counter[str]] = {}
    origins: dict[str, set[str]] = {}
    for item in truth:
        cls = dupscore.class_of(item.family)
        by_class.setdefault(cls, Counter())["images"] += 1
        origins.setdefault(cls, set()).add(item.origin)
    same, _ = dupscore.attributed_pairs(dupscore.true_groups(truth), {i.image: i.origin for i in truth},
                                        lambda name, fam={i.image: dupscore.class_of(i.family) for i in truth}: fam[name])
    rows = [f"| {c} | {n['images']} | {len(origins[c])} | {same[c]} |" for c, n in sorted(by_class.items())]
    total = sum(len(g) * (len(g) - 1) // 2 for g in dupscore.true_groups(truth))
    head = "| class | images | origins | true pairs touching it |\n| --- | ---: | ---: | ---: |"
    return "\n".join([head, *rows, f"| **all** | {len(truth)} | {len({i.origin for i in truth})} | {total} |"])


def code_version() -> str:
    """The repository's commit, marked dirty when the work tree has changes."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *cmd], capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + (" (dirty)" if git("status", "--porcelain") else "")


def report(args: argparse.Namespace, truth: list[dupset.Item], scores: list[DupScores], failed: list[str]) -> str:
    """The markdown written to results.md and printed."""
    lines = [f"# Duplicates benchmark: seed {args.seed}{' (quick)' if args.quick else ''}", "",
             f"`{' '.join(['scripts/bench_duplicates.py', *sys.argv[1:]])}` on code {code_version()}, "
             f"{time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}.", "",
             "## Data set", "", dataset_table(truth), "", "## Overall", "", dupscore.overall_table(scores), "",
             "## Per family (recall of its true pairs / false pairs touching it)", "",
             dupscore.family_table(scores), "", "## Where the errors are", "", dupscore.detail_table(scores)]
    if failed:
        lines += ["", f"Failed (see stderr): {', '.join(failed)}"]
    return "\n".join(lines) + "\n"


def annotated(groups: list[Predicted], truth: dict[str, dupset.Item]) -> list[dict]:
    """Groups with each member's origin, family and edit, for reading the errors."""
    return [{"keeper": g.keeper, "reason": g.reason, "contains": list(g.contains),
             "members": [[m, truth[m].origin, truth[m].family, truth[m].edit] for m in g.members]}
            for g in groups]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_corpus(args.corpus)
    plan = dupset.make_plan(args.seed, quick=args.quick, corpus_digest=dupset.corpus_digest(args.corpus))
    truth = dupset.build(args.corpus, args.out, plan, workers=WORKERS)
    folder = args.out / "images"
    paths = sorted(folder.iterdir())
    rows = methods(args.out, folder, rejudge=args.rejudge)
    names = chosen(args.methods, list(rows))
    (args.out / "groups").mkdir(exist_ok=True)
    by_name = {i.image: i for i in truth}
    scores, failed = [], []
    for name in names:
        run, available = rows[name]
        if not available:
            print(f"[bench] {name}: not installed, skipped (scripts/bench_setup.sh)", file=sys.stderr)
            failed.append(f"{name} (not installed)")
            continue
        print(f"[bench] {name} …", file=sys.stderr, flush=True)
        try:
            groups, index_s, dup_s = run(paths)
        except Exception:   # a method under development must not sink the other rows
            traceback.print_exc()
            print(f"error: method {name} failed; continuing", file=sys.stderr)
            failed.append(name)
            continue
        (args.out / "groups" / f"{name}.json").write_text(json.dumps(annotated(groups, by_name), indent=1))
        s = dupscore.score(name, groups, truth, index_s=index_s, duplicates_s=dup_s)
        scores.append(s)
        print(f"[bench] {name}: P {s.pairs.precision:.3f} R {s.pairs.recall:.3f} "
              f"keeper {s.keeper_accuracy} duplicates {dup_s:.1f}s", file=sys.stderr, flush=True)
    text = report(args, truth, scores, failed)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(
        {"seed": args.seed, "plan": asdict(plan), "code": code_version(), "failed": failed,
         "scores": [asdict(s) | {"keeper_accuracy": s.keeper_accuracy} for s in scores]}, indent=1, default=str))
    print(text)
    return 1 if failed and not scores else 0


if __name__ == "__main__":
    sys.exit(main())
