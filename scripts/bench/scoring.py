"""Turn a method's run and the ground truth into every figure the report shows.

Breakdowns: overall, per transformation family, per family × strength, per corpus source group
(negatives count in their own family and source, so hard negatives lower that group's μAP and
recall at 99 % precision), plus pairwise scores of the duplicate groups.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.dataset import Query
from bench.methods import Run
from bench.metrics import PairScores, Scores, evaluate, evaluate_by, pairwise_scores

OTHER = "other"
MIN_SOURCE_SHARE = 0.10   # sources with a smaller share of the queries are pooled into "other"


@dataclass(frozen=True)
class MethodScores:
    """Everything measured for one method."""

    method: str
    overall: Scores
    by_family: dict[str, Scores]
    by_family_strength: dict[str, Scores]   # "family/strength"
    by_source: dict[str, Scores]
    duplicates: PairScores
    timing: dict[str, float]


def source_groups(rows: Sequence[Query]) -> dict[str, str]:
    """Query id -> its corpus source, or ``OTHER`` for sources under ``MIN_SOURCE_SHARE`` of queries."""
    counts = Counter(r.source for r in rows)
    big = {s for s, n in counts.items() if n >= MIN_SOURCE_SHARE * len(rows)}
    return {r.query: (r.source if r.source in big else OTHER) for r in rows}


def true_groups(rows: Sequence[Query], refs: Sequence[str]) -> list[list[str]]:
    """True duplicate groups over references + queries: all items derived from one corpus image."""
    by_origin: dict[str, list[str]] = {}
    for ref in refs:
        by_origin.setdefault(ref.removeprefix("refs/"), []).append(ref)
    for r in rows:
        by_origin.setdefault(r.origin, []).append(r.query)
    return list(by_origin.values())


def score_run(run: Run, rows: Sequence[Query], refs: Sequence[str]) -> MethodScores:
    """Every metric for one method's run."""
    truth = {r.query: r.expected for r in rows}
    family = {r.query: r.family for r in rows}
    family_strength = {r.query: f"{r.family}/{r.strength}" for r in rows}
    n_queries = max(1, len(run.hits))
    timing = {"index_s": run.index_s, "search_s": run.search_s,
              "search_ms_per_query": 1000 * run.search_s / n_queries, "duplicates_s": run.duplicates_s}
    return MethodScores(
        method=run.method,
        overall=evaluate(run.hits, truth),
        by_family=evaluate_by(run.hits, truth, family),
        by_family_strength=evaluate_by(run.hits, truth, family_strength),
        by_source=evaluate_by(run.hits, truth, source_groups(rows)),
        duplicates=pairwise_scores(run.groups, true_groups(rows, refs)),
        timing=timing,
    )


def to_json(scores: MethodScores) -> dict[str, Any]:
    """A JSON-ready dict of ``scores``."""
    return asdict(scores)
