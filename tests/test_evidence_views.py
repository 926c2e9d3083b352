"""A pair's evidence over its two images' views (`search.evidence`): the best score of the
allowed view pairs, checked against a brute-force oracle, and which image's content box alone
gave it, which the composites read (`PairEvidence.boxed`)."""

from __future__ import annotations

import numpy as np
import pytest

from neardup.search.evidence import BOX_FIRST, BOX_SECOND, _boxed, _over_views
from neardup.storage.models import BOX, IMAGE


def _table(seed: int, n: int = 40) -> tuple[np.ndarray, set[int], dict]:
    """n distinct pairs of images 0..9, a random set of boxed images, and a score per (pair, views),
    drawn from a few levels so that ties happen."""
    rng = np.random.default_rng(seed)
    every = np.array([(a, b) for a in range(10) for b in range(a + 1, 10)])
    pairs = every[rng.choice(len(every), size=n, replace=False)]
    boxed = set(rng.choice(10, size=5, replace=False).tolist())
    views = [(v, w) for v in (IMAGE, BOX) for w in (IMAGE, BOX)]
    scores = {(i, v, w): float(rng.choice([0.2, 0.5, 0.8])) for i in range(n) for v, w in views}
    return pairs, boxed, scores


@pytest.mark.parametrize("seed", range(5))
def test_the_best_view_pair_and_the_box_that_gave_it_match_a_brute_force_oracle(seed) -> None:
    pairs, boxed, scores = _table(seed)
    index = {tuple(p): i for i, p in enumerate(pairs.tolist())}

    def score(rows, left, right):
        return np.array([scores[(index[tuple(r)], left, right)] for r in rows.tolist()])

    best, via = _over_views(pairs, np.array(sorted(boxed), np.int64), score)
    for i, (a, b) in enumerate(pairs.tolist()):
        if a in boxed and b in boxed:  # two framed images: never by their frames
            allowed = {(BOX, BOX): 0, (BOX, IMAGE): BOX_FIRST, (IMAGE, BOX): BOX_SECOND}
        else:
            allowed = {(IMAGE, IMAGE): 0, **({(BOX, IMAGE): BOX_FIRST} if a in boxed else {}),
                       **({(IMAGE, BOX): BOX_SECOND} if b in boxed else {})}
        top = max(scores[(i, v, w)] for v, w in allowed)
        assert best[i] == top
        winners = {side for (v, w), side in allowed.items() if scores[(i, v, w)] == top}
        # a tie goes to the whole images, or to both boxes: only a box that alone gave it counts
        assert via[i] == (0 if 0 in winners else min(winners)), (a, b, winners)


def test_a_pair_is_boxed_only_when_every_vote_came_through_that_box() -> None:
    # kinds (hashes, cnn) x pairs: votes at 0.5
    kinds = np.array([[0.9, 0.9, 0.9, 0.3, 0.9],
                      [0.2, 0.7, 0.7, 0.3, 0.6]])
    vias = np.array([[BOX_FIRST, BOX_FIRST, BOX_FIRST, BOX_FIRST, BOX_SECOND],
                     [0, BOX_FIRST, 0, BOX_FIRST, BOX_SECOND]], np.uint8)
    assert _boxed(kinds, vias, 0.5).tolist() == [BOX_FIRST, BOX_FIRST, 0, 0, BOX_SECOND]
