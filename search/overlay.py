"""An overlay: a caption, logo, watermark or date stamp pasted onto a copy of a picture.

Aligned by the homography verification fits, a copy with an overlay differs from its original
in one part of the picture. In the copy that part stands out from the picture around it: its
colours jump at its edge. In the original the picture runs on through it. So the two colour
layouts (`indexer.colours`) are compared: where they differ (the region, found in the first
image's frame and carried to the other's), and how far the region's cells next to agreeing
ones are from their closest agreeing neighbour, in each image's own cells (`standouts`). The
image whose region stands out far more holds the overlay; the keeper passes it over
(`has_overlay`). Each from its own cells: the other's colours, sampled between its cell
centres and tone-mapped, are smoothed, and would make whichever image is compared second look
like the original.

On the duplicates benchmark's development seed, of 620 verified pairs of an original and its
copy, the copy was found to hold the overlay in 16 of 19 captioned, 13 of 20 stickered and 46
of 68 pairs sharing an overlay with other pictures (and in 37 of other kinds: screenshots,
framed, rotated), the original in 5 (docs/BENCHMARKS.md). STANDS_OUT and MARGIN were chosen
there by the keeper's accuracy, within a plateau (docs/BENCHMARKS.md). Finding the region in
each frame on its own instead kept the original in a few more groups (2 on dev, 5 on test),
at a second tone curve per pair.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.colours import ColourLayout

from .recolour import BLOB_DISTANCE, Difference, cell_positions, keeps_keypoints

MIN_SHARE, MAX_SHARE = 0.005, 0.3  # of the aligned cells: an overlay covers a part of the picture
STANDS_OUT = 2.0  # times the other image's standout ...
MARGIN = 10.0  # ... plus this (RGB distance): the overlay's edge
_MIN_ALIGNED = 100  # fewer aligned cells (of 1,024) show no picture around a region
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def standouts(query: ColourLayout, candidate: ColourLayout, homography: NDArray[np.float64],
              difference: Difference | None = None, points: NDArray[np.float32] | None = None
              ) -> tuple[float, float]:
    """How strongly the region where the two images differ stands out from the picture around
    it in each (`homography`: query -> candidate): the median, over the region's cells next to
    agreeing ones, of the RGB distance to the closest agreeing neighbour, in the image's own
    cells. -1 each when there is no such region: too few aligned cells, or differing cells
    outside [MIN_SHARE, MAX_SHARE] of them (none, or the whole picture changed). The region
    is found in the query's frame (`difference`, when the caller has it) and carried to the
    candidate's through the homography. Nor is there one where the query's matched keypoints
    (`points`, when given) lie as densely as elsewhere: the picture goes on there under other
    colours (a colour edit that one tone curve does not explain), where an overlay hides it."""
    found = Difference(query, candidate, homography) if difference is None else difference
    cells, inside = found.cells, found.inside
    if inside.sum() < _MIN_ALIGNED:
        return -1.0, -1.0
    if (inside & (found.raw >= BLOB_DISTANCE)).sum() < MIN_SHARE * inside.sum():
        return -1.0, -1.0  # the region is no larger with the tone curve: most copies stop here, cheaply
    region = inside & (found.toned >= BLOB_DISTANCE)
    if not MIN_SHARE <= region.sum() / inside.sum() <= MAX_SHARE:
        return -1.0, -1.0
    if points is not None and keeps_keypoints(query, region, inside, points):
        return -1.0, -1.0
    x, y, theirs_inside = cell_positions(candidate, query, np.linalg.inv(homography))
    n = region.shape[0]
    rows, cols = np.clip(np.rint(y).astype(np.intp), 0, n - 1), np.clip(np.rint(x).astype(np.intp), 0, n - 1)
    theirs_inside &= inside[rows, cols]
    theirs = theirs_inside & region[rows, cols]
    return (edge_contrast(cells, region, inside & ~region),
            edge_contrast(candidate.cells.astype(np.float32), theirs, theirs_inside & ~theirs))


def edge_contrast(cells: NDArray[np.float32], region: NDArray[np.bool_], agreeing: NDArray[np.bool_]) -> float:
    """The median over `region`'s cells with an `agreeing` neighbour (of 8) of the RGB distance
    to the closest one; -1 when no region cell has one."""
    n = cells.shape[0]
    rows, cols = np.nonzero(region)
    offsets = np.array(_NEIGHBOURS)
    ny, nx = rows[:, None] + offsets[:, 0], cols[:, None] + offsets[:, 1]  # (k, 8)
    on_grid = (ny >= 0) & (ny < n) & (nx >= 0) & (nx < n)
    ny, nx = np.clip(ny, 0, n - 1), np.clip(nx, 0, n - 1)
    usable = on_grid & agreeing[ny, nx]
    distance = np.linalg.norm(cells[rows, cols][:, None, :] - cells[ny, nx], axis=2)
    closest = np.where(usable, distance, np.inf).min(axis=1, initial=np.inf)
    edge = closest[np.isfinite(closest)]
    return float(np.median(edge)) if len(edge) else -1.0


def has_overlay(standout_this: float | NDArray, standout_other: float | NDArray) -> np.bool_ | NDArray[np.bool_]:
    """Whether an image holds an overlay the other lacks, from both images' `standout`
    (scalars, or columns of pairs)."""
    this, other = np.asarray(standout_this), np.asarray(standout_other)
    return (this >= 0) & (other >= 0) & (this > STANDS_OUT * other + MARGIN)
