"""An image's colour layout: the mean colour of a LAYOUT_SIDE x LAYOUT_SIDE grid of cells over
its decoded pixels, for telling a recoloured variant from a copy (`neardup.search.recolour`).

Keypoints see grey levels, and hashes and CNN vectors barely move when one object of a picture
changes colour, so the same drawing recoloured on the same background verifies as a copy. The
layout keeps where each colour is, in the frame of the keypoints (the decoded image), so that
once verification has aligned two images the colours can be compared cell by cell. 32 x 32
cells resolve an object a tenth of the frame wide into some ten cells; 3 KB per image, a tenth
of what its keypoints take.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from .pixels import checked_rgb

__all__ = ["LAYOUT_SIDE", "ColourLayout", "colour_layout"]

LAYOUT_SIDE = 32


@dataclass(frozen=True)
class ColourLayout:
    """`cells`: (LAYOUT_SIDE, LAYOUT_SIDE, 3) uint8 RGB means, row-major over an image of
    `width` x `height` decoded pixels (the frame its keypoints' coordinates are in)."""

    width: int
    height: int
    cells: NDArray[np.uint8]

    def mirrored(self) -> ColourLayout:
        """The layout of the left-right mirror image (whose keypoints are stored mirrored)."""
        return ColourLayout(self.width, self.height, np.ascontiguousarray(self.cells[:, ::-1]))

    def to_bytes(self) -> bytes:
        return np.ascontiguousarray(self.cells, np.uint8).tobytes()

    @classmethod
    def from_bytes(cls, width: int, height: int, data: bytes) -> ColourLayout:
        return cls(width, height, np.frombuffer(data, np.uint8).reshape(LAYOUT_SIDE, LAYOUT_SIDE, 3))


def colour_layout(pixels: NDArray[np.uint8]) -> ColourLayout:
    """(H, W, 3) uint8 RGB -> its colour layout (each cell the mean of the pixels it covers)."""
    rgb = checked_rgb(pixels)
    cells = cv2.resize(rgb, (LAYOUT_SIDE, LAYOUT_SIDE), interpolation=cv2.INTER_AREA)
    return ColourLayout(rgb.shape[1], rgb.shape[0], np.ascontiguousarray(cells, np.uint8))
