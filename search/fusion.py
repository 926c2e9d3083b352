"""`--by auto`: one score from several features, each family weighted.

Hash similarity is 1 - hamming / bits (1.0 identical, ~0.5 for unrelated images). The auto
score is the weighted mean of the structure, texture and colour hashes' similarities, so
no single family decides alone.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# structure (pdq, dhash), texture (phash256, whash), colour (colorhash)
AUTO_WEIGHTS: dict[str, float] = {"pdq": 0.25, "dhash": 0.15, "phash256": 0.25, "whash": 0.15, "colorhash": 0.2}
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


def hamming_rows(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Hamming distances of packed codes, row by row: (N, B) x (N, B) (or (B,)) -> (N,) int64."""
    return _POPCOUNT[np.bitwise_xor(a, b)].sum(axis=-1).astype(np.int64)


def hash_similarity(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> NDArray[np.float64]:
    """1 - hamming / bits, row by row: (N, B) x (N, B) -> (N,) float64 in [0, 1]."""
    return 1.0 - hamming_rows(a, b) / (8.0 * a.shape[-1])


def auto_features(available: tuple[str, ...]) -> dict[str, float]:
    """The auto weights restricted to the hashes a catalog stores, renormalised to sum 1."""
    weights = {k: w for k, w in AUTO_WEIGHTS.items() if k in available}
    if not weights:
        raise ValueError(f"--by auto needs one of {sorted(AUTO_WEIGHTS)}; catalog has {available}")
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def auto_scores(
    query: dict[str, NDArray[np.uint8]], candidates: dict[str, NDArray[np.uint8]], weights: dict[str, float]
) -> NDArray[np.float64]:
    """Fused scores of N candidate pairs: `query` and `candidates` map hash name -> (N, B) or (B,)."""
    return sum(w * hash_similarity(query[k], candidates[k]) for k, w in weights.items())
