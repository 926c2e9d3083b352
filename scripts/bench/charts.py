"""PNG charts of the benchmark: pooled precision–recall curves and recall@1 per family."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bench.metrics import Results, Truth, pool, pr_curve
from bench.scoring import MethodScores
from bench.transforms import FAMILIES


def _pyplot():  # noqa: ANN202  (matplotlib is a bench-only dependency, imported on use)
    """matplotlib.pyplot with the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style(i: int, name: str) -> dict[str, object]:
    """Line style of the i-th method: 20 distinct colours; neardup rows dashed, peers solid."""
    import matplotlib

    shade = (2 * i) % 20 + (2 * i // 20) % 2   # the 10 strong tab20 hues first, then the pale ones
    return {"color": matplotlib.colormaps["tab20"](shade),
            "linestyle": "--" if name.startswith("neardup") else "-"}


def pr_curves(runs: Mapping[str, Results], truth: Truth, path: Path) -> None:
    """One pooled precision–recall curve per method (the curve μAP integrates), saved to ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 6))
    positives = sum(1 for e in truth.values() if e)
    for i, (name, hits) in enumerate(runs.items()):
        scores, labels = pool(hits, truth)
        p, r, _ = pr_curve(scores, labels, positives)
        step = max(1, len(r) // 4000)
        ax.plot(r[::step], p[::step], label=name, linewidth=1.4, **_style(i, name))
    ax.axhline(0.99, color="gray", linestyle=":", linewidth=1)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01),
           title="Pooled precision–recall (all queries, negatives included)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def family_heatmap(scores: Sequence[MethodScores], path: Path) -> None:
    """Recall@1 per transformation family (rows) × method (columns), annotated, saved to ``path``."""
    plt = _pyplot()
    families = list(FAMILIES)
    grid = np.array([[s.by_family[f].recall_at_1 if f in s.by_family else np.nan for s in scores]
                     for f in families])   # (F, M)
    fig, ax = plt.subplots(figsize=(1.1 * len(scores) + 3, 0.38 * len(families) + 1.5))
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(scores)), [s.method for s in scores], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(families)), families, fontsize=8)
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="recall@1")
    ax.set_title("Recall@1 per transformation family (mild + hard)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def source_bars(scores: Sequence[MethodScores], path: Path) -> None:
    """μAP per corpus source group, one bar per method, saved to ``path``."""
    plt = _pyplot()
    groups = sorted({g for s in scores for g in s.by_source})
    width = 0.8 / max(1, len(scores))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) + 2) + 2, 4.5))
    for j, s in enumerate(scores):
        values = [s.by_source[g].micro_ap if g in s.by_source else 0.0 for g in groups]
        ax.bar(np.arange(len(groups)) + j * width, values, width, label=s.method,
               color=_style(j, s.method)["color"], hatch="//" if s.method.startswith("neardup") else None)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups, fontsize=8)
    ax.set(ylabel="μAP", ylim=(0, 1), title="μAP per corpus source")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
