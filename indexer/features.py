"""Local features: ORB keypoints and binary descriptors of an image, for geometric verification.

A global descriptor (a hash, a CNN vector) says how alike two whole images look; it cannot
say that one image *contains* the other. Local features can: a crop, a rotated or mirrored
copy, a photo pasted into a screenshot or framed by a border still shares hundreds of
corners with its original, at positions related by one geometric transform
(`neardup.search.verify` finds it). They are computed at index time from the same decoded
pixels as the hashes (longest side `decode_side`, 384 by default), so a query never needs the
candidates' files.

ORB (Rublee et al. 2011) is chosen over SIFT for its 32-byte binary descriptors (matched by
Hamming distance, stored compactly) and speed: ~3 ms per 384-pixel image. 500 keypoints per
image cost 18 KB in the catalog (points as float16, see `storage.catalog`). The indexer stores
the mirror image's keypoints too (another 18 KB): ORB descriptors are not mirror-invariant,
and duplicates, unlike a search, has no query image to mirror.

Each keypoint also keeps the colour around it (`colours`: the mean of COLOUR_WINDOW x
COLOUR_WINDOW pixels, 1.5 KB per image): ORB sees grey levels only, so the same drawing in
another colour verifies as a copy, and what tells them apart is the colour of the matched
keypoints themselves (`neardup.search.recolour`), finer than any whole-image layout.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
from numpy.typing import NDArray

from .pixels import checked_rgb

__all__ = ["EARLIER_FEATURES", "FEATURES_ID", "LocalFeatures", "enlarge", "mirrored", "orb_and_mirror", "orb_features",
           "verifiable"]

MAX_KEYPOINTS = 500
# saved in the catalog settings: keypoints of another id are not this code's. v2: an image
# smaller than the decode side is searched for keypoints enlarged to it (`orb_and_mirror`'s `side`)
FEATURES_ID = f"orb-{MAX_KEYPOINTS}-v2"
# Keypoints of an earlier neardup: they verify as they did until `index` finds the changed ones
# again (`Catalog.upgrade_local_features`: v1 searched small images at their own size).
EARLIER_FEATURES = ("orb-500-v1",)
_FAST_THRESHOLD = 10  # lower than OpenCV's 20: keeps enough corners on soft or small images
# ORB describes a 31-pixel patch around each keypoint and ignores a 31-pixel border, so a
# thinner image has none; OpenCV's image pyramid also fails on one a few pixels thin.
_MIN_SIDE = 32
COLOUR_WINDOW = 5  # pixels a side: a thin stroke's own colour, little of what surrounds it


class LocalFeatures(NamedTuple):
    """`points`: (n, 2) float32 x, y in pixels of the decoded image; `descriptors`: (n, 32)
    uint8; `colours`: (n, 3) uint8 RGB around each keypoint, None when not known (a gray
    image, or a catalog indexed before they were stored)."""

    points: NDArray[np.float32]
    descriptors: NDArray[np.uint8]
    colours: NDArray[np.uint8] | None = None


def verifiable(features_id: str | None) -> bool:
    """Whether a catalog's stored keypoints (its settings' `local_features`) verify pairs."""
    return features_id == FEATURES_ID or features_id in EARLIER_FEATURES


def orb_features(pixels: NDArray[np.uint8], *, max_keypoints: int = MAX_KEYPOINTS) -> LocalFeatures:
    """(H, W, 3) uint8 RGB or (H, W) uint8 gray -> its ORB keypoints (by pyramid level, not by
    strength: a prefix of them is no sample of the strongest)."""
    gray = _gray(pixels)
    if min(gray.shape) < _MIN_SIDE:
        return _NONE
    keypoints, descriptors = _orb(max_keypoints).detectAndCompute(gray, None)
    found = _features(keypoints, descriptors)
    return found._replace(colours=_sampled(_smoothed(pixels), found.points)) if pixels.ndim == 3 else found


def orb_and_mirror(pixels: NDArray[np.uint8], *, max_keypoints: int = MAX_KEYPOINTS,
                   side: int = 0) -> tuple[LocalFeatures, LocalFeatures]:
    """The ORB features of an image and those of its mirror image (`mirrored`), with the
    keypoints detected once. FAST corners, their Harris scores and ORB's image pyramid are all
    symmetric under a mirror, so the mirror's keypoints are the image's own mirrored within
    their pyramid level; only their descriptors are computed on the mirror. All but a few
    (a rounding away) are exactly those a detection on the mirror finds, descriptors included.

    `side` (the catalog's decode side): an image with a shorter long side is searched
    `enlarge`d to it, its keypoints then placed in its own pixels (where its colour layout and
    verification's tolerances are). ORB ignores a 31-pixel border and describes 31-pixel
    patches: in a thumbnail or a small clip-art it finds few keypoints or none (none in a
    64-pixel image), and no crop or copy of one could be verified. Placing them in the
    enlarged frame instead, which tightens verification's pixel tolerances on small images,
    verified fewer of their copies (docs/BENCHMARKS.md)."""
    enlarged = enlarge(pixels, side) if side else pixels
    if enlarged is not pixels:
        scale = np.float32([pixels.shape[1] / enlarged.shape[1], pixels.shape[0] / enlarged.shape[0]])
        plain, mirror = orb_and_mirror(enlarged, max_keypoints=max_keypoints)
        return plain._replace(points=plain.points * scale), mirror._replace(points=mirror.points * scale)
    gray = _gray(pixels)
    if min(gray.shape) < _MIN_SIDE:
        return _NONE, _NONE
    orb = _orb(max_keypoints)
    keypoints, descriptors = orb.detectAndCompute(gray, None)
    if descriptors is None:
        return _NONE, _NONE
    width, factor = gray.shape[1], orb.getScaleFactor()
    flipped = []
    for k in keypoints:
        scale = factor ** k.octave  # a keypoint's x is its x in its level's image times this
        x = (round(width / scale) - 1) * scale - k.pt[0]
        flipped.append(cv2.KeyPoint(x, k.pt[1], k.size, (180.0 - k.angle) % 360.0, k.response, k.octave, k.class_id))
    flipped, flipped_descriptors = orb.compute(mirrored(gray), flipped)
    plain, mirror = _features(keypoints, descriptors), _features(flipped, flipped_descriptors)
    if pixels.ndim != 3:
        return plain, mirror
    smooth = _smoothed(pixels)  # a centred box filter commutes with the mirror: one serves both
    return (plain._replace(colours=_sampled(smooth, plain.points)),
            mirror._replace(colours=_sampled(smooth[:, ::-1], mirror.points)))


_NONE = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), np.zeros((0, 3), np.uint8))


def _gray(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    if getattr(pixels, "ndim", 0) == 2 and pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(checked_rgb(pixels), cv2.COLOR_RGB2GRAY)


def _orb(max_keypoints: int) -> cv2.ORB:
    return cv2.ORB_create(nfeatures=max_keypoints, fastThreshold=_FAST_THRESHOLD)


def _features(keypoints, descriptors: NDArray[np.uint8] | None) -> LocalFeatures:
    if descriptors is None or not len(keypoints):
        return _NONE
    # one call of OpenCV's copies the points out, 20 times faster than a Python loop over its keypoint objects
    return LocalFeatures(cv2.KeyPoint_convert(keypoints).reshape(-1, 2).astype(np.float32, copy=False), descriptors)


def _smoothed(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The mean of the COLOUR_WINDOW-pixel square around each pixel of (H, W, 3) uint8 `pixels`."""
    return cv2.blur(checked_rgb(pixels), (COLOUR_WINDOW, COLOUR_WINDOW), borderType=cv2.BORDER_REPLICATE)


def _sampled(smooth: NDArray[np.uint8], points: NDArray[np.float32]) -> NDArray[np.uint8]:
    """(n, 3) uint8: `smooth` at the pixel nearest each of `points` (x, y)."""
    x = np.clip(np.rint(points[:, 0]).astype(np.intp), 0, smooth.shape[1] - 1)
    y = np.clip(np.rint(points[:, 1]).astype(np.intp), 0, smooth.shape[0] - 1)
    return np.ascontiguousarray(smooth[y, x], np.uint8)


def enlarge(pixels: NDArray[np.uint8], side: int) -> NDArray[np.uint8]:
    """An image (a small one, a content box) scaled up so its long side is `side`, so that
    local features find room on it; larger images are returned as they are."""
    height, width = pixels.shape[:2]
    if max(height, width) >= side:
        return pixels
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)


def mirrored(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The left-right mirror image (ORB descriptors are not mirror-invariant: match both)."""
    return np.ascontiguousarray(pixels[:, ::-1])

