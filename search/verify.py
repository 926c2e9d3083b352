"""Geometric verification: do two images share many local features in one consistent geometry?

Global scores (hash similarity, CNN cosine) rank candidates well but are poorly calibrated for
crops, rotations, borders, overlays and screenshots: a true cropped copy and an unrelated
look-alike can score the same. Here each candidate's stored ORB keypoints
(`neardup.indexer.features`) are matched to the query's (nearest Hamming descriptor, Lowe's
ratio test 0.8: `ratio_matches`), and RANSAC fits one homography to the matched positions; the number of
matches it explains (inliers) is the evidence. The query is matched as given and mirrored,
keeping the better, so a flipped copy verifies too (and so does the picture inside a
screenshot, matched through the query's content box: `regions.query_variants`); duplicates
match an image's stored mirrored keypoints instead.

The inliers must also lie on an image's content (`Verification.on_content`): two different
photos carrying the same watermark, logo, caption or frame share many keypoints at the
periphery or in one patch, which alone is not a copy. And when the periphery matches but the
content inside does not (`Verification.content_differs`), they are variants of one template
or a picture with another pasted in; so are two aligned images whose colours differ in one
inner region while the rest agrees (`recolour`: the same drawing in another colour). Mapped
through the homography, one image's frame may lie inside the other's with only flat colour
around it: a copy padded or rotated onto a larger canvas (`canvas`); or one image may differ from
the other in a part that stands out from the picture around it: a pasted overlay (`overlay`).
The keeper passes both kinds of copy over.

Inliers map onto the confidence scale of `fusion`: fewer than VERIFY_THRESHOLD -> no
evidence (the global score stands), VERIFY_THRESHOLD -> 0.5 (a match), VERIFY_FULL or more
-> VERIFY_CEILING. Calibration on the project benchmark's top-5 auto candidates (600
references, 4,000 queries): 87.9 % of true candidates reach 16 inliers, 99 % of wrong ones
stay below 19 (most of the rest are real partial copies: variants of one clip-art stamp,
astrophotos sharing a star field); thresholds from 12 to 24 move μAP by at most 0.002.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import cv2
import faiss
import numpy as np
from numpy.typing import NDArray

from neardup.indexer.colours import ColourLayout
from neardup.indexer.features import LocalFeatures

from .canvas import SEAM_BEYOND, beside, beyond, on_canvas, seam
from .inset import block_edges, inset_sides
from .overlay import has_overlay, standouts
from .recolour import Difference, recoloured, shifted_hues

VERIFY_THRESHOLD = 16  # RANSAC inliers that make a match (confidence 0.5)
VERIFY_FULL = 128  # inliers at the highest verified confidence, VERIFY_CEILING
VERIFY_CEILING = 0.95  # geometry alone never says "identical": an exact hash match still ranks first
_RATIO = 0.8
_REPROJECTION_PX = 6.0  # RANSAC tolerance, in pixels of the decoded (384-pixel) images
# Fewer ratio-test matches than VERIFY_THRESHOLD cannot make VERIFY_THRESHOLD inliers, so no
# homography is fitted for them (their confidence is 0 either way): most candidate pairs of
# unrelated images stop here, before the costliest step.
_MIN_MATCHES = VERIFY_THRESHOLD
# Where inliers must lie (`layout`): on at least MIN_COVERAGE of one image's keypoint-bearing
# cells, and, in one of the two images, on its central box at least RELATIVE_CENTRE times as
# densely as on the whole image. What unrelated images share (a caption band, a watermark, a
# logo, an app frame) covers the periphery or a patch. On the duplicates benchmark's
# development seed this keeps 797 of 824 true geometric pairs and 6 of 175 pairs of distinct
# images sharing an overlay (docs/BENCHMARKS.md).
GRID = 4
_MIN_CELL_KEYPOINTS = 3  # a cell with fewer keypoints is flat: it cannot show a match
MIN_COVERAGE = 0.6
RELATIVE_CENTRE = 0.5
# An inner region of at least MIN_HOLE of the HOLE_GRID x HOLE_GRID cells (about 8 % of the
# image) with keypoints and no inlier, in both images, means their content differs there. On
# the duplicates benchmark's development seed: 3 % of true geometric pairs have one, 92 % of
# pairs of one template's letter variants and 40 % of composite-original pairs.
HOLE_GRID = 6
MIN_HOLE = 3
# Or, matched over most of both frames, the centre matches in neither, though both have
# keypoints there (MIN_CENTRAL: as many as the central box's four cells need to show a match):
# one template's letter or object variants, whose layout, caption and backdrop all match. The
# holes miss them when the letter is small or shares strokes with another (P and R). On the
# duplicates benchmark's two development draws this took 9 false pairs and no true pair out of
# the groups, at any MIN_CENTRAL from 4 to 40 (docs/BENCHMARKS.md); pairs with a flat centre
# (a noisy copy of a picture with a blank middle: 2 central keypoints) cannot say.
MIN_CENTRAL = 4 * _MIN_CELL_KEYPOINTS
# Or the inliers lie on under MAX_SHARED of either image's keypoint-bearing cells, and both
# centres hold keypoints none of which matched: the two share an overlay (an app's frame, a
# caption, a logo) around pictures of their own. Hashes and CNN vectors see the shared part
# (and a star field's black sky) and link them; a copy matches its picture's centre. On the
# duplicates benchmark's eight development draws this took 15 false pairs out of the groups
# (one true pair too, two others joined instead), on the match-quality collection 5 true pairs
# of 14,433 (a stretched star field's 23 inliers on a tenth of it); 0.3 did the same but for
# an app frame around a star field covering a third of its cells; 0.45 took 19 true pairs
# out of the match-quality collection's groups.
MAX_SHARED = 0.4
REGION_GRID = 8  # resolution of the matched region's bitmask (`Side.cells`, 64 bits: at most 8)
# Images are decoded to one size (longest side 384), so a copy's scale is moderate: a crop of
# 1/64 of the area is enlarged 8 times. A homography scaling area beyond this range (or
# mirroring: mirrored copies are matched through mirrored keypoints) squeezes many points
# into a few: the fit of a degenerate match (a blurred galaxy's few keypoints "matching"
# another galaxy's many), not a copy.
_MAX_AREA_SCALE = 64.0
_FAR = np.iinfo(np.int32).max
# RANSAC as OpenCV runs it by default: up to 2,000 samples, stopping once the best homography
# so far is found with this confidence. Most candidate pairs are unrelated images with a few
# dozen chance matches, a third of them "inliers" of some homography: for those the default
# draws all 2,000 samples. Only a homography explaining VERIFY_THRESHOLD matches matters, so
# the run draws just the samples that find one explaining that many with _SCREEN_CONFIDENCE,
# or stops sooner by the default's own rule. A run that stopped at that cap with fewer inliers
# used to be followed by the default's full run, to give its exact answer: on both seeds of the
# duplicates benchmark those reruns took a tenth of `duplicates`' time and turned 2 and 3 pairs
# of some 600 into matches, changing no group. Screening for two inliers below the threshold,
# as a margin, found no true pair more on five development draws of the duplicates benchmark
# and 0.001 of duplicates recall on the match-quality collection, while drawing more
# samples for every pair of unrelated images (docs/BENCHMARKS.md, issue 17).
_RANSAC_ITERS, _RANSAC_CONFIDENCE = 2000, 0.995
_SCREEN_INLIERS, _SCREEN_CONFIDENCE = VERIFY_THRESHOLD, 0.999


@dataclass(frozen=True)
class Side:
    """Where one image's inliers lie: `coverage`, the share of its keypoint-bearing grid cells
    (GRID x GRID over its keypoints' extent) that hold an inlier; `centre`, the share of the
    keypoints in its central box (the middle half of the extent, both ways) that are inliers,
    out of `central` such keypoints; `cells`, the REGION_GRID x REGION_GRID cells holding
    inliers as a bitmask (row-major, in the image's own orientation)."""

    coverage: float = 0.0
    centre: float = 0.0
    central: int = 0
    share: float = 0.0  # the share of all its keypoints that are inliers
    cells: int = 0
    hole: int = 0  # the largest inner blob of HOLE_GRID cells that hold keypoints but no inlier
    # `canvas.beyond`: the share of its colour layout's cells outside the other image's frame
    # (as the homography maps it), and the share of those that are flat
    beyond: float = 0.0
    blank: float = 0.0
    standout: float = -1.0  # `overlay.standouts`: how much the region where the two differ stands out here
    seam: float = 0.0  # `canvas.seam`: how sharply the picture changes where the other's frame ends inside this one
    # (measured where SEAM_BEYOND of this image or more lies beyond the other's frame)
    inset: bool = False  # `inset.inset_sides`: this image holds a picture inset where the other shows its own

    @property
    def centre_matches(self) -> bool:
        """The centre matches at least half as well as the whole image does (a degraded copy
        matches everywhere a little; a shared caption or frame, nowhere in the middle). A
        centre without keypoints (flat) cannot say."""
        return self.central == 0 or bool(centre_dense(self.centre, self.share))


@dataclass(frozen=True)
class Verification:
    """What geometric verification found between a query and a candidate image."""

    inliers: int = 0  # matches one plausible homography explains (0: none)
    query: Side = Side()
    candidate: Side = Side()
    recoloured: bool = False  # one inner region, or the inliers on one object, differ in colour (`search.recolour`)
    # aligned, the two differ in one solid block (`inset.block_edges`) that neither holds as an inset (`Side.inset`)
    block: bool = False

    @property
    def on_content(self) -> bool:
        """The inliers cover an image's content, not only what unrelated images share: a
        caption, watermark, logo, date stamp or app frame lies at the periphery or in a patch,
        while a copy shares its picture, whose centre is its subject. A flat centre cannot say,
        so the other image's centre decides: a caption over a picture with a blank middle has
        keypoints on the caption only, and its flat centre let any other picture under the
        same caption through."""
        q, c = self.query, self.candidate
        return bool(on_content((q.coverage, c.coverage), (q.central, c.central), (q.centre, c.centre),
                               (q.share, c.share)))

    @cached_property  # read several times per verification (`best_match`)
    def count(self) -> int:
        """The inliers that count as evidence of a copy: none unless they lie on the content."""
        return self.inliers if self.inliers and self.on_content else 0

    @property
    def content_differs(self) -> bool:
        """Both images match over most of their area, but both hold content in one inner region
        that does not match at all: a different letter or object on one template, another picture
        pasted in. Such pairs look alike to every global descriptor, and a copy's own changes (a
        small sticker, compression, a crop) leave no such region in both images. So does a match
        over most of both frames, or over a small part of both (MAX_SHARED: an overlay they share),
        that misses both centres (MIN_CENTRAL). Or, aligned by their keypoints, one inner region
        differs in colour: the same object recoloured; or in one solid block, each image showing a
        picture of its own there (`block`). Or one shows the other whole beside a second picture
        (`canvas.beside`): a composite."""
        q, c = self.query, self.candidate
        return bool(content_differs(self.inliers, (q.coverage, c.coverage), (q.hole, c.hole),
                                    self.recoloured or self.block,
                                    (q.beyond, c.beyond), (q.blank, c.blank), (q.seam, c.seam),
                                    centres=((q.central, c.central), (q.centre, c.centre), (q.share, c.share))))

    @property
    def canvas_side(self) -> str | None:
        """"query" when the query shows all of the candidate on a blank canvas (`canvas`), a
        padded or rotated copy of it; "candidate" for the reverse; None when neither does or
        the match is no copy's."""
        return self._side_that(lambda this, other: on_canvas(this.beyond, this.blank, other.beyond))

    @property
    def overlay_side(self) -> str | None:
        """"query" when the query holds an overlay the candidate lacks (`overlay`): a caption,
        logo or watermark pasted on a copy; "candidate" for the reverse; None when neither
        does or the match is no copy's."""
        return self._side_that(lambda this, other: has_overlay(this.standout, other.standout))

    def _side_that(self, adds: Callable[[Side, Side], bool | np.bool_]) -> str | None:
        """The side of which `adds(it, the other)` holds, the query first; None for no copy's match."""
        if not self.count or self.content_differs:
            return None
        for side, this, other in (("query", self.query, self.candidate), ("candidate", self.candidate, self.query)):
            if adds(this, other):
                return side
        return None


def centre_dense(centre: float | NDArray, share: float | NDArray) -> np.bool_ | NDArray[np.bool_]:
    """Whether a side's central keypoints are inliers at least RELATIVE_CENTRE times as often
    as all its keypoints are (`Side.centre` against `Side.share`; scalars or columns)."""
    return np.asarray(centre) >= RELATIVE_CENTRE * np.asarray(share)


def on_content(coverages: tuple[float | NDArray, float | NDArray], centrals: tuple[int | NDArray, int | NDArray],
               centres: tuple[float | NDArray, float | NDArray], shares: tuple[float | NDArray, float | NDArray]
               ) -> np.bool_ | NDArray[np.bool_]:
    """`Verification.on_content` of one pair, or of (M,) columns of pairs (each argument holds
    the two sides' `Side` values): a side with central keypoints decides by `centre_matches`;
    when neither has any, the centre cannot say."""
    telling = [np.asarray(n) > 0 for n in centrals]
    matches = [t & centre_dense(c, s) for t, c, s in zip(telling, centres, shares)]
    centred = ~(telling[0] | telling[1]) | matches[0] | matches[1]
    return (np.maximum(*coverages) >= MIN_COVERAGE) & centred


_Both = tuple[float | NDArray, float | NDArray]  # one figure of the query's side, then the candidate's


def content_differs(inliers: int | NDArray[np.int32], coverages: _Both, holes: _Both,
                    differs: bool | NDArray[np.bool_], beyonds: _Both = (0.0, 0.0), blanks: _Both = (0.0, 0.0),
                    seams: _Both = (0.0, 0.0), *, centres: tuple[_Both, _Both, _Both] = ((0, 0), (0.0, 0.0), (0.0, 0.0))
                    ) -> np.bool_ | NDArray[np.bool_]:
    """`Verification.content_differs` of one pair, or of (M,) columns of pairs: each tuple
    holds the two sides' values (`beyonds`, `blanks`, `seams`: for `either_beside`; `centres`:
    the sides' `central`, `centre` and `share`); `differs`: a region was found to differ
    (`Verification.recoloured` or `block`)."""
    matched = np.asarray(inliers) >= VERIFY_THRESHOLD
    aligned = matched & (np.minimum(*coverages) >= MIN_COVERAGE)
    missed = [(np.asarray(n) >= MIN_CENTRAL) & ~centre_dense(c, s) for n, c, s in zip(*centres)]
    shared = matched & (np.maximum(*coverages) < MAX_SHARED)
    return (((aligned | shared) & (missed[0] & missed[1])) | (aligned & (np.minimum(*holes) >= MIN_HOLE))
            | differs | (matched & either_beside(beyonds, blanks, seams)))


def either_beside(beyonds: _Both, blanks: _Both, seams: _Both) -> np.bool_ | NDArray[np.bool_]:
    """Whether either side shows the other whole beside a second picture (`canvas.beside`)."""
    return (beside(beyonds[0], blanks[0], beyonds[1], seams[0])
            | beside(beyonds[1], blanks[1], beyonds[0], seams[1]))


def verify(query: LocalFeatures, candidate: LocalFeatures, *, mirrored: bool = False,
           colours: tuple[ColourLayout, ColourLayout] | None = None) -> Verification:
    """Match two keypoint sets and fit one RANSAC homography to the matches. No fit is tried
    for fewer than VERIFY_THRESHOLD ratio-test matches, and an implausible homography (a
    mirror, an extreme scale) explains nothing. `mirrored`: the query's keypoints are those
    of its mirror image (its region cells are flipped back). `colours`: the two images' colour
    layouts, in the keypoints' frames (the query's mirrored with it), compared once the
    homography explains VERIFY_THRESHOLD matches (`recolour.recoloured`), as are the inliers'
    own colours when both feature sets have them (`recolour.shifted_hues`); and what each side
    adds to the other (`canvas.beyond`, `overlay.standouts`)."""
    match = _match(query, candidate)
    if match is None:
        return Verification()
    homography, query_idx, candidate_idx = match
    if len(query_idx) < 3:
        return Verification()
    matched = query.points[query_idx]
    differs = colours is not None and len(query_idx) >= VERIFY_THRESHOLD and (
        recoloured(*colours, homography, matched)
        or (query.colours is not None and candidate.colours is not None
            and shifted_hues(*colours, homography, matched, query.colours[query_idx],
                             candidate.colours[candidate_idx])))
    query_side, candidate_side = layout(query[0], query_idx, mirrored=mirrored), layout(candidate[0], candidate_idx)
    block = False
    if colours is not None and len(query_idx) >= VERIFY_THRESHOLD:
        fitted, _ = cv2.findHomography(matched, candidate.points[candidate_idx], 0)
        query_side, candidate_side, block = _added(query_side, candidate_side, colours,
                                                   fitted if fitted is not None and _plausible(fitted) else homography,
                                                   matched)
    return Verification(len(query_idx), query_side, candidate_side, differs, block)


def _added(query: Side, candidate: Side, colours: tuple[ColourLayout, ColourLayout],
           homography: NDArray[np.float64], points: NDArray[np.float32]) -> tuple[Side, Side, bool]:
    """Both sides with what a copy may have added to the other: canvas beyond its frame
    (`canvas.beyond`), an overlay (`overlay.standouts`); or a picture inset (`inset`), which
    no copy adds; and whether the two differ in a solid block (`Verification.block`).
    `homography` is the least-squares fit
    to all the inliers: RANSAC's own is fitted to four of them, which is enough to count
    inliers but may place a frame's corners, far from most keypoints, tens of pixels off.
    `points`: the query's inliers."""
    mine, theirs = colours
    inverse = np.linalg.inv(homography)
    query_beyond = beyond(mine, theirs.width, theirs.height, inverse)
    candidate_beyond = beyond(theirs, mine.width, mine.height, homography)
    difference = Difference(mine, theirs, homography)
    query_standout, candidate_standout = standouts(mine, theirs, homography, difference, points)
    edges = block_edges(mine, theirs, homography, difference)
    query_inset, candidate_inset = inset_sides(edges)
    block = edges is not None and not (query_inset or candidate_inset)
    # the seam only where enough lies beyond the other for it to matter: most copies share one frame
    query_seam = seam(mine, theirs.width, theirs.height, inverse) if query_beyond[0] >= SEAM_BEYOND else 0.0
    candidate_seam = seam(theirs, mine.width, mine.height, homography) if candidate_beyond[0] >= SEAM_BEYOND else 0.0
    return (replace(query, beyond=query_beyond[0], blank=query_beyond[1], standout=query_standout, seam=query_seam,
                    inset=query_inset),
            replace(candidate, beyond=candidate_beyond[0], blank=candidate_beyond[1], standout=candidate_standout,
                    seam=candidate_seam, inset=candidate_inset), block)


def _match(query: LocalFeatures, candidate: LocalFeatures
           ) -> tuple[NDArray[np.float64], NDArray[np.intp], NDArray[np.intp]] | None:
    """The plausible homography fitted to the ratio-test matches and the (query, candidate)
    keypoint indices it explains; None below _MIN_MATCHES matches or without a plausible fit."""
    qp, qd, cp, cd = query.points, query.descriptors, candidate.points, candidate.descriptors
    if len(qd) < _MIN_MATCHES or len(cd) < 2:
        return None
    query_idx, candidate_idx = ratio_matches(qd, cd)
    if len(query_idx) < _MIN_MATCHES:
        return None
    homography, mask = _fit(qp[query_idx], cp[candidate_idx])
    if homography is None or mask is None or not _plausible(homography):
        return None
    kept = mask.ravel().astype(bool)
    return homography, query_idx[kept], candidate_idx[kept]


def ratio_matches(query: NDArray[np.uint8], candidate: NDArray[np.uint8]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Lowe's ratio test over binary descriptors, (n, 32) uint8 and (m, 32) uint8, m >= 2: the
    query rows whose nearest candidate row (Hamming) is closer than _RATIO times the second
    nearest, and that nearest row; both (g,) in query order. The same matches as OpenCV's
    brute-force 2-NN matcher (a tie for the nearest never passes the test, so which of the
    tied rows is "nearest" cannot matter), from FAISS's Hamming kernel: about ten times
    faster, and no Python object per match."""
    distances = np.empty((len(query), len(candidate)), np.int32)
    query, candidate = np.ascontiguousarray(query), np.ascontiguousarray(candidate)
    faiss.hammings(faiss.swig_ptr(query), faiss.swig_ptr(candidate), len(query), len(candidate),
                   query.shape[1], faiss.swig_ptr(distances))
    rows = np.arange(len(query))
    nearest = distances.argmin(axis=1)
    first = distances[rows, nearest].astype(np.float64)
    distances[rows, nearest] = _FAR
    second = distances.min(axis=1).astype(np.float64)
    good = np.flatnonzero(first < _RATIO * second)
    return good, nearest[good]


def homography(query: LocalFeatures, candidate: LocalFeatures) -> NDArray[np.float64] | None:
    """The homography `verify` fits from the query's keypoints to the candidate's, when it
    explains VERIFY_THRESHOLD matches or more; else None."""
    match = _match(query, candidate)
    return match[0] if match is not None and len(match[1]) >= VERIFY_THRESHOLD else None


def inliers(query: LocalFeatures, candidate: LocalFeatures) -> int:
    """The inliers of `verify` that count as evidence: 0 unless they lie on the content."""
    return verify(query, candidate).count


def _fit(source: NDArray[np.float32], target: NDArray[np.float32]) -> tuple[NDArray | None, NDArray | None]:
    """OpenCV's RANSAC homography of matched points, (n, 2) each, drawing at most the samples
    that find one explaining _SCREEN_INLIERS of them with _SCREEN_CONFIDENCE."""
    cap = min(_samples(_SCREEN_INLIERS / len(source), _SCREEN_CONFIDENCE), _RANSAC_ITERS)
    return cv2.findHomography(source, target, cv2.RANSAC, _REPROJECTION_PX, maxIters=cap,
                              confidence=_RANSAC_CONFIDENCE)


def _samples(inlier_share: float, confidence: float) -> int:
    """The samples of four matches RANSAC draws to find, with `confidence`, a homography
    explaining `inlier_share` of them: OpenCV's own stopping rule (RANSACUpdateNumIters),
    capped at _RANSAC_ITERS. Once its best homography needs no more samples than a shorter
    run drew, that run stopped where the default would have."""
    all_inliers = min(max(inlier_share, 0.0), 1.0) ** 4
    if all_inliers >= 1.0:
        return 1
    if all_inliers <= 0.0 or -math.log(1.0 - confidence) >= _RANSAC_ITERS * -math.log(1.0 - all_inliers):
        return _RANSAC_ITERS
    return math.floor(math.log(1.0 - confidence) / math.log(1.0 - all_inliers) + 0.5)  # cvRound


def _plausible(homography: NDArray[np.float64]) -> bool:
    """Whether a homography could map an image onto a copy of it: orientation kept, area
    scaled by at most _MAX_AREA_SCALE either way (at the origin: the linear part's determinant)."""
    area = homography[0, 0] * homography[1, 1] - homography[0, 1] * homography[1, 0]
    return 1.0 / _MAX_AREA_SCALE <= area <= _MAX_AREA_SCALE


def layout(points: NDArray[np.float32], matched: NDArray[np.intp], *, mirrored: bool = False) -> Side:
    """Where the `matched` keypoints (indices into (n, 2) `points`) lie in their image."""
    relative, cell_id, bearing = _grid(points)
    hit = np.zeros(len(points), bool)
    hit[matched] = True
    inner = np.all((relative >= 0.25) & (relative <= 0.75), axis=1)
    hole = _largest_hole(relative, hit)
    if mirrored:
        relative[:, 0] = 1.0 - relative[:, 0]
    region = np.minimum((relative[hit] * REGION_GRID).astype(int), REGION_GRID - 1)
    bits = np.bincount(region[:, 1] * REGION_GRID + region[:, 0], minlength=REGION_GRID * REGION_GRID) > 0
    cells = int((bits.astype(np.uint64) << np.arange(REGION_GRID * REGION_GRID, dtype=np.uint64)).sum())
    return Side(_coverage(cell_id, bearing, matched),
                float(hit[inner].mean()) if inner.any() else 0.0, int(inner.sum()), float(hit.mean()), cells, hole)


def _coverage(cell_id: NDArray[np.intp], bearing: NDArray[np.bool_], matched: NDArray[np.intp]) -> float:
    """`Side.coverage`: the share of the keypoint-bearing cells (`_grid`) that hold a `matched` keypoint."""
    touched = np.bincount(cell_id[matched], minlength=GRID * GRID) > 0
    return float(touched[bearing].mean()) if bearing.any() else 0.0


def coverage_bound(query: LocalFeatures, candidate: LocalFeatures) -> tuple[float, float]:
    """The share of the query's, then the candidate's, keypoint-bearing cells that their ratio-test
    matches touch: `verify`'s inliers are some of those matches, so no `Side.coverage` of the two
    exceeds these. (0.0, 0.0) below the matches `verify` fits a homography to. A caller that asks
    only whether a match covers MIN_COVERAGE of an image can stop here for most unrelated pairs,
    before RANSAC, the costliest step."""
    if len(query.descriptors) < _MIN_MATCHES or len(candidate.descriptors) < 2:
        return 0.0, 0.0
    query_idx, candidate_idx = ratio_matches(query.descriptors, candidate.descriptors)
    if len(query_idx) < _MIN_MATCHES:
        return 0.0, 0.0
    return (_coverage(*_grid(query.points)[1:], query_idx),
            _coverage(*_grid(candidate.points)[1:], candidate_idx))


def _grid(points: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.intp], NDArray[np.bool_]]:
    """(n, 2) `points` relative to their extent, the GRID x GRID cell each lies in (row-major)
    and which cells bear keypoints (_MIN_CELL_KEYPOINTS or more)."""
    low, high = points.min(axis=0), points.max(axis=0)
    relative = (points - low) / np.maximum(high - low, 1.0)
    cell = np.minimum((relative * GRID).astype(int), GRID - 1)
    cell_id = cell[:, 1] * GRID + cell[:, 0]
    return relative, cell_id, np.bincount(cell_id, minlength=GRID * GRID) >= _MIN_CELL_KEYPOINTS


def shown_coverage(query: LocalFeatures, candidate: LocalFeatures) -> tuple[int, float, float]:
    """For a query that may show only part of the candidate (the strip of a composite beside a
    second picture pasted over the rest of the candidate): the inliers of their homography; the
    share of the candidate's keypoint-bearing cells (`Side.coverage`'s) that bear keypoints in
    the part the query shows (its keypoints' extent, mapped); and the share of those cells that
    hold an inlier. (0, 0.0, 0.0) without VERIFY_THRESHOLD inliers or a cell shown."""
    match = _match(query, candidate)
    if match is None or len(match[1]) < VERIFY_THRESHOLD:
        return 0, 0.0, 0.0
    found, query_idx, candidate_idx = match
    (x0, y0), (x1, y1) = query.points.min(axis=0), query.points.max(axis=0)
    corners = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x1, y1, 1.0], [x0, y1, 1.0]]) @ found.T
    if np.any(corners[:, 2] <= 1e-9):
        return 0, 0.0, 0.0
    quad = corners[:, :2] / corners[:, 2:]
    # inside a convex quadrilateral: on one side of each of its edges (a plausible fit keeps it convex)
    edges = np.roll(quad, -1, axis=0) - quad
    offsets = candidate.points[:, None, :] - quad[None]
    turns = edges[None, :, 0] * offsets[..., 1] - edges[None, :, 1] * offsets[..., 0]
    inside = np.all(turns >= 0, axis=1) | np.all(turns <= 0, axis=1)
    _, cell_id, bearing = _grid(candidate.points)
    shown = np.bincount(cell_id[inside], minlength=GRID * GRID) >= _MIN_CELL_KEYPOINTS
    if not shown.any():
        return 0, 0.0, 0.0
    touched = np.bincount(cell_id[candidate_idx], minlength=GRID * GRID) > 0
    return len(query_idx), float(shown.sum() / bearing.sum()), float(touched[shown].mean())


def _largest_hole(relative: NDArray[np.float32], hit: NDArray[np.bool_]) -> int:
    """The largest 4-connected blob of inner HOLE_GRID cells (not on the outer ring) holding
    _MIN_CELL_KEYPOINTS or more keypoints and no inlier."""
    cell = np.minimum((relative * HOLE_GRID).astype(int), HOLE_GRID - 1)
    cell_id = cell[:, 1] * HOLE_GRID + cell[:, 0]
    count = np.bincount(cell_id, minlength=HOLE_GRID * HOLE_GRID).reshape(HOLE_GRID, HOLE_GRID)
    matched = np.bincount(cell_id[hit], minlength=HOLE_GRID * HOLE_GRID).reshape(HOLE_GRID, HOLE_GRID)
    holes = (count >= _MIN_CELL_KEYPOINTS) & (matched == 0)
    holes[[0, -1], :] = holes[:, [0, -1]] = False
    found, _, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    return int(stats[1:, cv2.CC_STAT_AREA].max()) if found > 1 else 0


def best_match(queries: Sequence[LocalFeatures], candidate: LocalFeatures, *, mirrored: Sequence[bool] = (),
               colours: tuple[ColourLayout, ColourLayout] | None = None) -> Verification:
    """The verification of the query's variant (as given, mirrored, …) with the most
    counting inliers; stops at the first reaching VERIFY_FULL (more cannot count).
    `mirrored[i]`: variant i is a mirror image. `colours`: the query's colour layout (as
    given) and the candidate's, for `verify`."""
    best = Verification()
    for i, query in enumerate(queries):
        flipped = bool(mirrored[i]) if i < len(mirrored) else False
        pair = None if colours is None else ((colours[0].mirrored() if flipped else colours[0]), colours[1])
        found = verify(query, candidate, mirrored=flipped, colours=pair)
        if (found.count, found.inliers) > (best.count, best.inliers):
            best = found
        if best.count >= VERIFY_FULL:
            break
    return best


def best_inliers(queries: Sequence[LocalFeatures], candidate: LocalFeatures) -> int:
    """The most counting inliers any of the query's variants has with `candidate`."""
    return best_match(queries, candidate).count


def verified_confidence(count: NDArray[np.integer] | int) -> NDArray[np.float64]:
    """Inlier counts -> confidence: 0 below VERIFY_THRESHOLD, then 0.5 rising to VERIFY_CEILING
    at VERIFY_FULL."""
    n = np.asarray(count, dtype=np.float64)
    rising = 0.5 + (VERIFY_CEILING - 0.5) * np.clip((n - VERIFY_THRESHOLD) / (VERIFY_FULL - VERIFY_THRESHOLD), 0.0, 1.0)
    return np.where(n >= VERIFY_THRESHOLD, rising, 0.0)
