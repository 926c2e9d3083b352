"""k-nearest search: the images of the catalog most like a query image.

A query is decoded, fitted and hashed by the very code that indexed the collection. One hash
or one vector feature ranks by its own distance; auto takes its three steps (`candidates` ->
`evidence` -> `auto.search_scores`) over the query as given, mirrored and through its content
box, and verifies the best few candidates geometrically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.decode import decode, fit
from neardup.indexer.embed import Embedder
from neardup.indexer.features import verifiable
from neardup.indexer.hashes import HASHES, compute_hashes
from neardup.indexer.regions import query_variants
from neardup.storage.catalog import Catalog
from neardup.storage.errors import NeardupError

from .auto import POLICY, search_scores
from .candidates import Query, search_candidates
from .evidence import search_evidence, with_search_geometry
from .features import AUTO, check_feature, features_of


class MissingVectorsError(NeardupError, ValueError):
    """A vector feature has no vectors yet (never embedded, or its model was retrained)."""


@dataclass(frozen=True)
class Match:
    """One result: `score` is higher for more similar (1.0 identical); `distance` is the
    feature's own (Hamming bits for a hash, 1 - cosine for a vector, 1 - score for auto)."""

    image_id: int
    path: str
    score: float
    distance: float
    by: str
    # what made the score: for auto, each kind of evidence's confidence ("hashes", a vector
    # feature such as "cnn", "geometry" for verified keypoints), strongest first; for one
    # feature, that feature's score
    evidence: tuple[tuple[str, float], ...] = ()


def query_pixels(image: str | Path | NDArray[np.uint8], catalog: Catalog) -> NDArray[np.uint8]:
    """A query as the indexer saw its files: decoded (or given) RGB, fitted to the decode side."""
    side = catalog.settings.decode_side
    if isinstance(image, np.ndarray):
        return fit(image, side)
    return decode(Path(image).expanduser(), max_side=side, traits=False).pixels


def search(
    image: str | Path | NDArray[np.uint8],
    *,
    catalog: Catalog,
    by: str = AUTO,
    k: int = 10,
    embedders: Mapping[str, Embedder] | None = None,
) -> list[Match]:
    """The `k` catalog images nearest to `image`, best first.

    `embedders` maps vector feature names to their embedders: `by` = a vector feature needs
    its own; auto uses those of the features it fuses (without them, the hashes alone).
    """
    check_feature(catalog, by)
    embedders = embedders or {}
    pixels = query_pixels(image, catalog)
    if by == AUTO:
        return _search_auto(pixels, catalog, k, embedders)
    if by in HASHES:
        neighbors = catalog.index(by).knn(compute_hashes(pixels, [by])[by][None, :], k)[0]
        bits = HASHES[by].bits
        return _matches(catalog, [(n.image_id, 1.0 - n.distance / bits, n.distance) for n in neighbors], by)
    if by not in embedders:
        raise MissingVectorsError(f"searching by {by} needs its embedder")
    index = catalog.index(by)
    if len(index) == 0:
        raise MissingVectorsError(
            f"catalog {catalog.path} has no {by} vectors yet (new, or its model was retrained)",
            hint=f"embed them: neardup index <folders> --db {catalog.path}",
        )
    neighbors = index.knn(embedders[by].embed([pixels]), k)[0]
    return _matches(catalog, [(n.image_id, n.distance, 1.0 - n.distance) for n in neighbors], by)


def _search_auto(pixels: NDArray[np.uint8], catalog: Catalog, k: int, embedders: Mapping[str, Embedder]) -> list[Match]:
    weights = POLICY.weights(catalog.settings.hashes)
    variants = query_variants(pixels, catalog.settings.decode_side)
    hashes = [compute_hashes(v, list(weights)) for v in variants]
    fused = [n for n in POLICY.vector_features if n in embedders and n in features_of(catalog)]
    if not fused:  # no vector to find a turned copy: its hashes must (keypoints turn with it)
        turns = (np.ascontiguousarray(np.rot90(pixels, k)) for k in POLICY.search_turns)
        hashes += [compute_hashes(turn, list(weights)) for turn in turns]
    query = Query(variants, hashes, {n: embedders[n].embed(variants) for n in fused})
    ids = search_candidates(query, catalog, k, weights)
    if not ids:
        return []
    evidence = search_evidence(query, ids, catalog, weights)
    if verifiable(catalog.settings.local_features):
        evidence = with_search_geometry(query, ids, evidence, catalog, catalog.settings.decode_side)
    scores = search_scores(evidence)
    order = np.argsort(-scores, kind="stable")[:k]
    kinds = [_strongest_first({kind: float(c[i]) for kind, c in evidence.kinds.items()}) for i in order]
    return _matches(catalog, [(ids[i], float(scores[i]), float(1.0 - scores[i])) for i in order], AUTO, kinds)


def _strongest_first(kinds: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(kinds.items(), key=lambda item: -item[1]))


def _matches(catalog: Catalog, found: list[tuple[int, float, float]], by: str,
             evidence: list[tuple[tuple[str, float], ...]] | None = None) -> list[Match]:
    info = catalog.images(image_id for image_id, _, _ in found)
    evidence = evidence or [((by, score),) for _, score, _ in found]
    return [Match(i, info[i].path, score, distance, by, kinds)
            for (i, score, distance), kinds in zip(found, evidence) if i in info]
