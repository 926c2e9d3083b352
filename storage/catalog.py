"""The catalog: the source of truth for images, their features, and models.

It is one SQLite file, or a PostgreSQL database named by URL that several machines share
(`database`); the same models and code serve both. Everything else (FAISS indexes,
thumbnails) is derived from it and can be rebuilt (`places` says where it lives). Reads and
writes go through typed accessors; every write is one transaction that first replaces the
catalog's *generation* (a random token), so anything derived can tell it is stale, and
writers to one catalog commit one at a time.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, Insert, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import database, places, schema
from .models import (
    BOX, IMAGE, ColourLayout, EvidenceSet, Hash, Image, Keypoints, MirroredKeypoints, Model, NotDuplicate, Root,
    Setting, Vector, utcnow,
)
from .records import Bits, FileState, ImageInfo, ImageRecord, ModelRecord
from .records import Keypoints as KeypointArrays
from .schema import CatalogExistsError, CatalogNotFoundError, NotACatalogError  # noqa: F401  (raised by `open`)
from .settings import CatalogSettings
from .ann import IndexPolicy
from .vectors import FeatureIndex

_CHUNK = 900  # ids per IN (...) list: SQLite allows 999 bound parameters per statement
_INFO_FIELDS = tuple(f.name for f in fields(ImageInfo))
Location = str | Path | URL  # a catalog file's path, or a database URL ("postgresql+psycopg://…")
MAX_ID = 2**63 - 1  # SQLite's INTEGER: a larger number names no row (and overflows the driver)


class Catalog:
    """Data access to one catalog. Writes are whole transactions: a kill leaves it valid.

    `path` is the catalog file, or for a catalog on a database server its URL without the
    password (for messages); `url` is that server's URL, None for a file."""

    def __init__(self, location: Location, *, readonly: bool = False) -> None:
        self.path, self.url = _locate(location)
        self.readonly = readonly
        self._engine = schema.connect(self.path, readonly=readonly) if self.url is None else database.connect(self.url)
        try:
            self.settings = CatalogSettings.from_json(self._meta("settings", raw=True))
            self.identity: str = self._meta("catalog_id")
        except BaseException:
            self._engine.dispose()
            raise
        # a catalog dropped without `close` still closes its pooled connections (a server's would
        # otherwise stay open until the process exits, and psycopg warn about each when collected)
        self._closed = weakref.finalize(self, self._engine.dispose)
        self._indexes: dict[str, FeatureIndex] = {}
        self._indexes_made = threading.Lock()  # threads searching at once share one per feature

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def create(cls, location: Location, settings: CatalogSettings, models: Sequence[ModelRecord] = ()) -> Catalog:
        """Create a new catalog at `location` (which must hold none: `CatalogExistsError`) with
        `settings` and `models`.

        A file is built under a temporary name and renamed when complete, so a kill leaves no
        half-made catalog at its path; a database gets its tables in one transaction, under a
        lock that makes a second process creating it at the same moment find it made."""
        path, url = _locate(location)
        if url is not None:
            engine = database.connect(url)
            try:
                with _translated(path), database.exclusive(engine) as conn:
                    if not database.is_empty(conn):
                        raise CatalogExistsError(f"database {path} already holds tables")
                    _fill(conn, settings, models)
            finally:
                engine.dispose()
            return cls(location)
        if path.exists():
            raise CatalogExistsError(f"catalog already exists: {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(path)
        building = path.with_name(f".{path.name}.{os.getpid()}.new")
        building.unlink(missing_ok=True)
        building.touch()
        engine = schema.connect(building)
        with engine.begin() as conn:
            _fill(conn, settings, models)
        engine.dispose()
        os.replace(building, path)
        return cls(path)

    @classmethod
    def exists(cls, location: Location) -> bool:
        """Whether a catalog (or anything else) is at `location`: a file, or a database holding tables."""
        path, url = _locate(location)
        if url is None:
            return path.exists()
        engine = database.connect(url)
        try:
            with _translated(path), engine.connect() as conn:
                return not database.is_empty(conn)
        finally:
            engine.dispose()

    @classmethod
    def open(cls, location: Location, *, readonly: bool | None = False) -> Catalog:
        """Open an existing catalog, upgrading one made by an older neardup (not when
        `readonly`: then it must be current). A file that is not a catalog is left untouched.
        `readonly=None`: for writing when the file and its folder allow it, else read-only
        (a database: for writing; the server refuses writes a user may not make)."""
        path, url = _locate(location)
        if url is not None:
            return cls._open_database(location, path, url, readonly=bool(readonly))
        revision = schema.probe(path)
        if readonly is None:
            try:
                return cls.open(path, readonly=False)
            except schema.CatalogReadOnlyError:
                return cls.open(path, readonly=True)
        with _translated(path):
            if schema.check_revision(path, revision, readonly=readonly):
                engine = schema.connect(path)
                try:
                    schema.upgrade(engine)
                finally:
                    engine.dispose()
            return cls(path, readonly=readonly)

    @classmethod
    def _open_database(cls, location: Location, name: str, url: URL, *, readonly: bool) -> Catalog:
        """Open the catalog in a database, upgrading it first (once, under the schema lock)
        when an older neardup made it."""
        engine = database.connect(url)
        try:
            with _translated(name):
                if schema.check_revision(name, database.probe(engine, name), readonly=readonly):
                    with database.exclusive(engine) as conn:
                        if schema.check_revision(name, database.revision(conn, name), readonly=readonly):
                            schema.migrate(conn)
        finally:
            engine.dispose()
        return cls(location, readonly=readonly)

    def close(self) -> None:
        self._closed()

    def sibling(self, suffix: str) -> Path:
        """A data file of the catalog named after it: beside a catalog file (photos.db ->
        photos.<suffix>), in this machine's data folder for a catalog on a server
        (`places`; the folder is made if needed)."""
        if self.url is None:
            return self.path.with_name(f"{self.path.stem}.{suffix}")
        return _in_folder(places.catalog_folder(self.identity, cache=False), suffix)

    def cache_file(self, suffix: str) -> Path:
        """A file derived from the catalog that can be rebuilt from it at any time: beside a
        catalog file, in this machine's cache folder for a catalog on a server (`places`)."""
        if self.url is None:
            return self.sibling(suffix)
        return _in_folder(places.catalog_folder(self.identity, cache=True), suffix)

    def index(self, feature: str) -> FeatureIndex:
        """The nearest-neighbour index of `feature`'s whole-image hashes or vectors."""
        with self._indexes_made:
            if feature not in self._indexes:
                self._indexes[feature] = FeatureIndex(self, feature, binary=feature in self.settings.hashes)
        return self._indexes[feature]

    # -- catalog-wide values -----------------------------------------------------------------
    def generation(self) -> str:
        """A token replaced by every write: anything built at another generation is stale."""
        return self._meta("generation")

    def replace_settings(self, settings: CatalogSettings) -> None:
        with self.transaction() as s:
            _store_settings(s, settings)
        self.settings = settings

    def models(self) -> dict[str, ModelRecord]:
        """The models behind the catalog's vector features, by feature name."""
        with self.session() as s:
            return {m.name: _model_record(m) for m in s.scalars(select(Model))}

    def model(self, name: str) -> ModelRecord | None:
        with self.session() as s:
            row = s.get(Model, name)
            return None if row is None else _model_record(row)

    def replace_model(self, record: ModelRecord) -> int:
        """Record `record` as the model of its feature and, in the same transaction, drop the
        feature's vectors: they came from another model (or none). Returns how many."""
        with self.transaction() as s:
            s.merge(_model_row(record))
            dropped = s.execute(delete(Vector).where(Vector.model == record.name)).rowcount
        return int(dropped or 0)

    def remove_model(self, name: str) -> None:
        """Forget the model of feature `name` and every vector it made."""
        with self.transaction() as s:
            s.execute(delete(Vector).where(Vector.model == name))
            s.execute(delete(Model).where(Model.name == name))

    def index_policy(self) -> IndexPolicy:
        """How this catalog's nearest-neighbour indexes are chosen (`ann.IndexPolicy`)."""
        with self.session() as s:
            row = s.get(Setting, "index_policy")
        return IndexPolicy.from_json(None if row is None else row.value)

    def set_index_policy(self, policy: IndexPolicy) -> None:
        with self.transaction() as s:
            s.merge(Setting(key="index_policy", value=policy.to_json()))

    def keeper_order(self) -> list[str] | None:
        """The order of the keeper's rules this catalog's user chose (`search.keeper`), if any."""
        with self.session() as s:
            row = s.get(Setting, "keeper_rules")
        return None if row is None else json.loads(row.value)

    def set_keeper_order(self, names: Sequence[str]) -> None:
        with self.transaction() as s:
            s.merge(Setting(key="keeper_rules", value=json.dumps(list(names))))

    def decoding(self) -> tuple[int, dict[int, int]]:
        """The `indexer.decode.DECODING` version the catalog's images are decoded as (1: not
        recorded, a catalog of an older neardup), and the images not looked at then {id: the
        version each is decoded as}: their files could not be read."""
        with self.session() as s:
            row = s.get(Setting, "decoding")
        if row is None:
            return 1, {}
        value = json.loads(row.value)
        return int(value["version"]), {int(i): int(v) for i, v in value["unread"].items()}

    def set_decoding(self, version: int, unread: Mapping[int, int] | None = None) -> None:
        # the images read again changed the generation themselves; the version changes nothing
        # built from the catalog
        value = {"version": int(version), "unread": {str(i): int(v) for i, v in (unread or {}).items()}}
        with self.transaction(derived=True) as s:
            s.merge(Setting(key="decoding", value=json.dumps(value)))

    def decoded_before(self, version: int) -> list[tuple[int, str]]:
        """(id, path) of the indexed images not read again for `version` (`Image.redecoded`)."""
        q = (select(Image.id, Image.path).where(_present(), or_(Image.redecoded.is_(None), Image.redecoded < version))
             .order_by(Image.id))
        with self.session() as s:
            return [(i, p) for i, p in s.execute(q)]

    def roots(self) -> list[str]:
        """The folders and files given to `index`, absolute."""
        with self.session() as s:
            return list(s.scalars(select(Root.path).order_by(Root.path)))

    def add_roots(self, paths: Iterable[str]) -> None:
        with self.transaction() as s:
            for path in paths:
                s.merge(Root(path=path))

    # -- reading -------------------------------------------------------------------------------
    def file_states(self) -> dict[str, FileState]:
        """Every file the catalog knows, by absolute path."""
        q = select(Image.id, Image.path, Image.size, Image.mtime_ns, Image.sha256, Image.status)
        with self.session() as s:
            return {r.path: FileState(*r) for r in s.execute(q)}

    def images(self, ids: Iterable[int]) -> dict[int, ImageInfo]:
        """What the catalog knows of the given images (`has_box`: it has a content box view)."""
        boxed = select(Hash.image_id).where(Hash.image_id == Image.id, Hash.view == BOX).exists()
        columns = (Image.id, Image.path, Image.size, Image.mtime_ns, Image.sha256, Image.width, Image.height,
                   Image.format, Image.quality, Image.noise, Image.taken_at, Image.camera,
                   Image.jpeg_quality, boxed, Image.enlargement)
        # rows through the session's connection, not the ORM session: a quarter less per row
        out: dict[int, ImageInfo] = {}
        with self.session() as s:
            conn = s.connection()
            for chunk in _chunks([int(i) for i in ids]):
                rows = conn.execute(select(*columns).where(Image.id.in_(chunk))).all()
                out.update({r[0]: _image_info(r) for r in rows})
        return out

    def paths_named(self, name: str) -> list[str]:
        """The stored paths of the files called `name` (any folder)."""
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # stored percent-encoded as a whole (`PathText`): looked for one by one
            return [p for p in self.file_states() if os.path.basename(p) == name]
        with self.session() as s:
            found = s.scalars(select(Image.path).where(Image.path.endswith("/" + name, autoescape=True)))
            return [p for p in found if os.path.basename(p) == name]

    def image_ids(self, paths: Iterable[str]) -> dict[str, int]:
        """Catalog ids of the given paths that it knows."""
        out: dict[str, int] = {}
        with self.session() as s:
            for chunk in _chunks(list(paths)):
                out.update(dict(s.execute(select(Image.path, Image.id).where(Image.path.in_(chunk))).all()))
        return out

    def not_duplicates(self) -> set[frozenset[str]]:
        """The pairs of contents (SHA-256) a user said are not duplicates."""
        with self.session() as s:
            return {frozenset(pair) for pair in s.execute(select(NotDuplicate.first, NotDuplicate.second))}

    def mark_not_duplicate(self, first: str, second: str) -> None:
        """Record that the images with these contents (SHA-256) are not duplicates."""
        a, b = sorted((first, second))
        with self.transaction() as s:
            s.merge(NotDuplicate(first=a, second=b))

    def status_of(self, image_id: int) -> tuple[str, str | None] | None:
        """An image's status ("ok", "failed", or what a clean-up did: "trashed", "moved", …)
        and its error, or None when the catalog has no image `image_id`."""
        with self.session() as s:
            row = s.execute(select(Image.status, Image.error).where(Image.id == int(image_id))).first()
        return None if row is None else (row.status, row.error)

    def hashes(self, algo: str, view: str = IMAGE) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
        """The hashes of one algorithm and view of every image on disk (not trashed, moved or
        linked by a clean-up): ids (N,) int64, codes (N, bytes) uint8."""
        q = (select(Hash.image_id, Hash.bits).join(Image).where(Hash.algo == algo, Hash.view == view, _present())
             .order_by(Hash.image_id))
        with self.session() as s:
            rows = s.execute(q).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), np.uint8)
        return ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(len(rows), -1)

    def hashes_of(self, ids: Sequence[int], algos: Sequence[str], view: str = IMAGE) -> dict[str, dict[int, Bits]]:
        """Stored hashes of one view of the given image ids, {algo: {id: packed bits}}."""
        out: dict[str, dict[int, Bits]] = {a: {} for a in algos}
        with self.session() as s:
            for chunk in _chunks([int(i) for i in ids]):
                q = select(Hash.algo, Hash.image_id, Hash.bits).where(
                    Hash.algo.in_(list(algos)), Hash.view == view, Hash.image_id.in_(chunk))
                for algo, image_id, bits in s.execute(q):
                    out[algo][image_id] = np.frombuffer(bits, np.uint8)
        return out

    def vectors(self, model: str, view: str = IMAGE) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The vectors of one model and view of every image on disk: ids (N,) int64, (N, D) float32."""
        q = select(Vector.image_id, Vector.data).join(Image).where(Vector.model == model, Vector.view == view, _present())
        with self.session() as s:
            rows = s.execute(q.order_by(Vector.image_id)).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), np.float32)
        data = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f2").reshape(len(rows), -1)
        return ids, data.astype(np.float32)

    def feature_ids(self, feature: str, view: str = IMAGE) -> tuple[NDArray[np.int64], NDArray[np.uint64]]:
        """The images on disk that have a row of `feature` (a hash or a vector model) in
        `view`: ids (N,) int64 sorted, and each one's content (`_content`), which tells a
        re-indexed image from an unchanged one."""
        table, name = self._feature_table(feature)
        q = (select(table.image_id, Image.sha256, Image.redecoded).join(Image)
             .where(name == feature, table.view == view, _present()).order_by(table.image_id))
        with self.session() as s:
            rows = s.execute(q).all()
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        return ids, np.fromiter((_content(r[1], r[2]) for r in rows), np.uint64, len(rows))

    def feature_rows(self, feature: str, ids: Sequence[int], view: str = IMAGE) -> tuple[NDArray[np.int64], NDArray]:
        """The `feature` rows of the given ids that have one, in id order: ids (n,) int64 and
        (n, bytes) uint8 packed bits or (n, D) float32. Each row is read into its place in one
        matrix: a million CNN vectors are in memory once (5 GB), not also as stored bytes."""
        table, name = self._feature_table(feature)
        wanted = sorted({int(i) for i in ids})
        found = np.empty(len(wanted), np.int64)
        matrix: NDArray | None = None
        n = 0
        with self.session() as s:
            for chunk in _chunks(wanted):
                q = (select(table.image_id, table.bits if table is Hash else table.data)
                     .where(name == feature, table.view == view, table.image_id.in_(chunk)).order_by(table.image_id))
                for image_id, data in s.execute(q):
                    row = np.frombuffer(data, np.uint8 if table is Hash else "<f2")
                    if matrix is None:  # the width is known from the first row
                        matrix = np.empty((len(wanted), len(row)), np.uint8 if table is Hash else np.float32)
                    found[n], matrix[n] = image_id, row
                    n += 1
        if matrix is None:
            return self._feature_matrix(table, [])
        # a view of the rows found would keep every wanted row's room (most ids may have no box)
        return found[:n], matrix if n == len(wanted) else matrix[:n].copy()

    def feature_chunks(self, feature: str, view: str = IMAGE, size: int = 65_536) -> Iterator[tuple[NDArray[np.int64], NDArray]]:
        """Every `feature` row of the images on disk, in id order, `size` rows at a time (as
        `feature_rows`): a million vectors never sit in memory twice."""
        table, name = self._feature_table(feature)
        after = -1
        while True:
            q = (select(table.image_id, table.bits if table is Hash else table.data).join(Image)
                 .where(name == feature, table.view == view, _present(), table.image_id > after)
                 .order_by(table.image_id).limit(size))
            with self.session() as s:
                rows = s.execute(q).all()
            if not rows:
                return
            after = rows[-1][0]
            chunk = self._feature_matrix(table, rows)
            del rows  # copied into the matrix: not held (a million vectors' worth) while the caller works
            yield chunk

    def _feature_table(self, feature: str):
        return (Hash, Hash.algo) if feature in self.settings.hashes else (Vector, Vector.model)

    @staticmethod
    def _feature_matrix(table, rows: Sequence[tuple[int, bytes]]) -> tuple[NDArray[np.int64], NDArray]:
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        if not rows:
            return ids, np.zeros((0, 1), np.uint8 if table is Hash else np.float32)
        data = b"".join(r[1] for r in rows)
        if table is Hash:
            return ids, np.frombuffer(data, np.uint8).reshape(len(rows), -1)
        return ids, np.frombuffer(data, "<f2").reshape(len(rows), -1).astype(np.float32)

    def vectors_of(self, ids: Sequence[int], model: str, view: str = IMAGE) -> dict[int, NDArray[np.float32]]:
        """Stored (D,) float32 vectors of one model and view for the given ids that have one
        (rows of `feature_rows`' matrix)."""
        found, matrix = self.feature_rows(model, ids, view)
        return dict(zip(found.tolist(), matrix))

    def keypoints_of(self, ids: Sequence[int], *, mirrored: bool = False) -> dict[int, KeypointArrays]:
        """Stored local features (points (n, 2) float32, descriptors (n, 32) uint8, colours (n, 3)
        uint8 or None) of the given ids, or of their mirror images; ids without them are left out."""
        table = MirroredKeypoints if mirrored else Keypoints
        out: dict[int, KeypointArrays] = {}
        with self.session() as s:
            for chunk in _chunks([int(i) for i in ids]):
                q = select(table.image_id, table.points, table.descriptors, table.colours).where(
                    table.image_id.in_(chunk))
                out.update({r[0]: _keypoints(r[1], r[2], r[3]) for r in s.execute(q)})
        return out

    def colour_layouts_of(self, ids: Sequence[int]) -> dict[int, tuple[int, int, bytes]]:
        """Stored colour layouts (width, height, cells) of the given ids that have one."""
        out: dict[int, tuple[int, int, bytes]] = {}
        with self.session() as s:
            for chunk in _chunks([int(i) for i in ids]):
                q = select(ColourLayout.image_id, ColourLayout.width, ColourLayout.height, ColourLayout.cells).where(
                    ColourLayout.image_id.in_(chunk))
                out.update({r[0]: (r[1], r[2], r[3]) for r in s.execute(q)})
        return out

    def colour_layout_ids(self) -> NDArray[np.int64]:
        """Ids of the images with a stored colour layout, ascending."""
        with self.session() as s:
            found = s.execute(select(ColourLayout.image_id).order_by(ColourLayout.image_id)).scalars().all()
        return np.array(found, np.int64)

    def missing_colour_layouts(self, stored_bytes: int | None = None) -> list[tuple[int, str]]:
        """(id, path) of indexed images with keypoints but no colour layout (indexed before
        layouts were stored, or by an interrupted run), or, given `stored_bytes`, one whose
        stored cells are of another length (the layout of an older neardup)."""
        current = select(ColourLayout.image_id)
        if stored_bytes is not None:
            current = current.where(func.length(ColourLayout.cells) == stored_bytes)
        q = (select(Image.id, Image.path).where(Image.status == "ok", Image.id.in_(select(Keypoints.image_id)),
                                                Image.id.not_in(current)).order_by(Image.id))
        with self.session() as s:
            return [(i, p) for i, p in s.execute(q)]

    def stale_keeper_traits(self, stored_bytes: int) -> list[tuple[int, str]]:
        """(id, path) of indexed images whose stored enlargement record is not `stored_bytes`
        long: measured by an older neardup, as was their noise (`put_keeper_traits`)."""
        q = (select(Image.id, Image.path).where(Image.status == "ok", Image.enlargement.is_not(None),
                                                func.length(Image.enlargement) != stored_bytes).order_by(Image.id))
        with self.session() as s:
            return [(i, p) for i, p in s.execute(q)]

    def put_keeper_traits(self, traits: Mapping[int, tuple[float, bytes | None]]) -> None:
        """Store the keeper's traits measured again {id: (noise, enlargement record)}."""
        if not traits:
            return
        with self.transaction() as s:
            s.execute(update(Image), [{"id": int(i), "noise": noise, "enlargement": record}
                                      for i, (noise, record) in traits.items()])

    def stale_keypoints(self) -> list[tuple[int, str]]:
        """(id, path) of indexed images whose stored keypoints are to be found again: they have
        no colours (indexed before keypoint colours were stored, or marked by
        `upgrade_local_features`)."""
        q = (select(Image.id, Image.path).join(Keypoints, Keypoints.image_id == Image.id)
             .where(Image.status == "ok", Keypoints.colours.is_(None)).order_by(Image.id))
        with self.session() as s:
            return [(i, p) for i, p in s.execute(q)]

    def upgrade_local_features(self, features_id: str, smaller_than: int) -> None:
        """Record that the stored keypoints are now those of `features_id`, and mark those of
        the images whose long side is under `smaller_than` pixels stale (`stale_keypoints`):
        the only ones it finds differently. Until `index` finds them again (at the end of the
        run that calls this) they verify as before, without their keypoints' own colours.
        Stored pair evidence is dropped with the generation (it is keyed by the id)."""
        small = select(Image.id).where(Image.width < smaller_than, Image.height < smaller_than)
        with self.transaction() as s:
            for table in (Keypoints, MirroredKeypoints):
                s.execute(update(table).where(table.image_id.in_(small)).values(colours=None))
            settings = replace(self.settings, local_features=features_id)
            _store_settings(s, settings)  # in the marking's transaction: neither lands without the other
        self.settings = settings

    def put_keypoints(self, features: Mapping[int, tuple[KeypointArrays, KeypointArrays]]) -> None:
        """Store local features {id: (of the image, of its mirror image)}, replacing older ones.
        Stored pair evidence is dropped: it was judged without them (`search.incremental`)."""
        if not features:
            return
        with self.transaction() as s:
            s.execute(delete(EvidenceSet))
            for table, side in ((Keypoints, 0), (MirroredKeypoints, 1)):
                for chunk in _chunks(list(features)):
                    s.execute(delete(table).where(table.image_id.in_(chunk)))
                _insert(s, table, [{"image_id": int(i), **_keypoint_blobs(both[side])} for i, both in features.items()])

    def put_colour_layouts(self, layouts: Mapping[int, tuple[int, int, bytes]]) -> None:
        """Store colour layouts {id: (width, height, cells)}, replacing older ones. Stored pair
        evidence is dropped: it was judged without them (`search.incremental`)."""
        if not layouts:
            return
        with self.transaction() as s:
            s.execute(delete(EvidenceSet))
            for chunk in _chunks(list(layouts)):
                s.execute(delete(ColourLayout).where(ColourLayout.image_id.in_(chunk)))
            _insert(s, ColourLayout, [{"image_id": int(i), "width": w, "height": h, "cells": c}
                                      for i, (w, h, c) in layouts.items()])

    def same_content_groups(self) -> list[list[int]]:
        """Ids of images sharing one sha256 (exact copies), groups of two or more."""
        dup = (
            select(Image.sha256).where(Image.status == "ok", Image.sha256.is_not(None))
            .group_by(Image.sha256).having(func.count() > 1)
        )
        q = select(Image.sha256, Image.id).where(Image.sha256.in_(dup)).order_by(Image.sha256, Image.id)
        groups: dict[str, list[int]] = {}
        with self.session() as s:
            for sha, image_id in s.execute(q):
                groups.setdefault(sha, []).append(image_id)
        return list(groups.values())

    def contents(self) -> tuple[NDArray[np.int64], NDArray[np.uint64]]:
        """Every image in the collection now (status "ok"): ids (N,) int64 sorted and each
        one's content, as `feature_ids` gives it."""
        q = select(Image.id, Image.sha256, Image.redecoded).where(_present()).order_by(Image.id)
        with self.session() as s:
            rows = s.execute(q).all()
        return (np.fromiter((r[0] for r in rows), np.int64, len(rows)),
                np.fromiter((_content(r[1], r[2]) for r in rows), np.uint64, len(rows)))

    def counts(self) -> dict[str, int]:
        """Images by status, and stored features by name (box views as "<name>@box")."""
        with self.session() as s:
            by_status = dict(s.execute(select(Image.status, func.count()).group_by(Image.status)).all())
            hashes = s.execute(select(Hash.algo, Hash.view, func.count()).group_by(Hash.algo, Hash.view)).all()
            vectors = s.execute(select(Vector.model, Vector.view, func.count()).group_by(Vector.model, Vector.view)).all()
            keypoints = s.scalar(select(func.count()).select_from(Keypoints))
            mirrored = s.scalar(select(func.count()).select_from(MirroredKeypoints))
            layouts = s.scalar(select(func.count()).select_from(ColourLayout))
        return {
            "images": sum(by_status.values()),
            "ok": by_status.get("ok", 0),
            "failed": by_status.get("failed", 0),
            **{status: n for status, n in sorted(by_status.items()) if status not in ("ok", "failed")},
            **{f"hashes.{_label(a, v)}": n for a, v, n in hashes},
            **{f"vectors.{_label(m, v)}": n for m, v, n in vectors},
            **({"keypoints": keypoints} if keypoints else {}),
            **({"keypoints.mirrored": mirrored} if mirrored else {}),
            **({"colour_layouts": layouts} if layouts else {}),
        }

    def present(self) -> int:
        """How many images are in the collection now (status "ok"); cheaper than `counts`."""
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(Image).where(_present())) or 0)

    def failures(self) -> list[tuple[str, str]]:
        """(path, why) of every file that could not be indexed, by path. Sorted here, not by
        the query: told to order them by path, SQLite walks the whole path index and reads every
        image's row to find the few failed ones (seconds at a million), and a name that is not
        UTF-8 would sort by its stored, percent-encoded form (`PathText`)."""
        q = select(Image.path, Image.error).where(Image.status == "failed")
        with self.session() as s:
            return sorted((p, e or "") for p, e in s.execute(q))

    def missing_vectors(self, model: str) -> list[tuple[int, str]]:
        """(id, path) of indexed images that have no whole-image vector of `model` yet."""
        has = select(Vector.image_id).where(Vector.model == model, Vector.view == IMAGE)
        q = select(Image.id, Image.path).where(Image.status == "ok", Image.id.not_in(has)).order_by(Image.id)
        with self.session() as s:
            return [(i, p) for i, p in s.execute(q)]

    # -- writing -------------------------------------------------------------------------------
    def write(self, records: Sequence[ImageRecord]) -> None:
        """Insert or replace the given files with their features, all or nothing. Image rows
        are upserted on their unique path, so a file written by two indexers at once (on
        overlapping folders) is one row, with the id it had."""
        if not records:
            return
        with self.transaction() as s:
            ids = _upsert_images(s, sorted(records, key=lambda r: r.path))
            for table in (Hash, Vector, Keypoints, MirroredKeypoints, ColourLayout):
                for chunk in _chunks(list(ids.values())):
                    s.execute(delete(table).where(table.image_id.in_(chunk)))
            for table, values in _feature_rows(records, [ids[r.path] for r in records]).items():
                _insert(s, table, values)

    def move(self, image_id: int, path: str, size: int, mtime_ns: int) -> None:
        """Record that a known image now lives at `path` (renamed or moved, same bytes); a row
        another indexer wrote for `path` meanwhile (the same bytes) gives way to it."""
        with self.transaction() as s:
            s.execute(delete(Image).where(Image.path == path, Image.id != image_id))
            s.execute(update(Image).where(Image.id == image_id)
                      .values(path=path, size=size, mtime_ns=mtime_ns, updated_at=func.now()))

    def put_vectors(self, sets: Mapping[tuple[str, str], tuple[Sequence[int], NDArray[np.float32]]]) -> None:
        """Store vectors {(model, view): (ids, (N, D) float32)} replacing older ones, in one
        transaction, so that an interrupted run never stores an image's vector without its
        content box's (the images without a vector are the ones embedded again)."""
        with self.transaction() as s:
            for (model, view), (ids, vectors) in sets.items():
                ids = [int(i) for i in ids]
                for chunk in _chunks(ids):
                    s.execute(delete(Vector).where(Vector.model == model, Vector.view == view, Vector.image_id.in_(chunk)))
                _insert(s, Vector, [{"image_id": i, "model": model, "view": view,
                                     "data": np.asarray(v, "<f2").tobytes()} for i, v in zip(ids, vectors)])

    def mark_failed(self, failures: Mapping[int, str]) -> None:
        """Record images that can no longer be processed (image id -> why), dropping their features."""
        with self.transaction() as s:
            for image_id, reason in failures.items():
                for table in (Hash, Vector, Keypoints, MirroredKeypoints, ColourLayout):
                    s.execute(delete(table).where(table.image_id == image_id))
                s.execute(update(Image).where(Image.id == image_id).values(status="failed", error=reason))

    def remove(self, ids: Iterable[int]) -> None:
        ids = [int(i) for i in ids]
        if not ids:
            return
        with self.transaction() as s:
            for chunk in _chunks(ids):
                s.execute(delete(Image).where(Image.id.in_(chunk)))

    # -- sessions (for the data-access modules of this package, such as `journal`) --------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read-only view of the catalog (one snapshot per session)."""
        with _translated(self.path), Session(self._engine) as s:
            yield s

    @contextmanager
    def transaction(self, *, derived: bool = False) -> Iterator[Session]:
        """One write transaction; its first statement replaces the generation. On a file it
        runs under SQLite's write lock (BEGIN IMMEDIATE); on a server the generation row's
        lock plays that part: writers commit one at a time and each reads what the previous
        one wrote, so no read-then-write in a transaction can race another writer. A write of
        only what is `derived` from the catalog (stored pair evidence, stored groups) keeps the generation:
        nothing built from the catalog is stale because of it.
        A busy, read-only or full catalog is a `NeardupError` saying so; the write is rolled back."""
        if self.readonly:
            raise schema.CatalogReadOnlyError(f"catalog {self.path} was opened read-only; this needs write access")
        with _translated(self.path), self._engine.connect().execution_options(immediate=True) as conn, conn.begin():
            with Session(bind=conn) as s:
                if not derived:
                    s.execute(update(Setting).where(Setting.key == "generation")
                              .values(value=json.dumps(uuid.uuid4().hex)))
                yield s
                s.flush()

    def _meta(self, key: str, *, raw: bool = False):
        with self.session() as s:
            row = s.get(Setting, key)
        if row is None:
            raise NotACatalogError(f"{self.path} is not a neardup catalog (no {key})")
        return row.value if raw else json.loads(row.value)


def _remove_abandoned(path: Path) -> None:
    """Remove half-built catalogs (".NAME.PID.new", and the -journal, -wal and -shm files
    SQLite keeps beside one mid-transaction) left by a process killed while creating one at
    `path`; one whose process still runs is being built and is left alone."""
    for building in path.parent.glob(f".{glob.escape(path.name)}.*.new*"):
        pid, _, rest = building.name[len(path.name) + 2 :].partition(".new")
        if pid.isdigit() and rest in ("", "-journal", "-wal", "-shm") and not _running(int(pid)):
            building.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _locate(location: Location) -> tuple[Path, None] | tuple[str, URL]:
    """(the file, None) for a file catalog; (the URL without password, the URL) for a server's."""
    if isinstance(location, URL):  # a catalog's own `url`, reopened (by a worker process)
        return database.display(location), location
    if database.is_url(location):
        found = database.parse(str(location))
        if isinstance(found, URL):
            return database.display(found), found
        location = found
    return Path(location).expanduser().absolute(), None


def _in_folder(folder: Path, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{places.URL_CATALOG_STEM}.{suffix}"


def _fill(conn: Connection, settings: CatalogSettings, models: Sequence[ModelRecord]) -> None:
    """The tables of a new catalog, its settings, a new identity and generation, its models."""
    schema.create_schema(conn)
    with Session(bind=conn) as s:
        s.add_all([
            Setting(key="settings", value=settings.to_json()),
            Setting(key="catalog_id", value=json.dumps(uuid.uuid4().hex)),
            Setting(key="generation", value=json.dumps(uuid.uuid4().hex)),
        ])
        s.add_all(_model_row(m) for m in models)
        s.flush()


@contextmanager
def _translated(name: Path | str) -> Iterator[None]:
    """The errors a user can act on (busy, read-only, disk full; a server that cannot be
    reached) as `NeardupError`s; anything else (a bug) as it is."""
    try:
        yield
    except (DBAPIError, OSError) as error:
        cause = getattr(error, "orig", None) or error
        if isinstance(cause, (sqlite3.Error, OSError)):
            meaning = schema.translate(cause, name)
        else:
            meaning = database.translate(cause, str(name))
        if meaning is None:
            raise
        raise meaning from error


def _content(sha256: str | None, redecoded: int | None) -> int:
    """An image's content as what is derived from its features sees it: the first 64 bits of
    its SHA-256 (0 when unknown), told apart once its unchanged file was decoded again
    (`Image.redecoded`), since its features then changed as an edit's would."""
    token = int(sha256[:16], 16) if sha256 else 0
    return token ^ (redecoded * 0x9E3779B97F4A7C15 & 0xFFFF_FFFF_FFFF_FFFF) if redecoded else token


def _present():
    """Images whose file is in the collection: indexed, not trashed, moved or linked away."""
    return Image.status == "ok"


# ImageRecord fields stored as they are in the images table (every other column is derived)
_IMAGE_FIELDS = tuple(f.name for f in fields(ImageRecord) if f.name in Image.__table__.columns)


def _upsert_images(s: Session, records: Sequence[ImageRecord]) -> dict[str, int]:
    """Insert or update the image rows of `records` (in path order: concurrent writers lock
    rows in one order) by INSERT … ON CONFLICT (path); {path: image id}. One statement, made
    once per dialect, run with every row as parameters: SQLAlchemy batches them into
    multi-row INSERTs itself ("insertmanyvalues"); a statement holding the values would be
    compiled anew for every batch, which costs more than the SQL."""
    conn = s.connection()
    statement = _upsert_statement(conn.dialect.name)
    return {path: image_id for image_id, path in conn.execute(statement, [_image_values(r) for r in records])}


@functools.cache
def _upsert_statement(dialect: str) -> Insert:
    """INSERT … ON CONFLICT (path) DO UPDATE every column a record sets but the path (and
    the creation time), RETURNING (id, path)."""
    table = Image.__table__
    statement = (postgresql.insert if dialect == "postgresql" else sqlite_dialect.insert)(table)
    updated = {c: statement.excluded[c] for c in (*_IMAGE_FIELDS, "status", "updated_at") if c != "path"}
    statement = statement.on_conflict_do_update(index_elements=[table.c.path], set_=updated)
    return statement.returning(table.c.id, table.c.path)


def _insert(s: Session, table: type, rows: list[dict[str, Any]]) -> None:
    """Core INSERT of `rows` into an ORM class's table, one statement on the session's
    connection: the session's ORM bulk insert looks at every value of every row first, which
    cost more than the SQL itself."""
    if rows:
        s.connection().execute(insert(table.__table__), rows)


def _image_values(r: ImageRecord) -> dict[str, object]:
    """The images row of a record, as column values."""
    now = utcnow()
    return {**{name: getattr(r, name) for name in _IMAGE_FIELDS}, "status": "failed" if r.error else "ok",
            "created_at": now, "updated_at": now}


def _feature_rows(records: Sequence[ImageRecord], ids: Sequence[int]) -> dict[type, list[dict[str, Any]]]:
    """The hashes, vectors, keypoint and colour layout rows of records stored under `ids`, per table."""
    out: dict[type, list[dict[str, Any]]] = {table: [] for table in (Hash, Vector, Keypoints, MirroredKeypoints,
                                                                     ColourLayout)}
    for r, image_id in zip(records, ids):
        out[Hash] += [{"image_id": image_id, "algo": a, "view": view, "bits": np.ascontiguousarray(b, np.uint8).tobytes()}
                      for view, named in r.hashes.items() for a, b in named.items()]
        out[Vector] += [{"image_id": image_id, "model": m, "view": view, "data": np.asarray(v, "<f2").tobytes()}
                        for view, named in r.vectors.items() for m, v in named.items()]
        if r.keypoints is not None:
            out[Keypoints].append({"image_id": image_id, **_keypoint_blobs(r.keypoints)})
        if r.mirrored_keypoints is not None:
            out[MirroredKeypoints].append({"image_id": image_id, **_keypoint_blobs(r.mirrored_keypoints)})
        if r.colour_layout is not None:
            width, height, cells = r.colour_layout
            out[ColourLayout].append({"image_id": image_id, "width": width, "height": height, "cells": cells})
    return out


def _model_row(record: ModelRecord) -> Model:
    return Model(
        name=record.name, model_id=record.model_id, version=record.version, dim=record.dim,
        input_size=record.input_size, options=json.dumps(record.options, sort_keys=True), file=record.file,
        sha256=record.sha256, training=None if record.training is None else json.dumps(record.training),
    )


def _model_record(row: Model) -> ModelRecord:
    return ModelRecord(
        name=row.name, model_id=row.model_id, version=row.version, dim=row.dim, input_size=row.input_size,
        options=json.loads(row.options), file=row.file, sha256=row.sha256,
        training=None if row.training is None else json.loads(row.training),
    )


def _label(name: str, view: str) -> str:
    return name if view == IMAGE else f"{name}@{view}"


def _keypoint_blobs(features: KeypointArrays) -> dict[str, bytes | None]:
    points, descriptors, *rest = features
    colours = rest[0] if rest else None
    return {"points": np.asarray(points, "<f2").tobytes(),
            "descriptors": np.ascontiguousarray(descriptors, np.uint8).tobytes(),
            "colours": None if colours is None else np.ascontiguousarray(colours, np.uint8).tobytes()}


def _keypoints(points: bytes, descriptors: bytes, colours: bytes | None) -> KeypointArrays:
    return (np.frombuffer(points, "<f2").astype(np.float32).reshape(-1, 2),
            np.frombuffer(descriptors, np.uint8).reshape(-1, 32),
            None if colours is None else np.frombuffer(colours, np.uint8).reshape(-1, 3))


def _store_settings(s: Session, settings: CatalogSettings) -> None:
    s.merge(Setting(key="settings", value=settings.to_json()))


def _image_info(row: Sequence[Any]) -> ImageInfo:
    """The `ImageInfo` of a row of its fields in order, as `ImageInfo(*row)` makes it, without
    the frozen dataclass's `__init__`, which sets each field through `object.__setattr__`:
    most of the time of reading a large stored decision's images (docs/BENCHMARKS.md)."""
    info = object.__new__(ImageInfo)
    info.__dict__.update(zip(_INFO_FIELDS, row))
    return info


def _chunks(items: list, n: int = _CHUNK) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
