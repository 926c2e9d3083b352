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

A composite of two pictures side by side (or stacked, or one inset in a corner of the other,
matched through the inset) has that geometry too, with a difference a crop lacks: where the
matched picture's frame ends, another picture begins, so the colours change sharply all along
that edge (`seam`), while across a crop's edge the picture goes on as it does anywhere else.
An image that shows another whole, with a fifth or more of itself beyond it, mostly not flat,
across such a seam, shows it *beside* a second picture (`beside`): no copy of it.

Thresholds chosen on the duplicates benchmark's development seed (docs/BENCHMARKS.md). There,
of 620 verified pairs of an original and its copy, the copy was found on a canvas in 92 (17
of 19 warped, 33 of 38 rotated, 13 of 21 padded, 29 of 39 framed), the original in 2. The
seam's too, where every threshold around the chosen ones kept the same pairs apart; it misses
a second picture whose colours where the two meet are those of the first (the 32 x 32 layout
shows no seam there).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.colours import LAYOUT_SIDE, ColourLayout

MIN_BEYOND = 0.02  # the canvas covers at least this share of the copy's cells (about 20 of 1,024)
MIN_BLANK = 0.9  # and at least this share of those cells is flat (a fill saved as JPEG rings at the picture's edge)
MAX_OTHER_BEYOND = 0.005  # while the original's frame lies inside the copy's: at most this share of its cells outside
_MARGIN_PX = 2.0  # a cell counts as outside the other's frame only this far beyond it (decoded pixels)
MIN_BESIDE = 0.2  # a second picture beside the other covers this share of the image's cells or more
MAX_BESIDE_BLANK = 0.4  # of which less than this share is flat (else it is a canvas, a caption band, a window)
MAX_BESIDE_OTHER = 0.05  # while the other's frame lies (nearly) inside the image's
# an image showing all of another inside a surround of its own this large, this much of it flat,
# shows a copy (a window, a frame, the screen a photo was taken of): its hashes and vectors
# see mostly the surround, so its geometric match alone decides (`shown_whole`)
MIN_SURROUND = 0.2
MIN_SURROUND_BLANK = 0.7
MIN_SEAM = 2.0  # the step across the seam, over the step inside the picture next to it (`seam`)
SEAM_FLOOR = 75.0  # the least step inside counted, in levels summed over R, G and B: a seam is sharp in itself
SEAM_BEYOND = 0.1  # `seam` is measured only on a side with this share of its cells beyond the other (else 0)
_SEAM_STEP = 1.0  # cells between the edge and each sample either side of it
_SEAM_INNER = 3.0  # cells inside the edge of the sample the inner step is measured to, and the least depth beyond
_MIN_SEAM_SAMPLES = 4  # samples along an edge for it to count
# and its tilt from the image's axes at most (degrees): pictures are put side by side, stacked
# or inset upright, while the frame of a rotated or warped copy's crop runs aslant
_MAX_SEAM_TILT = 3.0


def beyond(layout: ColourLayout, other_width: int, other_height: int,
           homography: NDArray[np.float64]) -> tuple[float, float]:
    """(share of `layout`'s cells wholly outside the other image's frame, share of those cells
    that are flat): the other's `other_width` x `other_height` frame mapped into this image by
    `homography` (other -> this). (0, 0) when the frame maps to no convex quadrilateral (no
    copy's geometry) or the layout has no flat cells marked."""
    if layout.flat is None:
        return 0.0, 0.0
    frame = _frame(other_width, other_height, homography)
    if frame is None:
        return 0.0, 0.0
    quad, edges, outward = frame
    # the cell corners' distances beyond each of the four edges' lines, (4, S+1, S+1), at once:
    # called for both sides of every verified pair, the loop over edges cost twice as much
    xs = np.linspace(0.0, layout.width, LAYOUT_SIDE + 1)[None, None, :]
    ys = np.linspace(0.0, layout.height, LAYOUT_SIDE + 1)[None, :, None]
    x0, y0, dx, dy = (column[:, None, None] for column in (*quad.T, *edges.T))
    length = np.maximum(np.hypot(dx, dy), 1e-9)
    far = outward * (dx * (ys - y0) - dy * (xs - x0)) / length > _MARGIN_PX
    # a cell is outside when all four of its corners lie beyond one edge's line
    outside = (far[:, :-1, :-1] & far[:, :-1, 1:] & far[:, 1:, :-1] & far[:, 1:, 1:]).any(axis=0)
    share = float(outside.mean())
    return share, float(layout.flat[outside].mean()) if outside.any() else 0.0


def seam(layout: ColourLayout, other_width: int, other_height: int, homography: NDArray[np.float64]) -> float:
    """How sharply `layout`'s picture changes across the edge of the other image's frame
    (mapped by `homography`, other -> this) where that edge runs inside it: per edge, the
    median colour step from _SEAM_STEP cells inside to as many outside, over the median step
    inside (to _SEAM_INNER cells in; SEAM_FLOOR at least); the largest over the upright edges
    (_MAX_SEAM_TILT) with _MIN_SEAM_SAMPLES samples or more where the image goes on _SEAM_INNER
    cells either side of the edge. 0 when none does."""
    frame = _frame(other_width, other_height, homography)
    if frame is None:
        return 0.0
    quad, pixel_edges, outward = frame
    scale = np.array([LAYOUT_SIDE / layout.width, LAYOUT_SIDE / layout.height])
    quad, edges = quad * scale, pixel_edges * scale  # in cells
    cells = layout.cells.astype(np.float32)
    best = 0.0
    for start, edge, pixels in zip(quad, edges, pixel_edges):
        length = float(np.hypot(*edge))
        if length < _MIN_SEAM_SAMPLES or _tilt(pixels) > _MAX_SEAM_TILT:
            continue
        normal = outward * np.array([-edge[1], edge[0]]) / length
        along = start + np.outer(np.arange(0.5, length, 1.0) / length, edge)
        # a sample counts where the image goes on _SEAM_INNER cells beyond the edge too: a frame
        # or a margin is thinner than that, a second picture is not
        points = [along + step * normal for step in (_SEAM_STEP, -_SEAM_STEP, -_SEAM_INNER, _SEAM_INNER)]
        inside = np.all([((p >= 0) & (p < LAYOUT_SIDE)).all(axis=1) for p in points], axis=0)
        if inside.sum() < _MIN_SEAM_SAMPLES:
            continue
        out, near, far = (cells[p[inside, 1].astype(int), p[inside, 0].astype(int)] for p in points[:3])
        across = float(np.median(np.abs(out - near).sum(axis=1)))
        within = float(np.median(np.abs(near - far).sum(axis=1)))
        best = max(best, across / max(within, SEAM_FLOOR))
    return best


def _tilt(edge: NDArray[np.float64]) -> float:
    """Degrees between an edge (dx, dy, in pixels) and the nearer of the image's axes."""
    angle = float(np.degrees(np.arctan2(abs(edge[1]), abs(edge[0]))))
    return min(angle, 90.0 - angle)


def _frame(other_width: int, other_height: int, homography: NDArray[np.float64]
           ) -> tuple[NDArray[np.float64], NDArray[np.float64], float] | None:
    """The other's frame mapped by `homography`: its corners (4, 2), its edges (each corner to
    the next) and the sign that turns an edge's left-hand normal outward; None when part of it
    maps through infinity or it is no convex quadrilateral (no copy's geometry)."""
    corners = np.array([[0, 0, 1], [other_width, 0, 1], [other_width, other_height, 1], [0, other_height, 1]],
                       np.float64)
    mapped = corners @ homography.T
    if np.any(mapped[:, 2] <= 1e-9):
        return None
    quad = mapped[:, :2] / mapped[:, 2:]
    following = [1, 2, 3, 0]
    edges = quad[following] - quad
    turns = edges[:, 0] * edges[following, 1] - edges[:, 1] * edges[following, 0]
    if not (np.all(turns > 0) or np.all(turns < 0)):
        return None
    return quad, edges, 1.0 if turns[0] < 0 else -1.0  # image y points down: a clockwise quad turns positive


def on_canvas(beyond_this: float | NDArray, blank_this: float | NDArray,
              beyond_other: float | NDArray) -> np.bool_ | NDArray[np.bool_]:
    """Whether an image shows all of another on a blank canvas, from `beyond`'s two figures
    for it and the first for the other (scalars, or columns of pairs)."""
    return ((np.asarray(beyond_this) >= MIN_BEYOND) & (np.asarray(blank_this) >= MIN_BLANK)
            & (np.asarray(beyond_other) <= MAX_OTHER_BEYOND))


def shown_whole(beyond_this: float | NDArray, blank_this: float | NDArray,
                beyond_other: float | NDArray) -> np.bool_ | NDArray[np.bool_]:
    """Whether an image shows all of another inside a mostly flat surround of its own (a
    screenshot's window, a photographed screen, a wide frame), from `beyond`'s figures
    (scalars, or columns of pairs). Looser than `on_canvas`, which asks nearly all of a
    surround of any size to be flat; the keeper passes both copies over. A second picture
    beside the other is no surround (`beside`: mostly not flat)."""
    return ((np.asarray(beyond_this) >= MIN_SURROUND) & (np.asarray(blank_this) >= MIN_SURROUND_BLANK)
            & (np.asarray(beyond_other) <= MAX_OTHER_BEYOND))


def beside(beyond_this: float | NDArray, blank_this: float | NDArray, beyond_other: float | NDArray,
           seam_this: float | NDArray) -> np.bool_ | NDArray[np.bool_]:
    """Whether an image shows another whole beside a second picture (a composite), from
    `beyond`'s figures and its `seam` (scalars, or columns of pairs)."""
    return ((np.asarray(beyond_this) >= MIN_BESIDE) & (np.asarray(blank_this) < MAX_BESIDE_BLANK)
            & (np.asarray(beyond_other) <= MAX_BESIDE_OTHER) & (np.asarray(seam_this) >= MIN_SEAM))
