"""Duplicate groups of a whole catalog, without an N x N matrix.

Candidate pairs come from FAISS range search (one hash or one vector feature) or from auto's
steps (`candidates` -> `evidence` -> `auto.duplicate_pairs`), query batch by batch: memory
grows with the number of close pairs, never N². Pairs are then grouped (`linkage`): single
linkage by default, complete linkage with `strict`. Exact copies (same SHA-256) are always
grouped, whatever the threshold. Low-quality images (flat, near-blank) never match by a
single hash, except as exact copies. Nothing here deletes or moves a file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    if by == AUTO:
        edges = auto_edges(catalog, threshold)
    elif by in HASHES:
        ids, codes = catalog.hashes(by)
        edges = _drop_low_quality(catalog, catalog.index(by).within(codes, ids, int(threshold)))
    else:
        ids, vectors = catalog.vectors(by)
        edges = catalog.index(by).within(vectors, ids, threshold, batch=1024) if len(ids) else Edges.empty()
    # lower cost = stronger match; exact copies cost -inf so they join first and always
    cost = edges.value if by in HASHES else -edges.value
    pairs = list(zip(edges.src.tolist(), edges.dst.tolist(), cost.tolist()))
    pairs += [(a, b, -np.inf) for g in catalog.same_content_groups() for a in g for b in g if a < b]
    clusters = complete_linkage(pairs) if strict else single_linkage(pairs)
    return _groups(catalog, clusters)


def auto_edges(catalog: Catalog, threshold: float) -> Edges:
    """The pairs auto calls duplicates at `threshold`, valued by their strongest evidence."""
    weights = POLICY.weights(catalog.settings.hashes)
    vector_features = [n for n in POLICY.vector_features if n in features_of(catalog)]
    verifying = catalog.settings.local_features == FEATURES_ID
    candidates = pair_candidates(catalog, threshold, weights, vector_features, verifying=verifying)
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
