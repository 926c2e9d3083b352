"""`--by auto`: one calibrated score from the hashes and, when the catalog has it, the CNN.

Hash similarity is 1 - hamming / bits (1.0 identical, ~0.5 for unrelated images); the hash
evidence is the weighted mean of the structure, texture and colour hashes' similarities, so
no single family decides alone. Each kind of evidence is mapped onto one confidence scale by
two anchors: its value for unrelated images -> 0, its own default match threshold -> 0.5,
identical -> 1. The auto score is the larger confidence: an exact or near-exact hash match
is near-certain on its own, and so is a CNN cosine far above its threshold, while a mere
CNN resemblance scores lower than a hash match. A pair is a duplicate at 0.5: when either
kind of evidence alone passes its own measured threshold.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# structure (pdq, dhash), texture (phash256, whash), colour (colorhash)
AUTO_WEIGHTS: dict[str, float] = {"pdq": 0.25, "dhash": 0.15, "phash256": 0.25, "whash": 0.15, "colorhash": 0.2}
HASH_BACKGROUND = 0.5  # expected hash similarity of unrelated images (random bits)
# GeM MobileNetV2 cosine on the shared corpus (1,272 distinct images, 808,356 pairs):
# median 0.56; 1e-4 of pairs >= 0.934, 1e-5 >= 0.955, max 0.974 (two astrophotos).
CNN_BACKGROUND = 0.56
CNN_THRESHOLD = 0.95
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


def hash_threshold(weights: dict[str, float], thresholds: dict[str, int], bits: dict[str, int]) -> float:
    """The fused hash similarity of a pair sitting exactly at every hash's own threshold."""
    return sum(w * (1.0 - thresholds[k] / bits[k]) for k, w in weights.items())


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


def auto_confidence(
    hash_similarity: NDArray[np.float64], cosine: NDArray[np.float64] | None, hash_anchor: float
) -> NDArray[np.float64]:
    """The auto score of N pairs from their fused hash similarity and (optional) CNN cosine."""
    score = confidence(hash_similarity, HASH_BACKGROUND, hash_anchor)
    if cosine is not None:
        score = np.maximum(score, confidence(cosine, CNN_BACKGROUND, CNN_THRESHOLD))
    return score
