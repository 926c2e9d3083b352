"""A copy on a blank canvas: one image that shows all of another, and around it only flat colour.

Padding a picture onto a larger square, rotating it onto an expanded canvas, warping it as if
photographed at an angle: each such copy shows the whole original and adds canvas of one
colour. The extra pixels win it "largest resolution" in the keeper's rules, while its border
is too thin, or not a rectangle, for the content box (`indexer.regions`) to find. The
homography that verification fits between the two images tells: mapped through it, the
original's frame lies inside the copy's, and the copy's layout cells outside that frame are
flat (`indexer.colours`). Keypoints cannot say it: ORB finds none within 31 pixels of an
image's edge, which is where a padding lies.

A crop is the same geometry seen from the other side: the original's frame extends beyond the
crop's. Its cells there hold picture, unless the crop took away only a flat border; then the
two show the same picture, and either is as good a keeper.

Thresholds chosen on the duplicates benchmark's development seed (docs/BENCHMARKS.md). There,
of 620 verified pairs of an original and its copy, the copy was found on a canvas in 92 (17
of 19 warped, 33 of 38 rotated, 13 of 21 padded, 29 of 39 framed), the original in 2.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.colours import LAYOUT_SIDE, ColourLayout

MIN_BEYOND = 0.02  # the canvas covers at least this share of the copy's cells (about 20 of 1,024)
MIN_BLANK = 0.9  # and at least this share of those cells is flat (a fill saved as JPEG rings at the picture's edge)
MAX_OTHER_BEYOND = 0.005  # while the original's frame lies inside the copy's: at most this share of its cells outside
_MARGIN_PX = 2.0  # a cell counts as outside the other's frame only this far beyond it (decoded pixels)


def beyond(layout: ColourLayout, other_width: int, other_height: int,
           homography: NDArray[np.float64]) -> tuple[float, float]:
    """(share of `layout`'s cells wholly outside the other image's frame, share of those cells
    that are flat): the other's `other_width` x `other_height` frame mapped into this image by
    `homography` (other -> this). (0, 0) when the frame maps to no convex quadrilateral (no
    copy's geometry) or the layout has no flat cells marked."""
    if layout.flat is None:
        return 0.0, 0.0
    corners = np.array([[0, 0, 1], [other_width, 0, 1], [other_width, other_height, 1], [0, other_height, 1]],
                       np.float64)
    mapped = corners @ homography.T
    if np.any(mapped[:, 2] <= 1e-9):
        return 0.0, 0.0  # part of the frame maps through infinity
    quad = mapped[:, :2] / mapped[:, 2:]
    edges = np.roll(quad, -1, axis=0) - quad
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not (np.all(turns > 0) or np.all(turns < 0)):
        return 0.0, 0.0
    xs = np.linspace(0.0, layout.width, LAYOUT_SIDE + 1)
    ys = np.linspace(0.0, layout.height, LAYOUT_SIDE + 1)
    gx, gy = np.meshgrid(xs, ys)  # (S+1, S+1) cell corners
    outward = 1.0 if turns[0] < 0 else -1.0  # image y points down: a clockwise quad turns positive
    outside = np.zeros((LAYOUT_SIDE, LAYOUT_SIDE), bool)
    for (x0, y0), (dx, dy) in zip(quad, edges):
        distance = outward * (dx * (gy - y0) - dy * (gx - x0)) / max(np.hypot(dx, dy), 1e-9)
        far = distance > _MARGIN_PX
        # a cell is outside when all four of its corners lie beyond one edge's line
        outside |= far[:-1, :-1] & far[:-1, 1:] & far[1:, :-1] & far[1:, 1:]
    share = float(outside.mean())
    return share, float(layout.flat[outside].mean()) if outside.any() else 0.0


def on_canvas(beyond_this: float | NDArray, blank_this: float | NDArray,
              beyond_other: float | NDArray) -> np.bool_ | NDArray[np.bool_]:
    """Whether an image shows all of another on a blank canvas, from `beyond`'s two figures
    for it and the first for the other (scalars, or columns of pairs)."""
    return ((np.asarray(beyond_this) >= MIN_BEYOND) & (np.asarray(blank_this) >= MIN_BLANK)
            & (np.asarray(beyond_other) <= MAX_OTHER_BEYOND))
