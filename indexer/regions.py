"""Query variants: the query as given, its mirror image, and the picture inside it.

A copy shown inside a screenshot, framed by a border or letterboxed keeps the picture but
changes everything around it, and a global descriptor of the whole query mostly sees the
frame. `content_box` finds a picture pasted onto such a frame: the largest region that stands
out from the frame (textured, or far from the background colour: a dark star field on a grey
window is flat but not the window's colour; the background is a uniform frame's colour, else
the image's most common colour) and fills its bounding box almost completely, as a pasted
rectangle does; where neither holds such a region, what was drawn on a window of one flat
colour (`_on_chrome`). The search compares that crop too, taking each candidate's best score
over the variants; the indexer stores the crop's features as the image's "box" view
(`storage.models.VIEWS`), which duplicates compare. On the project benchmark it finds a box in
85 % of hard screenshots and in 2 % of plain references (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from .features import enlarge, mirrored

_MIN_STD = 4.0  # grey-level standard deviation (5x5 window) that counts as texture
_BACKGROUND_DIFF = 24  # a pixel this far (any channel) from the most common colour stands out
_MIN_AREA = 0.04  # the region must cover at least this fraction of the query ...
_MAX_BOX = 0.9  # ... and its box at most this fraction (else it is the whole image)
_MIN_FILL = 0.9  # region pixels / box pixels: a pasted picture is a full rectangle
_MIN_SIDE = 0.15  # and spans at least this fraction of the query's width and height
_RING, _RING_UNIFORM = 2, 0.98  # the outermost pixels, and the share of them a uniform frame holds
# A window or page drawn by a program is one exact colour where nothing is drawn on it, within
# this many levels (any channel; a photograph's flat patches wander further, save where they
# clip to black or white) ...
_CHROME_DIFF = 3
_CHROME_SHARE = 0.1  # ... and that colour covers at least this share of the image
_CHROME_SAMPLE = 4  # every this many pixels a side are counted to find that colour (cheap on photos)
_CHROME_TEXTURE = 0.05  # textured share of a picture found on chrome: no gradient or blank panel


def content_box(pixels: NDArray[np.uint8], side: int = 0) -> NDArray[np.uint8] | None:
    """The picture pasted into an (H, W, 3) uint8 image (a screenshot, a frame), cropped; None
    when there is none or it is (nearly) the whole image. `side` (the decode side): an image
    with a shorter long side is searched `enlarge`d to it, and the box cropped from its own
    pixels: the texture window and the closing and opening kernels are pixels of a decoded
    image, and would swallow a frame a few pixels wide around a thumbnail."""
    enlarged = enlarge(pixels, side) if side else pixels
    found = _box(enlarged)
    if found is None:
        return None
    x, y, w, h = found
    sy, sx = pixels.shape[0] / enlarged.shape[0], pixels.shape[1] / enlarged.shape[1]
    return np.ascontiguousarray(pixels[round(y * sy) : round((y + h) * sy), round(x * sx) : round((x + w) * sx)])


def _box(pixels: NDArray[np.uint8]) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of `content_box`'s picture in `pixels`, or None."""
    height, width = pixels.shape[:2]
    frame = frame_colour(pixels)
    far = far_from_background(pixels, frame)
    standing_out = _opened(cv2.morphologyEx(_textured(pixels) | far, cv2.MORPH_CLOSE,
                                            np.ones((9, 9), np.uint8)))  # fill smooth patches between texture
    best = _dominant(standing_out)
    if best is None:
        # the colour mask alone too: closing can bridge a picture to a title bar just above it
        found = _boxes(standing_out) + _boxes(_opened(far))
        best = max(found, key=lambda box: box[4], default=None)  # the first of the largest
    if best is None or best[2] * best[3] > _MAX_BOX * height * width:
        return None if frame is not None else _on_chrome(pixels)
    return best[:4]


def _on_chrome(pixels: NDArray[np.uint8]) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of a picture on a window or page drawn in one flat colour, or None.

    The masks above fail where the picture is close to the window's colour: a dark star field
    or night photo on a dark theme is not far from it and mostly not textured, and a picture
    on a white page, shown small, is bridged by the closing to the text around it. But a
    program fills its window with one exact colour, which a photograph's pixels keep only
    where they clip: everything else is what was drawn on it, and the picture is the largest full
    rectangle of that, apart from the text (the opening cuts its thin strokes). Not on an
    image with a uniform frame, whose colour the masks above already measured against (a star
    field fading into a black border would be boxed at its fade: `_box` asks only without
    one), nor a bar across the whole image (a title bar, a toolbar), nor a region with next to
    no texture (a gradient)."""
    height, width = pixels.shape[:2]
    sample = pixels[::_CHROME_SAMPLE, ::_CHROME_SAMPLE].astype(np.int32)
    values, counts = np.unique((sample[..., 0] << 16) | (sample[..., 1] << 8) | sample[..., 2], return_counts=True)
    code = int(values[counts.argmax()])
    colour = np.array([code >> 16, (code >> 8) & 255, code & 255])
    if (np.abs(sample - colour).max(axis=2) <= _CHROME_DIFF).mean() < _CHROME_SHARE:
        return None
    low, high = np.maximum(colour - _CHROME_DIFF, 0), np.minimum(colour + _CHROME_DIFF, 255)
    drawn = (cv2.inRange(pixels, low, high) == 0).view(np.uint8)
    drawn = cv2.morphologyEx(drawn, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    found = [box for box in _boxes(drawn) if box[2] < width and box[3] < height]
    best = max(found, key=lambda box: box[4], default=None)
    if best is None or best[2] * best[3] > _MAX_BOX * height * width:
        return None
    x, y, w, h = best[:4]
    if _textured(np.ascontiguousarray(pixels[y : y + h, x : x + w])).mean() < _CHROME_TEXTURE:
        return None
    return x, y, w, h


def _textured(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """1 where the grey-level standard deviation of the 5x5 window exceeds _MIN_STD, else 0."""
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(gray, (5, 5))
    variance = cv2.blur(gray * gray, (5, 5)) - mean * mean
    return (variance > _MIN_STD**2).astype(np.uint8)


def _opened(mask: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((15, 15), np.uint8))  # drop text lines, bars


def _is_box(x: int, y: int, w: int, h: int, area: int, height: int, width: int) -> bool:
    """Whether a region of `area` pixels in the bounding box (x, y, w, h) is a pasted picture."""
    return (area >= _MIN_AREA * height * width and area >= _MIN_FILL * w * h
            and w >= _MIN_SIDE * width and h >= _MIN_SIDE * height)


def _boxes(mask: NDArray[np.uint8]) -> list[tuple[int, int, int, int, int]]:
    """(x, y, w, h, area) of the mask's 4-connected regions that are pasted pictures."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    return [(x, y, w, h, area) for x, y, w, h, area in stats[1:count].tolist() if _is_box(x, y, w, h, area, *mask.shape)]


def _dominant(mask: NDArray[np.uint8]) -> tuple[int, int, int, int, int] | None:
    """The region of the standing-out mask holding the image's centre when it covers more than
    half the image and is a pasted picture, else None. Such a region is the largest region of
    every mask `content_box` searches (the colour mask's regions lie inside the standing-out
    mask's), so it decides the answer, found by one flood fill (~0.2 ms) instead of labelling
    every region of both masks (~1.2 ms each); it is the common case, a photo's one textured
    region, in two images out of three of the project corpus."""
    height, width = mask.shape
    centre = (width // 2, height // 2)
    if not mask[centre[1], centre[0]]:
        return None
    filled = np.zeros((height + 2, width + 2), np.uint8)
    area, _, _, (x, y, w, h) = cv2.floodFill(mask, filled, centre, 1, flags=4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    if 2 * area <= height * width or not _is_box(x, y, w, h, area, height, width):
        return None
    return x, y, w, h, int(area)


def far_from_background(pixels: NDArray[np.uint8], frame: NDArray[np.float64] | None) -> NDArray[np.uint8]:
    """1 where a pixel's colour differs by more than _BACKGROUND_DIFF (in any channel) from the
    background colour, 0 elsewhere. The background is the colour of the uniform `frame` around
    the image (`frame_colour`), else the image's most common colour (16 levels per channel;
    the mean of that bin's pixels)."""
    background = frame
    if background is None:
        histogram = cv2.calcHist([pixels], [0, 1, 2], None, [16, 16, 16], [0, 256] * 3)
        common = np.array(np.unravel_index(int(histogram.argmax()), histogram.shape)) * 16
        in_bin = cv2.inRange(pixels, common, common + 15)
        background = np.round(cv2.mean(pixels, mask=in_bin)[:3])
    near = cv2.inRange(pixels, np.maximum(background - _BACKGROUND_DIFF, 0), np.minimum(background + _BACKGROUND_DIFF, 255))
    return (near == 0).view(np.uint8)


def frame_colour(pixels: NDArray[np.uint8]) -> NDArray[np.float64] | None:
    """The colour of the image's outermost _RING pixels on all four sides when nearly all of
    them (_RING_UNIFORM) are within _BACKGROUND_DIFF / 2 of it: a border or a canvas, whose
    colour a picture inside it may outnumber (a green frame around a white-backed photo)."""
    ring = np.concatenate([pixels[:_RING].reshape(-1, 3), pixels[-_RING:].reshape(-1, 3),
                           pixels[:, :_RING].reshape(-1, 3), pixels[:, -_RING:].reshape(-1, 3)])
    colour = np.median(ring, axis=0)
    close = np.all(np.abs(ring.astype(np.int16) - colour) <= _BACKGROUND_DIFF // 2, axis=1)
    return colour if close.mean() >= _RING_UNIFORM else None


def query_variants(pixels: NDArray[np.uint8], side: int = 0) -> list[NDArray[np.uint8]]:
    """The query, its mirror image, and its content box when it has one (found as `content_box`
    finds it with `side`, the catalog's decode side)."""
    variants = [pixels, mirrored(pixels)]
    box = content_box(pixels, side)
    return variants if box is None else [*variants, box]

