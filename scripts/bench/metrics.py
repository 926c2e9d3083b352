"""Match-quality metrics: recall@k, micro-AP and recall at a precision, pairwise group scores.

Inputs are plain mappings, so any method's output can be scored:

- ``results``: query -> hits ``[(reference, score), …]`` (higher score = more similar, at most k);
- ``truth``: query -> its expected reference, or ``""`` for a negative query (no true match).

Ties are broken *against* the method, as in the 2021 Image Similarity Challenge (ISC) scorer:
a true match tied with a wrong one counts as ranked after it. Coarse scores (a 64-bit Hamming
distance has 65 values) therefore cannot gain from ties.

Run this file to execute its self-check against brute-force oracles.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Hit = tuple[str, float]
Results = Mapping[str, Sequence[Hit]]
Truth = Mapping[str, str]
NOT_FOUND = 1 << 30


@dataclass(frozen=True)
class Scores:
    """Retrieval quality of one method on one set of queries."""

    recall_at_1: float
    recall_at_10: float
    micro_ap: float
    recall_at_p99: float          # 0.0 when precision 0.99 is never reached
    threshold_at_p99: float | None
    positives: int                # queries with a true match
    negatives: int                # queries without one


@dataclass(frozen=True)
class PairScores:
    """Pairwise precision/recall/F1 of predicted duplicate groups against true groups."""

    precision: float
    recall: float
    f1: float
    predicted_pairs: int
    true_pairs: int
    correct_pairs: int


def true_match_ranks(results: Results, truth: Truth) -> NDArray[np.int64]:
    """Pessimistic 0-based rank of the true match of every positive query, NOT_FOUND if absent.

    Returns (P,) int64, P = positive queries, in ``truth`` order. Rank = number of hits scoring
    at least as high as the true match, minus one.
    """
    ranks = []
    for query, expected in truth.items():
        if not expected:
            continue
        hits = results.get(query, ())
        true_scores = [s for ref, s in hits if ref == expected]
        ranks.append(sum(s >= max(true_scores) for _, s in hits) - 1 if true_scores else NOT_FOUND)
    return np.asarray(ranks, dtype=np.int64)


def recall_at(ranks: NDArray[np.int64], k: int) -> float:
    """Fraction of (P,) ranks below ``k``; NaN when there are no positive queries."""
    return float(np.mean(ranks < k)) if ranks.size else math.nan


def pool(results: Results, truth: Truth) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """All (query, candidate) pairs of the queries in ``truth`` as (M,) scores and (M,) is-true labels."""
    scores, labels = [], []
    for query, expected in truth.items():
        for ref, score in results.get(query, ()):
            scores.append(score)
            labels.append(bool(expected) and ref == expected)
    return np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)


def pr_curve(scores: NDArray[np.float64], labels: NDArray[np.bool_], positives: int
             ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Precision, recall and score threshold after each of the M pooled pairs, ranked by score.

    ``scores``, ``labels``: (M,); returns three (M,) float64 arrays in ranking order (recall
    non-decreasing). Within a tie, wrong pairs come first (ISC's worst-case order).
    """
    order = np.lexsort((labels, -scores))
    hits = np.cumsum(labels[order])
    precision = hits / np.arange(1, len(order) + 1)
    recall = hits / positives if positives else np.zeros(len(order))
    return precision, recall, scores[order]


def micro_ap(precision: NDArray[np.float64], recall: NDArray[np.float64]) -> float:
    """Area under the pooled (M,) precision-recall curve: sum of precision × recall increment."""
    if recall.size == 0:
        return 0.0
    steps = np.diff(recall, prepend=0.0)
    return float(np.sum(steps * precision))


def recall_at_precision(precision: NDArray[np.float64], recall: NDArray[np.float64],
                        thresholds: NDArray[np.float64], target: float) -> tuple[float, float | None]:
    """Highest recall on the (M,) curve where precision ≥ ``target``, and the score threshold there."""
    ok = precision >= target
    if not ok.any():
        return 0.0, None
    best = int(np.argmax(np.where(ok, recall, -1.0)))
    return float(recall[best]), float(thresholds[best])


def evaluate(results: Results, truth: Truth, *, precision_target: float = 0.99) -> Scores:
    """Recall@1, recall@10, micro-AP and recall at ``precision_target`` over the queries in ``truth``."""
    ranks = true_match_ranks(results, truth)
    scores, labels = pool(results, truth)
    p, r, t = pr_curve(scores, labels, ranks.size)
    rec, thr = recall_at_precision(p, r, t, precision_target)
    return Scores(recall_at(ranks, 1), recall_at(ranks, 10), micro_ap(p, r), rec, thr,
                  positives=int(ranks.size), negatives=len(truth) - int(ranks.size))


def evaluate_by(results: Results, truth: Truth, groups: Mapping[str, str]) -> dict[str, Scores]:
    """:func:`evaluate` on each subset of queries sharing a ``groups[query]`` label (family, source…)."""
    subsets: dict[str, dict[str, str]] = {}
    for query, expected in truth.items():
        subsets.setdefault(groups[query], {})[query] = expected
    return {label: evaluate(results, subset) for label, subset in sorted(subsets.items())}


def _pairs(n: int) -> int:
    """Unordered pairs among n items."""
    return n * (n - 1) // 2


def pairwise_scores(predicted: Iterable[Sequence[str]], true: Iterable[Sequence[str]]) -> PairScores:
    """Pairwise precision/recall/F1: a pair is predicted when both items share a predicted group.

    Groups are disjoint sets of item ids; items in no group are singletons. Counted through the
    contingency of predicted × true groups, so a huge predicted group costs no pair enumeration.
    """
    group_of: dict[str, int] = {}
    for gid, members in enumerate(true):
        for item in members:
            group_of[item] = gid
    seen: set[str] = set()
    predicted_pairs = correct = 0
    for members in predicted:
        if seen.intersection(members) or len(set(members)) != len(members):
            raise ValueError(f"predicted groups must be disjoint; item repeated in {members!r}")
        seen.update(members)
        predicted_pairs += _pairs(len(members))
        counts = Counter(group_of.get(item, -1 - i) for i, item in enumerate(members))
        correct += sum(_pairs(c) for c in counts.values())
    true_pairs = sum(_pairs(c) for c in Counter(group_of.values()).values())
    precision = correct / predicted_pairs if predicted_pairs else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairScores(precision, recall, f1, predicted_pairs, true_pairs, correct)


# --- self-check --------------------------------------------------------------------------------

def _oracle_ap(results: Results, truth: Truth) -> float:
    """Micro-AP by walking the worst-case ranking pair by pair (sorted by Python, not NumPy)."""
    pairs = [(s, bool(e) and ref == e) for q, e in truth.items() for ref, s in results.get(q, ())]
    pairs.sort(key=lambda p: (-p[0], p[1]))
    positives = sum(1 for e in truth.values() if e)
    found, total = 0, 0.0
    for i, (_, good) in enumerate(pairs, start=1):
        if good:
            found += 1
            total += found / i
    return total / positives


def _oracle_pairs(predicted: Sequence[Sequence[str]], true: Sequence[Sequence[str]]) -> tuple[int, int, int]:
    """(predicted, true, correct) pair counts by enumerating every pair."""
    def pairs(groups: Sequence[Sequence[str]]) -> set[frozenset[str]]:
        return {frozenset((a, b)) for g in groups for i, a in enumerate(g) for b in g[i + 1:]}
    p, t = pairs(predicted), pairs(true)
    return len(p), len(t), len(p & t)


def self_check(trials: int = 200, seed: int = 0) -> None:
    """Hand-worked cases plus randomized comparisons against the brute-force oracles above."""
    # Hand-worked: q1 true match at rank 0, q2 tied with a wrong hit (pessimistic rank 1),
    # q3 negative with a high-scoring wrong hit, q4's true match missing.
    results = {"q1": [("a", 0.9), ("b", 0.2)], "q2": [("x", 0.8), ("b", 0.8)],
               "q3": [("a", 0.85)], "q4": [("c", 0.5)]}
    truth = {"q1": "a", "q2": "b", "q3": "", "q4": "d"}
    s = evaluate(results, truth)
    assert (s.recall_at_1, s.recall_at_10, s.positives, s.negatives) == (1 / 3, 2 / 3, 3, 1), s
    # ranking: .9 T, .85 F, .8 F, .8 T, .5 F, .2 F -> AP = (1/1 + 2/4) / 3
    assert math.isclose(s.micro_ap, 0.5), s
    assert (s.recall_at_p99, s.threshold_at_p99) == (1 / 3, 0.9), s
    assert math.isclose(evaluate(results, truth, precision_target=0.5).recall_at_p99, 2 / 3)
    ps = pairwise_scores([("a", "a1", "a2"), ("b", "x")], [("a", "a1"), ("b", "b1"), ("x", "x1")])
    assert (ps.predicted_pairs, ps.true_pairs, ps.correct_pairs) == (4, 3, 1), ps

    rng = np.random.default_rng(seed)
    for _ in range(trials):
        refs = [f"r{i}" for i in range(int(rng.integers(1, 8)))]
        truth = {f"q{i}": (str(rng.choice(refs)) if rng.random() < 0.7 else "") for i in range(12)}
        truth["q0"] = refs[0]
        results = {q: [(str(r), float(rng.integers(0, 4)) / 4)
                       for r in rng.choice(refs, size=int(rng.integers(0, len(refs) + 1)), replace=False)]
                   for q in truth}
        assert math.isclose(evaluate(results, truth).micro_ap, _oracle_ap(results, truth))
        items = [f"i{i}" for i in range(int(rng.integers(2, 30)))]
        pred = [list(g) for g in np.array_split(rng.permutation(items), int(rng.integers(1, len(items) + 1)))]
        true = [list(g) for g in np.array_split(rng.permutation(items), int(rng.integers(1, len(items) + 1)))]
        got = pairwise_scores(pred, true)
        assert (got.predicted_pairs, got.true_pairs, got.correct_pairs) == _oracle_pairs(pred, true)
    print(f"metrics self-check passed ({trials} randomized trials)")


if __name__ == "__main__":
    self_check()
