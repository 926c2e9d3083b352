"""Duplicate groups of a whole catalog, without an N x N matrix.

Candidate pairs come from FAISS range search (one hash) or k-nearest search (auto), query
batch by batch: memory grows with the number of close pairs, never N^2. Pairs are then grouped:
- "single" linkage (default): union-find; A~B and B~C put A, B, C in one group.
- "complete" linkage (`strict=True`): two groups merge only if every pair across them is a
  match, so a chain A~B~C with A and C far apart does not join A and C.
Exact copies (same sha256) are always grouped, whatever the threshold. Low-quality images
(flat, near-blank: PDQ quality < MIN_QUALITY) never match by a single hash, except as exact
copies; with auto, the hashes of two low-quality images are ignored and their other evidence
decides. Auto then attaches each image (or group) that verifies geometrically, with one vote
each, against two or more members of one group to that group (`_attachments`).
Nothing here deletes or moves a file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.features import FEATURES_ID, LocalFeatures
from neardup.indexer.hashes import HASHES
from neardup.indexer.regions import box_view
from neardup.indexer.training import AUTOENCODER
from neardup.storage.catalog import Catalog, ImageInfo
from neardup.storage.vectors import Edges, load_index, nearest, within

from .fusion import (
    CNN_BACKGROUND,
    CNN_THRESHOLD,
    HASH_BACKGROUND,
    auto_features,
    auto_scores,
    confidence,
    similarity_at,
)
from .query import auto_hash_anchor, check_feature, embedder_name
from .verify import VERIFY_TOP, best_inliers, verified_confidence

MIN_QUALITY = 50
AUTO_THRESHOLD = 0.5  # auto confidence: a kind of evidence passes its own threshold (fusion.py)
# An auto pair is a duplicate when two kinds of evidence (hashes, CNN, geometry) each reach the
# threshold, or one reaches "strong": halfway from the threshold to certainty. One vote at the
# threshold is a per-pair false-positive rate of ~1e-4, fine for a query against a collection
# but not for all N^2/2 pairs of it, where single linkage then chains the false pairs into big
# groups. On the benchmark (4,600 images) single evidence gave pairwise precision 0.30 and
# recall 0.84; the agreement rule 0.993 and 0.710 (two votes or one >= 0.65: 0.957, 0.775).
AGREEMENT = 2
AUTO_SEEDS = ("pdq", "phash256")  # auto's candidate pairs: k-NN in these indexes
AUTO_K = 16
VERIFY_HASH_TOP = 4  # each image's nearest by each seed hash verified, beside its CNN top VERIFY_TOP
# A group joins the group it has the most weak links to (one geometric vote each) when it has
# at least this many: `_attachments`. On the benchmark (4,600 images) it took duplicate
# recall from 0.866 to 0.915 at precision 0.996 -> 0.994, no group joining two astrophotos;
# one link was enough in 10 such groups (precision 0.875), and joining every two groups with
# two links, not only each group's best partner, made 1 (precision 0.990).
ATTACH_LINKS = 2
PAIR_CHUNK = 65536  # candidate pairs whose cosines are computed at once (2 x 335 MB at D = 1280)
VERIFY_BATCH = 2048  # candidate pairs verified per batch (their keypoints: <= 4096 images x 18 KB)
# Autoencoder vectors crowd together: among 600 distinct benchmark references (179,700 pairs)
# 1e-4 of the pairs reach cosine 0.989 and the closest 0.998 (two near-black astrophotos).
AUTOENCODER_THRESHOLD = 0.99


@dataclass(frozen=True)
class Group:
    """Images that are copies of one another; `keeper` is the suggested one to keep.

    `members` are absolute paths, keeper first, then by path; `images` follow the same order.
    """

    keeper: str
    members: tuple[str, ...]
    images: tuple[ImageInfo, ...]


def default_threshold(by: str) -> float:
    """Hamming bits (inclusive) for a hash, a cosine for an embedder, a score for auto."""
    if by in HASHES:
        return HASHES[by].threshold
    if by == AUTOENCODER:
        return AUTOENCODER_THRESHOLD
    return AUTO_THRESHOLD if by == "auto" else CNN_THRESHOLD


def find_duplicates(
    *, catalog: Catalog, by: str = "auto", threshold: float | None = None, strict: bool = False
) -> list[Group]:
    """All duplicate groups of the catalog, largest first.

    For a hash, images at Hamming distance <= `threshold` bits match; for auto, pairs whose
    fused score >= `threshold` match.
    """
    check_feature(catalog, by)
    threshold = default_threshold(by) if threshold is None else threshold
    if by == "auto":
        edges = _auto_edges(catalog, threshold)
    elif by in HASHES:
        edges = _drop_low_quality(catalog, _hash_edges(catalog, by, threshold))
    else:
        edges = _vector_edges(catalog, by, threshold)
    # lower cost = stronger match; exact copies cost -inf so they join first and always
    cost = edges.value if by in HASHES else -edges.value
    pairs = list(zip(edges.src.tolist(), edges.dst.tolist(), cost.tolist()))
    pairs += [(a, b, -np.inf) for g in catalog.same_content_groups() for a in g for b in g if a < b]
    clusters = _complete_linkage(pairs) if strict else _single_linkage(pairs)
    return _groups(catalog, clusters)


def _hash_edges(catalog: Catalog, algo: str, threshold: float) -> Edges:
    ids, codes = catalog.hashes(algo)
    index = load_index(catalog, algo, binary=True)
    return within(index, codes, ids, int(threshold))


def _vector_edges(catalog: Catalog, model: str, threshold: float) -> Edges:
    """Pairs with cosine >= threshold, by FAISS range search in query batches."""
    ids, vectors = catalog.vectors(model)
    if not len(ids):
        return Edges(ids, ids, np.zeros(0, np.float32))
    return within(load_index(catalog, model, binary=False), vectors, ids, threshold, batch=1024)


def _auto_edges(catalog: Catalog, threshold: float) -> Edges:
    """Pairs that the evidence calls duplicates at `threshold` (see `AGREEMENT`), with the
    strongest evidence as their score.

    Candidates: each image's AUTO_K nearest neighbours by the seed hashes, every pair whose
    CNN cosine alone reaches `threshold`, and each image's VERIFY_TOP nearest neighbours by
    the CNN (else by the first seed hash); the same for each content box (the picture in a
    screenshot or frame, stored at index time) among the whole images. The kinds of evidence
    are the fused hashes, the CNN cosine (each the best over the images' views: `_over_views`)
    and geometric verification (as stored and mirrored), each on the confidence scale of
    `fusion`.
    """
    weights = auto_features(catalog.settings.hashes)
    found = []
    for algo in (a for a in AUTO_SEEDS if a in weights):
        index = load_index(catalog, algo, binary=True)
        for view in (algo, box_view(algo)):
            ids, codes = catalog.hashes(view)
            if len(ids):
                found.append(nearest(index, codes, ids, AUTO_K, rank=True))
    # verified: each image's VERIFY_HASH_TOP nearest by every seed hash, and its VERIFY_TOP
    # nearest by the CNN or, without one, all its AUTO_K nearest by the first seed hash
    near = [_ranked_below(e, VERIFY_HASH_TOP) for e in found]
    model = embedder_name(catalog)
    if model:
        found.append(_vector_edges(catalog, model, similarity_at(threshold, CNN_BACKGROUND, CNN_THRESHOLD)))
        index = load_index(catalog, model, binary=False)
        near += [nearest(index, vectors, ids, VERIFY_TOP)
                 for ids, vectors in (catalog.vectors(model), catalog.vectors(box_view(model))) if len(ids)]
    else:
        near += found[:1]
    to_verify = _concat(near) if near and catalog.settings.local_features == FEATURES_ID else None
    if to_verify is not None:
        found.append(to_verify)
    edges = _concat(found)
    pairs = np.unique(np.stack([edges.src, edges.dst], axis=1), axis=0)
    if not len(pairs):
        return Edges(pairs[:, 0], pairs[:, 1], np.zeros(0, np.float32))
    ids = np.unique(pairs).tolist()
    names = list(weights)
    stored = catalog.hashes_of(ids, names + [box_view(n) for n in names])

    def hash_scores(rows: NDArray[np.int64], left_box: bool, right_box: bool) -> NDArray[np.float64]:
        left = {n: _rows(stored[box_view(n) if left_box else n], rows[:, 0]) for n in names}
        right = {n: _rows(stored[box_view(n) if right_box else n], rows[:, 1]) for n in names}
        return auto_scores(left, right, weights)

    similarity = _over_views(pairs, set(stored[box_view(names[0])]), hash_scores)
    evidence = [np.where(_both_low_quality(catalog, pairs), 0.0,
                         confidence(similarity, HASH_BACKGROUND, auto_hash_anchor(weights)))]
    if model:
        vectors = {False: catalog.vectors_of(ids, model), True: catalog.vectors_of(ids, box_view(model))}

        def cosines(rows: NDArray[np.int64], left_box: bool, right_box: bool) -> NDArray[np.float64]:
            return np.concatenate([  # in chunks: M pairs x 1280 floats at once would not fit
                np.einsum("ij,ij->i", _rows(vectors[left_box], chunk[:, 0]), _rows(vectors[right_box], chunk[:, 1]))
                for chunk in np.array_split(rows, max(1, -(-len(rows) // PAIR_CHUNK)))
            ])

        evidence.append(confidence(_over_views(pairs, set(vectors[True]), cosines), CNN_BACKGROUND, CNN_THRESHOLD))
    strong = (1.0 + threshold) / 2.0
    verified = None
    if to_verify is not None:
        best = np.max(evidence, axis=0)
        wanted = {(int(a), int(b)) for a, b in zip(to_verify.src, to_verify.dst)}
        candidate = np.array([(int(a), int(b)) in wanted for a, b in pairs], dtype=bool)
        # verify the nearest neighbours, and every pair with one vote that needs a second
        need = (best < strong) & (candidate | (best >= threshold))
        verified = _verified(catalog, pairs, np.flatnonzero(need))
        evidence.append(verified)
    evidence = np.stack(evidence)
    votes = (evidence >= threshold).sum(axis=0)
    best = evidence.max(axis=0)
    keep = (best >= strong) | (votes >= AGREEMENT)
    if verified is not None:
        keep |= _attachments(pairs, keep, verified, threshold)
    return Edges(pairs[keep, 0], pairs[keep, 1], best[keep].astype(np.float32))


def _attachments(
    pairs: NDArray[np.int64], kept: NDArray[np.bool_], verified: NDArray[np.float64], threshold: float
) -> NDArray[np.bool_]:
    """One pair for each group (of the `kept` pairs; a lone image is a group of one) that
    attaches it to the group, at least as large, that it has the most *weak links* to, when
    it has ATTACH_LINKS or more: a weak link is a pair not kept whose geometric verification
    alone reaches `threshold`. (Ties: the larger summed verification.)

    A hard copy (a crop with an overlay, a perspective screenshot) often verifies with only
    one vote against several members of its own group; a lone false geometric match rarely
    repeats against two members of one group, and when an image verifies against two groups
    only the better one is taken. A group never reaches down to a smaller one, so a group
    cannot pull in an image that belongs elsewhere. See `ATTACH_LINKS` for the figures.
    """
    out = np.zeros(len(pairs), dtype=bool)
    weak = np.flatnonzero(~kept & (verified >= threshold))
    if not len(weak):
        return out
    group = _components(pairs[kept])
    size = Counter(group.values())
    links: dict[tuple[int, int], list[int]] = {}
    for i in weak.tolist():
        a, b = group.get(int(pairs[i, 0]), int(pairs[i, 0])), group.get(int(pairs[i, 1]), int(pairs[i, 1]))
        if a != b:
            links.setdefault((min(a, b), max(a, b)), []).append(i)
    best: dict[int, tuple[tuple[int, float], list[int]]] = {}
    for (a, b), rows in links.items():
        strength = (len(rows), float(verified[rows].sum()))
        for g, other in ((a, b), (b, a)):
            if max(size[g], 1) <= max(size[other], 1) and (g not in best or strength > best[g][0]):
                best[g] = (strength, rows)
    for (count, _), rows in best.values():
        if count >= ATTACH_LINKS:
            out[rows[0]] = True
    return out


def _components(pairs: NDArray[np.int64]) -> dict[int, int]:
    """Image id -> the id naming its connected component, for every image in `pairs`."""
    return {x: cluster[0] for cluster in _single_linkage([(a, b, 0.0) for a, b in pairs.tolist()]) for x in cluster}


def _ranked_below(edges: Edges, top: int) -> Edges:
    """The pairs of `nearest(..., rank=True)` edges ranked better than `top`."""
    keep = edges.value < top
    return Edges(edges.src[keep], edges.dst[keep], edges.value[keep])


def _over_views(
    pairs: NDArray[np.int64], boxed: set[int], score: Callable[[NDArray[np.int64], bool, bool], NDArray[np.float64]]
) -> NDArray[np.float64]:
    """Each pair's best `score(rows, left_box, right_box)` over the two images' views: whole
    image and, for the ids in `boxed`, its content box. When both images have a box, their
    whole images are not compared: what two framed pictures share may be the frame alone
    (two screenshots of one app window showing different photos)."""
    left = np.array([a in boxed for a in pairs[:, 0].tolist()], dtype=bool)
    right = np.array([b in boxed for b in pairs[:, 1].tolist()], dtype=bool)
    both = left & right
    best = np.full(len(pairs), -np.inf)
    if (~both).any():
        best[~both] = score(pairs[~both], False, False)
    for use_left, use_right, rows in ((True, False, left), (False, True, right), (True, True, both)):
        if rows.any():
            best[rows] = np.maximum(best[rows], score(pairs[rows], use_left, use_right))
    return best


def _concat(edges: list[Edges]) -> Edges:
    if not edges:
        empty = np.zeros(0, np.int64)
        return Edges(empty, empty, np.zeros(0, np.float32))
    return Edges(*(np.concatenate(parts) for parts in zip(*((e.src, e.dst, e.value) for e in edges))))


def _verified(catalog: Catalog, pairs: NDArray[np.int64], todo: NDArray[np.int64]) -> NDArray[np.float64]:
    """Geometric-verification confidence of pairs[todo] (0 for the other pairs): the first
    image's keypoints as stored and mirrored against the second's."""
    out = np.zeros(len(pairs))
    for start in range(0, len(todo), VERIFY_BATCH):  # keypoints of a batch's images only in memory
        batch = todo[start : start + VERIFY_BATCH]
        batch_ids = np.unique(pairs[batch]).tolist()
        stored, flipped = catalog.keypoints_of(batch_ids), catalog.keypoints_of(batch_ids, mirrored=True)
        for i in batch:
            a, b = int(pairs[i, 0]), int(pairs[i, 1])
            if a in stored and b in stored:
                views = [LocalFeatures(*stored[a])] + ([LocalFeatures(*flipped[a])] if a in flipped else [])
                out[i] = float(verified_confidence(best_inliers(views, LocalFeatures(*stored[b]))))
    return out


def _rows(values: dict[int, NDArray], ids: NDArray[np.int64]) -> NDArray:
    """Stack per-image arrays in the order of `ids`: (M,) ids -> (M, ...)."""
    return np.stack([values[int(i)] for i in ids])


def _both_low_quality(catalog: Catalog, pairs: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Pairs of two low-quality images, whose hashes are mostly noise: auto ignores their hash
    evidence (not their CNN or geometric evidence, which are measured on such images too).
    Only one of the two being low quality (a blurred copy of a sharp photo) is no reason: on
    the benchmark (4,600 images, 190 of low quality) dropping those pairs lost 481 of 10,429
    true edges and no false one; ignoring the hashes of both-low pairs lost 62, again with no
    false edge gained."""
    info = catalog.images(np.unique(pairs).tolist())
    low = {i for i, im in info.items() if im.quality is not None and im.quality < MIN_QUALITY}
    return np.array([a in low and b in low for a, b in pairs.tolist()], dtype=bool)


def _drop_low_quality(catalog: Catalog, edges: Edges) -> Edges:
    ids = np.unique(np.concatenate([edges.src, edges.dst]))
    info = catalog.images(ids.tolist())
    low = {i for i, im in info.items() if im.quality is not None and im.quality < MIN_QUALITY}
    if not low:
        return edges
    keep = np.array([a not in low and b not in low for a, b in zip(edges.src, edges.dst)], dtype=bool)
    return Edges(edges.src[keep], edges.dst[keep], edges.value[keep])


def _single_linkage(pairs: list[tuple[int, int, float]]) -> list[list[int]]:
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    clusters: dict[int, list[int]] = {}
    for x in parent:
        clusters.setdefault(root(x), []).append(x)
    return list(clusters.values())


def _complete_linkage(pairs: list[tuple[int, int, float]]) -> list[list[int]]:
    """Merge strongest pairs first; two clusters join only if all their cross pairs match."""
    linked = {(min(a, b), max(a, b)) for a, b, _ in pairs}
    cluster_of: dict[int, list[int]] = {}
    for a, b, _ in sorted(pairs, key=lambda p: (p[2], p[0], p[1])):
        ca, cb = cluster_of.setdefault(a, [a]), cluster_of.setdefault(b, [b])
        if ca is cb:
            continue
        if all((min(x, y), max(x, y)) in linked for x in ca for y in cb):
            ca.extend(cb)
            for y in cb:
                cluster_of[y] = ca
    unique = {id(c): c for c in cluster_of.values()}
    return [c for c in unique.values() if len(c) > 1]


def keeper_key(im: ImageInfo) -> tuple:
    """Largest resolution, then largest file, then oldest mtime, then path."""
    return (-(im.width or 0) * (im.height or 0), -im.size, im.mtime_ns, im.path)


def _groups(catalog: Catalog, clusters: list[list[int]]) -> list[Group]:
    info = catalog.images(i for c in clusters for i in c)
    groups = []
    for cluster in clusters:
        images = [info[i] for i in cluster if i in info]
        if len(images) < 2:
            continue
        keeper = min(images, key=keeper_key)
        rest = sorted((im for im in images if im is not keeper), key=lambda im: im.path)
        ordered = (keeper, *rest)
        groups.append(Group(keeper.path, tuple(im.path for im in ordered), ordered))
    return sorted(groups, key=lambda g: (-len(g.members), g.keeper))
