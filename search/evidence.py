"""Auto's second step: every kind of evidence for the candidates, on one confidence scale.

The fused hashes (`fusion`), each fused vector feature's cosine (with the feature's own
anchors, `indexer.embedders`) and geometric verification (`verify`). A query is compared
through each of its variants and a pair through each of its two images' views (whole image,
content box), keeping the best; two framed images are compared by their boxes only, never by
their frames (two screenshots of one app window showing different photos share the window).
Hash evidence is ignored for pairs of two low-quality images (flat, near-blank: their hashes
are mostly noise), not when only one is (a blurred copy of a sharp photo).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.colours import ColourLayout
from neardup.indexer.embedders import VECTOR_FEATURES
from neardup.indexer.features import LocalFeatures, enlarge, orb_features
from neardup.indexer.progress import Progress
from neardup.indexer.hashes import LOW_QUALITY
from neardup.indexer.workers import parallel_map, warm, warmed
from neardup.storage.catalog import Catalog, Location
from neardup.storage.models import BOX, IMAGE
from neardup.storage.pairs import Columns

from .auto import GEOMETRY, HASHES, POLICY, AutoPolicy, Evidence
from .candidates import PairCandidates, Query
from .fusion import confidence, fused_similarity, hash_anchor
from .strips import Strip, colour_link, strip_link, strip_of, unpacked
from .verify import VERIFY_CEILING, Verification, best_inliers, best_match, verified_confidence

# Verifications as columns: the form they are stored in (`storage.pairs`) and sent back from
# worker processes (`Verified`).
INLIERS, RECOLOURED, BLOCK = "inliers", "recoloured", "block"
BOXED = "boxed"  # `PairEvidence.boxed`, beside the verification columns
BOX_FIRST, BOX_SECOND = 1, 2
SIDE_FIELDS = {"coverage": np.float64, "centre": np.float64, "central": np.int32, "share": np.float64,
               "cells": np.uint64, "hole": np.int32, "beyond": np.float32, "blank": np.float32,
               "standout": np.float32, "seam": np.float32, "inset": np.uint8}
# Pairs whose cosines are computed at once: 2 x 5 MB at D = 1280, which the allocator reuses
# chunk after chunk; larger chunks take fresh pages, which the kernel zeroes (docs/BENCHMARKS.md).
PAIR_CHUNK = 1024
VERIFY_BATCH = 2048  # pairs verified per batch: only their images' keypoints are in memory
# Verification spread over processes: a worker costs about a second of CPU to start, so fewer
# pairs than this (a few seconds of one core's work) stay in this process. A task's keypoints
# are read by its worker; smaller tasks balance the workers better but read an image's
# keypoints more often.
SPREAD_FROM = 4096
TASK_PAIRS = 256
# Strip links spread over processes only once the server that starts workers is up (`warm`):
# from this many, a warm pool's start costs less than it saves; a cold one's never does here.
STRIPS_SPREAD_FROM = 512
VERIFYING = "verifying candidate pairs"  # the progress stage's label


def search_evidence(query: Query, ids: list[int], catalog: Catalog, weights: dict[str, float],
                    policy: AutoPolicy = POLICY) -> Evidence:
    """Hash and vector evidence for candidates `ids` (each its best over the query's variants)."""
    candidates = {name: _rows_of(catalog, name, ids, query.hashes[0][name]) for name in weights}
    similarity = np.max([fused_similarity(h, candidates, weights) for h in query.hashes], axis=0)
    kinds = {HASHES: confidence(similarity, policy.hash_background, hash_anchor(weights))}
    for name, query_vectors in query.vectors.items():
        feature, matrix = VECTOR_FEATURES[name], _rows_of(catalog, name, ids, query_vectors[0])
        kinds[name] = confidence((matrix @ query_vectors.T).max(axis=1), feature.background, feature.threshold)
    return Evidence(kinds)


def _rows_of(catalog: Catalog, feature: str, ids: list[int], like: NDArray) -> NDArray:
    """(len(ids), width) rows of `feature` for the sorted, unique `ids` (zeros where an image
    has none), from the feature's index when it holds them; `like` is a query's row."""
    found, rows = catalog.index(feature).rows(ids)
    if len(found) == len(ids):
        return rows
    out = np.zeros((len(ids), len(like)), like.dtype)
    out[np.searchsorted(ids, found)] = rows
    return out


def with_search_geometry(query: Query, ids: list[int], evidence: Evidence, catalog: Catalog, decode_side: int,
                         policy: AutoPolicy = POLICY) -> Evidence:
    """`evidence` plus the geometric verification of the `verify_top` best candidates (those
    already at VERIFY_CEILING or above cannot gain and are skipped)."""
    best = evidence.best()
    top = [i for i in np.argsort(-best, kind="stable")[: policy.verify_top] if best[i] < VERIFY_CEILING]
    stored = catalog.keypoints_of([ids[i] for i in top]) if top else {}
    geometry = np.zeros(len(ids))
    if stored:
        features = [orb_features(enlarge(v, decode_side)) for v in query.variants]
        for i in (i for i in top if ids[i] in stored):
            geometry[i] = float(verified_confidence(best_inliers(features, LocalFeatures(*stored[ids[i]]))))
    return Evidence({**evidence.kinds, GEOMETRY: geometry})


@dataclass(frozen=True)
class Verified:
    """Geometric verifications of V pairs as columns: `rows` (V,) the pairs' rows, `counts`
    (V,) their counting inliers (`Verification.count`), `columns` INLIERS, RECOLOURED, BLOCK and
    each side's `Side` fields ("query_coverage", …), (V,) each. Not a `Verification` per pair: those
    take ~700 bytes each, gigabytes for the millions of pairs of a large catalog."""

    rows: NDArray[np.int64]
    counts: NDArray[np.int32]
    columns: Columns

    @classmethod
    def of(cls, found: Mapping[int, Verification]) -> Verified:
        """The verifications of pair row -> `Verification`."""
        rows = sorted(found)
        columns: Columns = {INLIERS: np.array([found[r].inliers for r in rows], np.int32),
                            RECOLOURED: np.array([found[r].recoloured for r in rows], np.uint8),
                            BLOCK: np.array([found[r].block for r in rows], np.uint8)}
        for side in ("query", "candidate"):
            for f, dtype in SIDE_FIELDS.items():
                columns[f"{side}_{f}"] = np.array([getattr(getattr(found[r], side), f) for r in rows], dtype)
        return cls(np.array(rows, np.int64), np.array([found[r].count for r in rows], np.int32), columns)

    @classmethod
    def joined(cls, parts: Sequence[Verified]) -> Verified:
        if not parts:
            return cls.of({})
        return cls(np.concatenate([p.rows for p in parts]), np.concatenate([p.counts for p in parts]),
                   {k: np.concatenate([p.columns[k] for p in parts]) for k in parts[0].columns})

    def __len__(self) -> int:
        return len(self.rows)

    def scattered(self, total: int) -> Columns:
        """Columns of `total` pair rows: these verifications at their rows, INLIERS -1 (not
        verified) and zeros elsewhere."""
        out: Columns = {INLIERS: np.full(total, -1, np.int32)}
        for name, values in self.columns.items():
            if name != INLIERS:
                out[name] = np.zeros(total, values.dtype)
            out[name][self.rows] = values
        return out


@dataclass(frozen=True)
class PairEvidence:
    """Every kind of evidence for M candidate pairs, the geometric verifications done, which
    the decision also reads, and `boxed` (M,) uint8: the image whose content box alone gave
    the pair every hash or vector vote it has (`BOX_FIRST`, `BOX_SECOND`; 0 when the whole
    images or both boxes gave one, or none voted). A composite whose box is one of its
    pictures links to that picture's group through the box, and the decision reads where
    (`composites`)."""

    evidence: Evidence
    verified: Verified
    boxed: NDArray[np.uint8]


def pair_evidence(catalog: Catalog, candidates: PairCandidates, threshold: float, weights: dict[str, float],
                  vector_features: Sequence[str], *, verifying: bool, policy: AutoPolicy = POLICY,
                  workers: int = 1, progress: Progress | None = None) -> PairEvidence:
    """Every kind of evidence for the candidate pairs, and every verification the decision
    reads. Geometry (when `verifying`) is evidence for the marked nearest neighbours and for
    pairs with one vote that need a second, unless another kind is already strong; pairs that
    are strong already are verified too, not as evidence (they are duplicates either way) but
    for the decision's vetoes (`Verification.content_differs`, composites). `workers` and
    `progress`: see `verify_pairs`."""
    pairs = candidates.pairs
    if verifying and len(pairs) >= SPREAD_FROM:
        # `verify_pairs`' workers start while the other evidence is gathered (unused if fewer
        # than SPREAD_FROM of the pairs need verifying: a spare process, no harm)
        warm(workers)
    ids = np.unique(pairs).tolist()
    hashes, via = _pair_hash_evidence(catalog, pairs, ids, weights, policy)
    kinds, vias = {HASHES: hashes}, [via]
    for name in vector_features:
        kinds[name], via = _pair_vector_evidence(catalog, pairs, ids, name)
        vias.append(via)
    boxed = _boxed(np.stack(list(kinds.values())), np.stack(vias), threshold)
    verified = Verified.of({})
    if verifying:
        best = np.max(np.stack(list(kinds.values())), axis=0)
        strong = best >= policy.strong(threshold)
        need = ~strong & (candidates.verify | (best >= threshold))
        verified = verify_pairs(catalog, pairs, np.flatnonzero(need | strong), workers=workers, progress=progress)
        geometry = np.zeros(len(pairs))
        counted = need[verified.rows]  # verifications that are evidence, not only read by the vetoes
        geometry[verified.rows[counted]] = verified_confidence(verified.counts[counted])
        kinds[GEOMETRY] = geometry
    return PairEvidence(Evidence(kinds), verified, boxed)


def _boxed(kinds: NDArray[np.float64], vias: NDArray[np.uint8], threshold: float) -> NDArray[np.uint8]:
    """(M,) `PairEvidence.boxed` from the (K, M) confidences of the hash and vector kinds and
    the views that gave each (`_over_views`)."""
    voting = kinds >= threshold
    out = np.zeros(kinds.shape[1], np.uint8)
    for side in (BOX_FIRST, BOX_SECOND):
        only = (voting & (vias == side)).any(axis=0) & ~(voting & (vias != side)).any(axis=0)
        out[only] = side
    return out


def _pair_hash_evidence(catalog: Catalog, pairs: NDArray[np.int64], ids: list[int], weights: dict[str, float],
                        policy: AutoPolicy) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
    names = list(weights)
    stored = {view: {n: _Rows.stacked(found) for n, found in catalog.hashes_of(ids, names, view).items()}
              for view in (IMAGE, BOX)}

    def similarity(rows: NDArray[np.int64], left: str, right: str) -> NDArray[np.float64]:
        return fused_similarity({n: stored[left][n].of(rows[:, 0]) for n in names},
                                {n: stored[right][n].of(rows[:, 1]) for n in names}, weights)

    best, via = _over_views(pairs, stored[BOX][names[0]].keys, similarity)
    score = confidence(best, policy.hash_background, hash_anchor(weights))
    return np.where(_both_low_quality(catalog, pairs, ids), 0.0, score), via


def _pair_vector_evidence(catalog: Catalog, pairs: NDArray[np.int64], ids: list[int], name: str
                          ) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
    feature = VECTOR_FEATURES[name]
    vectors = {view: _Rows(*catalog.feature_rows(name, ids, view)) for view in (IMAGE, BOX)}

    def cosines(rows: NDArray[np.int64], left: str, right: str) -> NDArray[np.float64]:
        return np.concatenate([  # in chunks: M pairs x D floats at once would not fit
            np.einsum("ij,ij->i", vectors[left].of(chunk[:, 0]), vectors[right].of(chunk[:, 1]))
            for chunk in np.array_split(rows, max(1, -(-len(rows) // PAIR_CHUNK)))
        ])

    best, via = _over_views(pairs, vectors[BOX].keys, cosines)
    return confidence(best, feature.background, feature.threshold), via


def _over_views(pairs: NDArray[np.int64], boxed: NDArray[np.int64],
                score: Callable[[NDArray[np.int64], str, str], NDArray[np.float64]]
                ) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
    """Each pair's best `score(rows, left view, right view)` over the two images' views: the
    whole image and, for the ids in `boxed`, its content box; two boxed images are compared
    by their boxes only. And which image's box alone gave it (`BOX_FIRST`, `BOX_SECOND`; 0
    when the whole images or both boxes did)."""
    left, right = _among(pairs[:, 0], boxed), _among(pairs[:, 1], boxed)
    both = left & right
    best = np.full(len(pairs), -np.inf)
    via = np.zeros(len(pairs), np.uint8)
    if (~both).any():
        best[~both] = score(pairs[~both], IMAGE, IMAGE)
    # the boxes of two boxed images first, so that a tie with one box against a whole image
    # is theirs; values are each view's maximum either way
    for left_view, right_view, rows, side in ((BOX, BOX, both, 0), (BOX, IMAGE, left, BOX_FIRST),
                                              (IMAGE, BOX, right, BOX_SECOND)):
        if rows.any():
            found = score(pairs[rows], left_view, right_view)
            at = np.flatnonzero(rows)
            better = found > best[at]
            best[at[better]], via[at[better]] = found[better], side
    return best, via


def verify_pairs(catalog: Catalog, pairs: NDArray[np.int64], rows: NDArray[np.int64], *,
                 workers: int = 1, progress: Progress | None = None) -> Verified:
    """Geometric verification of pairs[rows]: the first image's keypoints as stored and
    mirrored against the second's (pairs whose images have no keypoints are left out), with
    their colour layouts where both have one (`recolour`). With `workers` > 1 and at least
    SPREAD_FROM rows, on that many processes, each reading its pairs' keypoints from its own
    read-only connection to the catalog (no keypoints cross a pipe), TASK_PAIRS a task.
    `progress` counts the pairs verified (the longest part of `duplicates` from nothing)."""
    progress = progress or Progress()
    progress.start(len(rows), VERIFYING)
    parts: list[Verified] = []
    if workers > 1 and len(rows) >= SPREAD_FROM:
        tasks = [(pairs[chunk], chunk) for chunk in np.array_split(rows, -(-len(rows) // TASK_PAIRS))]
        for (_, chunk), found in zip(tasks, parallel_map(_verified_in_worker, tasks, (catalog_location(catalog),),
                                                           workers=workers, chunk=1)):
            parts.append(found)
            progress.advance(len(chunk))
        return Verified.joined(parts)
    for start in range(0, len(rows), VERIFY_BATCH):
        batch = rows[start : start + VERIFY_BATCH]
        parts.append(_verified(catalog, pairs[batch], batch))
        progress.advance(len(batch))
    return Verified.joined(parts)


def layouts_of(catalog: Catalog, ids: Sequence[int]) -> dict[int, ColourLayout]:
    """The stored colour layouts of the given ids that have one."""
    return {i: ColourLayout.from_bytes(*found) for i, found in catalog.colour_layouts_of(ids).items()}


def layout_cells_of(catalog: Catalog, ids: Sequence[int]) -> dict[int, NDArray[np.uint8]]:
    """The cells alone of the stored colour layouts of the given ids that have one: strip
    candidates read every image's, and making each a `ColourLayout` cost more than reading it."""
    return {i: ColourLayout.cells_from_bytes(found[2]) for i, found in catalog.colour_layouts_of(ids).items()}


_worker_catalog: dict[Location, Catalog] = {}  # a worker's connection, opened by its first task


def catalog_location(catalog: Catalog) -> Location:
    """Where a worker opens its own connection to `catalog` (no keypoints cross a pipe)."""
    return catalog.url if catalog.url is not None else catalog.path


def _verified_in_worker(task: tuple[NDArray[np.int64], NDArray[np.int64]], location: Location) -> Verified:
    return _verified(worker_catalog(location), *task)


def worker_catalog(location: Location) -> Catalog:
    """This worker process's read-only connection to the catalog at `location`, opened once."""
    if location not in _worker_catalog:
        import faiss

        faiss.omp_set_num_threads(1)  # one worker per core already
        _worker_catalog[location] = Catalog(location, readonly=True)
    return _worker_catalog[location]


def _verified(catalog: Catalog, pairs: NDArray[np.int64], rows: NDArray[np.int64]) -> Verified:
    """`verify_pairs` of (k, 2) `pairs`, keyed by their (k,) `rows`: one batch, whose images'
    keypoints are read at once (the mirror's of the queries only: the first of each pair)."""
    ids = np.unique(pairs).tolist()
    stored, flipped = catalog.keypoints_of(ids), catalog.keypoints_of(np.unique(pairs[:, 0]).tolist(), mirrored=True)
    layouts = layouts_of(catalog, ids)
    out: dict[int, Verification] = {}
    for (a, b), row in zip(pairs.tolist(), rows.tolist()):
        if a in stored and b in stored:
            views = [LocalFeatures(*stored[a])] + ([LocalFeatures(*flipped[a])] if a in flipped else [])
            colours = (layouts[a], layouts[b]) if a in layouts and b in layouts else None
            out[row] = best_match(views, LocalFeatures(*stored[b]), mirrored=(False, True), colours=colours)
    return Verified.of(out)


class _Rows:
    """Per-image arrays as the rows of one matrix, by ascending ids (`keys`), so that the rows
    of many pairs are one gather (`of`) instead of one Python-level copy per pair."""

    def __init__(self, keys: NDArray[np.int64], matrix: NDArray | None) -> None:
        self._keys = keys
        self._matrix = matrix if len(keys) else None

    @classmethod
    def stacked(cls, values: Mapping[int, NDArray]) -> _Rows:
        """Per-image arrays ({id: array}) stacked once: for small arrays (hashes), which stacked
        take little more memory."""
        keys = np.array(sorted(values), np.int64)
        return cls(keys, np.stack([values[int(k)] for k in keys]) if len(keys) else None)

    @property
    def keys(self) -> NDArray[np.int64]:
        """The ids with a row, ascending."""
        return self._keys

    def of(self, ids: NDArray[np.int64]) -> NDArray:
        """(M,) ids -> (M, ...) their arrays, in that order; KeyError for an id without one."""
        at = np.searchsorted(self._keys, ids)
        known = at < len(self._keys)
        if self._matrix is None or not known.all() or not (self._keys[at] == ids).all():
            raise KeyError(f"no stored row for {sorted(set(np.asarray(ids).tolist()) - set(self._keys.tolist()))[:5]}")
        return self._matrix[at]


def _both_low_quality(catalog: Catalog, pairs: NDArray[np.int64], ids: list[int]) -> NDArray[np.bool_]:
    """Pairs of two low-quality images, whose hashes are mostly noise."""
    low = np.array([i for i, im in catalog.images(ids).items() if im.quality is not None and im.quality < LOW_QUALITY],
                   np.int64)
    return _among(pairs[:, 0], low) & _among(pairs[:, 1], low)


def _among(ids: NDArray[np.int64], some: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which of `ids` are among `some`: by a table as long as the ids' range (a megabyte
    at a million images), where a set lookup per pair took seconds for millions of pairs."""
    return np.isin(ids, some, kind="table")


def strips_of(catalog: Catalog, partners: Mapping[int, int],
              known: Mapping[tuple[int, int], Strip | None] | None = None) -> dict[tuple[int, int], Strip | None]:
    """(container, partner) -> the container's strip (`strips.strip_of`), None where there is
    none or either image lacks stored keypoints or a colour layout; those in `known` (found
    before for the same two images, unchanged since) as they were."""
    known = known or {}
    out = {pair: known[pair] for pair in partners.items() if pair in known}
    items = sorted(pair for pair in partners.items() if pair not in known)
    for start in range(0, len(items), VERIFY_BATCH):
        batch = items[start : start + VERIFY_BATCH]
        ids = sorted({i for pair in batch for i in pair})
        stored = catalog.keypoints_of(ids)
        layouts = layouts_of(catalog, ids)
        for container, partner in batch:
            out[container, partner] = None
            if all(i in stored and i in layouts for i in (container, partner)):
                out[container, partner] = strip_of(LocalFeatures(*stored[container]), LocalFeatures(*stored[partner]),
                                                   layouts[container], layouts[partner])
    return out


def verify_strips(catalog: Catalog, wanted: Sequence[tuple[int, int, int]], *,
                  colours_only: Sequence[bool] = (), workers: int = 1) -> dict[int, Verification]:
    """Index into `wanted` (container, candidate, packed strip) -> its strip link (`strips.strip_link`),
    sides in the order of the pair (smaller id first, as the query); where `colours_only` says
    so, a colour link only (`strips.colour_link`). With `workers` > 1, STRIPS_SPREAD_FROM links
    or more and the workers' server up, on that many processes (as `verify_pairs`)."""
    only = [i < len(colours_only) and bool(colours_only[i]) for i in range(len(wanted))]
    spread = workers > 1 and len(wanted) >= STRIPS_SPREAD_FROM and warmed()
    size = TASK_PAIRS if spread else VERIFY_BATCH
    tasks = [(list(wanted[start : start + size]), only[start : start + size], start)
             for start in range(0, len(wanted), size)]
    parts = (parallel_map(_verified_strips_in_worker, tasks, (catalog_location(catalog),), workers=workers, chunk=1)
             if spread else (_verified_strips(catalog, *task) for task in tasks))
    out: dict[int, Verification] = {}
    for part in parts:
        out.update(part)
    return out


def _verified_strips_in_worker(task: tuple[list[tuple[int, int, int]], list[bool], int],
                                location: Location) -> dict[int, Verification]:
    return _verified_strips(worker_catalog(location), *task)


def _verified_strips(catalog: Catalog, batch: list[tuple[int, int, int]], colours_only: list[bool],
                     start: int) -> dict[int, Verification]:
    """`verify_strips` of one batch, whose images' keypoints are read at once; keyed from `start`."""
    out: dict[int, Verification] = {}
    ids = sorted({i for k, c, _ in batch for i in (k, c)})
    stored = catalog.keypoints_of(ids)
    layouts = layouts_of(catalog, ids)
    for i, (container, candidate, strip) in enumerate(batch, start):
        if container in stored and candidate in stored:
            colours = ((layouts[container], layouts[candidate])
                       if container in layouts and candidate in layouts else None)
            where, in_place = unpacked(strip)
            if colours_only[i - start]:
                found = colour_link(*colours, where, in_place=in_place) if colours is not None else None
            else:
                found = strip_link(LocalFeatures(*stored[container]), LocalFeatures(*stored[candidate]),
                                   colours, where, in_place=in_place)
            if found is not None:
                out[i] = (found if container < candidate
                          else Verification(found.inliers, found.candidate, found.query))
    return out
