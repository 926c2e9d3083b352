"""Auto's first step: the candidates worth weighing, found through the indexes.

A search gathers, for every variant of the query (as given, mirrored, its content box), its
nearest images by each seed hash and each fused vector feature. Duplicates gather candidate
*pairs* for the whole catalog without an N x N matrix: each image's (and each content box's)
nearest neighbours by the seed hashes, every pair whose cosine alone reaches the threshold,
and, marked to be verified geometrically whatever else they score, each image's few nearest
by each vector feature (by the first seed hash without one) and by every seed hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.embedders import VECTOR_FEATURES
from neardup.storage.catalog import Catalog
from neardup.storage.models import VIEWS
from neardup.storage.vectors import Edges

from .auto import POLICY, AutoPolicy
from .fusion import similarity_at


@dataclass(frozen=True)
class Query:
    """A query image as auto compares it: its variants' hashes (variant -> hash name -> bits)
    and, per fused vector feature, the variants' (V, D) float32 vectors."""

    variants: list[NDArray[np.uint8]]
    hashes: list[dict[str, NDArray[np.uint8]]]
    vectors: dict[str, NDArray[np.float32]]


@dataclass(frozen=True)
class PairCandidates:
    """Candidate pairs (M, 2) int64, a < b, unique; `verify` (M,) marks the nearest neighbours
    that geometric verification looks at whatever their other evidence."""

    pairs: NDArray[np.int64]
    verify: NDArray[np.bool_]


def search_candidates(query: Query, catalog: Catalog, k: int, weights: dict[str, float],
                      policy: AutoPolicy = POLICY) -> list[int]:
    """Ids of the images nearest to any variant of `query` in the seed indexes, sorted."""
    pool: set[int] = set()
    depth = max(k, policy.search_pool)
    for name in (n for n in policy.search_seeds if n in weights):
        codes = np.stack([h[name] for h in query.hashes])
        for found in catalog.index(name).knn(codes, depth):
            pool.update(n.image_id for n in found)
    for name, vectors in query.vectors.items():
        for found in catalog.index(name).knn(vectors, depth):
            pool.update(n.image_id for n in found)
    return sorted(pool)


def pair_candidates(catalog: Catalog, threshold: float, weights: dict[str, float], vector_features: Sequence[str],
                    *, verifying: bool, merge: Mapping[int, int], policy: AutoPolicy = POLICY) -> PairCandidates:
    """The candidate pairs of the whole catalog; an id in `merge` (an exact copy) stands for
    the id it maps to (its content's first image); `verifying`: the catalog stores keypoints."""
    found, near = [], []
    for algo in (a for a in policy.pair_seeds if a in weights):
        index = catalog.index(algo)
        for view in VIEWS:
            ids, codes = catalog.hashes(algo, view)
            if len(ids):
                ranked = index.nearest(codes, ids, policy.pair_k, rank=True)
                found.append(ranked)
                near.append(ranked.where(ranked.value < policy.verify_hash_top))
    if not vector_features:
        near += found[:1]
    for name in vector_features:
        feature, index = VECTOR_FEATURES[name], catalog.index(name)
        ids, vectors = catalog.vectors(name)
        if len(ids):
            cosine = similarity_at(threshold, feature.background, feature.threshold)
            found.append(index.within(vectors, ids, cosine, batch=1024))
        for view in VIEWS:
            ids, vectors = catalog.vectors(name, view)
            if len(ids):
                near.append(index.nearest(vectors, ids, policy.verify_top))
    verify = Edges.concat(near).merged(merge) if verifying else Edges.empty()
    edges = Edges.concat([*found, verify]).merged(merge)
    pairs = np.unique(np.stack([edges.src, edges.dst], axis=1), axis=0).reshape(-1, 2)
    wanted = {(int(a), int(b)) for a, b in zip(verify.src, verify.dst)}
    return PairCandidates(pairs, np.array([(int(a), int(b)) in wanted for a, b in pairs], dtype=bool))

