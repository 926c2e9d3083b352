"""Markdown tables of the benchmark's scores (printed and written to results.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.scoring import MethodScores
from bench.transforms import FAMILIES, STRENGTHS


def _f(x: float | None, digits: int = 3) -> str:
    """A score for a table cell; '–' for missing / NaN."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table, columns padded for reading in a terminal."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def overall_table(scores: Sequence[MethodScores]) -> str:
    """Method × headline metrics, duplicate-group scores and timings."""
    header = ["method", "R@1", "R@10", "μAP", "R@P99", "score@P99", "dup P", "dup R", "dup F1",
              "index s", "ms/query"]
    rows = [[s.method, _f(s.overall.recall_at_1), _f(s.overall.recall_at_10), _f(s.overall.micro_ap),
             _f(s.overall.recall_at_p99), _f(s.overall.threshold_at_p99),
             _f(s.duplicates.precision), _f(s.duplicates.recall), _f(s.duplicates.f1),
             _f(s.timing["index_s"], 1), _f(s.timing["search_ms_per_query"], 2)] for s in scores]
    return markdown_table(header, rows)


def family_table(scores: Sequence[MethodScores], metric: str = "recall_at_1", *,
                 by_strength: bool = False) -> str:
    """Transformation family (or family/strength) × method, one metric per cell."""
    keys = [f"{f}/{s}" for f in FAMILIES for s in STRENGTHS] if by_strength else list(FAMILIES)
    table = (lambda m: m.by_family_strength) if by_strength else (lambda m: m.by_family)
    rows = [[key, *(_f(getattr(table(s)[key], metric)) if key in table(s) else "–" for s in scores)]
            for key in keys]
    return markdown_table(["family/strength" if by_strength else "family", *(s.method for s in scores)], rows)


def source_table(scores: Sequence[MethodScores]) -> str:
    """Corpus source group × method, cells 'R@1 · μAP · R@P99', with query counts."""
    groups = sorted({g for s in scores for g in s.by_source})
    first = scores[0].by_source if scores else {}
    rows = [[g, f"{first[g].positives}+{first[g].negatives}" if g in first else "–",
             *(" · ".join(_f(getattr(s.by_source[g], m), 2)
                          for m in ("recall_at_1", "micro_ap", "recall_at_p99")) if g in s.by_source
               else "–" for s in scores)] for g in groups]
    return markdown_table(["source", "pos+neg queries", *(s.method for s in scores)], rows)


def worst_families(s: MethodScores, n: int = 3) -> str:
    """The ``n`` family/strength cells with the lowest recall@1 for one method, as text."""
    cells = sorted(s.by_family_strength.items(), key=lambda kv: kv[1].recall_at_1)[:n]
    return ", ".join(f"{k} {v.recall_at_1:.2f}" for k, v in cells)


def render(scores: Sequence[MethodScores], intro: str) -> str:
    """The whole results.md: intro, then every table."""
    parts = [intro,
             "## Overall\n\nR@k: recall at rank k of positive queries (ties count against the method). "
             "μAP: micro-average precision over all (query, candidate, score) pairs of all queries, "
             "negatives included (ISC 2021). R@P99: recall where the pooled ranking keeps 99 % "
             "precision, at score ≥ score@P99. dup P/R/F1: pairwise scores of the duplicate groups "
             "found among references + queries.\n", overall_table(scores),
             "\n## Recall@1 per transformation family\n", family_table(scores),
             "\n## μAP per transformation family (positives and negatives of that family)\n",
             family_table(scores, "micro_ap"),
             "\n## Recall@1 per family and strength\n", family_table(scores, by_strength=True),
             "\n## Per corpus source (R@1 · μAP · R@P99)\n\nstellarium-data: astrophotos, the hard "
             "negatives; tuxpaint-stamps-default: cut-outs on white.\n", source_table(scores),
             "\n## Worst family/strength cells (recall@1)\n",
             "\n".join(f"- {s.method}: {worst_families(s)}" for s in scores)]
    return "\n".join(parts) + "\n"
