"""One confidence scale for every kind of evidence, and the fused similarity of the hashes.

Each kind of evidence (the hashes, a vector feature's cosine, geometric verification) is
mapped onto one scale by two anchors: its value for unrelated images -> 0, its own default
match threshold -> 0.5, identical -> 1. Then they compare: a pair at 0.5 passes one kind's
own measured threshold, whichever kind it is. The hash evidence is the weighted mean of the
structure, texture and colour hashes' similarities (1 - hamming / bits), so no single family
decides alone. Pure functions; the weights and anchors are the auto policy's (`auto`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.hashes import HASHES

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


def hamming_rows(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Hamming distances of packed codes, row by row: (N, B) x (N, B) (or (B,)) -> (N,) int64."""
    return _POPCOUNT[np.bitwise_xor(a, b)].sum(axis=-1).astype(np.int64)


def hash_similarity(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> NDArray[np.float64]:
    """1 - hamming / bits, row by row: (N, B) x (N, B) -> (N,) float64 in [0, 1]."""
    return 1.0 - hamming_rows(a, b) / (8.0 * a.shape[-1])


def confidence(x: NDArray[np.float64], background: float, threshold: float) -> NDArray[np.float64]:
    """Piecewise-linear map of a similarity onto [0, 1]: background -> 0, threshold -> 0.5, 1 -> 1."""
    x = np.asarray(x, dtype=np.float64)
    low = 0.5 * (x - background) / (threshold - background)
    high = 0.5 + 0.5 * (x - threshold) / (1.0 - threshold)
    return np.clip(np.where(x < threshold, low, high), 0.0, 1.0)


def similarity_at(score: float, background: float, threshold: float) -> float:
    """The inverse of `confidence`: the similarity whose confidence is `score`."""
    if score >= 0.5:
        return threshold + (score - 0.5) * 2.0 * (1.0 - threshold)
    return background + score * 2.0 * (threshold - background)


def hash_anchor(weights: Mapping[str, float]) -> float:
    """The fused hash similarity of a pair sitting exactly at every hash's own threshold."""
    return sum(w * (1.0 - HASHES[k].threshold / HASHES[k].bits) for k, w in weights.items())


def fused_similarity(
    query: Mapping[str, NDArray[np.uint8]], candidates: Mapping[str, NDArray[np.uint8]], weights: Mapping[str, float]
) -> NDArray[np.float64]:
    """Fused hash similarity of N pairs: `query` and `candidates` map hash name -> (N, B) or (B,)."""
    return sum(w * hash_similarity(query[k], candidates[k]) for k, w in weights.items())
