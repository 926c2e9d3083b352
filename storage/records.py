"""The values the catalog hands out and takes in: plain frozen records, no SQLAlchemy objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .models import IMAGE

Bits = NDArray[np.uint8]
Keypoints = tuple[NDArray[np.float32], NDArray[np.uint8], NDArray[np.uint8] | None]


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
    noise: float | None = None
    taken_at: str | None = None
    camera: str | None = None
    jpeg_quality: int | None = None
    has_box: bool = False
    enlargement: bytes | None = None  # `neardup.indexer.enlargement.Enlargement.to_bytes()`


@dataclass(frozen=True)
class ModelRecord:
    """The model behind a vector feature. Two records with the same identity (`model_id`,
    `version`, `dim`, `input_size`, `options`) make interchangeable vectors; `file`, `sha256`
    and `training` describe a model trained on the catalog (its file lies beside it)."""

    name: str
    model_id: str
    version: int
    dim: int
    input_size: int
    options: dict[str, Any] = field(default_factory=dict)
    file: str | None = None
    sha256: str | None = None
    training: dict[str, Any] | None = None

    def identity(self) -> tuple:
        return (self.model_id, self.version, self.dim, self.input_size, sorted(self.options.items()))


@dataclass
class ImageRecord:
    """A fully processed file, ready to be written in one transaction.

    `hashes` maps view -> hash name -> packed bits (uint8 array); `vectors` maps view ->
    model name -> (D,) float32 L2-normalised vector, stored as float16. The "image" view is
    the whole image; the "box" view, when present, its content box (`models.VIEWS`).
    `keypoints` is (points (n, 2) float32, descriptors (n, 32) uint8, colours (n, 3) uint8 or
    None), points stored as float16, and `mirrored_keypoints` the same of the mirror image; `colour_layout` is (width,
    height, cells) of `indexer.colours.ColourLayout`. A failed file has `error` set and no
    features.
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
    noise: float | None = None
    taken_at: str | None = None
    camera: str | None = None
    jpeg_quality: int | None = None
    enlargement: bytes | None = None  # `neardup.indexer.enlargement.Enlargement.to_bytes()`
    redecoded: int | None = None  # `models.Image.redecoded`
    hashes: dict[str, dict[str, Bits]] = field(default_factory=dict)
    vectors: dict[str, dict[str, NDArray[np.float32]]] = field(default_factory=dict)
    keypoints: Keypoints | None = None
    mirrored_keypoints: Keypoints | None = None
    colour_layout: tuple[int, int, bytes] | None = None

    def image_hashes(self) -> dict[str, Bits]:
        return self.hashes.get(IMAGE, {})
