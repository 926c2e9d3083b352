"""SQLAlchemy models of the catalog: images, their hashes and vectors, and catalog settings."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Image(Base):
    """One file of the collection. `status` is "ok" or "failed" (then `error` says why)."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String, unique=True)
    size: Mapped[int]
    mtime_ns: Mapped[int]
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None]
    height: Mapped[int | None]
    format: Mapped[str | None] = mapped_column(String(16))
    quality: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(8), default="ok")
    error: Mapped[str | None]
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
    """A perceptual hash of an image: `bits` holds the packed bits (np.packbits order)."""

    __tablename__ = "hashes"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    algo: Mapped[str] = mapped_column(String(16), primary_key=True)
    bits: Mapped[bytes] = mapped_column(LargeBinary)

    image: Mapped[Image] = relationship(back_populates="hashes")


class Vector(Base):
    """A learned embedding of an image: `data` holds float16 values, little-endian."""

    __tablename__ = "vectors"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(32), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    image: Mapped[Image] = relationship(back_populates="vectors")


class _LocalFeatureColumns:
    """The columns of one image's local features (`indexer.features`): `points` holds (n, 2)
    x, y as float16 in pixels of the decoded image, `descriptors` (n, 32) uint8 binary
    descriptors."""

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    points: Mapped[bytes] = mapped_column(LargeBinary)
    descriptors: Mapped[bytes] = mapped_column(LargeBinary)


class Keypoints(_LocalFeatureColumns, Base):
    """Local features of an image."""

    __tablename__ = "keypoints"

    image: Mapped[Image] = relationship(back_populates="keypoints")


class MirroredKeypoints(_LocalFeatureColumns, Base):
    """The local features of an image's mirror image: binary descriptors are not
    mirror-invariant, so a flipped copy is verified against these."""

    __tablename__ = "mirrored_keypoints"

    image: Mapped[Image] = relationship(back_populates="mirrored_keypoints")


class Setting(Base):
    """Key/value settings of the catalog; values are JSON text."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str]


Index("ix_hashes_algo", Hash.algo)
Index("ix_vectors_model", Vector.model)
