"""Thumbnails of catalogued images, cached on disk beside the catalog (photos.db ->
photos.thumbs/), so a page of a thousand results decodes each image once, not on every view.

A thumbnail is the image as `decode` reads it (EXIF orientation applied, the megapixel guard
on) fitted to a side from `SIDES`, saved as JPEG. Asked sides are rounded up to one of them,
so the cache holds a few sizes per image whatever clients ask. The key of a thumbnail (its
cached name and its ETag) holds the file's SHA-256 and `RENDERING`: a changed file, or a
neardup that decodes it otherwise, gets a new thumbnail, and nothing stale is ever served.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image

from neardup.indexer.decode import decode
from neardup.storage.records import ImageInfo

SIDES = (64, 128, 256, 512, 1024, 2048)  # 2048: the compare view's full-screen zoom
QUALITY = 85  # JPEG quality: no visible artefacts at thumbnail size, a third of q95's bytes
# Bumped whenever decoding gives some file other pixels (a colour profile honoured, a turn
# corrected), or rendering changes: thumbnails and ETags made before are then never served.
RENDERING = 2


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
