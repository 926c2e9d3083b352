"""Thumbnails of catalogued images, cached on disk beside the catalog (photos.db ->
photos.thumbs/), so a page of a thousand results decodes each image once, not on every view.

A thumbnail is the image as `decode` reads it (EXIF orientation applied, the megapixel guard
on) fitted to a side from `SIDES`, saved as JPEG. Asked sides are rounded up to one of them,
so the cache holds a few sizes per image whatever clients ask. The key of a thumbnail (its
cached name and its ETag) holds the file's SHA-256 and `RENDERING`: a changed file, or a
neardup that decodes it otherwise, gets a new thumbnail, and nothing stale is ever served.
What no image of the catalog can ask for any more is deleted after each `index` (`prune`).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from PIL import Image

from neardup.indexer.decode import DECODING, decode
from neardup.storage.records import ImageInfo

SIDES = (64, 128, 256, 512, 1024, 2048)  # 2048: the compare view's full-screen zoom
QUALITY = 85  # JPEG quality: no visible artefacts at thumbnail size, a third of q95's bytes
# The decoding's version (a colour profile honoured, a turn corrected: `decode.DECODING`):
# thumbnails and ETags made before it was raised are never served. A change to how thumbnails
# alone are made would give `thumbnail_key` a version of its own.
RENDERING = DECODING
_NAME = re.compile(r"(\d+)-(\d+)-([0-9a-f]{16}|none)-r(\d+)\.jpg")  # `ThumbnailCache.cached`
_ABANDONED_S = 3600  # a half-written thumbnail this old was left by a killed process


def thumbnail_side(asked: int) -> int:
    """The cached side that serves a request for `asked` pixels: the smallest at least as
    large (the browser scales down cleanly), or the largest."""
    return next((side for side in SIDES if side >= asked), SIDES[-1])


def thumbnail_key(sha256: str | None, side: int) -> str:
    """What names the thumbnail of a file of content `sha256` at `side` (one of SIDES), on
    disk and as its ETag."""
    return f"{side}-{(sha256 or 'none')[:16]}-r{RENDERING}"


def render(path: str | Path, side: int) -> bytes:
    """A JPEG of the image at `path`, its long side at most `side` (never enlarged).

    Raises `UnreadableImageError` when the file cannot be decoded."""
    pixels = decode(path, max_side=side).pixels
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


class ThumbnailCache:
    """Thumbnails in one folder, named `<id>-<thumbnail_key>.jpg`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def cached(self, image: ImageInfo, side: int) -> Path:
        return self.folder / f"{image.image_id}-{thumbnail_key(image.sha256, side)}.jpg"

    def get(self, image: ImageInfo, side: int) -> bytes:
        """The thumbnail of `image` at `side` (one of SIDES), rendered on first use."""
        path = self.cached(image, side)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        data = render(image.path, side)
        self._store(path, data)
        return data

    def prune(self, images: Mapping[int, str | None]) -> int:
        """Delete the thumbnails no image of `images` {id: SHA-256} (those in the collection)
        asks for now: of changed or removed files, of an older rendering or naming, and
        half-written ones a killed process left. Returns how many were deleted."""
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return 0  # no cache yet, or one that cannot be read: nothing to do
        deleted = 0
        for entry in entries:
            if entry.name.endswith(".jpg"):
                found = _NAME.fullmatch(entry.name)
                stale = found is None or int(found[2]) not in SIDES or int(found[4]) != RENDERING or \
                    int(found[1]) not in images or (images[int(found[1])] or "none")[:16] != found[3]
            else:
                stale = entry.name.endswith(".part") and _age(entry) > _ABANDONED_S
            if stale:
                try:
                    os.unlink(entry.path)
                    deleted += 1
                except OSError:
                    pass  # deleted meanwhile, or a folder not writable: only space is lost
        return deleted

    def _store(self, path: Path, data: bytes) -> None:
        """Write aside, then rename: a reader never sees half a file. A cache that cannot be
        written (a read-only folder, a full disk) only costs speed, so it is not an error."""
        try:
            self.folder.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".part")
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)


def _age(entry: os.DirEntry) -> float:
    try:
        return time.time() - entry.stat().st_mtime
    except OSError:
        return 0.0
