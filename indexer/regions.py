"""Query variants: the query as given, its mirror image, and the picture inside it.

A copy shown inside a screenshot, framed by a border or letterboxed keeps the picture but
changes everything around it, and a global descriptor of the whole query mostly sees the
frame. `content_box` finds a picture pasted onto such a frame: the largest region that stands
out from the frame (textured, or far from the image's most common colour: a dark star field
on a grey window is flat but not the window's colour) and fills its bounding box almost
completely, as a pasted rectangle does. The search compares that crop too, taking each
candidate's best score over the variants; the indexer stores the crop's features as the
image's "box" view (`storage.models.VIEWS`), which duplicates compare. On the project
benchmark it finds a box in 85 % of hard screenshots and in 2 % of plain references
(docs/BENCHMARKS.md).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from .features import mirrored

_MIN_STD = 4.0  # grey-level standard deviation (5x5 window) that counts as texture
_BACKGROUND_DIFF = 24  # a pixel this far (any channel) from the most common colour stands out
_MIN_AREA = 0.04  # the region must cover at least this fraction of the query ...
_MAX_BOX = 0.9  # ... and its box at most this fraction (else it is the whole image)
_MIN_FILL = 0.9  # region pixels / box pixels: a pasted picture is a full rectangle
_MIN_SIDE = 0.15  # and spans at least this fraction of the query's width and height


def content_box(pixels: NDArray[np.uint8]) -> NDArray[np.uint8] | None:
    """The picture pasted into an (H, W, 3) uint8 image (a screenshot, a frame), cropped; None
    when there is none or it is (nearly) the whole image."""
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(gray, (5, 5))
    variance = cv2.blur(gray * gray, (5, 5)) - mean * mean
    far = _far_from_background(pixels).astype(np.uint8)
    standing_out = cv2.morphologyEx((variance > _MIN_STD**2).astype(np.uint8) | far, cv2.MORPH_CLOSE,
                                    np.ones((9, 9), np.uint8))  # fill smooth patches between texture
    height, width = gray.shape
    best = None
    # the colour mask alone too: closing can bridge a picture to a title bar just above it
    for mask in (standing_out, far):
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((15, 15), np.uint8))  # drop text lines, bars
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        for x, y, w, h, area in stats[1:count]:
            if (area >= _MIN_AREA * height * width and area >= _MIN_FILL * w * h
                    and w >= _MIN_SIDE * width and h >= _MIN_SIDE * height):
                if best is None or area > best[4]:
                    best = (x, y, w, h, area)
    if best is None or best[2] * best[3] > _MAX_BOX * height * width:
        return None
    x, y, w, h, _ = best
    return np.ascontiguousarray(pixels[y : y + h, x : x + w])


def _far_from_background(pixels: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """Pixels whose colour differs by more than _BACKGROUND_DIFF from the image's most common
    colour (16 levels per channel; the mean of that bin's pixels)."""
    bins = (pixels >> 4).astype(np.uint16)
    code = (bins[..., 0] << 8) | (bins[..., 1] << 4) | bins[..., 2]
    common = code == np.bincount(code.ravel(), minlength=4096).argmax()
    background = np.full_like(pixels, 0)
    background[:] = np.round(cv2.mean(pixels, mask=common.view(np.uint8))[:3]).astype(np.uint8)
    r, g, b = cv2.split(cv2.absdiff(pixels, background))
    return cv2.max(cv2.max(r, g), b) > _BACKGROUND_DIFF


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
