"""Everything neardup stores about one file, computed from its bytes (in a worker process).

One read per file: its SHA-256 (a known file that moved is recognised by it and not decoded
again), then one decode to the catalog's decode side, from which come the hashes, the PDQ
quality, the content box and its hashes (`regions`), the ORB keypoints of the image and of
its mirror and its colour layout (all three for verification), and the pixels the embedders
need, resized in the worker so that only small arrays travel back. Those pixels are
pipeline-only values: they are never stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neardup.storage.models import BOX, IMAGE
from neardup.storage.records import Bits, ImageRecord
from neardup.storage.settings import CatalogSettings

from .colours import colour_layout
from .decode import UnreadableImageError, decode
from .embed import Embedder, resize_square
from .embedders import embed_views
from .features import FEATURES_ID, orb_and_mirror
from .hashes import compute_hashes, pdq
from .regions import content_box
from .traits import exif_record
from .walk import FileEntry

Pixels = NDArray[np.uint8]
Inputs = dict[str, dict[int, Pixels]]  # view -> input side -> (side, side, 3) uint8 RGB


@dataclass(frozen=True)
class Moved:
    """A new path whose bytes equal those of a catalogued file that disappeared."""

    entry: FileEntry
    image_id: int


@dataclass
class Extracted:
    """A processed file: the `record` to store and its embedders' `inputs` (not stored)."""

    record: ImageRecord
    inputs: Inputs = field(default_factory=dict)


@dataclass(frozen=True)
class EmbedInputs:
    """A catalogued image's embedder inputs, or `error`: why they cannot be made now."""

    inputs: Inputs
    error: str | None = None


def extract(
    entry: FileEntry, settings: CatalogSettings, orphans: Mapping[str, int], sizes: Sequence[int]
) -> Extracted | Moved:
    """Read, hash and decode one file; `orphans` maps the SHA-256 of vanished catalogued
    files to their ids; `sizes` are the input sides of the catalog's embedders."""
    record = ImageRecord(path=entry.path, size=entry.size, mtime_ns=entry.mtime_ns)
    try:
        data = Path(entry.path).read_bytes()
    except OSError as e:
        record.error = f"cannot read: {e.strerror or e}"
        return Extracted(record)
    record.sha256 = hashlib.sha256(data).hexdigest()
    if record.sha256 in orphans:
        return Moved(entry, orphans[record.sha256])
    try:
        image = decode(data, max_side=settings.decode_side)
    except UnreadableImageError as e:
        record.error = str(e)
        return Extracted(record)
    record.width, record.height, record.format = image.width, image.height, image.format
    record.hashes[IMAGE], record.quality = image_hashes(image.pixels, settings.hashes)
    record.noise, record.jpeg_quality = image.noise, image.jpeg_quality
    record.enlargement = image.enlargement.to_bytes() if image.enlargement else None
    record.taken_at, record.camera = exif_record(data)
    views = {IMAGE: image.pixels}
    box = content_box(image.pixels, settings.decode_side)
    if box is not None:
        record.hashes[BOX] = image_hashes(box, settings.hashes)[0]
        views[BOX] = box
    if settings.local_features == FEATURES_ID:
        record.keypoints, record.mirrored_keypoints = (
            tuple(f) for f in orb_and_mirror(image.pixels, side=settings.decode_side))
        record.colour_layout = stored_layout(image.pixels)
    return Extracted(record, _resized(views, sizes))


def stored_layout(pixels: Pixels) -> tuple[int, int, bytes]:
    """An image's colour layout as the catalog stores it (`ImageRecord.colour_layout`)."""
    layout = colour_layout(pixels)
    return layout.width, layout.height, layout.to_bytes()


def local_features_of(path: str, decode_side: int) -> tuple[tuple, tuple] | str:
    """A catalogued file's local features and its mirror image's (`ImageRecord.keypoints`,
    `mirrored_keypoints`), computed as the indexer computes them, or why decoding failed now."""
    try:
        plain, mirror = orb_and_mirror(decode(path, max_side=decode_side, traits=False).pixels, side=decode_side)
    except UnreadableImageError as e:
        return str(e)
    return tuple(plain), tuple(mirror)


def keeper_traits_of(path: str, decode_side: int) -> tuple[float, bytes | None] | str:
    """A catalogued file's noise and enlargement record (`ImageRecord.noise`, `.enlargement`),
    measured as the indexer measures them, or why decoding failed now."""
    try:
        image = decode(path, max_side=decode_side)
    except UnreadableImageError as e:
        return str(e)
    return image.noise, image.enlargement.to_bytes() if image.enlargement else None


def layout_of(path: str, decode_side: int) -> tuple[int, int, bytes] | str:
    """A catalogued file's stored colour layout, decoded as the indexer decodes, or why that
    failed now."""
    try:
        return stored_layout(decode(path, max_side=decode_side, traits=False).pixels)
    except UnreadableImageError as e:
        return str(e)


def extract_embedded(
    entry: FileEntry, settings: CatalogSettings, orphans: Mapping[str, int], sizes: Sequence[int],
    embedders: Sequence[Embedder],
) -> Extracted | Moved:
    """`extract`, then the vectors of `embedders` (`embed.worker_copy`s), computed here in the
    worker that decoded the file so that vectors travel back instead of pixels; the inputs
    kept are those of `sizes` (the embedders that run in the calling process)."""
    found = extract(entry, settings, orphans, sorted({*sizes, *(e.input_size for e in embedders)}))
    if isinstance(found, Moved) or found.record.error:
        return found
    for embedder in embedders:
        for view, (rows, vectors) in embed_views(embedder, [found.inputs]).items():
            if rows:
                found.record.vectors.setdefault(view, {})[embedder.name] = vectors[0]
    found.inputs = {view: {size: found.inputs[view][size] for size in sizes} for view in found.inputs}
    return found


def image_hashes(pixels: Pixels, names: Sequence[str]) -> tuple[dict[str, Bits], int]:
    """The hashes `names` of an (H, W, 3) uint8 image, and its PDQ quality score."""
    hashes = compute_hashes(pixels, [n for n in names if n != "pdq"])
    pdq_bits, quality = pdq(pixels)  # PDQ gives the image's quality score too
    if "pdq" in names:
        hashes["pdq"] = pdq_bits
    return hashes, quality


def embed_inputs(path: str, decode_side: int, sizes: Sequence[int], views: Sequence[str] = (IMAGE, BOX)) -> EmbedInputs:
    """A catalogued file's embedder inputs for `views` (the box only when it has one), decoded
    as the indexer decodes, or why that failed now."""
    try:
        pixels = decode(path, max_side=decode_side, traits=False).pixels
    except UnreadableImageError as e:
        return EmbedInputs({}, str(e))
    found = {IMAGE: pixels}
    if BOX in views and (box := content_box(pixels, decode_side)) is not None:
        found[BOX] = box
    return EmbedInputs(_resized(found, sizes))


def _resized(views: Mapping[str, Pixels], sizes: Sequence[int]) -> Inputs:
    return {view: {size: resize_square(pixels, size) for size in sizes} for view, pixels in views.items()}
