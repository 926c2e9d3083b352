"""k-nearest search: the images of the catalog most like a query image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.decode import decode, fit
from neardup.indexer.embed import Embedder
from neardup.indexer.features import FEATURES_ID, LocalFeatures, orb_features
from neardup.indexer.hashes import HASHES, compute_hashes
from neardup.indexer.training import AUTOENCODER
from neardup.storage.catalog import Catalog
from neardup.storage.vectors import knn, load_index

from .fusion import auto_confidence, auto_features, auto_scores, hash_threshold
from neardup.indexer.regions import enlarge, query_variants
from .verify import VERIFY_CEILING, VERIFY_TOP, best_inliers, verified_confidence

AUTO_POOL = 64  # candidates taken from each index before auto re-scores them
AUTO_SEEDS = ("pdq", "phash256", "dhash", "whash")  # hash indexes auto takes candidates from


class UnknownFeatureError(ValueError):
    """`by` names a feature this catalog does not have."""


class MissingVectorsError(ValueError):
    """A vector feature has no vectors yet (never embedded, or its model was retrained)."""


@dataclass(frozen=True)
class Match:
    """One result: `score` is higher for more similar (1.0 identical); `distance` is the
    feature's own (Hamming bits for a hash, 1 - score for auto)."""

    image_id: int
    path: str
    score: float
    distance: float
    by: str


def features_of(catalog: Catalog) -> tuple[str, ...]:
    """The `by` values a catalog supports: "auto", every stored hash, and its vectors."""
    return ("auto", *catalog.settings.hashes, *vector_features(catalog))


def vector_features(catalog: Catalog) -> tuple[str, ...]:
    """Features stored as float vectors: the catalog's embedder, and its autoencoder once trained."""
    embedder = catalog.settings.embedder
    trained = catalog.get_setting(f"model.{AUTOENCODER}") is not None
    return (*([embedder] if embedder != "none" else []), *([AUTOENCODER] if trained else []))


def check_feature(catalog: Catalog, by: str) -> None:
    if by == AUTOENCODER and by not in features_of(catalog):
        raise UnknownFeatureError(
            f"catalog {catalog.path} has no autoencoder yet; train one: neardup train autoencoder --db {catalog.path}"
        )
    if by not in features_of(catalog):
        raise UnknownFeatureError(f"unknown --by {by!r}; this catalog has: {', '.join(features_of(catalog))}")


def query_pixels(image: str | Path | NDArray[np.uint8], catalog: Catalog) -> NDArray[np.uint8]:
    """A query as the indexer saw its files: decoded (or given) RGB, fitted to the decode side."""
    side = catalog.settings.decode_side
    if isinstance(image, np.ndarray):
        return fit(image, side)
    return decode(Path(image).expanduser(), max_side=side).pixels


def search(
    image: str | Path | NDArray[np.uint8],
    *,
    catalog: Catalog,
    by: str = "auto",
    k: int = 10,
    embedder: Embedder | None = None,
) -> list[Match]:
    """The `k` catalog images nearest to `image`, best first.

    `embedder` is needed for `by` = a vector feature (the embedder called `by`) and, for
    "auto", is the catalog's own (without it auto uses the hashes alone).
    """
    check_feature(catalog, by)
    pixels = query_pixels(image, catalog)
    if by in vector_features(catalog):
        return _search_vectors(pixels, catalog, by, k, embedder)
    hashes = compute_hashes(pixels, catalog.settings.hashes)
    if by == "auto":
        return _search_auto(hashes, pixels, catalog, k, embedder)
    bits = HASHES[by].bits
    neighbors = knn(load_index(catalog, by, binary=True), hashes[by][None, :], k)[0]
    info = catalog.images(n.image_id for n in neighbors)
    return [
        Match(n.image_id, info[n.image_id].path, 1.0 - n.distance / bits, n.distance, by)
        for n in neighbors
        if n.image_id in info
    ]


def embedder_name(catalog: Catalog) -> str | None:
    return None if catalog.settings.embedder == "none" else catalog.settings.embedder


def _search_vectors(pixels: NDArray[np.uint8], catalog: Catalog, by: str, k: int, embedder: Embedder | None) -> list[Match]:
    if embedder is None or embedder.name != by:
        raise ValueError(f"searching by {by} needs the {by} embedder, got {getattr(embedder, 'name', None)}")
    index = load_index(catalog, by, binary=False)
    if index.ntotal == 0:
        raise MissingVectorsError(
            f"catalog {catalog.path} has no {by} vectors yet (new, or its model was retrained): "
            f"neardup index <folders> --db {catalog.path} --embedder {by}"
        )
    vector = embedder.embed([pixels])
    neighbors = knn(index, vector, k)[0]
    info = catalog.images(n.image_id for n in neighbors)
    return [
        Match(n.image_id, info[n.image_id].path, n.distance, 1.0 - n.distance, by)
        for n in neighbors
        if n.image_id in info
    ]


def _search_auto(
    hashes: dict[str, NDArray[np.uint8]], pixels: NDArray[np.uint8], catalog: Catalog, k: int, embedder: Embedder | None
) -> list[Match]:
    """Candidates from the hash indexes and the CNN index for every query variant (as given,
    mirrored, its content box), re-scored by the auto confidence (each candidate's best over
    the variants), the best few raised by geometric verification."""
    weights = auto_features(catalog.settings.hashes)
    variants = query_variants(pixels)
    variant_hashes = [hashes, *(compute_hashes(v, list(weights)) for v in variants[1:])]
    pool: set[int] = set()
    for name in (n for n in AUTO_SEEDS if n in weights):
        index = load_index(catalog, name, binary=True)
        codes = np.stack([h[name] for h in variant_hashes])
        for found in knn(index, codes, max(k, AUTO_POOL)):
            pool.update(n.image_id for n in found)
    model = embedder_name(catalog) if embedder is not None else None
    if model:
        query_vectors = embedder.embed(variants)
        index = load_index(catalog, model, binary=False)
        for found in knn(index, query_vectors, max(k, AUTO_POOL)):
            pool.update(n.image_id for n in found)
    ids = sorted(pool)
    if not ids:
        return []
    stored = catalog.hashes_of(ids, list(weights))
    candidates = {name: np.stack([stored[name][i] for i in ids]) for name in weights}
    similarity = np.max([auto_scores(h, candidates, weights) for h in variant_hashes], axis=0)
    cosine = None
    if model:
        vectors = catalog.vectors_of(ids, model)
        matrix = np.stack([vectors.get(i, np.zeros(query_vectors.shape[1], np.float32)) for i in ids])
        cosine = (matrix @ query_vectors.T).max(axis=1)
    scores = auto_confidence(similarity, cosine, auto_hash_anchor(weights))
    if catalog.settings.local_features == FEATURES_ID:
        scores = _verify_top(variants, ids, scores, catalog)
    order = np.argsort(-scores, kind="stable")[:k]
    info = catalog.images(ids[i] for i in order)
    return [Match(ids[i], info[ids[i]].path, float(scores[i]), float(1.0 - scores[i]), "auto") for i in order]


def _verify_top(
    variants: list[NDArray[np.uint8]], ids: list[int], scores: NDArray[np.float64], catalog: Catalog
) -> NDArray[np.float64]:
    """Raise the scores of the VERIFY_TOP best candidates by their geometric verification
    (those already at VERIFY_CEILING or above cannot gain and are skipped)."""
    top = [i for i in np.argsort(-scores, kind="stable")[:VERIFY_TOP] if scores[i] < VERIFY_CEILING]
    if not top:
        return scores
    stored = catalog.keypoints_of([ids[i] for i in top])
    if not stored:
        return scores
    side = catalog.settings.decode_side
    features = [orb_features(enlarge(v, side)) for v in variants]
    scores = scores.copy()
    for i in top:
        if ids[i] in stored:
            evidence = verified_confidence(best_inliers(features, LocalFeatures(*stored[ids[i]])))
            scores[i] = max(scores[i], float(evidence))
    return scores


def auto_hash_anchor(weights: dict[str, float]) -> float:
    names = list(weights)
    return hash_threshold(weights, {n: HASHES[n].threshold for n in names}, {n: HASHES[n].bits for n in names})
