"""Perceptual hashes of decoded images: pure functions from pixels to packed bits.

Every hash takes an RGB image, ``(H, W, 3) uint8`` (any size from 1x1 up), and returns
its bits packed with ``np.packbits``: ``(bits // 8,) uint8``, most significant bit first.
The grey-level hashes all read the image through one helper, :func:`to_gray` (BT.601 luma,
then an area-average resize); :func:`compute_hashes` converts an image to luma once and
shares it between them, so they also accept the :class:`Luma` that :func:`luma` returns.

Hashes compare by Hamming distance (:func:`hamming`); two images are near-duplicates under
a hash when their distance is ``<= HASHES[name].threshold``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from neardup.storage.errors import NeardupError

from .pixels import InvalidImageError, checked_rgb  # noqa: F401  (InvalidImageError: raised here)

# whash: Haar detail energy below which a 4x4 block counts as flat (a std of 1 grey level).
_FLAT_ENERGY = 16.0
# colorhash: chroma (max - min of R, G, B, in [0, 1]) from which a pixel starts to count as
# coloured rather than grey, and at which it counts fully; and the histogram fractions at
# which a bin's four thermometer bits switch on.
_GREY_CHROMA, _FULL_CHROMA = 0.08, 0.2
_COLOUR_LEVELS = np.array([0.005, 0.02, 0.08, 0.25])


class UnknownHashError(NeardupError, ValueError):
    """A hash name that is not a key of :data:`HASHES`."""


@dataclass(frozen=True, eq=False)
class Luma:
    """The luma ``plane`` of one image, ``(H, W) uint8``, shared by the grey hashes."""

    plane: NDArray[np.uint8]

    @functools.cached_property
    def table(self) -> NDArray[np.float64]:
        """Summed-area table, ``(H + 1, W + 1) float64``: ``table[y, x] == plane[:y, :x].sum()``."""
        return cv2.integral(self.plane, sdepth=cv2.CV_64F)


def luma(rgb: NDArray[np.uint8]) -> Luma:
    """BT.601 luma of an ``(H, W, 3) uint8`` RGB image, rounded to integer levels like
    PIL's ``convert("L")``; raises :class:`InvalidImageError` for any other array."""
    return Luma(cv2.cvtColor(checked_rgb(rgb), cv2.COLOR_RGB2GRAY))


def to_gray(image: NDArray[np.uint8] | Luma, size: tuple[int, int]) -> NDArray[np.float32]:
    """Luma of ``image`` resized to ``size = (w, h)``: ``(h, w) float32`` in [0, 255].

    ``image`` is an ``(H, W, 3) uint8`` RGB image or its :class:`Luma`. The result equals
    ``cv2.resize(luma, size, interpolation=cv2.INTER_AREA)`` to float rounding, but
    shrinking reads the summed-area table instead: OpenCV's area resize takes ~3 ms on a
    1024x683 image whenever the scale is not an integer, this takes tens of µs.
    """
    lum = image if isinstance(image, Luma) else luma(image)
    w, h = size
    height, width = lum.plane.shape
    if width < w or height < h:  # enlarging: INTER_AREA falls back to bilinear
        return cv2.resize(lum.plane.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return _area_shrink(lum.table, size)


def ahash(image: NDArray[np.uint8] | Luma) -> NDArray[np.uint8]:
    """Average hash: the 8x8 luma thumbnail thresholded at its mean. ``(8,) uint8``."""
    small = to_gray(image, (8, 8))
    return np.packbits(small > small.mean())


def dhash(image: NDArray[np.uint8] | Luma) -> NDArray[np.uint8]:
    """Difference hash: on a 9x8 (w x h) thumbnail, whether each pixel's right-hand
    neighbour is brighter than it (imagehash's convention). ``(8,) uint8``."""
    small = to_gray(image, (9, 8))
    return np.packbits(small[:, 1:] > small[:, :-1])


def phash(image: NDArray[np.uint8] | Luma, *, bits: int = 64) -> NDArray[np.uint8]:
    """DCT hash: the lowest ``n x n`` frequencies of the DCT of a ``4n x 4n`` thumbnail,
    thresholded at their median; ``n = 8`` for ``bits=64``, ``16`` for ``bits=256``.

    Row and column 0 of the DCT (the DC term, i.e. mean brightness, and the waves that
    vary along one axis only) are skipped, as pHash and PDQ do: frequencies 1..n on both
    axes. On the measurement corpus this separated distinct images better, at the same
    recall of edits, than imagehash's block 0..n-1 with DC. ``(bits // 8,) uint8``.
    """
    if bits not in (64, 256):
        raise ValueError(f"phash bits must be 64 or 256, got {bits}")
    n = 8 if bits == 64 else 16
    return _median_bits(_dct_lowpass(to_gray(image, (4 * n, 4 * n)), n))


def phash256(image: NDArray[np.uint8] | Luma) -> NDArray[np.uint8]:
    """:func:`phash` with 256 bits (16x16 frequencies of a 64x64 DCT). ``(32,) uint8``."""
    return phash(image, bits=256)


def whash(image: NDArray[np.uint8] | Luma) -> NDArray[np.uint8]:
    """Haar wavelet hash: where the 32x32 thumbnail is more textured than usual.

    Two levels of the 2-D Haar transform split the thumbnail into detail bands; the
    energy of all detail coefficients inside each 4x4 block forms an 8x8 texture map,
    and a bit is set where a block's energy exceeds the median (and a small floor, so
    flat blocks stay 0 whatever the JPEG noise). By Parseval that energy is 16x the
    block's variance. Unlike imagehash's Haar ``whash``, whose 8x8 low band is just the
    block mean (an ``ahash`` with a median), this hashes texture, and brightness offsets
    cancel. ``(8,) uint8``.
    """
    low, energy = to_gray(image, (32, 32)), np.zeros((8, 8), dtype=np.float32)
    for _ in range(2):
        low, details = _haar_level(low)
        level = sum(band * band for band in details)
        size = level.shape[0] // 8
        energy += level.reshape(8, size, 8, size).sum(axis=(1, 3))
    return np.packbits(energy > max(np.median(energy), _FLAT_ENERGY))


def pdq(image: NDArray[np.uint8] | Luma) -> tuple[NDArray[np.uint8], int]:
    """PDQ-style hash and quality, after Facebook's PDQ (``hashing.pdf``, 2019).

    Luma is downsampled to 64x64 with a Jarosz tent filter (two box passes of width
    ``ceil(side / 128)``), its DCT's frequencies 1..16 on both axes are thresholded at
    their median, and quality (0-100) is PDQ's gradient sum of the 64x64 buffer: flat or
    near-blank images score low and their matches should be ignored. Returns the bits,
    ``(32,) uint8``, and the quality. The bit order is row-major, not PDQ's hex order.
    As in PDQ, a side of up to 128 px gets a window of 1 (no filtering at all), so
    halving a small image moves this hash more than :func:`phash256`'s area average.
    """
    buffer = _pdq_buffer(image)
    return _median_bits(_dct_lowpass(buffer, 16)), _pdq_quality(buffer)


# PDQ's own cut-off: an image of lower quality (flat, near-blank) has hashes that are mostly
# noise, so it never matches by a single hash (except as an exact copy).
LOW_QUALITY = 50
# Bumped whenever a change here changes what any hash computes: catalogs record it, and one
# made by other hash code is a mismatch (its stored hashes would not compare with new ones).
HASH_VERSION = 1


def quality(image: NDArray[np.uint8] | Luma) -> int:
    """PDQ quality of an image, 0-100: below LOW_QUALITY it is too flat to hash reliably."""
    return _pdq_quality(_pdq_buffer(image))


def colorhash(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Colour hash: a 16-bin colour histogram, 4 thermometer bits per bin. ``(8,) uint8``.

    Pixels of a small sample are softly split between 4 grey bins (black, dark,
    light, white) and 12 hue bins (30° apart) by their chroma, value and hue, so the
    histogram changes smoothly with the image. A bin's 4 bits say whether it holds more
    than 0.5%, 2%, 8% and 25% of the image; the Hamming distance between two hashes thus
    counts the levels crossed between their histograms, a coarse L1 distance. Takes RGB
    only: a :class:`Luma` has no colour.
    """
    histogram = _colour_histogram(_colour_sample(checked_rgb(rgb)))
    return np.packbits(histogram[:, None] > _COLOUR_LEVELS)


def hamming(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> int:
    """Number of differing bits between two packed hashes of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"hashes differ in shape: {a.shape} vs {b.shape}")
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


@dataclass(frozen=True)
class HashSpec:
    """One hash: its size in bits, default near-duplicate threshold (max Hamming distance,
    inclusive), family, and ``compute``: RGB image -> ``(bits // 8,) uint8``."""

    name: str
    bits: int
    threshold: int
    family: Literal["structure", "texture", "colour"]
    compute: Callable[[NDArray], NDArray]


def _pdq_bits(image: NDArray[np.uint8] | Luma) -> NDArray[np.uint8]:
    return pdq(image)[0]


# Thresholds (Hamming distance, inclusive) were measured on a 1,272-image corpus of photos,
# wallpapers, clip-art cutouts on white and 555 astrophotos (the hard negatives: dark sky,
# one central blob). Rule: the largest distance at which fewer than 1e-4 of the 808,356
# distinct pairs match, unless that misses over 1% of some mild edit (JPEG q50, 50% and
# 200% resize, +10 brightness); then the smallest distance that catches 99% of each edit.
#
#   hash       threshold  FP (pairs)  mild edits caught  1% crop caught  FP w/o astro-astro
#   ahash              3      4.9e-3            >= 99.3%           96.9%              6.3e-5
#   dhash              7      2.1e-3            >= 99.1%           98.8%              5.6e-4
#   pdq               69      8.2e-5            >= 99.9%           99.8%              1.7e-5
#   phash              4      1.3e-4            >= 99.6%           92.3%              3.1e-6
#   phash256          69      9.8e-5              100%             100%              1.7e-5
#   whash              4      3.0e-4            >= 99.3%           84.0%              8.6e-5
#   colorhash          3      7.7e-2            >= 99.9%           99.9%              5.3e-3
#
# The 64-bit hashes cannot reach 1e-4 on the astrophotos, and colour alone cannot tell apart
# the 42% of the corpus that is nearly grey: colorhash confirms a match, it does not find one.
HASHES: dict[str, HashSpec] = {
    spec.name: spec
    for spec in (
        HashSpec("ahash", 64, 3, "structure", ahash),
        HashSpec("dhash", 64, 7, "structure", dhash),
        HashSpec("pdq", 256, 69, "structure", _pdq_bits),
        HashSpec("phash", 64, 4, "texture", phash),
        HashSpec("phash256", 256, 69, "texture", phash256),
        HashSpec("whash", 64, 4, "texture", whash),
        HashSpec("colorhash", 64, 3, "colour", colorhash),
    )
}


def compute_hashes(rgb: NDArray[np.uint8], names: Iterable[str]) -> dict[str, NDArray[np.uint8]]:
    """Several hashes of one ``(H, W, 3) uint8`` image, converting it to luma only once."""
    names = list(names)
    unknown = [name for name in names if name not in HASHES]
    if unknown:
        raise UnknownHashError(f"unknown hash {unknown}; expected some of {sorted(HASHES)}")
    lum = luma(rgb)
    # Every hash but the colour one reads only luma.
    return {
        name: HASHES[name].compute(rgb if HASHES[name].family == "colour" else lum)
        for name in names
    }


def _area_shrink(table: NDArray[np.float64], size: tuple[int, int]) -> NDArray[np.float32]:
    """Mean of each output pixel's footprint, read from a summed-area table ``(H+1, W+1)``.

    The table is bilinear inside each pixel, so interpolating it at fractional box edges
    gives exact area sums. Returns ``(h, w) float32``.
    """
    w, h = size
    height, width = table.shape[0] - 1, table.shape[1] - 1
    y0, fy = _box_edges(height, h)
    x0, fx = _box_edges(width, w)
    rows = table[y0] * (1 - fy)[:, None] + table[y0 + 1] * fy[:, None]
    corners = rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx
    sums = np.diff(np.diff(corners, axis=0), axis=1)
    return (sums * (w * h / (width * height))).astype(np.float32)


def _box_edges(n_in: int, n_out: int) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Output box edges on an axis of ``n_in`` pixels, as (integer part, fraction)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    whole = np.minimum(edges.astype(np.intp), n_in - 1)
    return whole, edges - whole


def _dct_lowpass(square: NDArray[np.float32], n: int) -> NDArray[np.float32]:
    """Frequencies 1..n on both axes of the orthonormal 2-D DCT-II: ``(n, n) float32``."""
    return cv2.dct(square)[1 : n + 1, 1 : n + 1]


def _median_bits(values: NDArray[np.float32]) -> NDArray[np.uint8]:
    return np.packbits(values > np.median(values))


def dihedral(bits: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The seven other turns and mirrors of an image, as their hashes guessed from its own
    256-bit ``pdq`` or ``phash256`` ((n, 32) uint8 rows): (n, 7, 32), in the order mirror,
    upside down, half turn, then the transposed image and its three (two of which are the
    quarter turns).

    Both hashes are the signs, about their median, of DCT frequencies 1..16 of a square
    resample of the picture. Mirroring negates the odd horizontal frequencies, flipping upside
    down the odd vertical ones, and a quarter turn transposes the square (then mirrors it): so
    a bit of the turned image is its own bit, moved, and inverted where its frequency is odd.
    Only coefficients between the two medians come out wrong: on 300 corpus images, over the
    seven turns, the guess lay a median 4 bits (90th percentile 10) from the hash of the turned
    image itself for ``phash256``, 8 (20) for ``pdq``, where an image's own hash lies about 128
    from its mirror's (docs/BENCHMARKS.md). Enough to find a mirrored or turned copy among an
    image's nearest hashes without hashing its turns."""
    grid = np.unpackbits(np.asarray(bits, np.uint8), axis=-1).reshape(-1, 16, 16).astype(bool)
    odd = np.arange(1, 17) % 2 == 1
    turns = []
    for square in (grid, grid.transpose(0, 2, 1)):
        for across, down in ((False, False), (True, False), (False, True), (True, True)):
            turns.append(square ^ (odd[None, :] & across) ^ (odd[:, None] & down))
    return np.packbits(np.stack(turns[1:], axis=1).reshape(len(grid), 7, 256), axis=-1)


def _haar_level(x: NDArray[np.float32]) -> tuple[NDArray, tuple[NDArray, NDArray, NDArray]]:
    """One level of the orthonormal 2-D Haar transform of an even-sided array:
    the low band and the (horizontal, vertical, diagonal) detail bands, each half-size."""
    a, b = x[0::2, 0::2], x[0::2, 1::2]
    c, d = x[1::2, 0::2], x[1::2, 1::2]
    return (a + b + c + d) / 2, ((a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2)


def _pdq_buffer(image: NDArray[np.uint8] | Luma) -> NDArray[np.float32]:
    """PDQ's 64x64 luma buffer: the tent-filtered image sampled at 64x64 points."""
    plane = (image if isinstance(image, Luma) else luma(image)).plane
    rows, row_tent = _tent_taps(plane.shape[0])
    cols, col_tent = _tent_taps(plane.shape[1])
    tall = row_tent @ plane[rows].astype(np.float32)  # (64, taps, W) -> (64, W)
    return tall[:, cols] @ col_tent  # (64, 64, taps) -> (64, 64)


def _tent_taps(n_in: int, n_out: int = 64) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Jarosz filter on one axis: two box passes of width ``ceil(n_in / 2 n_out)`` (a tent),
    evaluated at PDQ's ``n_out`` sample points ``floor((i + 1/2) n_in / n_out)``.

    Returns the ``(n_out, taps)`` source index of every tap and the ``(taps,)`` tent
    weights, summing to 1. The tent's half-width never exceeds the first sample's
    distance from the edge, so no tap falls outside the image: no border rule is needed.
    """
    width = -(-n_in // (2 * n_out))
    tent = np.convolve(np.ones(width), np.ones(width)).astype(np.float32) / width**2
    centres = ((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.intp)
    return centres[:, None] + np.arange(tent.size) - (width - 1), tent


def _pdq_quality(buffer: NDArray[np.float32]) -> int:
    """PDQ quality: the sum of the 64x64 buffer's neighbour differences, in whole
    percent of full scale, divided by 90 and capped at 100."""
    steps = np.concatenate([np.diff(buffer, axis=0).ravel(), np.diff(buffer, axis=1).ravel()])
    return min(100, int(np.floor(np.abs(steps) * (100 / 255)).sum()) // 90)


def _colour_sample(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """A bilinear sample of an RGB image, shrunk by the integer factor that leaves >= 64 px
    on its short side: a histogram needs a few thousand pixels, not detail, and sampling
    reads only those (area-averaging measured no more robust, at several times the cost)."""
    factor = max(1, min(rgb.shape[:2]) // 64)
    size = (rgb.shape[1] // factor, rgb.shape[0] // factor)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)


def _colour_histogram(rgb: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Fractions of an RGB image in 4 grey and 12 hue bins: ``(16,) float64``, sum 1."""
    hsv = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2HSV).reshape(-1, 3)
    chroma = hsv[:, 1] * hsv[:, 2]  # max(R, G, B) - min(R, G, B)
    colourful = np.clip((chroma - _GREY_CHROMA) / (_FULL_CHROMA - _GREY_CHROMA), 0, 1)
    grey = _soft_histogram(hsv[:, 2] * 3, 1 - colourful, 4, circular=False)
    hues = _soft_histogram(hsv[:, 0] / 30, colourful, 12, circular=True)
    return np.concatenate([grey, hues]) / len(hsv)


def _soft_histogram(
    position: NDArray[np.float32], weight: NDArray[np.float32], n: int, *, circular: bool
) -> NDArray[np.float64]:
    """Histogram over ``n`` bins centred on 0..n-1 where each sample's ``weight`` is shared
    linearly between the two bins nearest its ``position`` (in bin units): ``(n,) float64``.
    Circular bins wrap around (hue); others clamp positions to their range."""
    if not circular:
        position = np.clip(position, 0, n - 1)
    low = np.floor(position).astype(np.intp)
    frac = position - low
    below = np.bincount(low % n, weight * (1 - frac), minlength=n)
    above = np.bincount((low + 1) % n, weight * frac, minlength=n)
    return below + above
