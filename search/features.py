"""The features a catalog can be searched and grouped by, and their thresholds.

`by` is "auto" (every kind of evidence fused: `auto`), one hash (Hamming distance in bits),
or one vector feature the catalog records a model for (cosine). Each has a default threshold
and a valid range; a threshold outside it is an error, never a silent clamp.
"""

from __future__ import annotations

import math

from neardup.indexer.embedders import VECTOR_FEATURES, catalog_vector_features
from neardup.indexer.hashes import HASHES
from neardup.storage.catalog import Catalog
from neardup.storage.errors import NeardupError

from .auto import POLICY

AUTO = "auto"


class UnknownFeatureError(NeardupError, ValueError):
    """`by` names a feature this catalog does not have."""


class ThresholdError(NeardupError, ValueError):
    """A threshold outside the range its feature measures in."""


def features_of(catalog: Catalog) -> tuple[str, ...]:
    """The `by` values a catalog supports: "auto", every stored hash, and its vector features."""
    return (AUTO, *catalog.settings.hashes, *catalog_vector_features(catalog))


def check_feature(catalog: Catalog, by: str) -> None:
    """Raise `UnknownFeatureError`, saying what to do, unless the catalog has feature `by`."""
    if by in features_of(catalog):
        return
    feature = VECTOR_FEATURES.get(by)
    if feature is not None and feature.trained:
        raise UnknownFeatureError(f"catalog {catalog.path} has no {by} yet",
                                  hint=f"train one: neardup train {by} --db {catalog.path}")
    if feature is not None:
        raise UnknownFeatureError(f"catalog {catalog.path} has no {by} vectors",
                                  hint=f"add them: neardup index <folders> --db {catalog.path} --embedder {by} --reembed")
    raise UnknownFeatureError(f"unknown feature {by!r}; this catalog has: {', '.join(features_of(catalog))}")


def default_threshold(by: str) -> float:
    """Hamming bits (inclusive) for a hash, a cosine for a vector feature, a score for auto."""
    if by in HASHES:
        return HASHES[by].threshold
    if by in VECTOR_FEATURES:
        return VECTOR_FEATURES[by].threshold
    return POLICY.threshold


def check_threshold(by: str, threshold: float) -> float:
    """`threshold` if it is valid for `by`, else `ThresholdError`.

    A hash threshold is a whole number of bits up to half the hash: unrelated images already
    differ in half their bits, so a larger one matches everything. A cosine (vector feature)
    or a score (auto) lies in [0, 1]: below 0 nothing is similar.
    """
    if by in HASHES:
        most = HASHES[by].bits // 2
        if not (math.isfinite(threshold) and threshold == int(threshold) and 0 <= threshold <= most):
            raise ThresholdError(f"a {by} threshold must be a whole number of bits from 0 to {most}, got {threshold:g}")
        return float(threshold)
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        kind = "a cosine" if by in VECTOR_FEATURES else "a score"
        raise ThresholdError(f"the {by} threshold must be {kind} from 0 to 1, got {threshold:g}")
    return float(threshold)
