"""Duplicate groups of a whole catalog, without an N x N matrix.

Candidate pairs come from FAISS range search (one hash or one vector feature) or from auto's
steps (`candidates` -> `evidence` -> `auto.duplicate_pairs`), query batch by batch: memory
grows with the number of close pairs, never N². Pairs are then grouped (`linkage`): single
linkage by default, complete linkage with `strict`. Exact copies (same SHA-256) are always
grouped, whatever the threshold. Low-quality images (flat, near-blank) never match by a
single hash, except as exact copies. Nothing here deletes or moves a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.features import FEATURES_ID
from neardup.indexer.hashes import HASHES, LOW_QUALITY
from neardup.storage.catalog import Catalog
from neardup.storage.records import ImageInfo
from neardup.storage.vectors import Edges

from .auto import POLICY, duplicate_pairs
from .candidates import pair_candidates
from .evidence import pair_evidence
from .features import AUTO, check_feature, check_threshold, default_threshold, features_of
from .keeper import choose_keeper
from .linkage import complete_linkage, single_linkage


@dataclass(frozen=True)
class Group:
    """Images that are copies of one another; `keeper` is the suggested one to keep.

    `members` are absolute paths, keeper first, then by path; `images` follow the same order.
    """

    keeper: str
    members: tuple[str, ...]
    images: tuple[ImageInfo, ...]


def find_duplicates(
    *, catalog: Catalog, by: str = AUTO, threshold: float | None = None, strict: bool = False
) -> list[Group]:
    """All duplicate groups of the catalog, largest first.

    For a hash, images at Hamming distance <= `threshold` bits match; for a vector feature,
    cosine >= `threshold`; for auto, pairs whose evidence decides so at `threshold`.
    """
    check_feature(catalog, by)
    threshold = default_threshold(by) if threshold is None else check_threshold(by, threshold)
    exact = catalog.same_content_groups()
    first = {i: g[0] for g in exact for i in g[1:]}  # an exact copy -> its content's first image
    copies = np.fromiter(first.keys(), np.int64, len(first))
    if by == AUTO:
        edges = auto_edges(catalog, threshold, merge=first)
    elif by in HASHES:
        ids, codes = _without(copies, *catalog.hashes(by))
        edges = _drop_low_quality(catalog, catalog.index(by).within(codes, ids, int(threshold)).merged(first))
    else:
        ids, vectors = _without(copies, *catalog.vectors(by))
        edges = catalog.index(by).within(vectors, ids, threshold, batch=1024) if len(ids) else Edges.empty()
        edges = edges.merged(first)
    cost = edges.value if by in HASHES else -edges.value  # lower cost = stronger match
    clusters = (complete_linkage if strict else single_linkage)(zip(edges.src.tolist(), edges.dst.tolist(),
                                                                    cost.tolist()))
    return _groups(catalog, _with_exact_copies(clusters, exact))


def _without(skip: NDArray[np.int64], ids: NDArray[np.int64], rows: NDArray) -> tuple[NDArray[np.int64], NDArray]:
    """The queries of a range search: one image per content (the index still holds them all)."""
    keep = ~np.isin(ids, skip)
    return ids[keep], rows[keep]


def _with_exact_copies(clusters: list[list[int]], exact: list[list[int]]) -> list[list[int]]:
    """Clusters of one image per content (each exact-copy group's first id) with every exact
    copy added back: exact copies are always grouped, in O(N) however many there are (the
    pairwise search never sees more than one of them)."""
    copies_of = {g[0]: g[1:] for g in exact}
    out = [[i for x in cluster for i in (x, *copies_of.pop(x, ()))] for cluster in clusters]
    return out + [[first, *rest] for first, rest in copies_of.items()]


def auto_edges(catalog: Catalog, threshold: float, *, merge: Mapping[int, int] | None = None) -> Edges:
    """The pairs auto calls duplicates at `threshold`, valued by their strongest evidence; an
    exact copy in `merge` is judged through the image it maps to (same bytes, same evidence)."""
    weights = POLICY.weights(catalog.settings.hashes)
    vector_features = [n for n in POLICY.vector_features if n in features_of(catalog)]
    verifying = catalog.settings.local_features == FEATURES_ID
    candidates = pair_candidates(catalog, threshold, weights, vector_features, verifying=verifying,
                                 merge=merge or {})
    if not len(candidates.pairs):
        return Edges.empty()
    evidence = pair_evidence(catalog, candidates, threshold, weights, vector_features, verifying=verifying)
    keep = duplicate_pairs(candidates.pairs, evidence, threshold)
    pairs = candidates.pairs[keep]
    return Edges(pairs[:, 0], pairs[:, 1], evidence.best()[keep].astype(np.float32))


def _drop_low_quality(catalog: Catalog, edges: Edges) -> Edges:
    ids = np.unique(np.concatenate([edges.src, edges.dst])).tolist()
    low = {i for i, im in catalog.images(ids).items() if im.quality is not None and im.quality < LOW_QUALITY}
    if not low:
        return edges
    return edges.where(np.array([a not in low and b not in low for a, b in zip(edges.src, edges.dst)], dtype=bool))


def _groups(catalog: Catalog, clusters: list[list[int]]) -> list[Group]:
    info = catalog.images(i for c in clusters for i in c)
    groups = []
    for cluster in clusters:
        images = [info[i] for i in cluster if i in info]
        if len(images) < 2:
            continue
        keeper = choose_keeper(images)
        rest = sorted((im for im in images if im is not keeper), key=lambda im: im.path)
        ordered = (keeper, *rest)
        groups.append(Group(keeper.path, tuple(im.path for im in ordered), ordered))
    return sorted(groups, key=lambda g: (-len(g.members), g.keeper))
