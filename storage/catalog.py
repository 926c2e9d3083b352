"""The catalog: one SQLite file, the source of truth for images, their features, and models.

Everything else (FAISS indexes, thumbnails) is derived from it and can be rebuilt. Reads and
writes go through typed accessors; every write is one transaction that also replaces the
catalog's *generation* (a random token), so anything derived can tell it is stale.
"""

from __future__ import annotations

import glob
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import schema
from .models import BOX, IMAGE, Hash, Image, Keypoints, MirroredKeypoints, Model, NotDuplicate, Root, Setting, Vector
from .records import Bits, FileState, ImageInfo, ImageRecord, ModelRecord
from .records import Keypoints as KeypointArrays
from .schema import CatalogNotFoundError, NotACatalogError  # noqa: F401  (raised by `open`)
from .settings import CatalogSettings
from .ann import IndexPolicy
from .vectors import FeatureIndex

_CHUNK = 900  # ids per IN (...) list: SQLite allows 999 bound parameters per statement


class Catalog:
    """Data access to one catalog file. Writes are whole transactions: a kill leaves it valid."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._engine = schema.connect(path, readonly=readonly)
        try:
            self.settings = CatalogSettings.from_json(self._meta("settings", raw=True))
            self.identity: str = self._meta("catalog_id")
        except BaseException:
            self._engine.dispose()
            raise
        self._indexes: dict[str, FeatureIndex] = {}

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, settings: CatalogSettings, models: Sequence[ModelRecord] = ()) -> Catalog:
        """Create a new catalog at `path` (which must not exist) with `settings` and `models`.

        It is built under a temporary name and renamed when complete, so a kill leaves no
        half-made catalog at `path`."""
        path = Path(path).expanduser().absolute()
        if path.exists():
            raise FileExistsError(f"catalog already exists: {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(path)
        building = path.with_name(f".{path.name}.{os.getpid()}.new")
        building.unlink(missing_ok=True)
        building.touch()
        engine = schema.connect(building)
        schema.create_schema(engine)
        with Session(engine) as s, s.begin():
            s.add_all([
                Setting(key="settings", value=settings.to_json()),
                Setting(key="catalog_id", value=json.dumps(uuid.uuid4().hex)),
                Setting(key="generation", value=json.dumps(uuid.uuid4().hex)),
            ])
            s.add_all(_model_row(m) for m in models)
        engine.dispose()
        os.replace(building, path)
        return cls(path)

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool | None = False) -> Catalog:
        """Open an existing catalog, upgrading one made by an older neardup (not when
        `readonly`: then it must be current). A file that is not a catalog is left untouched.
        `readonly=None`: for writing when the file and its folder allow it, else read-only."""
        path = Path(path).expanduser().absolute()
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

    def close(self) -> None:
        self._engine.dispose()

    def sibling(self, suffix: str) -> Path:
        """A file beside the catalog named after it: photos.db -> photos.<suffix>."""
        return self.path.with_name(f"{self.path.stem}.{suffix}")

    def index(self, feature: str) -> FeatureIndex:
        """The nearest-neighbour index of `feature`'s whole-image hashes or vectors."""
        if feature not in self._indexes:
            self._indexes[feature] = FeatureIndex(self, feature, binary=feature in self.settings.hashes)
        return self._indexes[feature]

    # -- catalog-wide values -----------------------------------------------------------------
    def generation(self) -> str:
        """A token replaced by every write: anything built at another generation is stale."""
        return self._meta("generation")

    def replace_settings(self, settings: CatalogSettings) -> None:
        with self.transaction() as s:
            s.merge(Setting(key="settings", value=settings.to_json()))
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
                   Image.format, Image.quality, Image.detail, Image.noise, Image.taken_at, Image.camera, boxed)
        out: dict[int, ImageInfo] = {}
        with self.session() as s:
            for chunk in _chunks([int(i) for i in ids]):
                out.update({r[0]: ImageInfo(*r) for r in s.execute(select(*columns).where(Image.id.in_(chunk)))})
        return out

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
        `view`: ids (N,) int64 sorted, and each one's content (the first 64 bits of its
        SHA-256, 0 when unknown), which tells a re-indexed image from an unchanged one."""
        table, name = self._feature_table(feature)
        q = (select(table.image_id, Image.sha256).join(Image)
             .where(name == feature, table.view == view, _present()).order_by(table.image_id))
        with self.session() as s:
            rows = s.execute(q).all()
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        contents = np.fromiter((int(r[1][:16], 16) if r[1] else 0 for r in rows), np.uint64, len(rows))
        return ids, contents

    def feature_rows(self, feature: str, ids: Sequence[int], view: str = IMAGE) -> tuple[NDArray[np.int64], NDArray]:
        """The `feature` rows of the given ids that have one, in id order: ids (n,) int64 and
        (n, bytes) uint8 packed bits or (n, D) float32."""
        table, name = self._feature_table(feature)
        found: list[tuple[int, bytes]] = []
        with self.session() as s:
            for chunk in _chunks(sorted(int(i) for i in ids)):
                q = select(table.image_id, table.bits if table is Hash else table.data).where(
                    name == feature, table.view == view, table.image_id.in_(chunk))
                found.extend(s.execute(q).all())
        found.sort()
        return self._feature_matrix(table, found)

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
            yield self._feature_matrix(table, rows)

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
        """Stored (D,) float32 vectors of one model and view for the given ids that have one."""
        out: dict[int, NDArray[np.float32]] = {}
        with self.session() as s:
            for chunk in _chunks([int(i) for i in ids]):
                q = select(Vector.image_id, Vector.data).where(
                    Vector.model == model, Vector.view == view, Vector.image_id.in_(chunk))
                out.update({r[0]: np.frombuffer(r[1], "<f2").astype(np.float32) for r in s.execute(q)})
        return out

    def keypoints_of(self, ids: Sequence[int], *, mirrored: bool = False) -> dict[int, KeypointArrays]:
        """Stored local features (points (n, 2) float32, descriptors (n, 32) uint8) of the given
        ids, or of their mirror images; ids without them are left out."""
        table = MirroredKeypoints if mirrored else Keypoints
        out: dict[int, KeypointArrays] = {}
        with self.session() as s:
            for chunk in _chunks([int(i) for i in ids]):
                q = select(table.image_id, table.points, table.descriptors).where(table.image_id.in_(chunk))
                out.update({r[0]: _keypoints(r[1], r[2]) for r in s.execute(q)})
        return out

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

    def contents(self) -> tuple[NDArray[np.int64], list[str | None]]:
        """Every image in the collection now (status "ok"): ids (N,) int64 sorted and each
        one's content (SHA-256, hex)."""
        q = select(Image.id, Image.sha256).where(_present()).order_by(Image.id)
        with self.session() as s:
            rows = s.execute(q).all()
        return np.fromiter((r[0] for r in rows), np.int64, len(rows)), [r[1] for r in rows]

    def counts(self) -> dict[str, int]:
        """Images by status, and stored features by name (box views as "<name>@box")."""
        with self.session() as s:
            by_status = dict(s.execute(select(Image.status, func.count()).group_by(Image.status)).all())
            hashes = s.execute(select(Hash.algo, Hash.view, func.count()).group_by(Hash.algo, Hash.view)).all()
            vectors = s.execute(select(Vector.model, Vector.view, func.count()).group_by(Vector.model, Vector.view)).all()
            keypoints = s.scalar(select(func.count()).select_from(Keypoints))
            mirrored = s.scalar(select(func.count()).select_from(MirroredKeypoints))
        return {
            "images": sum(by_status.values()),
            "ok": by_status.get("ok", 0),
            "failed": by_status.get("failed", 0),
            **{status: n for status, n in sorted(by_status.items()) if status not in ("ok", "failed")},
            **{f"hashes.{_label(a, v)}": n for a, v, n in hashes},
            **{f"vectors.{_label(m, v)}": n for m, v, n in vectors},
            **({"keypoints": keypoints} if keypoints else {}),
            **({"keypoints.mirrored": mirrored} if mirrored else {}),
        }

    def present(self) -> int:
        """How many images are in the collection now (status "ok"); cheaper than `counts`."""
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(Image).where(_present())) or 0)

    def failures(self) -> list[tuple[str, str]]:
        q = select(Image.path, Image.error).where(Image.status == "failed").order_by(Image.path)
        with self.session() as s:
            return [(p, e or "") for p, e in s.execute(q)]

    def missing_vectors(self, model: str) -> list[tuple[int, str]]:
        """(id, path) of indexed images that have no whole-image vector of `model` yet."""
        has = select(Vector.image_id).where(Vector.model == model, Vector.view == IMAGE)
        q = select(Image.id, Image.path).where(Image.status == "ok", Image.id.not_in(has)).order_by(Image.id)
        with self.session() as s:
            return [(i, p) for i, p in s.execute(q)]

    # -- writing -------------------------------------------------------------------------------
    def write(self, records: Sequence[ImageRecord]) -> None:
        """Insert or replace the given files with their features, all or nothing."""
        if not records:
            return
        with self.transaction() as s:
            existing = dict(s.execute(select(Image.path, Image.id).where(Image.path.in_([r.path for r in records]))).all())
            if existing:
                s.execute(delete(Image).where(Image.id.in_(list(existing.values()))))
                s.flush()
            s.add_all(_image_row(r, existing.get(r.path)) for r in records)

    def move(self, image_id: int, path: str, size: int, mtime_ns: int) -> None:
        """Record that a known image now lives at `path` (renamed or moved, same bytes)."""
        with self.transaction() as s:
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
                s.add_all(Vector(image_id=i, model=model, view=view, data=np.asarray(v, "<f2").tobytes())
                          for i, v in zip(ids, vectors))

    def mark_failed(self, failures: Mapping[int, str]) -> None:
        """Record images that can no longer be processed (image id -> why), dropping their features."""
        with self.transaction() as s:
            for image_id, reason in failures.items():
                for table in (Hash, Vector, Keypoints, MirroredKeypoints):
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
        """One write transaction under SQLite's write lock; it also replaces the generation,
        unless it writes only what is `derived` from the catalog (stored pair evidence): then
        nothing built from the catalog is stale because of it.
        A busy, read-only or full catalog is a `NeardupError` saying so; the write is rolled back."""
        if self.readonly:
            raise schema.CatalogReadOnlyError(f"catalog {self.path} was opened read-only; this needs write access")
        with _translated(self.path), self._engine.connect().execution_options(immediate=True) as conn, conn.begin():
            with Session(bind=conn) as s:
                yield s
                if not derived:
                    s.execute(update(Setting).where(Setting.key == "generation")
                              .values(value=json.dumps(uuid.uuid4().hex)))
                s.flush()

    def _meta(self, key: str, *, raw: bool = False):
        with self.session() as s:
            row = s.get(Setting, key)
        if row is None:
            raise NotACatalogError(f"{self.path} is not a neardup catalog (no {key})")
        return row.value if raw else json.loads(row.value)


def _remove_abandoned(path: Path) -> None:
    """Remove half-built catalogs (".NAME.PID.new") left by a process killed while creating
    one at `path`; one whose process still runs is being built and is left alone."""
    for building in path.parent.glob(f".{glob.escape(path.name)}.*.new"):
        pid = building.name[len(path.name) + 2 : -len(".new")]
        if pid.isdigit() and not _running(int(pid)):
            building.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """SQLite's errors that a user can act on (busy, read-only, disk full) as `NeardupError`s;
    anything else (a bug) as it is."""
    try:
        yield
    except (DBAPIError, OSError) as error:
        meaning = schema.translate(getattr(error, "orig", None) or error, path)
        if meaning is None:
            raise
        raise meaning from error


def _present():
    """Images whose file is in the collection: indexed, not trashed, moved or linked away."""
    return Image.status == "ok"


def _image_row(r: ImageRecord, image_id: int | None) -> Image:
    img = Image(
        id=image_id, path=r.path, size=r.size, mtime_ns=r.mtime_ns, sha256=r.sha256, width=r.width,
        height=r.height, format=r.format, quality=r.quality, status="failed" if r.error else "ok", error=r.error,
        detail=r.detail, noise=r.noise, taken_at=r.taken_at, camera=r.camera,
    )
    img.hashes = [Hash(algo=a, view=view, bits=np.ascontiguousarray(b, np.uint8).tobytes())
                  for view, named in r.hashes.items() for a, b in named.items()]
    img.vectors = [Vector(model=m, view=view, data=np.asarray(v, "<f2").tobytes())
                   for view, named in r.vectors.items() for m, v in named.items()]
    if r.keypoints is not None:
        img.keypoints = Keypoints(**_keypoint_blobs(r.keypoints))
    if r.mirrored_keypoints is not None:
        img.mirrored_keypoints = MirroredKeypoints(**_keypoint_blobs(r.mirrored_keypoints))
    return img


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


def _keypoint_blobs(features: KeypointArrays) -> dict[str, bytes]:
    points, descriptors = features
    return {"points": np.asarray(points, "<f2").tobytes(),
            "descriptors": np.ascontiguousarray(descriptors, np.uint8).tobytes()}


def _keypoints(points: bytes, descriptors: bytes) -> KeypointArrays:
    return (np.frombuffer(points, "<f2").astype(np.float32).reshape(-1, 2),
            np.frombuffer(descriptors, np.uint8).reshape(-1, 32))


def _chunks(items: list, n: int = _CHUNK) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
