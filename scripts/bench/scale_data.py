"""Synthetic collections for the scale benchmark: random descriptors plus planted near-copies.

A collection of N rows is random (uniform bits, or Gaussian directions on the unit sphere) except
for ``PLANTED_SHARE`` of the rows, the *sources*, each of which has 1–3 *copies* written over
other random rows: a copy of a 256-bit code differs from its source in 5–20 random bits, a copy
of a unit vector has cosine ≈ 0.98 with it (two copies of one source ≈ 0.96). Source and copy rows are drawn at random, so copies
are not next to their sources. The same ``(n, seed)`` always gives the same collection.

At neardup's defaults (Hamming ≤ 69 of 256, cosine ≥ 0.95) every planted pair matches and two
unrelated rows practically never do: P(Binomial(256, ½) ≤ 69) ≈ 1e-13, and the cosine of two
random 1280-d directions has a standard deviation of 1/√1280 ≈ 0.03.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

BITS = 256          # PDQ and pHash-256
DIM = 1280          # neardup's CNN embedding
PLANTED_SHARE = 0.01
COPIES = (1, 3)     # copies per source, inclusive
FLIPS = (5, 20)     # bits flipped per binary copy, inclusive
COSINE = 0.98       # expected cosine of a float copy with its source (±0.006)


@dataclass(frozen=True)
class Planted:
    """The planted duplicates: row ``copy[i]`` is a near-copy of row ``source[i]``; (C,) int64 each."""

    source: NDArray[np.int64]
    copy: NDArray[np.int64]

    @property
    def pairs(self) -> NDArray[np.int64]:
        """(C, 2) int64 planted pairs as (a, b) rows with a < b."""
        return np.stack([np.minimum(self.source, self.copy), np.maximum(self.source, self.copy)], axis=1)

    def family(self) -> dict[int, int]:
        """Each planted row -> its source row (a source maps to itself)."""
        return {**{s: s for s in self.source.tolist()}, **dict(zip(self.copy.tolist(), self.source.tolist()))}


def _plant(n: int, rng: np.random.Generator) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Source row of each copy and the copy's row: two (C,) int64 arrays of distinct rows."""
    sources = max(1, round(n * PLANTED_SHARE))
    per_source = rng.integers(COPIES[0], COPIES[1] + 1, sources)
    rows = rng.choice(n, sources + int(per_source.sum()), replace=False).astype(np.int64)
    return np.repeat(rows[:sources], per_source), rows[sources:]


def flip_bits(codes: NDArray[np.uint8], flips: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.uint8]:
    """``codes`` (M, B) uint8 packed, with exactly ``flips[i]`` distinct random bits of row i flipped."""
    noise = rng.random((len(codes), codes.shape[1] * 8))
    kth = np.sort(noise, axis=1)[np.arange(len(codes)), flips - 1]
    return codes ^ np.packbits(noise <= kth[:, None], axis=1)


def perturb(vectors: NDArray[np.float32], rng: np.random.Generator, cosine: float = COSINE) -> NDArray[np.float32]:
    """(M, D) unit rows moved by Gaussian noise to an expected cosine ``cosine``; unit rows again."""
    sigma = np.sqrt(1.0 / cosine**2 - 1.0)
    noisy = vectors + rng.standard_normal(vectors.shape, dtype=np.float32) * np.float32(sigma / np.sqrt(vectors.shape[1]))
    return normalise(noisy)


def normalise(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """(M, D) float32 rows scaled to unit length, in place (no (M, D) temporary)."""
    vectors /= np.sqrt(np.einsum("ij,ij->i", vectors, vectors))[:, None]
    return vectors


def binary_collection(n: int, *, seed: int) -> tuple[NDArray[np.uint8], Planted]:
    """(n, 32) uint8 packed 256-bit codes and their planted near-duplicate pairs."""
    rng = np.random.default_rng([seed, n, BITS])
    codes = rng.integers(0, 256, (n, BITS // 8), dtype=np.uint8)
    src, copy = _plant(n, rng)
    codes[copy] = flip_bits(codes[src], rng.integers(FLIPS[0], FLIPS[1] + 1, len(src)), rng)
    return codes, Planted(src, copy)


def float_collection(n: int, *, seed: int, dim: int = DIM) -> tuple[NDArray[np.float32], Planted]:
    """(n, dim) float32 L2-normalised vectors and their planted near-duplicate pairs."""
    rng = np.random.default_rng([seed, n, dim])
    vectors = normalise(rng.standard_normal((n, dim), dtype=np.float32))
    src, copy = _plant(n, rng)
    vectors[copy] = perturb(vectors[src], rng)
    return vectors, Planted(src, copy)


def query_rows(data: NDArray, count: int, *, seed: int) -> tuple[NDArray, NDArray[np.int64]]:
    """``count`` near-copies of random rows of ``data`` (10 bits flipped, or cosine ≈ 0.98), and those rows.

    Returns ((count, B) uint8 or (count, D) float32 queries, (count,) int64 row each was made from).
    """
    rng = np.random.default_rng([seed, len(data), 7])
    rows = rng.choice(len(data), count, replace=False).astype(np.int64)
    if data.dtype == np.uint8:
        return flip_bits(data[rows], np.full(count, 10), rng), rows
    return perturb(data[rows].copy(), rng), rows
