"""Query variants: the query as given, its mirror image, and the picture inside it.

A copy shown inside a screenshot, framed by a border or letterboxed keeps the picture but
changes everything around it, and a global descriptor of the whole query mostly sees the
frame. `content_box` finds the largest textured, nearly rectangular region of the query (the
frame, title bars, sidebars and margins are flat or thin text), and the search compares
that crop too, taking each candidate's best score over the variants.

Measured on the project benchmark with the CNN alone (63 queries per cell, `R@1 as given ->
best of as given and the crop`): screenshot/hard 31 -> 43, screenshot/mild 46 -> 56,
border/hard 55 -> 59; other families are unchanged (a plain photo rarely has a box).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from neardup.indexer.features import mirrored

_MIN_STD = 4.0  # grey-level standard deviation (5x5 window) that counts as texture
_MIN_AREA = 0.04  # the region must cover at least this fraction of the query ...
_MAX_BOX = 0.9  # ... and its box at most this fraction (else it is the whole image)
_MIN_FILL = 0.4  # region pixels / box pixels: a picture mostly fills its box, text does not
_MIN_SIDE = 0.25  # and spans at least this fraction of the query's width and height


def content_box(pixels: NDArray[np.uint8]) -> NDArray[np.uint8] | None:
    """The largest textured rectangle-like region of an (H, W, 3) uint8 image, cropped; None
    when there is none or it is (nearly) the whole image."""
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(gray, (5, 5))
    variance = cv2.blur(gray * gray, (5, 5)) - mean * mean
    mask = (variance > _MIN_STD**2).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))  # fill smooth patches
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((15, 15), np.uint8))  # drop text lines
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    height, width = gray.shape
    best = None
    for x, y, w, h, area in stats[1:count]:
        if (area >= _MIN_AREA * height * width and area >= _MIN_FILL * w * h
                and w >= _MIN_SIDE * width and h >= _MIN_SIDE * height):
            if best is None or area > best[4]:
                best = (x, y, w, h, area)
    if best is None or best[2] * best[3] > _MAX_BOX * height * width:
        return None
    x, y, w, h, _ = best
    return np.ascontiguousarray(pixels[y : y + h, x : x + w])


def query_variants(pixels: NDArray[np.uint8]) -> list[NDArray[np.uint8]]:
    """The query, its mirror image, and its content box when it has one."""
    variants = [pixels, mirrored(pixels)]
    box = content_box(pixels)
    return variants if box is None else [*variants, box]


def enlarge(pixels: NDArray[np.uint8], side: int) -> NDArray[np.uint8]:
    """A small variant (a content box) scaled up so its long side is `side`, as the indexer
    saw whole images, so that local features find room on it; larger images are returned as
    they are."""
    height, width = pixels.shape[:2]
    if max(height, width) >= side:
        return pixels
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)
