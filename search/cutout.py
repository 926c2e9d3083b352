"""A cut-out pasted into another picture, matched by its gradients where ORB finds too little.

A sticker is an object cut from a picture (clip art on a plain background, mostly), outlined
and pasted on a photo. The region where the photo's copy differs (`pasted`) holds it, and the
region's CNN vector finds the picture it was cut from: on four of the duplicates benchmark's
development draws the stamp ranked first or second among the region's candidates for 10 of
the 14 stickers grouped with their photo (docs/BENCHMARKS.md). But ORB, which verifies every
other match, finds too little on it: a flat-coloured drawing has few corners, and those on its
outline see the photo behind the cut-out where the picture it was cut from shows its plain
background, so the match misses the sixteen inliers it needs or covers too little of the stamp.
SIFT's keypoints are blobs inside the drawing, described by gradient histograms, and match at
any scale and turn.

So where ORB found no picture pasted in a region, the region's TOP nearest candidates are
compared again, by SIFT features of the region (as cut) and of the candidate (decoded at the
catalog's decode side), one similarity (scale, turn, shift: `cv2.estimateAffinePartial2D`)
fitted to their ratio-test matches. The candidate is the picture pasted there when, as for a
picture pasted whole (`pasted.pasted_match`), VERIFY_THRESHOLD matches or more fit it, they
cover MIN_COVERAGE of the keypoint-bearing cells of its object (`object_box`: what differs from
a plain surround, else its whole frame) and its centre, and the object mapped into the region
lies in it (MIN_INSIDE of its area): a caption, banner or frame that two images share is a
part of each, which covers little of the other, and a picture that holds the region's picture
and more reaches outside the region once mapped there. On the eight development draws this
took 13 composites' second picture (10 of them grouped with their first before) and nothing
else among 2,768 candidates of 1,279 regions; ORB at twice the decode side took 10, SIFT at a
smaller scale 7.

SIFT costs about eight times what ORB does (50 ms for an image at the decode side), so it looks
only where ORB found nothing, at the TOP nearest, each candidate's features found once a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from neardup.indexer.regions import far_from_background, frame_colour

from .verify import GRID, MIN_COVERAGE, VERIFY_THRESHOLD

__all__ = ["CutoutFeatures", "TOP", "MIN_INSIDE", "candidate_features", "cutout_match", "object_box",
           "sift_features"]

TOP = 2  # the region's nearest candidates compared by SIFT (the stamp ranked 0 or 1 in every case found)
MIN_INSIDE = 0.75  # of the candidate's object, mapped into the region, that lies inside it
FEATURES = 800  # SIFT keypoints kept per image (a region or a candidate holds 100-800)
_RATIO = 0.8  # Lowe's ratio test, as ORB's matches pass it (`verify`)
_REPROJECTION_PX = 6.0  # RANSAC tolerance in pixels, as `verify` fits its homographies
_MIN_CELL_KEYPOINTS = 3  # a cell with fewer keypoints cannot show a match (as `verify`'s)
_MARGIN = 8  # pixels of plain surround kept around an object whose features are found (SIFT's border)
_CENTRE = ((1, 1), (1, 2), (2, 1), (2, 2))  # the central cells of the GRID x GRID grid (GRID 4)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels


@dataclass(frozen=True)
class CutoutFeatures:
    """An image's SIFT keypoints: `points` (N, 2) float32 positions, `descriptors` (N, 128)
    float32."""

    points: NDArray[np.float32]
    descriptors: NDArray[np.float32]


def sift_features(rgb: NDArray[np.uint8]) -> CutoutFeatures:
    """The SIFT features of an (H, W, 3) uint8 RGB image (its grey levels)."""
    keypoints, descriptors = cv2.SIFT_create(nfeatures=FEATURES).detectAndCompute(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), None)
    if not keypoints or descriptors is None:
        return CutoutFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    return CutoutFeatures(cv2.KeyPoint_convert(keypoints).reshape(-1, 2).astype(np.float32), descriptors)


def candidate_features(rgb: NDArray[np.uint8]) -> tuple[CutoutFeatures, Box]:
    """A candidate's SIFT features and its `object_box`: found in the box (and _MARGIN pixels
    around it) alone, where the rest is a plain surround that holds none, at a fraction of the
    cost for clip art on a page; positions in the whole image's pixels."""
    box = object_box(rgb)
    height, width = rgb.shape[:2]
    x0, y0 = max(box[0] - _MARGIN, 0), max(box[1] - _MARGIN, 0)
    x1, y1 = min(box[2] + _MARGIN, width), min(box[3] + _MARGIN, height)
    found = sift_features(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    return CutoutFeatures(found.points + np.float32([x0, y0]), found.descriptors), box


def object_box(rgb: NDArray[np.uint8]) -> Box:
    """The bounding box of what differs from an (H, W, 3) image's plain surround (clip art on a
    white page: what a cut-out keeps), or its whole frame when it has no plain surround."""
    height, width = rgb.shape[:2]
    colour = frame_colour(rgb)
    if colour is None:
        return 0, 0, width, height
    ys, xs = np.nonzero(far_from_background(rgb, colour))
    if not len(xs):
        return 0, 0, width, height
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def cutout_match(region: CutoutFeatures, region_shape: tuple[int, ...], candidate: CutoutFeatures, box: Box) -> int:
    """The matches one similarity explains between a region (of `region_shape`) and a candidate
    whose object lies in `box`, when they make the candidate the picture cut out and pasted in
    the region (see the module's docstring); else 0."""
    if len(region.points) < _MIN_CELL_KEYPOINTS or len(candidate.points) < _MIN_CELL_KEYPOINTS:
        return 0
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(region.descriptors, candidate.descriptors, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < _RATIO * m[1].distance]
    if len(good) < VERIFY_THRESHOLD:
        return 0
    source = region.points[[m.queryIdx for m in good]]
    target = candidate.points[[m.trainIdx for m in good]]
    similarity, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC,
                                                       ransacReprojThreshold=_REPROJECTION_PX)
    if similarity is None or inliers is None or int(inliers.sum()) < VERIFY_THRESHOLD:
        return 0
    matched = target[inliers.ravel().astype(bool)]
    covered, centre = _coverage(candidate.points, matched, box)
    if covered < MIN_COVERAGE or not centre or _inside(similarity, box, region_shape) < MIN_INSIDE:
        return 0
    return len(matched)


def _coverage(points: NDArray[np.float32], matched: NDArray[np.float32], box: Box) -> tuple[float, bool]:
    """The share of the keypoint-bearing cells of `box` (GRID x GRID; the candidate's keypoints
    are `points`) holding a matched point, and whether a central cell holds one."""
    cells, counts = np.unique(_cells(points, box), axis=0, return_counts=True)
    bearing = {tuple(c) for c in cells[counts >= _MIN_CELL_KEYPOINTS].tolist()}
    hit = {tuple(c) for c in _cells(matched, box).tolist()}
    return len(hit & bearing) / max(len(bearing), 1), bool(hit.intersection(_CENTRE))


def _cells(points: NDArray[np.float32], box: Box) -> NDArray[np.int64]:
    """(K, 2) the GRID x GRID cell of `box` (column, row) of each point inside it."""
    x0, y0, x1, y1 = box
    inside = (points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1)
    at = np.floor((points[inside] - (x0, y0)) / (x1 - x0, y1 - y0) * GRID).astype(np.int64)
    return np.clip(at, 0, GRID - 1).reshape(-1, 2)


def _inside(similarity: NDArray[np.float64], box: Box, region_shape: tuple[int, ...]) -> float:
    """The share of the candidate's object box, mapped into the region by the inverse of
    `similarity` (region -> candidate), that lies inside the region."""
    x0, y0, x1, y1 = box
    back = cv2.invertAffineTransform(similarity)
    corners = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    mapped = (corners @ back[:, :2].T + back[:, 2]).astype(np.float32)
    area = cv2.contourArea(mapped)
    if area <= 0:
        return 0.0
    height, width = region_shape[:2]
    frame = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    shared, _ = cv2.intersectConvexConvex(mapped, frame)
    return float(shared) / area
