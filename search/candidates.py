"""Auto's first step: the candidates worth weighing, found through the indexes.

A search gathers, for every variant of the query (as given, mirrored, its content box), its
nearest images by each seed hash and each fused vector feature. Duplicates gather candidate
*pairs* for the whole catalog without an N x N matrix, a k-NN graph: each image's (and each
content box's) nearest neighbours by the seed hashes, every pair whose cosine alone reaches
the threshold, and, marked to be verified geometrically whatever else they score, each image's
few nearest by each vector feature (by the first seed hash without one) and by every seed hash.

When images are added to a catalog whose pairs are known, only the graph's edges that touch
them are found, in O(added x k): their own lists, and the older lists they enter. An older
list is summed up by its *reach*, how far its last (and its last verified) neighbour lay when
it was searched; an added image within that reach, looked for among its own REVERSE_DEPTH x k
nearest, joins it. Reaches are not shrunk as images join: an older image keeps its earlier
neighbours too, so its list can only grow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.embedders import VECTOR_FEATURES
from neardup.storage.catalog import Catalog
from neardup.storage.models import BOX, IMAGE, VIEWS
from neardup.storage.vectors import Edges, Neighbourhoods, build_binary, build_float, neighbourhoods

from .auto import POLICY, AutoPolicy
from .fusion import similarity_at


@dataclass(frozen=True)
class Query:
    """A query image as auto compares it: its variants' hashes (variant -> hash name -> bits)
    and, per fused vector feature, the variants' (V, D) float32 vectors."""

    variants: list[NDArray[np.uint8]]
    hashes: list[dict[str, NDArray[np.uint8]]]
    vectors: dict[str, NDArray[np.float32]]


REVERSE_DEPTH = 4  # an added image is looked for in older lists among its own REVERSE_DEPTH x k nearest


@dataclass(frozen=True)
class PairCandidates:
    """Candidate pairs (M, 2) int64, a < b, unique; `verify` (M,) marks the nearest neighbours
    that geometric verification looks at whatever their other evidence. `reaches` (n, R)
    float64 are the reaches (`reach_columns`) of the images `reached` (n,) int64 whose own
    lists were searched (one image per content)."""

    pairs: NDArray[np.int64]
    verify: NDArray[np.bool_]
    reached: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    reaches: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))


@dataclass(frozen=True)
class Reaches:
    """The reaches of the images whose pairs are known: ids (n,) int64 sorted, values (n, R)
    float64 in the order of `columns` (NaN: the list was not full, anything enters it)."""

    ids: NDArray[np.int64]
    values: NDArray[np.float64]
    columns: tuple[str, ...]

    @classmethod
    def none(cls) -> Reaches:
        return cls(np.zeros(0, np.int64), np.zeros((0, 0)), ())

    def known(self, ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """(M,) which of `ids` have reaches."""
        at = np.minimum(np.searchsorted(self.ids, ids), max(len(self.ids) - 1, 0))
        return self.ids[at] == ids if len(self.ids) else np.zeros(len(ids), bool)

    def of(self, ids: NDArray[np.int64], column: str) -> NDArray[np.float64]:
        """(M,) each id's reach in `column` (NaN when unknown)."""
        if column not in self.columns or not len(self.ids):
            return np.full(len(ids), np.nan)
        at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return np.where(self.ids[at] == ids, self.values[at, self.columns.index(column)], np.nan)


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


def reach_columns(weights: dict[str, float], vector_features: Sequence[str], policy: AutoPolicy = POLICY) -> tuple[str, ...]:
    """The reaches recorded of each image: per seed hash and view, its list's last and last
    verified neighbour; per vector feature and view, its last (all its few are verified)."""
    seeds = [a for a in policy.pair_seeds if a in weights]
    return (tuple(f"{a}.{view}.{end}" for a in seeds for view in VIEWS for end in ("last", "verified"))
            + tuple(f"{name}.{view}.verified" for name in vector_features for view in VIEWS))


def pair_candidates(catalog: Catalog, threshold: float, weights: dict[str, float], vector_features: Sequence[str],
                    *, verifying: bool, merge: Mapping[int, int], policy: AutoPolicy = POLICY,
                    new: NDArray[np.int64] | None = None, known: Reaches | None = None) -> PairCandidates:
    """The candidate pairs of the whole catalog, or only those touching the images `new` (one
    per content) when the others' pairs and reaches (`known`) are; an id in `merge` (an
    exact copy) stands for the id it maps to (its content's first image); `verifying`: the
    catalog stores keypoints."""
    lists = _Lists(catalog, merge, new, known or Reaches.none())
    found, near = [], []
    for algo in (a for a in policy.pair_seeds if a in weights):
        for view in VIEWS:
            ranked, verified = lists.hashes(algo, view, policy.pair_k, policy.verify_hash_top)
            found.append(ranked)
            near.append(verified)
    if not vector_features:
        near += found[:1]
    for name in vector_features:
        feature = VECTOR_FEATURES[name]
        found.append(lists.within(name, similarity_at(threshold, feature.background, feature.threshold)))
        for view in VIEWS:
            near.append(lists.vectors(name, view, policy.verify_top))
    verify = Edges.concat(near).merged(merge) if verifying else Edges.empty()
    edges = Edges.concat([*found, verify]).merged(merge)
    pairs = np.unique(np.stack([edges.src, edges.dst], axis=1), axis=0).reshape(-1, 2)
    wanted = {(int(a), int(b)) for a, b in zip(verify.src, verify.dst)}
    reached, reaches = lists.reaches(reach_columns(weights, vector_features, policy))
    return PairCandidates(pairs, np.array([(int(a), int(b)) in wanted for a, b in pairs], dtype=bool),
                          reached, reaches)


class _Lists:
    """The neighbour lists of the queries (every image, or the `new` ones) and the older
    lists the new images enter, recording the reaches of the lists it searched."""

    def __init__(self, catalog: Catalog, merge: Mapping[int, int], new: NDArray[np.int64] | None,
                 known: Reaches) -> None:
        self.catalog, self.merge, self.new, self.known = catalog, merge, new, known
        self._reach: dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]] = {}

    def hashes(self, algo: str, view: str, k: int, verified: int) -> tuple[Edges, Edges]:
        """The pairs of every query's list by seed hash `algo` (its `view` against whole
        images), valued by rank, and those of them among each list's first `verified`."""
        ids, codes = self._queries(*self.catalog.hashes(algo, view))
        hood = self._search(algo, ids, codes, k)
        self._record(f"{algo}.{view}.last", hood, k, None)
        self._record(f"{algo}.{view}.verified", hood, verified, verified - 1)
        ranked = hood.edges(rank=True)
        near = ranked.where(ranked.value < verified)
        if self.new is None:
            return ranked, near
        last, joined_near = self._joined(algo, view, k, ("last", "verified"))
        return Edges.concat([ranked, last]), Edges.concat([near, joined_near])

    def within(self, name: str, cosine: float) -> Edges:
        """Every pair of whole-image vectors of `name` at cosine >= `cosine` (touching a new image)."""
        ids, vectors = self._vectors(name, IMAGE)
        if not len(ids):
            return Edges.empty()
        return self.catalog.index(name).within(vectors, ids, cosine, batch=1024, symmetric=self.new is None)

    def vectors(self, name: str, view: str, k: int) -> Edges:
        """The pairs of each query's k nearest by vector feature `name` (its `view` against
        whole images), and of the older such lists the new images enter."""
        ids, vectors = self._vectors(name, view)
        hood = self._search(name, ids, vectors, k)
        self._record(f"{name}.{view}.verified", hood, k, None)
        pairs = hood.edges()
        if self.new is None:
            return pairs
        return Edges.concat([pairs, self._joined(name, view, k, ("verified",))[0]])

    def reaches(self, columns: tuple[str, ...]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The images whose lists were searched (one per content: exact copies left out) and
        their reaches, (n,) int64 and (n, len(columns)) float64."""
        searched = [ids for ids, _ in self._reach.values()]
        ids = np.unique(np.concatenate(searched)) if searched else np.zeros(0, np.int64)
        ids = ids[~np.isin(ids, np.fromiter(self.merge.keys(), np.int64, len(self.merge)))]
        out = np.full((len(ids), len(columns)), np.nan)
        for j, column in enumerate(columns):
            if column in self._reach:
                got, values = self._reach[column]
                mine = np.isin(got, ids)
                out[np.searchsorted(ids, got[mine]), j] = values[mine]
        return ids, out

    def _search(self, feature: str, ids: NDArray[np.int64], rows: NDArray, k: int) -> Neighbourhoods:
        if not len(ids):
            return Neighbourhoods(ids, np.zeros((0, 1), np.int64), np.zeros((0, 1)))
        return self.catalog.index(feature).neighbourhoods(rows, ids, k)

    def _record(self, column: str, hood: Neighbourhoods, full: int, rank: int | None) -> None:
        """The reach of each list in `column`: its entry at `rank` (default: its last), NaN
        where the list holds fewer than `full` (a list not full takes anything)."""
        reach = np.where(hood.counts() >= full, hood.reach(rank), np.nan)
        self._reach[column] = (hood.query_ids, reach)

    def _joined(self, feature: str, view: str, k: int, ends: tuple[str, ...]) -> list[Edges]:
        """For each of `ends`: the pairs (new image, older image) where the new image's
        whole-image `feature` lies within the older image's `view` list's reach."""
        binary = feature in self.catalog.settings.hashes
        new_ids, rows = self._features(feature, IMAGE, binary, only_new=True)
        if not len(new_ids):
            return [Edges.empty() for _ in ends]
        if view == IMAGE:
            hood = self.catalog.index(feature).neighbourhoods(rows, new_ids, REVERSE_DEPTH * k)
        else:  # the older lists of content boxes: few, searched exactly
            box_ids, boxes = self._features(feature, BOX, binary, only_new=False)
            if not len(box_ids):
                return [Edges.empty() for _ in ends]
            index = build_binary(box_ids, boxes) if binary else build_float(box_ids, boxes)
            hood = neighbourhoods(index, rows, new_ids, REVERSE_DEPTH * k)
        src = np.repeat(hood.query_ids, hood.ids.shape[1])
        dst, value = hood.ids.ravel(), hood.values.ravel().astype(np.float64)
        keep = dst != -1
        src, value = src[keep], value[keep]
        dst = _represented(dst[keep], self.merge)
        older = self.known.known(dst) & ~np.isin(dst, self.new)
        out = []
        for end in ends:
            reach = self.known.of(dst, f"{feature}.{view}.{end}")
            inside = older & (np.isnan(reach) | ((value <= reach) if binary else (value >= reach)))
            out.append(Edges(np.minimum(src, dst)[inside], np.maximum(src, dst)[inside],
                             value[inside].astype(np.float32)))
        return out

    def _queries(self, ids: NDArray[np.int64], rows: NDArray) -> tuple[NDArray[np.int64], NDArray]:
        if self.new is None:
            return ids, rows
        keep = np.isin(ids, self.new)
        return ids[keep], rows[keep]

    def _vectors(self, name: str, view: str) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        return self._features(name, view, False, only_new=self.new is not None)

    def _features(self, feature: str, view: str, binary: bool, *, only_new: bool) -> tuple[NDArray[np.int64], NDArray]:
        """Ids and rows of one feature's `view`: of every image, or of the new ones only."""
        if binary:
            ids, rows = self.catalog.hashes(feature, view)
            return self._queries(ids, rows) if only_new else (ids, rows)
        if not only_new:
            return self.catalog.vectors(feature, view)
        found = self.catalog.vectors_of(self.new.tolist(), feature, view)
        ids = np.array(sorted(found), np.int64)
        return ids, (np.stack([found[i] for i in ids.tolist()]) if len(ids) else np.zeros((0, 1), np.float32))


def _represented(ids: NDArray[np.int64], merge: Mapping[int, int]) -> NDArray[np.int64]:
    """Each id, or the id of its content's first image when it is an exact copy (`merge`)."""
    if not merge or not len(ids):
        return ids
    keys = np.fromiter(merge.keys(), np.int64, len(merge))
    values = np.fromiter(merge.values(), np.int64, len(merge))
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    at = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
    return np.where(keys[at] == ids, values[at], ids)
