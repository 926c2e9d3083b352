"""Auto's first step: the candidates worth weighing, found through the indexes.

A search gathers, for every variant of the query (as given, mirrored, its content box), its
nearest images by each seed hash and each fused vector feature. Duplicates gather candidate
*pairs* for the whole catalog without an N x N matrix, a k-NN graph: each image's (and each
content box's) nearest neighbours by the seed hashes, every pair whose cosine alone reaches
the threshold, and, marked to be verified geometrically whatever else they score, each image's
few nearest by each vector feature (by the first seed hash without one) and by every seed hash
(beside a vector feature, only those within some bits: farther, they are strangers).
Without a vector feature, also each image's nearest by the hashes of its turns and mirrors,
guessed from its own (`hashes.dihedral`): no hash of the image finds a mirrored copy.

When images are added to a catalog whose candidates are known, each list of an index (a
hash's, a vector feature's, exact or an inverted file) is brought up to date from the known
one (`neighbours`), and the range pairs by cosine, which no other image can change, are
searched only from the added images (`new`) and the known ones (`known_range`) kept: then the
candidates are those of a search of the whole catalog over the same indexes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.embedders import VECTOR_FEATURES
from neardup.indexer.hashes import dihedral
from neardup.storage.catalog import Catalog
from neardup.storage.models import IMAGE, VIEWS
from neardup.storage.vectors import Edges, FeatureIndex, Neighbourhoods, in_sorted, pair_ids, pair_keys, unique_keys

from .auto import POLICY, AutoPolicy
from .fusion import similarity_at
from .neighbours import NeighbourList, list_name, neighbour_list


@dataclass(frozen=True)
class Query:
    """A query image as auto compares it: its variants' hashes (variant -> hash name -> bits),
    then those of its turns when there is no vector feature (`AutoPolicy.search_turns`), and,
    per fused vector feature, the variants' (V, D) float32 vectors."""

    variants: list[NDArray[np.uint8]]
    hashes: list[dict[str, NDArray[np.uint8]]]
    vectors: dict[str, NDArray[np.float32]]


@dataclass(frozen=True)
class PairCandidates:
    """Candidate pairs (M, 2) int64, a < b, unique, in ascending order; `verify` (M,) marks the nearest neighbours
    that geometric verification looks at whatever their other evidence; `in_range` (M,) the
    pairs whose cosine by a fused vector feature alone reaches the threshold; `lists` the
    exact indexes' neighbour lists they were drawn from (`neighbours`), by name."""

    pairs: NDArray[np.int64]
    verify: NDArray[np.bool_]
    in_range: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    lists: Mapping[str, NeighbourList] = field(default_factory=dict)

    def subset(self, rows: NDArray[np.int64]) -> PairCandidates:
        return PairCandidates(self.pairs[rows], self.verify[rows], self.in_range[rows], self.lists)


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
                    *, verifying: bool, merge: Mapping[int, int], policy: AutoPolicy = POLICY,
                    new: NDArray[np.int64] | None = None, known_range: NDArray[np.int64] | None = None,
                    known_lists: Mapping[str, NeighbourList] | None = None) -> PairCandidates:
    """The candidate pairs of the whole catalog; an id in `merge` (an exact copy) stands for
    the id it maps to (its content's first image); `verifying`: the catalog stores keypoints.
    With `new` (ids, one per content) and `known_range` ((R, 2) int64, the range pairs of the
    other images, known from before), range pairs are searched only from the new images; with
    `known_lists` (`PairCandidates.lists` of before), exact indexes' lists are brought up to date
    from them."""
    found, near = [], []
    lists: dict[str, NeighbourList] = {}
    lister = _Lister(catalog, known_lists or {}, lists)
    for algo in (a for a in policy.pair_seeds if a in weights):
        for view in VIEWS:
            ids, codes = catalog.hashes(algo, view)
            if len(ids):
                hood = lister.nearest(algo, view, ids, codes, policy.pair_k)
                found.append(hood.edges(rank=True))
                near.append(nearest_to_verify(hood, policy, capped=bool(vector_features)))
    if not vector_features:
        near += found[:1]
    if verifying and not vector_features:
        near += _turned_pairs(catalog, policy, weights, lister)
    ranged = [] if known_range is None else [Edges(known_range[:, 0], known_range[:, 1],
                                                   np.ones(len(known_range), np.float32))]
    for name in vector_features:
        feature = VECTOR_FEATURES[name]
        ranged.append(_range_pairs(catalog, name, similarity_at(threshold, feature.background, feature.threshold), new))
        for view in VIEWS:
            ids, vectors = catalog.vectors(name, view)
            if len(ids):
                near.append(lister.nearest(name, view, ids, vectors, policy.verify_top).edges())
    verify = Edges.concat(near).merged(merge) if verifying else Edges.empty()
    ranged_edges = Edges.concat(ranged).merged(merge)
    edges = Edges.concat([*found, ranged_edges, verify]).merged(merge)
    keys, _ = unique_keys(pair_keys(edges.src, edges.dst))
    pairs = np.stack(pair_ids(keys), axis=1)
    return PairCandidates(pairs, _among(keys, verify), _among(keys, ranged_edges), lists)


def nearest_to_verify(hood: Neighbourhoods, policy: AutoPolicy, *, capped: bool) -> Edges:
    """The pairs of each query's `verify_hash_top` nearest by a hash (`hood`), those within
    `verify_hash_bits` when `capped`; ranks count from the nearest, so a cap drops only the
    far end of a query's few."""
    if capped:
        hood = Neighbourhoods(hood.query_ids, np.where(hood.values <= policy.verify_hash_bits, hood.ids, -1),
                              hood.values)
    ranked = hood.edges(rank=True)
    return ranked.where(ranked.value < policy.verify_hash_top)


class _Lister:
    """Each query's nearest entries by a hash or a vector feature: an index's lists brought
    up to date from the `known` ones and kept in `lists` (`neighbours`); an approximate
    index that keeps no lists (a binary inverted file, or one trained before lists were
    kept) searched."""

    def __init__(self, catalog: Catalog, known: Mapping[str, NeighbourList], lists: dict[str, NeighbourList]) -> None:
        self.catalog, self.known, self.lists = catalog, known, lists
        self._entries: dict[str, tuple[NDArray[np.int64], NDArray]] = {}

    def nearest(self, feature: str, view: str, ids: NDArray[np.int64], rows: NDArray, k: int) -> Neighbourhoods:
        """Each of (`ids`, `rows`)'s k nearest other entries of `feature`'s index; `view` names
        the rows (an image view, or a turn)."""
        index: FeatureIndex = self.catalog.index(feature)
        training = None if index.exact() else index.training()
        if not index.exact() and training is None:
            return index.neighbourhoods(rows, ids, k)
        if view == IMAGE:  # the whole images' rows are the index's entries
            self._entries[feature] = (ids, rows)
        elif feature not in self._entries:
            self._entries[feature] = (self.catalog.hashes if index.binary else self.catalog.vectors)(feature, IMAGE)
        name = list_name(feature, view, training)
        self.lists[name] = neighbour_list(index, feature, self._entries[feature], ids, rows, k + 1, name, self.known,
                                          training)
        return self.lists[name].neighbourhoods()


def _turned_pairs(catalog: Catalog, policy: AutoPolicy, weights: dict[str, float], lister: _Lister) -> list[Edges]:
    """Each image's `turn_k` nearest by each of its seven turns and mirrors (`hashes.dihedral`)
    in the `turn_seeds` indexes: a mirrored or turned copy, which no hash of the image itself
    finds, to be verified (the mirrored keypoints and the rotation-invariant ones match it)."""
    out = []
    for algo in (a for a in policy.turn_seeds if a in weights):
        ids, codes = catalog.hashes(algo, IMAGE)
        if not len(ids):
            continue
        turned = dihedral(codes)
        for t in range(turned.shape[1]):
            found = lister.nearest(algo, f"turn{t}", ids, np.ascontiguousarray(turned[:, t]), policy.turn_k).edges()
            out.append(found.where(found.value <= policy.turn_bits))
    return out


def _range_pairs(catalog: Catalog, name: str, cosine: float, new: NDArray[np.int64] | None) -> Edges:
    """Every pair of whole-image vectors of `name` at cosine >= `cosine`, or those of the `new` images
    (only whose vectors are read)."""
    ids, vectors = catalog.vectors(name) if new is None else catalog.feature_rows(name, new.tolist())
    if not len(ids):
        return Edges.empty()
    return catalog.index(name).within(vectors, ids, cosine, batch=1024, symmetric=new is None)


def _among(keys: NDArray[np.int64], edges: Edges) -> NDArray[np.bool_]:
    """(M,) which pairs (`pair_keys`, a < b, ascending) are among `edges` (src < dst)."""
    return in_sorted(np.sort(pair_keys(edges.src, edges.dst)), keys)
