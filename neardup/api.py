"""The public Python API: `neardup.open(path)` and the `Collection` it returns.

    import neardup
    cat = neardup.open("photos.db")
    cat.index(["~/Pictures"])
    cat.search("q.jpg", k=10)
    cat.duplicates()
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neardup.clean import ApplyReport, Plan, RunSummary, UndoReport, apply, history, plan_clean, undo
from neardup.indexer.autoencoder import AutoencoderConfig, EpochReport
from neardup.indexer.cluster import Cluster
from neardup.indexer.embed import Embedder
from neardup.indexer.embedders import VECTOR_FEATURES, catalog_vector_features, load_embedder
from neardup.indexer.features import FEATURES_ID
from neardup.indexer.hashes import HASH_VERSION, HASHES
from neardup.indexer.pipeline import IndexReport, embed_missing, index_paths
from neardup.indexer.progress import Progress
from neardup.indexer.training import AUTOENCODER, NotTrainedError, TrainReport, train_catalog_autoencoder
from neardup.search.auto import POLICY
from neardup.search.duplicates import Group, find_duplicates
from neardup.search.features import AUTO, check_feature, features_of
from neardup.search.query import Match, search
from neardup.storage.catalog import Catalog, CatalogExistsError
from neardup.storage.database import is_url
from neardup.storage.journal import Journal
from neardup.storage.records import ModelRecord
from neardup.storage.settings import CatalogMismatchError, CatalogSettings
from neardup.storage.vectors import IndexState

from .config import DEFAULT_DB


@dataclass(frozen=True)
class Stats:
    path: str
    counts: dict[str, int]
    settings: CatalogSettings
    models: dict[str, ModelRecord]
    indexes: tuple[IndexState, ...]
    failures: tuple[tuple[str, str], ...]
    roots: tuple[str, ...] = ()


def open(
    path: str | Path = DEFAULT_DB, *, create: bool = False, embedder: str | None = None, reembed: bool = False,
    readonly: bool | None = False,
) -> Collection:
    """Open the catalog at `path` (a file, or a database URL such as
    "postgresql+psycopg://user@host/dbname"); with `create`, make it first if it does not exist.

    `embedder` ("cnn" or "none") is fixed when the catalog is created; the default is "cnn"
    when its model is installed, else "none". Asking an existing catalog for another embedder
    raises `CatalogMismatchError`, unless `reembed` is set: then its vectors are dropped and
    the next `index` computes them with the new one. `readonly` opens without write access
    (search, duplicates and stats work; nothing is written to it); None: with write access when
    the file and its folder allow it, else read-only.
    """
    location = path if is_url(path) else Path(path).expanduser()
    if create and not Catalog.exists(location):
        name = embedder or default_embedder()
        models = [] if name == "none" else [_shipped(name).describe()]
        try:
            return Collection(Catalog.create(location, new_settings(), models))
        except CatalogExistsError:
            pass  # another process made it a moment ago: open theirs
    catalog = Catalog.open(location, readonly=readonly)
    _check_code(catalog)
    if embedder is not None:
        _switch_embedder(catalog, embedder, reembed)
    return Collection(catalog)


def new_settings() -> CatalogSettings:
    """The settings a new catalog gets: every hash, ORB keypoints."""
    return CatalogSettings(hashes=tuple(HASHES), hash_version=HASH_VERSION, local_features=FEATURES_ID)


def default_embedder() -> str:
    """"cnn" when its model (TensorFlow and the MobileNetV2 weights) is installed, else "none"."""
    return "cnn" if VECTOR_FEATURES["cnn"].installed() else "none"


def _shipped(name: str):
    feature = VECTOR_FEATURES.get(name)
    if feature is None or feature.describe is None:
        shipped = [n for n, f in VECTOR_FEATURES.items() if f.describe is not None]
        raise CatalogMismatchError(f"unknown embedder {name!r}; expected one of: none, {', '.join(shipped)}")
    return feature


def _check_code(catalog: Catalog) -> None:
    """A catalog whose hashes were computed by other hash code cannot be searched with this one."""
    if catalog.settings.hash_version != HASH_VERSION:
        raise CatalogMismatchError(
            f"catalog {catalog.path} holds hashes of hash version {catalog.settings.hash_version}; "
            f"this neardup computes version {HASH_VERSION}", hint="index into a new catalog")


def _switch_embedder(catalog: Catalog, embedder: str, reembed: bool) -> None:
    """Make `embedder` (or "none") the catalog's shipped vector feature, if `reembed` allows."""
    wanted = None if embedder == "none" else _shipped(embedder).describe()
    shipped = {n: r for n, r in catalog.models().items() if VECTOR_FEATURES[n].describe is not None}
    current = next(iter(shipped.values()), None)
    if _identity(current) == _identity(wanted):
        return
    if not reembed:
        have = "none" if current is None else f"{current.name} ({current.model_id} v{current.version})"
        raise CatalogMismatchError(
            f"catalog {catalog.path} was made with embedder {have}, asked for {embedder}",
            hint="re-embed explicitly (--reembed) or use another catalog")
    for name in shipped:
        catalog.remove_model(name)
    if wanted is not None:
        catalog.replace_model(wanted)


def _identity(record: ModelRecord | None) -> tuple | None:
    return None if record is None else (record.name, record.identity())


class Collection:
    """An indexed image collection: index, search, find duplicates, report."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._embedders: dict[str, tuple[ModelRecord, Embedder]] = {}

    @property
    def path(self) -> Path | str:
        """The catalog file, or the URL (without password) of a catalog on a server."""
        return self.catalog.path

    def embedder(self, name: str) -> Embedder:
        """The embedder of vector feature `name` (loaded on first use, reloaded when its model
        was retrained since; TensorFlow loads on its first batch)."""
        record = self.catalog.model(name)
        cached = self._embedders.get(name)
        if cached is None or cached[0] != record:
            self._embedders[name] = (record, load_embedder(self.catalog, name))
        return self._embedders[name][1]

    def embedders(self) -> list[Embedder]:
        """The embedders of every vector feature of the catalog."""
        return [self.embedder(name) for name in catalog_vector_features(self.catalog)]

    def index(
        self,
        paths: Sequence[str | Path],
        *,
        workers: int | None = None,
        progress: Progress | None = None,
        fork: bool = False,
        cluster: str | Cluster | None = None,
    ) -> IndexReport:
        """Add new and changed images under `paths`, drop vanished ones, embed them with every
        vector feature of the catalog (and embed what is missing); see `index_paths`.
        `cluster` ("tcp://scheduler:8786", "local:N" or a connected `Cluster`) extracts and
        embeds on the workers of a Dask cluster, which read the files at the same paths."""
        if isinstance(cluster, str):
            with Cluster.connect(cluster) as connected:
                return self.index(paths, workers=workers, progress=progress, cluster=connected)
        # a cluster's workers get embedders that have not loaded their model here (they
        # travel pickled, and each worker loads its own)
        embedders = self.embedders() if cluster is None else [
            load_embedder(self.catalog, name) for name in catalog_vector_features(self.catalog)]
        return index_paths(
            [Path(p).expanduser() for p in paths], catalog=self.catalog, workers=workers or os.cpu_count() or 1,
            embedders=embedders, progress=progress, fork=fork, cluster=cluster,
        )

    def embed_missing(self, name: str, *, workers: int | None = None, progress: Progress | None = None) -> int:
        """Embed the images that have no vector of feature `name` yet; returns how many."""
        check_feature(self.catalog, name)
        return embed_missing(catalog=self.catalog, embedder=self.embedder(name),
                             workers=workers or os.cpu_count() or 1, progress=progress)

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
        return train_catalog_autoencoder(
            self.catalog, config or AutoencoderConfig(), workers=workers or os.cpu_count() or 1,
            progress=progress, on_epoch=on_epoch,
        )

    def search(self, image: str | Path | NDArray[np.uint8], *, k: int = 10, by: str = AUTO) -> list[Match]:
        """The k images most like `image` (a file path or (h, w, 3) uint8 RGB), best first."""
        check_feature(self.catalog, by)
        names = [by] if by in VECTOR_FEATURES else []
        if by == AUTO:
            names = [n for n in POLICY.vector_features if n in catalog_vector_features(self.catalog)]
        return search(image, catalog=self.catalog, by=by, k=k, embedders={n: self.embedder(n) for n in names})

    def duplicates(self, *, by: str = AUTO, threshold: float | None = None, strict: bool = False) -> list[Group]:
        """Groups of near-duplicate images, each with a suggested keeper; nothing is touched."""
        return find_duplicates(catalog=self.catalog, by=by, threshold=threshold, strict=strict)

    def plan_clean(
        self, *, by: str = AUTO, threshold: float | None = None, strict: bool = False, action: str = "trash",
        to: str | Path | None = None, protect: Sequence[str | Path] = (), include_near: bool = False,
    ) -> Plan:
        """What a clean-up of the duplicate groups would do (`clean.plan_clean`); touches nothing.
        `protect` folders are never acted on and win the keeper; `move` keeps each file's path
        relative to its indexed folder under `to`; links replace exact copies only unless
        `include_near`."""
        groups = self.duplicates(by=by, threshold=threshold, strict=strict)
        return plan_clean(groups, action=action, to=to, protect=protect, include_near=include_near,
                          roots=self.catalog.roots(), catalog_id=self.catalog.identity)

    def read_plan(self, text: str | bytes) -> Plan:
        """A plan file's plan, refused if it was made for another catalog."""
        return Plan.from_json(text, catalog_id=self.catalog.identity)

    def apply(self, plan: Plan, *, yes: bool = False, progress: Progress | None = None) -> ApplyReport:
        """Carry out `plan` (or finish it after an interruption), journaled; `delete` needs `yes`."""
        return apply(plan, journal=Journal(self.catalog), yes=yes, progress=progress, catalog_id=self.catalog.identity)

    def undo(self, run_id: int | None = None) -> UndoReport:
        """Put back what a clean-up run (default: the last one not undone) acted on."""
        return undo(journal=Journal(self.catalog), run_id=run_id)

    def history(self) -> list[RunSummary]:
        """Every clean-up run, newest first."""
        return history(Journal(self.catalog))

    def features(self) -> tuple[str, ...]:
        return features_of(self.catalog)

    def stats(self) -> Stats:
        indexed = (*self.catalog.settings.hashes, *catalog_vector_features(self.catalog))
        return Stats(
            path=str(self.catalog.path),
            counts=self.catalog.counts(),
            settings=self.catalog.settings,
            models=self.catalog.models(),
            indexes=tuple(self.catalog.index(name).state() for name in indexed),
            failures=tuple(self.catalog.failures()),
            roots=tuple(self.catalog.roots()),
        )

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["AUTOENCODER", "Collection", "NotTrainedError", "Stats", "default_embedder", "new_settings", "open"]
