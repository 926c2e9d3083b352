"""Geometric verification: do two images share many local features in one consistent geometry?

Global scores (hash similarity, CNN cosine) rank candidates well but are poorly calibrated for
crops, rotations, borders, overlays and screenshots: a true cropped copy and an unrelated
look-alike can score the same. Here each candidate's stored ORB keypoints
(`neardup.indexer.features`) are matched to the query's (nearest Hamming descriptor, Lowe's
ratio test 0.8), and RANSAC fits one homography to the matched positions; the number of
matches it explains (inliers) is the evidence. The query is matched as given and mirrored,
keeping the better, so a flipped copy verifies too (and so does the picture inside a
screenshot, matched through the query's content box: `regions.query_variants`); duplicates
match an image's stored mirrored keypoints instead.

The inliers must also spread over a fifth of either image (their convex hull over the extent
of its keypoints): two different photos carrying the same watermark, logo or caption share
many keypoints in one small patch, which alone is not a copy.

Inliers map onto the confidence scale of `fusion`: fewer than VERIFY_THRESHOLD -> no
evidence (the global score stands), VERIFY_THRESHOLD -> 0.5 (a match), VERIFY_FULL or more
-> VERIFY_CEILING. Calibration on the project benchmark's top-5 auto candidates (600
references, 4,000 queries): 87.9 % of true candidates reach 16 inliers, 99 % of wrong ones
stay below 19 (most of the rest are real partial copies: variants of one clip-art stamp,
astrophotos sharing a star field); thresholds from 12 to 24 move μAP by at most 0.002.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from neardup.indexer.features import LocalFeatures

VERIFY_THRESHOLD = 16  # RANSAC inliers that make a match (confidence 0.5)
VERIFY_FULL = 128  # inliers at the highest verified confidence, VERIFY_CEILING
VERIFY_CEILING = 0.95  # geometry alone never says "identical": an exact hash match still ranks first
_RATIO = 0.8
_REPROJECTION_PX = 6.0  # RANSAC tolerance, in pixels of the decoded (384-pixel) images
# Fewer ratio-test matches than VERIFY_THRESHOLD cannot make VERIFY_THRESHOLD inliers, so no
# homography is fitted for them (their confidence is 0 either way): most candidate pairs of
# unrelated images stop here, before the costliest step.
_MIN_MATCHES = VERIFY_THRESHOLD
MIN_COVERAGE = 0.2  # inliers' hull / keypoints' extent, in the query or the candidate
# Images are decoded to one size (longest side 384), so a copy's scale is moderate: a crop of
# 1/64 of the area is enlarged 8 times. A homography scaling area beyond this range (or
# mirroring: mirrored copies are matched through mirrored keypoints) squeezes many points
# into a few: the fit of a degenerate match (a blurred galaxy's few keypoints "matching"
# another galaxy's many), not a copy.
_MAX_AREA_SCALE = 64.0

_matcher = cv2.BFMatcher(cv2.NORM_HAMMING)


def inliers(query: LocalFeatures, candidate: LocalFeatures) -> int:
    """Matches between the two keypoint sets that one RANSAC homography explains; 0 if none,
    if fewer than VERIFY_THRESHOLD matches pass the ratio test (no fit is tried), if the
    homography is implausible for a copy, or if the matches cover less than MIN_COVERAGE of
    both images (a shared logo is not a copy)."""
    (qp, qd), (cp, cd) = query, candidate
    if len(qd) < _MIN_MATCHES or len(cd) < 2:
        return 0
    pairs = _matcher.knnMatch(qd, cd, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < _RATIO * m[1].distance]
    if len(good) < _MIN_MATCHES:
        return 0
    src = qp[[m.queryIdx for m in good]]
    dst = cp[[m.trainIdx for m in good]]
    homography, mask = cv2.findHomography(src, dst, cv2.RANSAC, _REPROJECTION_PX)
    if homography is None or mask is None or not _plausible(homography):
        return 0
    kept = mask.ravel().astype(bool)
    if kept.sum() < 3 or max(coverage(src[kept], qp), coverage(dst[kept], cp)) < MIN_COVERAGE:
        return 0
    return int(kept.sum())


def _plausible(homography: NDArray[np.float64]) -> bool:
    """Whether a homography could map an image onto a copy of it: orientation kept, area
    scaled by at most _MAX_AREA_SCALE either way (at the origin: the linear part's determinant)."""
    area = homography[0, 0] * homography[1, 1] - homography[0, 1] * homography[1, 0]
    return 1.0 / _MAX_AREA_SCALE <= area <= _MAX_AREA_SCALE


def coverage(points: NDArray[np.float32], every: NDArray[np.float32]) -> float:
    """Area of the convex hull of `points` over the bounding box of all of an image's keypoints."""
    hull = cv2.contourArea(cv2.convexHull(points.reshape(-1, 1, 2)))
    width, height = every.max(axis=0) - every.min(axis=0)
    return float(hull / max(width * height, 1.0))


def best_inliers(queries: Sequence[LocalFeatures], candidate: LocalFeatures) -> int:
    """The most inliers any of the query's variants (as given, mirrored, …) has with
    `candidate`; stops at the first variant reaching VERIFY_FULL (more cannot count)."""
    best = 0
    for query in queries:
        best = max(best, inliers(query, candidate))
        if best >= VERIFY_FULL:
            break
    return best


def verified_confidence(count: NDArray[np.integer] | int) -> NDArray[np.float64]:
    """Inlier counts -> confidence: 0 below VERIFY_THRESHOLD, then 0.5 rising to VERIFY_CEILING
    at VERIFY_FULL."""
    n = np.asarray(count, dtype=np.float64)
    rising = 0.5 + (VERIFY_CEILING - 0.5) * np.clip((n - VERIFY_THRESHOLD) / (VERIFY_FULL - VERIFY_THRESHOLD), 0.0, 1.0)
    return np.where(n >= VERIFY_THRESHOLD, rising, 0.0)
