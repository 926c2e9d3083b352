"""The public Python API: `neardup.open(path)` and the `Collection` it returns.

    import neardup
    cat = neardup.open("photos.db")
    cat.index(["~/Pictures"])
    cat.search("q.jpg", k=10)
    cat.duplicates()
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neardup.clean import ApplyReport, Plan, RunSummary, UndoReport, apply, history, plan_clean, undo
from neardup.indexer.autoencoder import AutoencoderConfig, EpochReport
from neardup.indexer.cluster import Cluster
from neardup.indexer.decode import UnreadableImageError, decode, read_exif
from neardup.indexer.embed import Embedder
from neardup.indexer.embedders import VECTOR_FEATURES, catalog_vector_features, load_embedder
from neardup.indexer.features import FEATURES_ID
from neardup.indexer.hashes import HASH_VERSION, HASHES
from neardup.indexer.pipeline import IndexReport, embed_missing, index_paths
from neardup.indexer.progress import Progress
from neardup.indexer.workers import cores
from neardup.indexer.training import AUTOENCODER, NotTrainedError, TrainReport, train_catalog_autoencoder
from neardup.search.auto import POLICY
from neardup.search.duplicates import Duplicates, Group, duplicates, find_duplicates
from neardup.search.features import AUTO, check_feature, features_of
from neardup.search.keeper import DEFAULT_ORDER, check_order
from neardup.search.query import Match, search
from neardup.search.report import Report, report
from neardup.storage.catalog import Catalog, CatalogExistsError
from neardup.storage.database import is_url
from neardup.storage.errors import NeardupError
from neardup.storage.journal import Journal
from neardup.storage.records import ImageInfo, ModelRecord
from neardup.storage.settings import CatalogMismatchError, CatalogSettings
from neardup.storage.ann import IndexPolicy
from neardup.storage.vectors import IndexState

from .config import DEFAULT_DB
from .thumbnails import ThumbnailCache, thumbnail_side


class UnknownImageError(NeardupError, LookupError):
    """No image with the given id is in the catalog."""


class ImageNotPresentError(NeardupError, FileNotFoundError):
    """An image the catalog knows whose file is not in the collection now (failed to index,
    trashed or moved by a clean-up, or gone from the disk)."""


@dataclass(frozen=True)
class ImageDetails:
    """One catalogued image as a person reviewing it sees it: the catalog's record (size in
    bytes, pixels, format, status, the error of a failed file) and, read from the file's EXIF
    header, when it was taken and with what camera (`exif_error` says why they are missing
    when the header could not be read)."""

    image_id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    width: int | None
    height: int | None
    format: str | None
    status: str
    error: str | None
    taken: str | None = None
    camera: str | None = None
    exif_error: str | None = None


class NotIndexedError(NeardupError, ValueError):
    """A path that is not an indexed image of the catalog."""


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
        self._embedders_loaded = threading.Lock()  # `search` may run in several threads at once

    @property
    def path(self) -> Path | str:
        """The catalog file, or the URL (without password) of a catalog on a server."""
        return self.catalog.path

    def embedder(self, name: str) -> Embedder:
        """The embedder of vector feature `name` (loaded on first use, reloaded when its model
        was retrained since; TensorFlow loads on its first batch)."""
        record = self.catalog.model(name)
        with self._embedders_loaded:
            cached = self._embedders.get(name)
            if cached is None or cached[0] != record:
                self._embedders[name] = cached = (record, load_embedder(self.catalog, name))
        return cached[1]

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
        report = index_paths(
            [Path(p).expanduser() for p in paths], catalog=self.catalog, workers=workers or os.cpu_count() or 1,
            embedders=embedders, progress=progress, fork=fork, cluster=cluster,
        )
        if not report.interrupted:
            states = self.catalog.file_states().values()
            ThumbnailCache(self.catalog.cache_file("thumbs")).prune({s.image_id: s.sha256 for s in states
                                                                     if s.status == "ok"})
        return report

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

    def search(self, image: str | Path | bytes | NDArray[np.uint8], *, k: int = 10, by: str = AUTO) -> list[Match]:
        """The k images most like `image` (a file path, a file's bytes such as an upload, or
        (h, w, 3) uint8 RGB), best first. Bytes are decoded as a file is, megapixel guard included.
        Several threads may search one collection at once (not while another indexes, groups or
        cleans with it)."""
        check_feature(self.catalog, by)
        if isinstance(image, bytes):
            image = decode(image, max_side=self.catalog.settings.decode_side, traits=False).pixels
        names = [by] if by in VECTOR_FEATURES else []
        if by == AUTO:
            names = [n for n in POLICY.vector_features if n in catalog_vector_features(self.catalog)]
        return search(image, catalog=self.catalog, by=by, k=k, embedders={n: self.embedder(n) for n in names})

    def duplicates(self, *, by: str = AUTO, threshold: float | None = None, strict: bool = False,
                   prefer: Sequence[str | Path] = (), workers: int | None = None) -> list[Group]:
        """Groups of near-duplicate images, each with a suggested keeper and the reason (files
        under `prefer` folders win), then the composites (`Group.contains`); nothing is touched.
        Auto verifies candidate pairs on `workers` processes [default: one per core]."""
        return find_duplicates(catalog=self.catalog, by=by, threshold=threshold, strict=strict,
                               prefer=[str(p) for p in prefer], workers=workers or cores())

    def duplicate_report(self, *, by: str = AUTO, threshold: float | None = None, strict: bool = False,
                         prefer: Sequence[str | Path] = (), workers: int | None = None,
                         progress: Progress | None = None) -> Duplicates:
        """`duplicates`, with what `--by auto` did with the catalog's stored pair evidence
        (`Duplicates.evidence`: pairs reused, computed, verified); `progress` counts the pairs
        it verifies."""
        return duplicates(catalog=self.catalog, by=by, threshold=threshold, strict=strict,
                          prefer=[str(p) for p in prefer], workers=workers or cores(), progress=progress)

    def duplicate_text(self, fmt: str = "table", *, by: str = AUTO, threshold: float | None = None,
                       strict: bool = False, prefer: Sequence[str | Path] = (), workers: int | None = None,
                       progress: Progress | None = None) -> Report:
        """`duplicate_report` written as text in `fmt` (table, json, csv or html), how many
        groups it lists, and what auto did. While the catalog and the options are unchanged, a
        table, JSON or CSV is the stored text of the last run, not written again."""
        return report(self.catalog, fmt, by=by, threshold=threshold, strict=strict, prefer=[str(p) for p in prefer],
                      workers=workers or cores(), progress=progress)

    def set_index_policy(self, *, exact_below: int | None = None, memory_budget: int | None = None) -> IndexPolicy:
        """Choose how this catalog's nearest-neighbour indexes are built (`storage.ann`): exact
        below `exact_below` entries, else approximate within `memory_budget` bytes each. Saved
        in the catalog; indexes of another kind are rebuilt on next use. Returns the policy."""
        policy = self.catalog.index_policy().with_options(exact_below=exact_below, memory_budget=memory_budget)
        if policy != self.catalog.index_policy():
            self.catalog.set_index_policy(policy)
        return policy

    def not_duplicate(self, first: int | str | Path, second: int | str | Path) -> None:
        """Record that two indexed images (catalog ids or paths) are not duplicates: they are
        never grouped again, and the word holds through re-indexing and moves (it is kept
        by content)."""
        known = self.catalog.images([i for i in (first, second) if isinstance(i, int)])
        paths = [known[i].path if isinstance(i, int) and i in known else os.path.realpath(Path(str(i)).expanduser())
                 for i in (first, second)]
        states = self.catalog.file_states()
        missing = [p for p in paths if p not in states or not states[p].sha256]
        if missing:
            raise NotIndexedError(f"not an indexed image: {', '.join(missing)}", hint="index it first")
        self.catalog.mark_not_duplicate(states[paths[0]].sha256, states[paths[1]].sha256)

    def keeper_order(self, order: Sequence[str] | None = None) -> tuple[str, ...]:
        """The order of the keeper's rules (`search.keeper.RULES`); with `order`, store it
        first (rules left out follow in the default order)."""
        if order is not None:
            self.catalog.set_keeper_order(check_order(order))
        return check_order(self.catalog.keeper_order() or DEFAULT_ORDER)

    def plan_clean(
        self, *, by: str = AUTO, threshold: float | None = None, strict: bool = False, action: str = "trash",
        to: str | Path | None = None, protect: Sequence[str | Path] = (), include_near: bool = False,
        groups: Sequence[Group] | None = None,
    ) -> Plan:
        """What a clean-up of the duplicate groups would do (`clean.plan_clean`); touches nothing.
        `protect` folders are never acted on and win the keeper; `move` keeps each file's path
        relative to its indexed folder under `to`; links replace exact copies only unless
        `include_near`. `groups` plans those groups (found before, some perhaps with a keeper a
        person chose: the first image) instead of finding them with `by`, `threshold`, `strict`."""
        if groups is None:
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

    def image(self, image_id: int, *, exif: bool = True) -> ImageDetails:
        """The record of image `image_id` with, when `exif`, the date and camera of its EXIF
        header (read from the file when it is in the collection)."""
        info, (status, error) = self._info(image_id), self.catalog.status_of(image_id) or ("", None)
        taken = camera = exif_error = None
        if exif and status == "ok":
            try:
                exif = read_exif(info.path)
                taken, camera = exif.taken, exif.camera
            except UnreadableImageError as e:
                exif_error = str(e)
        return ImageDetails(info.image_id, info.path, info.size, info.mtime_ns, info.sha256, info.width, info.height,
                            info.format, status, error, taken, camera, exif_error)

    def image_file(self, image_id: int) -> Path:
        """The file of image `image_id`, only while it is in the collection: the way to reach
        an image's bytes by its catalog id, never by a path a client names."""
        info = self._info(image_id)
        status = (self.catalog.status_of(image_id) or ("", None))[0]
        if status != "ok":
            raise ImageNotPresentError(f"image {image_id} ({info.path}) is not in the collection: status {status}")
        if not os.path.isfile(info.path):
            raise ImageNotPresentError(f"image {image_id}: {info.path} is no longer on disk",
                                       hint="index its folder again to update the catalog")
        return Path(info.path)

    def thumbnail(self, image_id: int, side: int = 256) -> bytes:
        """A JPEG of image `image_id` no larger than `side` (rounded up to a cached size),
        cached beside the catalog in `<catalog stem>.thumbs/`."""
        info = self._info(image_id)
        cache = ThumbnailCache(self.catalog.cache_file("thumbs"))
        side = thumbnail_side(side)
        if not cache.cached(info, side).exists():
            self.image_file(image_id)  # a thumbnail is made only of a file in the collection
        return cache.get(info, side)

    def similar(self, image_id: int, *, k: int = 10, by: str = AUTO) -> list[Match]:
        """The k images most like catalogued image `image_id`, itself left out: its file is
        the query, exactly as `search` would take it."""
        path = self.image_file(image_id)
        return [m for m in self.search(path, k=k + 1, by=by) if m.image_id != image_id][:k]

    def _info(self, image_id: int) -> ImageInfo:
        info = self.catalog.images([image_id]).get(image_id)
        if info is None:
            raise UnknownImageError(f"no image with id {image_id} in catalog {self.catalog.path}")
        return info

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


__all__ = ["AUTOENCODER", "Collection", "ImageDetails", "ImageNotPresentError", "NotTrainedError", "Stats",
           "UnknownImageError", "default_embedder", "new_settings", "open"]
