"""Exact (brute-force) search and threshold grouping over fixed-length image descriptors.

A peer method is a descriptor function plus a similarity; this module gives it the benchmark's
``index`` / ``search`` / ``duplicates`` interface with no index structure at all, so a peer's
figures measure its descriptor alone. Descriptors are computed once per path and cached, so the
duplicates pass reuses what search computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

Describe = Callable[[Sequence[Path]], NDArray]            # N paths -> (N, D) descriptors
Similarity = Callable[[NDArray, NDArray], NDArray[np.float32]]   # (Q, D), (R, D) -> (Q, R)
CHUNK = 256   # query rows per similarity block: 256 × 4,000 refs × 32 B of XOR stays < 40 MB


def hamming_similarity(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> NDArray[np.float32]:
    """1 - Hamming distance / bits between packed bit strings: (Q, B) uint8, (R, B) uint8 -> (Q, R)."""
    diff = np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2, dtype=np.int32)
    return (1.0 - diff / (8.0 * a.shape[1])).astype(np.float32)


def cosine_similarity(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """Dot product of L2-normalised rows: (Q, D) float32, (R, D) float32 -> (Q, R) float32."""
    return (a @ b.T).astype(np.float32)


def top_k(sim: NDArray[np.float32], k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Best ``k`` columns of each (Q, R) row: (Q, k') indices and scores, best first, k' = min(k, R).

    Equal scores keep the lower column first (a stable order, not a favourable one).
    """
    k = min(k, sim.shape[1])
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sim, order, axis=1)


def components(n: int, pairs: NDArray[np.int64]) -> list[list[int]]:
    """Connected components of size ≥ 2 of an n-node graph given as (E, 2) edges (union-find)."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs.tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


class BruteForceMethod:
    """A descriptor + similarity searched exhaustively; groups are single-linkage at ``threshold``."""

    def __init__(self, name: str, describe: Describe, similarity: Similarity, threshold: float) -> None:
        self.name, self.threshold = name, threshold
        self._describe, self._similarity = describe, similarity
        self._cache: dict[Path, NDArray] = {}
        self._refs: list[Path] = []
        self._ref_desc: NDArray | None = None

    def descriptors(self, paths: Sequence[Path]) -> NDArray:
        """(N, D) descriptors of ``paths``, computing only those not cached yet."""
        todo = [p for p in dict.fromkeys(paths) if p not in self._cache]
        if todo:
            self._cache.update(zip(todo, self._describe(todo), strict=True))
        return np.stack([self._cache[p] for p in paths])

    def index(self, refs: Sequence[Path]) -> None:
        """Describe the reference collection."""
        self._refs = list(refs)
        self._ref_desc = self.descriptors(self._refs)

    def search(self, queries: Sequence[Path], k: int) -> list[list[tuple[Path, float]]]:
        """Top-``k`` (reference, similarity) of each query, best first."""
        if self._ref_desc is None:
            raise RuntimeError(f"{self.name}: search() before index()")
        out: list[list[tuple[Path, float]]] = []
        for start in range(0, len(queries), CHUNK):
            desc = self.descriptors(queries[start:start + CHUNK])
            idx, score = top_k(self._similarity(desc, self._ref_desc), k)
            out += [[(self._refs[i], float(s)) for i, s in zip(row_i, row_s, strict=True)]
                    for row_i, row_s in zip(idx.tolist(), score.tolist(), strict=True)]
        return out

    def duplicates(self, paths: Sequence[Path]) -> list[tuple[Path, ...]]:
        """Groups of ``paths`` linked by pairs with similarity ≥ ``threshold`` (size ≥ 2)."""
        desc = self.descriptors(paths)
        edges = []
        for start in range(0, len(paths), CHUNK):
            sim = self._similarity(desc[start:start + CHUNK], desc)
            rows, cols = np.nonzero(sim >= self.threshold)
            keep = cols > rows + start
            edges.append(np.stack([rows[keep] + start, cols[keep]], axis=1))
        pairs = np.concatenate(edges) if edges else np.empty((0, 2), dtype=np.int64)
        return [tuple(paths[i] for i in g) for g in components(len(paths), pairs)]
