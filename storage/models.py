"""SQLAlchemy models of the catalog: images, their features per view, models, roots, settings."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from urllib.parse import quote, unquote_to_bytes

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# An image's features are stored per *view*: the whole image, and its content box (the
# picture inside a screenshot or a frame, found by `indexer.regions.content_box`) when it has
# one. Duplicates compare two images over their views; searches query the whole-image indexes.
IMAGE = "image"
BOX = "box"
VIEWS = (IMAGE, BOX)


class PathText(TypeDecorator):
    """A file path as text. File names are bytes on Linux; one that is not valid UTF-8 (held
    by Python as surrogate escapes, PEP 383) cannot be stored as text as it is, so it is
    percent-encoded behind a "%", which no absolute path starts with: every path round-trips
    exactly, and valid UTF-8 paths are stored as they are."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        if value is None:
            return None
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return "%" + quote(os.fsencode(value), safe="/")

    def process_result_value(self, value: str | None, dialect) -> str | None:
        if value is None or not value.startswith("%"):
            return value
        return os.fsdecode(unquote_to_bytes(value[1:]))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Every integer column is 64-bit: file sizes and mtime_ns outgrow 32 bits. SQLite's INTEGER
# already is (and an "INTEGER PRIMARY KEY" is its rowid), so the type changes only elsewhere.
BigInt = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {int: BigInt}


class Image(Base):
    """One file of the collection. `status` is "ok" or "failed" (then `error` says why)."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(PathText, unique=True)
    size: Mapped[int]
    mtime_ns: Mapped[int]
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None]
    height: Mapped[int | None]
    format: Mapped[str | None] = mapped_column(String(16))
    quality: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(8), default="ok")
    error: Mapped[str | None]
    # a gradient percentile the keeper read before `enlargement`; no longer written or read, but
    # kept: dropping a column makes SQLite rebuild the table, whose cascades would empty the
    # feature tables during the upgrade
    detail: Mapped[float | None] = mapped_column(Float)
    # what the keeper weighs (`search.keeper`); None in rows indexed before they were measured
    noise: Mapped[float | None] = mapped_column(Float)
    taken_at: Mapped[str | None] = mapped_column(String(32))
    camera: Mapped[str | None] = mapped_column(String(128))
    jpeg_quality: Mapped[int | None] = mapped_column(Integer)  # 1-100: small on every backend
    enlargement: Mapped[bytes | None] = mapped_column(LargeBinary)  # `indexer.enlargement.STORED_BYTES` (older: 40)
    # the `indexer.decode.DECODING` version this image's unchanged file was read again for, since
    # an older neardup decoded it otherwise; NULL for an image read as its bytes came. Part of
    # its content (`Catalog.feature_ids`): what was derived from its old features is stale.
    redecoded: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    hashes: Mapped[list[Hash]] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )
    vectors: Mapped[list[Vector]] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )
    keypoints: Mapped[Keypoints | None] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )
    mirrored_keypoints: Mapped[MirroredKeypoints | None] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )


class Hash(Base):
    """A perceptual hash of one view of an image: `bits` holds the packed bits (np.packbits order)."""

    __tablename__ = "hashes"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    algo: Mapped[str] = mapped_column(String(16), primary_key=True)
    view: Mapped[str] = mapped_column(String(8), primary_key=True, default=IMAGE)
    bits: Mapped[bytes] = mapped_column(LargeBinary)

    image: Mapped[Image] = relationship(back_populates="hashes")


class Vector(Base):
    """A learned embedding of one view of an image: `data` holds float16 values, little-endian."""

    __tablename__ = "vectors"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(32), primary_key=True)
    view: Mapped[str] = mapped_column(String(8), primary_key=True, default=IMAGE)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    image: Mapped[Image] = relationship(back_populates="vectors")


class _LocalFeatureColumns:
    """The columns of one image's local features (`indexer.features`): `points` holds (n, 2)
    x, y as float16 in pixels of the decoded image, `descriptors` (n, 32) uint8 binary
    descriptors, `colours` (n, 3) uint8 RGB around each keypoint (NULL: indexed before they
    were stored)."""

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    points: Mapped[bytes] = mapped_column(LargeBinary)
    descriptors: Mapped[bytes] = mapped_column(LargeBinary)
    colours: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Keypoints(_LocalFeatureColumns, Base):
    """Local features of an image."""

    __tablename__ = "keypoints"

    image: Mapped[Image] = relationship(back_populates="keypoints")


class MirroredKeypoints(_LocalFeatureColumns, Base):
    """The local features of an image's mirror image: binary descriptors are not
    mirror-invariant, so a flipped copy is verified against these."""

    __tablename__ = "mirrored_keypoints"

    image: Mapped[Image] = relationship(back_populates="mirrored_keypoints")


class ColourLayout(Base):
    """An image's colour layout (`indexer.colours`): `cells` holds (32, 32, 3) uint8 RGB cell
    means over its decoded image of `width` x `height` pixels, the frame of its keypoints."""

    __tablename__ = "colour_layouts"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    cells: Mapped[bytes] = mapped_column(LargeBinary)


class Model(Base):
    """The model behind one vector feature (`indexer.embedders`): its identity, which decides
    whether stored vectors are still valid, and for a model trained on the catalog its file."""

    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[int]
    dim: Mapped[int]
    input_size: Mapped[int]
    options: Mapped[str] = mapped_column(default="{}")  # JSON: what else shapes the vectors
    file: Mapped[str | None]  # a trained model's file, beside the catalog
    sha256: Mapped[str | None] = mapped_column(String(64))
    training: Mapped[str | None]  # JSON: how and when it was trained
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Root(Base):
    """A folder (or file) given to `index`: what `move` actions keep paths relative to."""

    __tablename__ = "roots"

    path: Mapped[str] = mapped_column(PathText, primary_key=True)
    indexed_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# What an image row's `status` becomes once the clean-up has acted on its file (at most 8
# characters: `Image.status` is String(8)); undo sets it back to "ok".
IMAGE_STATUS = {"trash": "trashed", "move": "moved", "delete": "deleted", "hardlink": "linked", "symlink": "linked"}
# Run states: "applying" is also what an interrupted apply leaves; "partly undone" means an
# undo refused some entries (their reason is on the entry) and may be retried.
APPLYING, APPLIED, UNDOING, PARTLY_UNDONE, UNDONE = "applying", "applied", "undoing", "partly undone", "undone"
PLANNED, DONE, SKIPPED, ENTRY_UNDONE = "planned", "done", "skipped", "undone"


class CleanRun(Base):
    """One `apply` of one plan (identified by its digest)."""

    __tablename__ = "clean_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(16))
    plan_digest: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=APPLYING)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    undone_at: Mapped[datetime | None]


class CleanEntry(Base):
    """One file action of a run. `seq` is the action's place in the plan, stable across
    re-applies of the same plan; `destination` is where the file went (move target, trashed
    file, or link target); `recovery` keeps the bytes a link replaced when they cannot be
    re-created from the keeper."""

    __tablename__ = "clean_entries"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("clean_runs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int]
    group_no: Mapped[int]
    action: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(PathText, index=True)
    destination: Mapped[str | None] = mapped_column(PathText)
    keeper: Mapped[str] = mapped_column(PathText)
    recovery: Mapped[str | None] = mapped_column(PathText)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    mtime_ns: Mapped[int | None]
    mode: Mapped[int | None]
    keeper_sha256: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(8), default=PLANNED)
    reason: Mapped[str | None]
    planned_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]
    undone_at: Mapped[datetime | None]


class NotDuplicate(Base):
    """A user's word that two images are not duplicates of each other, by content (SHA-256,
    `first` < `second`), so that it holds through re-indexing, moves and renames."""

    __tablename__ = "not_duplicates"

    first: Mapped[str] = mapped_column(String(64), primary_key=True)
    second: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvidenceSet(Base):
    """The pair evidence `duplicates` stored under one set of versions (`storage.pairs`):
    `key` is the JSON of every version and setting that shaped it; `generation`, the catalog
    generation at which it covered every image (None: never, or not since the last change)."""

    __tablename__ = "evidence_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(unique=True)
    generation: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvidenceSegment(Base):
    """One computation's share of an evidence set: the images whose pairs it computed and
    the pairs it kept, as named columns (an .npz of plain arrays, read without pickle)."""

    __tablename__ = "evidence_segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("evidence_sets.id", ondelete="CASCADE"), index=True)
    images: Mapped[int]
    pairs: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Decision(Base):
    """The groups one `duplicates` run decided (`storage.decisions`): `key` is the SHA-256 of
    what shaped them (feature, threshold, options, code); `generation`, the catalog generation
    they were decided at: at any other, they are stale."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(unique=True)
    generation: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Setting(Base):
    """Catalog-wide values, JSON text; read and written only through `Catalog`'s accessors."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str]


# with the image id last, a read of one feature's rows in id order walks the index (0011)
Index("ix_hashes_feature", Hash.algo, Hash.view, Hash.image_id)
Index("ix_vectors_feature", Vector.model, Vector.view, Vector.image_id)
