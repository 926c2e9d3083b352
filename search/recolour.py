"""Whether two aligned images differ in the colour of one region: a recoloured variant (the same
drawing in another colour on the same background), or another picture pasted in.

Geometric verification aligns two images by their keypoints, which see grey levels only; a
recoloured object keeps its shading, so its corners match and the pair verifies as a copy
(hashes and CNN vectors barely move either). Its colours do not: compared cell by cell through
the homography (`neardup.indexer.colours` layouts), one compact inner region differs strongly
while the rest of the frame agrees. A copy under a colour filter (gamma, grey, sepia, a hue
shift) differs everywhere or nowhere, not in one blob:

1. the candidate's layout is sampled at the query's cell centres mapped by the homography;
2. a region is a blob of inner cells (not within RING cells of the aligned area's edge: a
   frame, banner, caption or app chrome added to a copy lies there) whose colours differ by
   BLOB_DISTANCE or more, and not a band along an edge of the inner cells (BAND_SPAN of their
   width or height, at most BAND_DEPTH deep: a banner or lower third deeper than the ring);
3. it differs from its context when its median difference is CONTRAST times the upper
   quartile of the difference everywhere else (so a copy whose colours all moved has none);
4. both the raw colours and the colours after one tone curve fitted to the whole frame (all
   channels alike) must show such a region of at least MIN_BLOB of the aligned cells: the
   tone curve explains a gamma or contrast change (bright regions move, dark ones do not),
   which the raw colours alone take for a local change.

Tuned on the development seed of `scripts/bench_duplicates.py` (docs/BENCHMARKS.md): of its
within-group pairs, the rule flags 74 % of recoloured variants and 25 % of composites, against
2.2 % of true copies (most with an overlay on the picture or a colour edit: a change in one
region is what it looks for) and 10 % of copies under a global colour filter (hue, sepia,
saturation). On the test seed, not tuned on: 67 %, 34 %, 2.0 % and 8 %. Where one object is a
picture's only colourful part, shifting every hue recolours that object, and a selective
colour edit of a copy (only its purples turned orange) is one: both are taken for recolours.
So is a large logo pasted over a copy (a third of its width), as much a region that differs
as a pasted picture. A copy of one variant whose tones all moved (gamma) differs from another
variant everywhere, not in one region: the layouts miss it, the keypoints' hues (below) do not.

A thin object (a bird's wings, a letter's strokes) covers too little of any layout cell to
show there. The matched keypoints keep their own colours (`neardup.indexer.features`), and
those on a recoloured object changed hue while keeping their shading (`shifted_hues`):
MIN_SHIFTED or more inliers saturated in both images (chroma CHROMA or more in CIELAB) whose
hue turned by HUE_SHIFT degrees or more (however many of all inliers: a figure on a soft
backdrop holds most of them), while the rest of the picture kept its colours: there are
KEPT_CELLS or more aligned layout cells saturated in both and MARGIN cells or more from those
keypoints, and KEPT_SHARE of them turned by less than KEPT_TURN degrees. A gamma, contrast,
saturation or warm/cool filter turns no hue that far, and a hue rotation turns every saturated
part, the context too. Where the object is a picture's only saturated part (clip-art on a
dimmed, greyish photo), its tinted cells (chroma TINT or more) are the context instead: a hue
rotation turns a tint by its angle as it turns a saturated colour, while a recolour leaves it.
Only for a turn of HUE_SHIFT or more: a heavy JPEG and a colour edit together turn a saturated
object's keypoints by 25-60 degrees, all one way, over a plain background
(docs/BENCHMARKS.md). A picture with no tinted context either says nothing and is left a copy.

A recolour into a neighbouring hue (red to orange, blue to purple, green to teal: 25-50
degrees) turns the object's keypoints less than HUE_SHIFT, but all of them one way by about
one angle, while a re-encoded copy's subsampled chroma turns a few saturated details that far
every which way. On the development seed, keypoints turned NEAR_SHIFT or more had a mean unit
vector of length 1.0 in each of 7 pairs of neighbouring-hue template variants, and of 0.65-0.87
in 3 pairs of a JPEG copy and its original (where they were 6-10 of 21-283 saturated
inliers). So they count too when their turns cohere (COHERENT), under the same conditions.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from numpy.typing import NDArray

from neardup.indexer.colours import LAYOUT_SIDE, ColourLayout

__all__ = ["recoloured", "shifted_hues"]

BLOB_DISTANCE = 25.0  # RGB distance of a cell that differs (cells are means: noise averages out)
RING = 4  # cells at the aligned area's edge that never count towards a region (an eighth of a side)
CONTRAST = 3.0
MIN_CONTEXT = 3.0  # the least context difference: a copy of identical colours still has some
MIN_BLOB = 0.06  # of the aligned cells
BAND_SPAN, BAND_DEPTH = 0.9, 1 / 3  # a region this wide (or tall) of the inner cells, at most this deep: a band
CHROMA = 25.0  # CIELAB chroma of a saturated colour (grey, white and skin below it)
TINT = 10.0  # CIELAB chroma of a tinted one (a dimmed photo, stone, shadowed skin; grey below it)
HUE_SHIFT = 60.0  # degrees of CIELAB hue: red to orange is about 30, red to blue over 90
NEAR_SHIFT = 25.0  # a turn to a neighbouring hue counts, when the turns cohere:
COHERENT = 0.95  # the length of their mean unit vector (1: all one way by one angle)
MIN_SHIFTED = 6
KEPT_CELLS = 8
KEPT_SHARE = 0.75
KEPT_TURN = 20.0  # degrees: a re-encoded cell's hue wanders less
MARGIN = 2  # layout cells around a shifted keypoint that are the object, not its context
_MIN_ALIGNED = LAYOUT_SIDE * LAYOUT_SIDE // 8  # fewer aligned cells cannot show a region and a context
_TONE_BINS = 16
_TONE_QUANTILES = np.linspace(0.0, 1.0, _TONE_BINS + 1)


def recoloured(query: ColourLayout, candidate: ColourLayout, homography: NDArray[np.float64],
               points: NDArray[np.float32] | None = None) -> bool:
    """Whether `query` and `candidate` (whose keypoints `homography` maps query -> candidate)
    differ in colour in one compact inner region, and agree elsewhere; not where the region
    only lost its colour in a grey copy (`_greyed`, told by the query's matched keypoints,
    `points` (n, 2), when given)."""
    a, b, aligned = aligned_layouts(query, candidate, homography)
    if aligned.sum() < _MIN_ALIGNED:
        return False
    region = _differing_region(np.linalg.norm(a - b, axis=2), aligned)
    if region is None or _differing_region(np.linalg.norm(tone_mapped(a, b, aligned) - b, axis=2), aligned) is None:
        return False
    return points is None or not _greyed(query, candidate, region, aligned, points)


def _greyed(query: ColourLayout, candidate: ColourLayout, region: NDArray[np.bool_], aligned: NDArray[np.bool_],
            points: NDArray[np.float32]) -> bool:
    """Whether the `region` that differs is a grey copy's: one of the two pictures has no
    colour at all (all but a hundredth of its cells under TINT chroma), and the matched
    keypoints lie in the region at least as densely as in the rest of the aligned cells. A
    picture whose one colourful part is an object differs from its grey copy there alone, as a
    recolour does, but keeps its structure there; a picture pasted over a grey photo (a
    sticker, an inset, a logo) has none of the photo's keypoints where it lies. Of the pairs
    the region flagged where one picture is grey, on the duplicates bench's five development
    draws, this spares 17 of 19 of a copy and its original, and 4 of 33 others
    (docs/BENCHMARKS.md)."""
    if min(_colourfulness(query), _colourfulness(candidate)) >= TINT:
        return False
    return keeps_keypoints(query, region, aligned, points)


def keeps_keypoints(layout: ColourLayout, region: NDArray[np.bool_], aligned: NDArray[np.bool_],
                    points: NDArray[np.float32]) -> bool:
    """Whether the matched keypoints `points` (n, 2), in `layout`'s frame, lie in `region` of
    its cells at least as densely as in the rest of the `aligned` cells: the same picture there
    in other colours, not another pasted over it."""
    hits = np.zeros((LAYOUT_SIDE, LAYOUT_SIDE), np.int64)
    np.add.at(hits, _cells_of(points, layout), 1)
    rest = aligned & ~region
    return int(hits[region].sum()) * int(rest.sum()) >= int(hits[rest].sum()) * int(region.sum())


def _cells_of(points: NDArray[np.float32], layout: ColourLayout) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(rows, cols) of the layout cells holding `points` (n, 2), in the layout's frame."""
    n = LAYOUT_SIDE
    return (np.clip((points[:, 1] * n / layout.height).astype(np.intp), 0, n - 1),
            np.clip((points[:, 0] * n / layout.width).astype(np.intp), 0, n - 1))


def _colourfulness(layout: ColourLayout) -> float:
    """The CIELAB chroma its cells stay under but for a hundredth of them."""
    return float(np.percentile(_chroma_hue(layout.cells.reshape(-1, 3))[0], 99))


def shifted_hues(query: ColourLayout, candidate: ColourLayout, homography: NDArray[np.float64],
                 points: NDArray[np.float32], query_colours: NDArray[np.uint8],
                 candidate_colours: NDArray[np.uint8]) -> bool:
    """Whether the matched keypoints (the query's `points`, (n, 2), and both sides' colours,
    (n, 3) uint8 RGB, in match order) show one object recoloured while the rest of the two
    aligned layouts kept its colours (see the module's docstring)."""
    if len(points) < MIN_SHIFTED:
        return False
    turn = _signed_turn(query_colours, candidate_colours)
    far, near = np.abs(turn) >= HUE_SHIFT, np.abs(turn) >= NEAR_SHIFT  # NaN (unsaturated) compares False
    return (_object_turned(far, query, candidate, homography, points, tinted=True)
            or (_coherent(turn[near]) and _object_turned(near, query, candidate, homography, points)))


def _object_turned(shifted: NDArray[np.bool_], query: ColourLayout, candidate: ColourLayout,
                   homography: NDArray[np.float64], points: NDArray[np.float32], *, tinted: bool = False) -> bool:
    """Whether the `shifted` keypoints (of `points`) are one object's: the aligned layouts
    kept their hues away from them: their saturated cells, or with `tinted`, when fewer than
    KEPT_CELLS are saturated, their tinted ones. However many of the inliers they are: a
    figure on a soft backdrop holds most of them (docs/BENCHMARKS.md), and a filter over the
    whole picture turns its context too."""
    if int(shifted.sum()) < MIN_SHIFTED:
        return False
    a, b, aligned = aligned_layouts(query, candidate, homography)
    cells = np.zeros((LAYOUT_SIDE, LAYOUT_SIDE), np.uint8)
    cells[_cells_of(points[shifted], query)] = 1
    away = ~cv2.dilate(cells, np.ones((2 * MARGIN + 1, 2 * MARGIN + 1), np.uint8)).astype(bool)
    turned, chroma = _turned(a.reshape(-1, 3), b.reshape(-1, 3))
    inside = (aligned & away).ravel()
    for least in (CHROMA, TINT) if tinted else (CHROMA,):
        context = turned[inside & (chroma >= least)]
        if len(context) >= KEPT_CELLS:
            return float((context < KEPT_TURN).mean()) >= KEPT_SHARE
    return False


def _coherent(turns: NDArray[np.float64]) -> bool:
    """Whether hue turns (degrees) go one way by about one angle: the length of their mean
    unit vector is COHERENT or more."""
    return len(turns) >= MIN_SHIFTED and bool(abs(np.mean(np.exp(1j * np.radians(turns)))) >= COHERENT)


def _signed_turn(a: NDArray, b: NDArray) -> NDArray[np.float64]:
    """For two (n, 3) lists of RGB colours (0-255), the degrees by which each one's CIELAB hue
    turned from `a` to `b` (-180 to 180), where both are saturated (chroma CHROMA or more); NaN
    elsewhere."""
    (chroma_a, hue_a), (chroma_b, hue_b) = _chroma_hue(a), _chroma_hue(b)
    turned = np.angle(np.exp(1j * (hue_b - hue_a)), deg=True)
    return np.where((chroma_a >= CHROMA) & (chroma_b >= CHROMA), turned, np.nan)


def _turned(a: NDArray, b: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
    """For two (n, 3) lists of RGB colours (0-255), the degrees each one's CIELAB hue turned,
    and the lesser of its two chromas (a hue turn means something only where both have one)."""
    (chroma_a, hue_a), (chroma_b, hue_b) = _chroma_hue(a), _chroma_hue(b)
    return np.abs(np.angle(np.exp(1j * (hue_a - hue_b)), deg=True)), np.minimum(chroma_a, chroma_b)


def _chroma_hue(rgb: NDArray) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """CIELAB chroma and hue angle (radians) of (n, 3) RGB colours (0-255)."""
    lab = cv2.cvtColor(np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    return np.hypot(lab[:, 1], lab[:, 2]), np.arctan2(lab[:, 2], lab[:, 1])


def aligned_layouts(query: ColourLayout, candidate: ColourLayout, homography: NDArray[np.float64]
                    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_]]:
    """(query cells, candidate colours at the query cells' centres, where those fall inside the
    candidate), all (LAYOUT_SIDE, LAYOUT_SIDE, ...)."""
    x, y, inside = cell_positions(query, candidate, homography)
    sampled = cv2.remap(candidate.cells.astype(np.float32), x, y, cv2.INTER_LINEAR)
    return query.cells.astype(np.float32), sampled, inside


class Difference:
    """Where two aligned colour layouts differ, in the first one's cells: `cells`, its colours;
    `sampled`, the second's at those cells' centres mapped by the homography; `inside`, the
    cells that fall inside the second; `raw`, the RGB distance of the two; `toned`, the least
    of that and the distance once one tone curve (`tone_mapped`) has explained a gamma or
    colour change (both ways: the curve clips colours beyond the range it was fitted on).
    Worked out once for the questions asked of one aligned pair (`overlay.standouts`,
    `inset.block_edges`): aligning and tone-mapping were most of their cost."""

    def __init__(self, query: ColourLayout, candidate: ColourLayout, homography: NDArray[np.float64]) -> None:
        self.cells, self.sampled, self.inside = aligned_layouts(query, candidate, homography)
        self.raw = np.linalg.norm(self.cells - self.sampled, axis=2)

    @functools.cached_property
    def toned(self) -> NDArray[np.float32]:
        mapped = tone_mapped(self.cells, self.sampled, self.inside)
        return np.minimum(np.linalg.norm(mapped - self.sampled, axis=2), self.raw)


def cell_positions(query: ColourLayout, candidate: ColourLayout, homography: NDArray[np.float64]
                   ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_]]:
    """Where each query cell's centre falls in the candidate's grid of cells (x, y: column and
    row, fractional), and whether inside it; (LAYOUT_SIDE, LAYOUT_SIDE) each."""
    n = LAYOUT_SIDE
    col, row = np.meshgrid(np.arange(n, dtype=np.float32), np.arange(n, dtype=np.float32))
    centres = np.stack([(col + 0.5) * query.width / n, (row + 0.5) * query.height / n], axis=-1)
    mapped = cv2.perspectiveTransform(centres.reshape(-1, 1, 2), np.asarray(homography, np.float64)).reshape(n, n, 2)
    x = mapped[..., 0] * n / candidate.width - 0.5
    y = mapped[..., 1] * n / candidate.height - 0.5
    inside = (x >= 0) & (x <= n - 1) & (y >= 0) & (y <= n - 1)
    return x.astype(np.float32), y.astype(np.float32), inside


def _differing_region(distance: NDArray[np.float32], aligned: NDArray[np.bool_]) -> NDArray[np.bool_] | None:
    """Step 2-3 on one (n, n) map of colour distances: the region that differs, or None."""
    ring = np.ones((2 * RING + 1, 2 * RING + 1), np.uint8)
    inner = cv2.erode(aligned.astype(np.uint8), ring, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    differs = (aligned & inner & (distance >= BLOB_DISTANCE)).astype(np.uint8)
    found, labels, stats, _ = cv2.connectedComponentsWithStats(differs, connectivity=8)
    if found < 2:
        return None
    blob = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if blob.sum() < MIN_BLOB * aligned.sum() or _band(blob, inner):
        return None
    context = aligned & ~cv2.dilate(blob.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if context.sum() <= 10:
        return None
    contrast = CONTRAST * max(float(np.quantile(distance[context], 0.75)), MIN_CONTEXT)
    return blob if float(np.median(distance[blob])) >= contrast else None


def _band(blob: NDArray[np.bool_], inner: NDArray[np.bool_]) -> bool:
    """Whether `blob` is a band along one edge of the `inner` cells: it spans BAND_SPAN of
    their width (or height), at most BAND_DEPTH of the other way, and touches that edge. A
    banner, a lower third or a caption bar pasted on a copy runs across the picture from the
    ring; a recoloured object, a letter, a pasted picture lie inside it."""
    rows, cols = np.nonzero(inner)
    blob_rows, blob_cols = np.nonzero(blob)
    for (along, blob_along), (across, blob_across) in (((cols, blob_cols), (rows, blob_rows)),
                                                       ((rows, blob_rows), (cols, blob_cols))):
        span = (np.ptp(blob_along) + 1) / (np.ptp(along) + 1)
        depth = (np.ptp(blob_across) + 1) / (np.ptp(across) + 1)
        at_edge = blob_across.min() == across.min() or blob_across.max() == across.max()
        if span >= BAND_SPAN and depth <= BAND_DEPTH and at_edge:
            return True
    return False


def tone_mapped(a: NDArray[np.float32], b: NDArray[np.float32], cells: NDArray[np.bool_]) -> NDArray[np.float32]:
    """`a` through one monotone tone curve for all three channels, fitted to `b` over `cells`
    (the aligned ones): the median of b's values over each of _TONE_BINS quantile bins of a's,
    made non-decreasing. One curve explains a gamma, contrast or brightness change; a
    recoloured object moves its channels different ways, which one curve cannot follow."""
    x, y = a[cells].ravel(), b[cells].ravel()
    levels = x.astype(np.uint8)
    # a layout's own colours are whole levels 0-255: NumPy's stable sort of uint8 (a radix
    # sort) gives the same order as of the floats, in a fraction of the time
    order = np.argsort(levels if (levels == x).all() else x, kind="stable")
    x, y = x[order], y[order]  # x sorted: each of its quantile bins is a run, in order
    edges = sorted_quantiles(x, _TONE_QUANTILES)
    bins = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, _TONE_BINS - 1)
    counts = np.bincount(bins, minlength=_TONE_BINS)
    used = counts >= 3
    # y sorted within each of x's bins by one sort of a key that puts the bins first (colour
    # levels lie in 0-255: beside a bin times 1,024 they stay exact in float64)
    y_binned = (np.sort(bins * 1024.0 + y) - bins * 1024.0).astype(np.float32)
    xs_arr, first = np.unique(_run_medians(x, counts)[used], return_index=True)
    ys_arr = np.maximum.accumulate(_run_medians(y_binned, counts)[used])[first]
    if len(xs_arr) < 2:  # a flat image: only its offset can be fitted
        return a + (np.median(y) - np.median(x))
    return np.interp(a, xs_arr, ys_arr).astype(np.float32)


def sorted_quantiles(ordered: NDArray[np.float32], quantiles: NDArray[np.float64]) -> NDArray[np.float64]:
    """np.quantile(ordered, quantiles) of an ascending 1-d array, bit for bit (its default,
    linear method, step by step), without the partition np.quantile runs first: a seventh of
    its time on a layout's values, and it ran for every aligned pair (`tone_mapped`)."""
    count = len(ordered)
    virtual = (count - 1) * quantiles
    below = np.floor(virtual)
    top = virtual >= count - 1  # np.quantile takes the last value there
    low = np.where(top, -1.0, below).astype(np.intp)
    high = np.where(top, -1.0, below + 1).astype(np.intp)
    weight = virtual - low
    a, b = ordered[low], ordered[high]
    step = b - a
    out = np.add(a, step * weight)
    np.subtract(b, step * (1 - weight), out=out, where=weight >= 0.5)  # as np.quantile's lerp: exact at b
    return out


def _run_medians(ordered: NDArray[np.float32], counts: NDArray[np.intp]) -> NDArray[np.float32]:
    """np.median of each run of `ordered` (sorted within each run; run i is `counts[i]` long),
    0 for an empty one."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    low = ordered[np.minimum(starts + (counts - 1) // 2, len(ordered) - 1)]
    high = ordered[np.minimum(starts + counts // 2, len(ordered) - 1)]
    return np.where(counts > 0, (low + high) / 2, 0).astype(np.float32)
