"""The catalog: one SQLite file, the source of truth for images, hashes, vectors and settings."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Integer, String, cast, create_engine, delete, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from .models import Base, Hash, Image, Keypoints, MirroredKeypoints, Setting, Vector
from .settings import CatalogMismatchError, CatalogSettings


class CatalogNotFoundError(FileNotFoundError):
    """No catalog exists at the given path."""


@dataclass(frozen=True)
class FileState:
    """What the catalog knows of one file: enough to tell whether it changed on disk."""

    image_id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    status: str


@dataclass(frozen=True)
class ImageInfo:
    image_id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    width: int | None
    height: int | None
    format: str | None
    quality: int | None


@dataclass
class ImageRecord:
    """A fully processed file, ready to be written in one transaction.

    `hashes` maps algorithm name -> packed bits (uint8 array); `vectors` maps model name ->
    (D,) float32 L2-normalised vector, stored as float16; `keypoints` is (points (n, 2) float32,
    descriptors (n, 32) uint8), points stored as float16, and `mirrored_keypoints` the same of
    the mirror image. Features of an image's content box (`indexer.regions`) are stored under
    view names, e.g. hash "pdq@box" and vector "cnn@box". A failed file has `error` set and
    no hashes.
    """

    path: str
    size: int
    mtime_ns: int
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    quality: int | None = None
    error: str | None = None
    hashes: dict[str, NDArray[np.uint8]] = field(default_factory=dict)
    vectors: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    keypoints: tuple[NDArray[np.float32], NDArray[np.uint8]] | None = None
    mirrored_keypoints: tuple[NDArray[np.float32], NDArray[np.uint8]] | None = None


def _pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class Catalog:
    """Data access to one catalog file. Writes are whole transactions: a kill leaves it valid."""

    def __init__(self, path: Path, settings: CatalogSettings) -> None:
        self.path = path
        self.settings = settings
        self._engine = _engine(path)
        self._session = sessionmaker(self._engine, expire_on_commit=False)
        self.cache: dict[tuple[str, str], object] = {}  # derived data (e.g. FAISS indexes) by generation

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, settings: CatalogSettings) -> Catalog:
        """Create a new catalog at `path` (which must not exist) with `settings`."""
        path = Path(path).expanduser().absolute()
        if path.exists():
            raise FileExistsError(f"catalog already exists: {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        building = path.with_name(f".{path.name}.{os.getpid()}.new")  # renamed when complete
        engine = _engine(building)
        Base.metadata.create_all(engine)
        with Session(engine) as s, s.begin():
            s.add(Setting(key="settings", value=settings.to_json()))
            s.add(Setting(key="generation", value="0"))
        engine.dispose()
        os.replace(building, path)
        return cls(path, settings)

    @classmethod
    def open(cls, path: str | Path) -> Catalog:
        """Open an existing catalog with the settings it was created with."""
        path = Path(path).expanduser().absolute()
        if not path.is_file():
            raise CatalogNotFoundError(f"no catalog at {path} (create one with `neardup index`)")
        engine = _engine(path)
        with Session(engine) as s:
            row = s.get(Setting, "settings")
        if row is not None:
            Base.metadata.create_all(engine)  # tables added since the catalog was made
        engine.dispose()
        if row is None:
            raise CatalogMismatchError(f"{path} is not a neardup catalog (no settings)")
        return cls(path, CatalogSettings.from_json(row.value))

    def close(self) -> None:
        self._engine.dispose()

    def replace_settings(self, settings: CatalogSettings, *, drop_vectors: Iterable[str] = ()) -> None:
        """Explicit re-configuration: store new settings and drop vectors they invalidate."""
        with self._session.begin() as s:
            s.merge(Setting(key="settings", value=settings.to_json()))
            for model in drop_vectors:
                s.execute(delete(Vector).where(Vector.model == model))
            _bump(s)
        self.settings = settings

    # -- settings and generation ---------------------------------------------------------------
    def generation(self) -> int:
        """A counter bumped by every write: an index built at another generation is stale."""
        with self._session() as s:
            return int(s.get(Setting, "generation").value)

    def get_setting(self, key: str) -> object | None:
        with self._session() as s:
            row = s.get(Setting, key)
            return None if row is None else json.loads(row.value)

    def set_setting(self, key: str, value: object) -> None:
        with self._session.begin() as s:
            s.merge(Setting(key=key, value=json.dumps(value)))

    def replace_model(self, model: str, record: dict) -> int:
        """Record a newly trained `model` (setting "model.<model>") and, in the same
        transaction, drop its vectors: they came from the previous model. Returns how many."""
        with self._session.begin() as s:
            s.merge(Setting(key=f"model.{model}", value=json.dumps(record)))
            dropped = s.execute(delete(Vector).where(Vector.model == model)).rowcount
            _bump(s)
        return int(dropped or 0)

    def sibling(self, suffix: str) -> Path:
        """A file beside the catalog named after it: photos.db -> photos.<suffix>."""
        return self.path.with_name(f"{self.path.stem}.{suffix}")

    # -- reading -------------------------------------------------------------------------------
    def file_states(self) -> dict[str, FileState]:
        """Every file the catalog knows, by absolute path."""
        q = select(Image.id, Image.path, Image.size, Image.mtime_ns, Image.sha256, Image.status)
        with self._session() as s:
            return {r.path: FileState(*r) for r in s.execute(q)}

    def images(self, ids: Iterable[int]) -> dict[int, ImageInfo]:
        ids = [int(i) for i in ids]
        out: dict[int, ImageInfo] = {}
        with self._session() as s:
            for chunk in _chunks(ids, 900):
                q = select(
                    Image.id, Image.path, Image.size, Image.mtime_ns, Image.sha256,
                    Image.width, Image.height, Image.format, Image.quality,
                ).where(Image.id.in_(chunk))
                out.update({r.id: ImageInfo(*r) for r in s.execute(q)})
        return out

    def hashes(self, algo: str) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
        """All stored hashes of one algorithm: ids (N,) int64, codes (N, bytes) uint8."""
        q = select(Hash.image_id, Hash.bits).where(Hash.algo == algo).order_by(Hash.image_id)
        with self._session() as s:
            rows = s.execute(q).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), np.uint8)
        codes = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(len(rows), -1)
        return ids, codes

    def hashes_of(self, ids: Sequence[int], algos: Sequence[str]) -> dict[str, dict[int, NDArray[np.uint8]]]:
        """Stored hashes of the given image ids, {algo: {id: packed bits}}, read together."""
        out: dict[str, dict[int, NDArray[np.uint8]]] = {a: {} for a in algos}
        with self._session() as s:
            for chunk in _chunks([int(i) for i in ids], 900):
                q = select(Hash.algo, Hash.image_id, Hash.bits).where(Hash.algo.in_(list(algos)), Hash.image_id.in_(chunk))
                for algo, image_id, bits in s.execute(q):
                    out[algo][image_id] = np.frombuffer(bits, np.uint8)
        return out

    def vectors(self, model: str) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """All stored vectors of one model: ids (N,) int64, vectors (N, D) float32."""
        q = select(Vector.image_id, Vector.data).where(Vector.model == model).order_by(Vector.image_id)
        with self._session() as s:
            rows = s.execute(q).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), np.float32)
        data = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f2").reshape(len(rows), -1)
        return ids, data.astype(np.float32)

    def vectors_of(self, ids: Sequence[int], model: str) -> dict[int, NDArray[np.float32]]:
        """Stored (D,) float32 vectors of `model` for the given image ids that have one."""
        out: dict[int, NDArray[np.float32]] = {}
        with self._session() as s:
            for chunk in _chunks([int(i) for i in ids], 900):
                q = select(Vector.image_id, Vector.data).where(Vector.model == model, Vector.image_id.in_(chunk))
                out.update({r[0]: np.frombuffer(r[1], "<f2").astype(np.float32) for r in s.execute(q)})
        return out

    def keypoints_of(
        self, ids: Sequence[int], *, mirrored: bool = False
    ) -> dict[int, tuple[NDArray[np.float32], NDArray[np.uint8]]]:
        """Stored local features (points (n, 2) float32, descriptors (n, 32) uint8) of the given
        ids, or of their mirror images; ids without them are left out."""
        out: dict[int, tuple[NDArray[np.float32], NDArray[np.uint8]]] = {}
        table = MirroredKeypoints if mirrored else Keypoints
        with self._session() as s:
            for chunk in _chunks([int(i) for i in ids], 900):
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
        with self._session() as s:
            for sha, image_id in s.execute(q):
                groups.setdefault(sha, []).append(image_id)
        return list(groups.values())

    def find_sha(self, sha256: str) -> int | None:
        """Id of an indexed image with these bytes, if any."""
        q = select(Image.id).where(Image.sha256 == sha256, Image.status == "ok").limit(1)
        with self._session() as s:
            return s.execute(q).scalar_one_or_none()

    def counts(self) -> dict[str, int]:
        with self._session() as s:
            by_status = dict(s.execute(select(Image.status, func.count()).group_by(Image.status)).all())
            hashes = dict(s.execute(select(Hash.algo, func.count()).group_by(Hash.algo)).all())
            vectors = dict(s.execute(select(Vector.model, func.count()).group_by(Vector.model)).all())
            keypoints = s.scalar(select(func.count()).select_from(Keypoints))
            mirrored = s.scalar(select(func.count()).select_from(MirroredKeypoints))
        return {
            "images": sum(by_status.values()),
            "ok": by_status.get("ok", 0),
            "failed": by_status.get("failed", 0),
            **{f"hashes.{k}": v for k, v in hashes.items()},
            **{f"vectors.{k}": v for k, v in vectors.items()},
            **({"keypoints": keypoints} if keypoints else {}),
            **({"keypoints.mirrored": mirrored} if mirrored else {}),
        }

    def failures(self) -> list[tuple[str, str]]:
        q = select(Image.path, Image.error).where(Image.status == "failed").order_by(Image.path)
        with self._session() as s:
            return [(p, e or "") for p, e in s.execute(q)]

    # -- writing -------------------------------------------------------------------------------
    def write(self, records: Sequence[ImageRecord]) -> None:
        """Insert or replace the given files with their hashes and vectors, all or nothing."""
        if not records:
            return
        with self._session.begin() as s:
            existing = dict(
                s.execute(select(Image.path, Image.id).where(Image.path.in_([r.path for r in records]))).all()
            )
            if existing:
                s.execute(delete(Image).where(Image.id.in_(list(existing.values()))))
                s.flush()
            for r in records:
                img = Image(
                    id=existing.get(r.path), path=r.path, size=r.size, mtime_ns=r.mtime_ns,
                    sha256=r.sha256, width=r.width, height=r.height, format=r.format,
                    quality=r.quality, status="failed" if r.error else "ok", error=r.error,
                )
                img.hashes = [Hash(algo=a, bits=np.ascontiguousarray(b, np.uint8).tobytes()) for a, b in r.hashes.items()]
                img.vectors = [Vector(model=m, data=np.asarray(v, "<f2").tobytes()) for m, v in r.vectors.items()]
                if r.keypoints is not None:
                    img.keypoints = Keypoints(**_keypoint_blobs(r.keypoints))
                if r.mirrored_keypoints is not None:
                    img.mirrored_keypoints = MirroredKeypoints(**_keypoint_blobs(r.mirrored_keypoints))
                s.add(img)
            _bump(s)

    def copy_image(self, source_id: int, record: ImageRecord) -> None:
        """Store `record` (a new path) with the hashes and vectors of an identical image."""
        with self._session() as s:
            src = s.get(Image, source_id)
            record.sha256, record.width, record.height = src.sha256, src.width, src.height
            record.format, record.quality = src.format, src.quality
            record.hashes = {h.algo: np.frombuffer(h.bits, np.uint8) for h in src.hashes}
            record.vectors = {v.model: np.frombuffer(v.data, "<f2").astype(np.float32) for v in src.vectors}
            if src.keypoints is not None:
                record.keypoints = _keypoints(src.keypoints.points, src.keypoints.descriptors)
            if src.mirrored_keypoints is not None:
                record.mirrored_keypoints = _keypoints(src.mirrored_keypoints.points, src.mirrored_keypoints.descriptors)
        self.write([record])

    def move(self, image_id: int, path: str, size: int, mtime_ns: int) -> None:
        """Record that a known image now lives at `path` (renamed or moved, same bytes)."""
        with self._session.begin() as s:
            s.execute(
                update(Image).where(Image.id == image_id)
                .values(path=path, size=size, mtime_ns=mtime_ns, updated_at=func.now())
            )
            _bump(s)

    def put_vectors(self, model: str, ids: Sequence[int], vectors: NDArray[np.float32]) -> None:
        """Store (N, D) float32 vectors of `model` for images `ids`, replacing older ones."""
        self.put_vector_sets({model: (ids, vectors)})

    def put_vector_sets(self, sets: Mapping[str, tuple[Sequence[int], NDArray[np.float32]]]) -> None:
        """`put_vectors` for several models (or views: ``cnn`` and ``cnn@box``) in one
        transaction, so that an interrupted run never stores one without the other."""
        with self._session.begin() as s:
            for model, (ids, vectors) in sets.items():
                s.execute(delete(Vector).where(Vector.model == model, Vector.image_id.in_(list(map(int, ids)))))
                s.add_all(
                    Vector(image_id=int(i), model=model, data=np.asarray(v, "<f2").tobytes())
                    for i, v in zip(ids, vectors)
                )
            _bump(s)

    def missing_vectors(self, model: str) -> list[tuple[int, str]]:
        """(id, path) of indexed images that have no vector of `model` yet."""
        has = select(Vector.image_id).where(Vector.model == model)
        q = select(Image.id, Image.path).where(Image.status == "ok", Image.id.not_in(has)).order_by(Image.id)
        with self._session() as s:
            return [(i, p) for i, p in s.execute(q)]

    def remove(self, ids: Iterable[int]) -> None:
        ids = [int(i) for i in ids]
        if not ids:
            return
        with self._session.begin() as s:
            for chunk in _chunks(ids, 900):
                s.execute(delete(Image).where(Image.id.in_(chunk)))
            _bump(s)


def _keypoint_blobs(features: tuple[NDArray[np.float32], NDArray[np.uint8]]) -> dict[str, bytes]:
    points, descriptors = features
    return {"points": np.asarray(points, "<f2").tobytes(),
            "descriptors": np.ascontiguousarray(descriptors, np.uint8).tobytes()}


def _keypoints(points: bytes, descriptors: bytes) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    return (np.frombuffer(points, "<f2").astype(np.float32).reshape(-1, 2),
            np.frombuffer(descriptors, np.uint8).reshape(-1, 32))


def _engine(path: Path):
    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _pragmas)
    return engine


def _bump(s: Session) -> None:
    bumped = cast(cast(Setting.value, Integer) + 1, String)
    s.execute(update(Setting).where(Setting.key == "generation").values(value=bumped))


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
