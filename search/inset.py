"""A picture inset into another: a picture-in-picture, a photo pasted into a corner of another.

Verification matches the background the two images share, and that match is strong: the rest
of the frame is the same picture. So when the collection lacks the inset picture, or no
search pairs the image with it, the image links to the background's group alone and
`composites` cannot tell it from a copy. Yet it is no copy: it shows a second picture the
other lacks. Aligned by the homography, the two colour layouts (`indexer.colours`, compared
as `overlay` and `recolour` compare them) differ in one solid block (an inset is a
rectangle) that spans neither side of the frame (a caption band or a banner does), whichever
image's frame it is found in; and in the image holding the inset the block's edge stands out
(its frame, another picture's colours), while in the other the picture runs on through it
(`overlay.edge_contrast`, weighed by `overlay.has_overlay`).

On the duplicates benchmark's development seed, of the verified pairs kept as duplicates, the
block was found in 6 pairs of a picture-in-picture and its background, in no pair of copies
(the largest block of a caption, logo, watermark or date stamp over a copy was a tenth of the
frame; a banner is a band). Of all verified pairs it also found 3 of a copy with a large
logo, which the hole rule (`verify.content_differs`) already kept apart. On the test seed,
not tuned on: 4 kept pairs, all a picture-in-picture and its background, and no copy.
The block need fill its bounding box in one frame only (MIN_FILL), half of it in the other
(MIN_OTHER_FILL): on three development draws that took 8 more of the links kept as
duplicates out of the groups, 6 of a picture-in-picture and 2 of template variants, and no
copy's.

The block says the two differ even when neither edge stands out over the other's, which is
where it cannot say which image holds the inset: each holds a picture of its own in one frame
(two screenshots of one window, one template holding two photos), or the background has a
sharp edge of its own where the inset's frame lies. Such a pair is no copy either and is kept
apart (`Verification.block`). Of the verified pairs of the benchmark's two development draws,
the block was found in both frames in 38 and 35: 35 and 34 of distinct images (composites
with an inset or a sticker, template variants), 3 and 1 of a copy with a large logo, which
other rules had kept apart from its original already (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from neardup.indexer.colours import LAYOUT_SIDE, ColourLayout

from .overlay import edge_contrast, has_overlay
from .recolour import BLOB_DISTANCE, Difference

MIN_BLOCK = 0.15  # of the aligned cells: the block's area (an inset is 38-50 % of the width)
MIN_FILL = 0.75  # of its bounding box, in one frame at least: a block, not a scatter of cells that differ
# ... and in the other this much: the tone curve fitted from that frame's colours to the
# other's can take some of the inset's cells for the background's picture, and leave a
# block half filled there
MIN_OTHER_FILL = 0.5
MAX_SPAN = 26  # layout cells (of LAYOUT_SIDE): a block reaching across the frame is a band or a frame
MIN_SPAN = 8  # layout cells each way: a thin strip is a caption line or an edge
_MIN_ALIGNED = LAYOUT_SIDE * LAYOUT_SIDE // 8  # fewer aligned cells show no picture around a block


def block_edges(query: ColourLayout, candidate: ColourLayout, homography: NDArray[np.float64],
                difference: Difference | None = None) -> tuple[float, float] | None:
    """How sharply the block where the two images differ stands out in the query's cells and
    in the candidate's (`homography`: query -> candidate); None unless they differ in such a
    block seen from both frames. `difference`: the two compared in the query's cells, when the
    caller has it."""
    forward = _block(Difference(query, candidate, homography) if difference is None else difference)
    if forward is None:
        return None
    backward = _block(Difference(candidate, query, np.linalg.inv(homography)))
    if backward is None or max(forward[1], backward[1]) < MIN_FILL:
        return None
    return forward[0], backward[0]


def inset_sides(edges: tuple[float, float] | None) -> tuple[bool, bool]:
    """(the query holds a picture inset where the candidate shows its own picture, the
    reverse), from their `block_edges`. Where neither edge stands out (each image has its own
    picture framed there: two screenshots of one window, one poster holding two photos), the
    block still says the two differ (`Verification.block`), but not which holds the inset."""
    if edges is None:
        return False, False
    forward, backward = edges
    return bool(has_overlay(forward, backward)), bool(has_overlay(backward, forward))


def _block(difference: Difference) -> tuple[float, float] | None:
    """How sharply the block where two aligned images differ (`difference`, in this image's
    cells) stands out in this image's own cells, and the share of its bounding box it fills;
    None when they differ in no such block (MIN_OTHER_FILL of its box at least)."""
    inside = difference.inside
    aligned = int(inside.sum())
    if aligned < _MIN_ALIGNED:
        return None
    if (inside & (difference.raw >= BLOB_DISTANCE)).sum() < MIN_BLOCK * aligned:
        return None  # too little differs even before the tone curve: most pairs stop here, cheaply
    region = inside & (difference.toned >= BLOB_DISTANCE)
    found, labels, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
    if found < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    area, width, height = (int(stats[largest, k]) for k in (cv2.CC_STAT_AREA, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    if (area < MIN_BLOCK * aligned or area < MIN_OTHER_FILL * width * height
            or max(width, height) > MAX_SPAN or min(width, height) < MIN_SPAN):
        return None
    return edge_contrast(difference.cells, labels == largest, inside & ~region), area / (width * height)
