"""An image's colour layout: the mean colour of a LAYOUT_SIDE x LAYOUT_SIDE grid of cells over
its decoded pixels, for telling a recoloured variant from a copy (`neardup.search.recolour`).

Keypoints see grey levels, and hashes and CNN vectors barely move when one object of a picture
changes colour, so the same drawing recoloured on the same background verifies as a copy. The
layout keeps where each colour is, in the frame of the keypoints (the decoded image), so that
once verification has aligned two images the colours can be compared cell by cell. 32 x 32
cells resolve an object a tenth of the frame wide into some ten cells; 3 KB per image, a tenth
of what its keypoints take.

The layout also marks which cells are flat, one colour throughout (`ColourLayout.flat`): the
canvas a copy was pasted, padded or rotated onto (`neardup.search.canvas`). Keypoints cannot
tell: ORB finds none within 31 pixels of an image's edge, which is where a padding lies.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from .pixels import checked_rgb

__all__ = ["FLAT_STD", "LAYOUT_SIDE", "STORED_BYTES", "ColourLayout", "colour_layout", "has_flat_cells"]

LAYOUT_SIDE = 32
# A flat cell's pixels deviate from its mean by at most this (standard deviation, grey levels,
# in its most varied channel): a fill colour saved as JPEG stays well below; the dark sky of an
# astrophoto, the most uniform picture in the duplicates benchmark, is above in most cells.
# Chosen on that benchmark's development seed (docs/BENCHMARKS.md).
FLAT_STD = 1.0
_MEANS = LAYOUT_SIDE * LAYOUT_SIDE * 3
_FLAT_BYTES = LAYOUT_SIDE * LAYOUT_SIDE // 8
STORED_BYTES = _MEANS + _FLAT_BYTES  # a stored layout's blob (`ColourLayout.to_bytes`)


@dataclass(frozen=True)
class ColourLayout:
    """`cells`: (LAYOUT_SIDE, LAYOUT_SIDE, 3) uint8 RGB means, row-major over an image of
    `width` x `height` decoded pixels (the frame its keypoints' coordinates are in); `flat`:
    (LAYOUT_SIDE, LAYOUT_SIDE) bool, the cells of one colour (FLAT_STD), None in a layout
    stored before they were marked."""

    width: int
    height: int
    cells: NDArray[np.uint8]
    flat: NDArray[np.bool_] | None = None

    def mirrored(self) -> ColourLayout:
        """The layout of the left-right mirror image (whose keypoints are stored mirrored)."""
        flat = None if self.flat is None else np.ascontiguousarray(self.flat[:, ::-1])
        return ColourLayout(self.width, self.height, np.ascontiguousarray(self.cells[:, ::-1]), flat)

    def to_bytes(self) -> bytes:
        """The means, then the flat cells' bits: one blob, so that a layout stored before the
        bits existed is told by its length (`has_flat_cells`) and filled again from its file."""
        means = np.ascontiguousarray(self.cells, np.uint8).tobytes()
        return means if self.flat is None else means + np.packbits(self.flat.ravel()).tobytes()

    @staticmethod
    def cells_from_bytes(data: bytes) -> NDArray[np.uint8]:
        """The `cells` of a stored layout (`to_bytes`), read-only, without its flat cells."""
        return np.frombuffer(data, np.uint8, _MEANS).reshape(LAYOUT_SIDE, LAYOUT_SIDE, 3)

    @classmethod
    def from_bytes(cls, width: int, height: int, data: bytes) -> ColourLayout:
        cells = cls.cells_from_bytes(data)
        flat = None
        if has_flat_cells(data):
            bits = np.unpackbits(np.frombuffer(data[_MEANS:], np.uint8), count=LAYOUT_SIDE * LAYOUT_SIDE)
            flat = bits.reshape(LAYOUT_SIDE, LAYOUT_SIDE).astype(bool)
        return cls(width, height, cells, flat)


def has_flat_cells(data: bytes) -> bool:
    """Whether a stored layout (`ColourLayout.to_bytes`) marks its flat cells."""
    return len(data) == STORED_BYTES


def colour_layout(pixels: NDArray[np.uint8]) -> ColourLayout:
    """(H, W, 3) uint8 RGB -> its colour layout: each cell the mean of the pixels it covers,
    and flat when their standard deviation (E[x²] - E[x]², over the same area) is at most
    FLAT_STD in every channel."""
    rgb = checked_rgb(pixels)
    area = (LAYOUT_SIDE, LAYOUT_SIDE)
    cells = cv2.resize(rgb, area, interpolation=cv2.INTER_AREA)
    values = rgb.astype(np.float32)
    means = cv2.resize(values, area, interpolation=cv2.INTER_AREA)
    variance = cv2.resize(values * values, area, interpolation=cv2.INTER_AREA) - means * means
    flat = (variance <= FLAT_STD * FLAT_STD).all(axis=2)
    return ColourLayout(rgb.shape[1], rgb.shape[0], np.ascontiguousarray(cells, np.uint8), np.ascontiguousarray(flat))
