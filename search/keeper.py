"""Which member of a duplicate group to keep: the suggested keeper and the reason for it."""

from __future__ import annotations

from collections.abc import Sequence

from neardup.storage.records import ImageInfo


def keeper_key(im: ImageInfo) -> tuple:
    """Largest resolution, then largest file, then oldest mtime, then path."""
    return (-(im.width or 0) * (im.height or 0), -im.size, im.mtime_ns, im.path)


def choose_keeper(images: Sequence[ImageInfo]) -> ImageInfo:
    return min(images, key=keeper_key)
