"""A picture pasted into another, found by searching the part that a copy of the other lacks.

A sticker or an inset made of a second photo (a cut-out, scaled and tilted) changes little of
the photo it is pasted on: its hashes and CNN vector stay those of that photo, so it links to
that photo's group as a copy with an overlay (`overlay`), and no candidate search pairs it
with the second photo, which fills a fifth of it or less. Matched against its whole self, the
second photo shares a dozen ratio-test matches (the composite's 500 keypoints lie mostly on
the background), under the sixteen a match needs; nor does a 32 x 32 colour thumbnail of the
region find it (docs/BENCHMARKS.md). So where an image holds an overlay that a copy of it
lacks (`suspects`), the region where the two differ (`pasted_box`) is cut from its pixels,
decoded again at twice the decode side; so is the strip a match leaves free at one edge
(`strips`, `strip_box`: two pictures side by side) where the strip's colours found no
picture; and

1. its CNN vector is searched for among the catalog's: the TOP nearest images not linked to
   the holder or its copy are its candidates;
2. its own keypoints (found in the region alone, as dense as a whole image's) are verified
   against each candidate's stored ones, and a candidate is *pasted* when the match covers
   most of it (`pasted_match`: MIN_COVERAGE of its keypoint-bearing cells, its centre too)
   and it does not match the holder's copy (then it shows that picture, or one alike: another
   crop of it, another variant of a template); of several, the one with the most inliers. A
   strip may show only part of its picture, the rest hidden under a picture inset on it (a
   picture-in-picture, the strip beside the inset): there, covering most of the part it shows
   will do, unless the strip is mostly flat (window chrome).
   A caption, logo, date stamp or banner is a part of the images that share it, so its match
   covers little of any of them; a pasted picture is the whole of the image it was cut from.

Where ORB finds no picture pasted in a region, its TOP nearest are compared again by their
gradients (`cutout`): a cut-out of flat-coloured clip art keeps too few ORB corners, and those
on its outline see the photo it was pasted on.

The holder then contains both pictures (`composites.with_held`): its own copy's group and the
pasted picture's. Images whose region was searched keep what the search found with the crop's
vector, so that images added later are compared with it alone (`Searched`). A catalog without
CNN vectors is not searched; nor is an image whose file cannot be read now (a drive not
mounted): `duplicates` says how many, stores neither its groups nor their text, and tries
again on its next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from neardup.indexer.colours import LAYOUT_SIDE, ColourLayout
from neardup.indexer.decode import UnreadableImageError, decode
from neardup.indexer.embed import Embedder
from neardup.indexer.embedders import load_embedder
from neardup.indexer.features import LocalFeatures, orb_and_mirror
from neardup.indexer.progress import Progress
from neardup.indexer.workers import parallel_map

from . import cutout
from .evidence import catalog_location, layouts_of, worker_catalog
from .recolour import BLOB_DISTANCE, Difference
from .verify import (MIN_COVERAGE, VERIFY_THRESHOLD, Verification, best_match, coverage_bound, homography,
                     shown_coverage)

if TYPE_CHECKING:
    from neardup.storage.catalog import Catalog
    from neardup.storage.vectors import FeatureIndex

TOP = 5  # the region's nearest images (by CNN cosine) verified against it
MARGIN = 1  # layout cells added around the differing region: its edge cells differ least
CROP_SCALE = 2  # the region is cut from the image decoded at this many times the decode side
Box = tuple[float, float, float, float]  # x0, y0, x1, y1: shares of an image's width and height
_NOTHING = 2.0  # the cosine a new image must reach to be compared with a region: none can
_SLACK = 1e-5  # a cosine this close below a stored search's floor reaches it (`still_valid`)
_ROWS = 4096  # regions compared with the images added at once (`still_valid`: 160 MB for 10,000 added)
_MIN_SIDE = 32  # pixels: ORB finds no keypoint in a thinner region
SEARCHING = "searching pasted pictures"  # the progress stage's label
CUTTING = "matching cut-outs"  # the label of the stage that compares regions by `cutout`
TASK = 16  # regions a worker's task searches
# A strip may show only part of its picture, the rest hidden under a picture inset on it: then
# the candidate is pasted when the strip shows MIN_SHOWN of its keypoint-bearing cells and the
# match covers MIN_COVERAGE of those (`verify.shown_coverage`); a caption or logo two images
# share is less of either. Not in a strip more than MAX_STRIP_FLAT flat: a window's chrome or a
# margin, which unrelated screenshots share in place, where a picture is mostly not flat. On the
# duplicates benchmark's eight development draws the strips whose second picture only this
# finds were 0.00-0.53 flat but three (0.74-0.88), the three screenshots whose chrome it took
# for a picture 0.67-0.70 (docs/BENCHMARKS.md).
MIN_SHOWN = 0.4
MAX_STRIP_FLAT = 0.6


@dataclass(frozen=True)
class Searched:
    """What searching one holder's region found: the `pasted` image (-1: none), the crop's
    CNN `vector` and the least cosine among the candidates it verified (`floor`: an image
    added later that comes as close is verified too; _NOTHING when there was no region)."""

    partner: int
    pasted: int
    floor: float
    vector: NDArray[np.float32]


def suspects(pairs: NDArray[np.int64], overlaid: NDArray[np.bool_], holder_first: NDArray[np.bool_],
             inliers: NDArray[np.int32]) -> dict[int, int]:
    """Holder id -> partner id: for each image that holds an overlay its linked copy lacks
    (`overlaid`, (M,) over the (M, 2) `pairs`; `holder_first`: the first image is the one
    holding it), the copy it shares the most `inliers` with (the lower id on a tie)."""
    out: dict[int, tuple[int, int]] = {}
    for row in np.flatnonzero(overlaid).tolist():
        a, b = pairs[row].tolist()
        holder, partner = (a, b) if holder_first[row] else (b, a)
        strength = (int(inliers[row]), -partner)
        if holder not in out or strength > out[holder]:
            out[holder] = strength
    return {holder: -strength[1] for holder, strength in out.items()}


def strip_box(strip: tuple[int, int, int, int]) -> Box:
    """A container's strip (`strips.Strip`: LAYOUT_SIDE cells) as a box."""
    left, top, right, bottom = strip
    return left / LAYOUT_SIDE, top / LAYOUT_SIDE, right / LAYOUT_SIDE, bottom / LAYOUT_SIDE


def pasted_box(holder: ColourLayout, partner: ColourLayout, homography: NDArray[np.float64]) -> Box | None:
    """The box (x0, y0, x1, y1: shares of the holder's width and height) around the largest
    region where the holder's colours differ from its partner's, aligned by `homography`
    (holder -> partner) and one tone curve (`recolour.Difference`), MARGIN cells wider; None
    where they differ nowhere."""
    difference = Difference(holder, partner, homography)
    region = (difference.inside & (difference.toned >= BLOB_DISTANCE)).astype(np.uint8)
    found, _, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    if found < 2:
        return None
    x, y, width, height = stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])), :4].tolist()
    n = LAYOUT_SIDE
    return (max(x - MARGIN, 0) / n, max(y - MARGIN, 0) / n,
            min(x + width + MARGIN, n) / n, min(y + height + MARGIN, n) / n)


def cropped(pixels: NDArray[np.uint8], box: Box) -> NDArray[np.uint8]:
    """The part of (H, W, 3) `pixels` inside `box` (shares of the width and height)."""
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(pixels[int(y0 * height):int(np.ceil(y1 * height)),
                                       int(x0 * width):int(np.ceil(x1 * width))])


def pasted_match(region: tuple[LocalFeatures, LocalFeatures], candidate: LocalFeatures, *,
                 partial: bool = False) -> Verification | None:
    """The verification of a region's keypoints (as cut, and mirrored) against a candidate's,
    when it makes the candidate a picture pasted there: VERIFY_THRESHOLD inliers or more,
    covering MIN_COVERAGE of the candidate's keypoint-bearing cells and its centre; `partial`
    (a strip, which may show part of the picture): or covering MIN_COVERAGE of the cells it
    shows, MIN_SHOWN of them or more. Else None."""
    # a match covers no more of the candidate than its ratio-test matches do: most candidates,
    # unrelated to the region, stop here before their homography is fitted (most of the time
    # a region's search took; a strip, which may show part of its picture, is verified)
    if not partial and max(coverage_bound(view, candidate)[1] for view in region) < MIN_COVERAGE:
        return None
    found = best_match(list(region), candidate, mirrored=(False, True))
    if found.inliers < VERIFY_THRESHOLD:
        return None
    if found.candidate.coverage >= MIN_COVERAGE and found.candidate.centre_matches:
        return found
    if partial and any(shown >= MIN_SHOWN and covered >= MIN_COVERAGE
                       for _, shown, covered in (shown_coverage(view, candidate) for view in region)):
        return found
    return None


def ranked(neighbours: Iterable[tuple[int, float]], excluded: set[int]) -> list[tuple[int, float]]:
    """The TOP nearest (id, cosine) of `neighbours` (nearest first) not `excluded`."""
    return [(i, cosine) for i, cosine in neighbours if i not in excluded][:TOP]


def still_valid(searches: Mapping[int, Searched], added: Mapping[int, NDArray[np.float32]],
                excluded: Mapping[int, set[int]]) -> set[int]:
    """The holders whose stored search (`searches`, by holder) still stands now that the images
    `added` (id -> CNN vector) were added: none of them but those `excluded[holder]` comes as
    close to its region as the candidates it verified. One product of every region with every
    added image, _ROWS regions at a time (pair by pair in Python it cost a run after adding
    more than the searches it spared); a cosine within _SLACK of a floor counts as reaching it,
    since the product rounds otherwise than a single dot product, and a search done again is
    right either way."""
    if not added:
        return set(searches)
    holders = [h for h, found in searches.items() if found.floor < _NOTHING]
    standing = set(searches).difference(holders)
    ids = np.fromiter(added, np.int64, len(added))
    vectors = np.stack([added[i] for i in ids.tolist()]).astype(np.float32)
    for start in range(0, len(holders), _ROWS):
        part = holders[start : start + _ROWS]
        regions = np.stack([searches[h].vector for h in part]).astype(np.float32)
        floors = np.array([searches[h].floor for h in part], np.float32)
        reached = (regions @ vectors.T) >= floors[:, None] - _SLACK
        for row, h in enumerate(part):
            if excluded[h].issuperset(ids[reached[row]].tolist()):
                standing.add(h)
    return standing


def search_regions(catalog: Catalog, wanted: Mapping[int, tuple[int, Box | None]], excluded: Mapping[int, set[int]],
                   linked: Mapping[int, int], progress: Progress | None = None, workers: int = 1
                   ) -> dict[int, Searched]:
    """Holder -> what searching its region found, for each holder -> (partner, region) of
    `wanted` (region None: where the two differ, `pasted_box`; else a strip's `strip_box`;
    `excluded[holder]`: the images never taken for its pasted picture, nor those `linked` (id
    -> the component of kept links it lies in) with it: its own group's). The regions are cut,
    embedded and their keypoints found TASK holders a task on `workers` processes (each with
    its own read-only connection and a one-thread CNN); their vectors are searched and their
    candidates verified here, a task's at once, so that no worker holds the CNN's index.
    Holders whose file cannot be decoded now are left out (searched again next time)."""
    progress = progress or Progress()
    progress.start(len(wanted), SEARCHING)
    holders = sorted(wanted)
    tasks = [[(h, *wanted[h]) for h in holders[i : i + TASK]] for i in range(0, len(holders), TASK)]
    if workers > 1 and len(tasks) > 1:
        cut = parallel_map(_regions_in_worker, tasks, (catalog_location(catalog),), workers=workers, chunk=1)
    else:
        cut = (_regions(catalog, task, _embedder) for task in tasks)
    index, out, pending = catalog.index("cnn"), {}, {}
    for task, regions in zip(tasks, cut):
        found, unmatched = _searched(catalog, index, regions, excluded, linked)
        out.update(found)
        pending.update(unmatched)
        progress.advance(len(task))
    out.update(_cut_outs(catalog, pending, out, progress, workers))
    return out


@dataclass(frozen=True)
class _Region:
    """A holder's region as a worker cut it: its CNN `vector` and its keypoints (as cut, and
    mirrored); both None where there was no region to cut."""

    partner: int
    vector: NDArray[np.float32] | None = None
    features: tuple[LocalFeatures, LocalFeatures] | None = None
    partial: bool = False  # a strip that may show part of its picture (`pasted_match`)
    box: Box | None = None  # where it was cut from the holder


# this process's CNN for the regions, loaded by the first region embedded (per catalog location)
_embedders: dict[object, Embedder] = {}


def _embedder(catalog: Catalog, *, worker: bool = False) -> Embedder:
    key = (catalog_location(catalog), worker)
    if key not in _embedders:
        loaded = load_embedder(catalog, "cnn")
        _embedders[key] = (getattr(loaded, "in_worker", lambda: None)() or loaded) if worker else loaded
    return _embedders[key]


_Task = list[tuple[int, int, Box | None]]  # (holder, partner, region) each


def _regions_in_worker(task: _Task, location: object) -> dict[int, _Region]:
    return _regions(worker_catalog(location), task, lambda c: _embedder(c, worker=True))


def _regions(catalog: Catalog, task: _Task, embedder_of: Callable[[Catalog], Embedder]) -> dict[int, _Region]:
    """Each holder's region of one task: cut from its file, embedded, its keypoints found."""
    side = catalog.settings.decode_side
    ids = sorted({i for holder, partner, _ in task for i in (holder, partner)})
    info, layouts = catalog.images(ids), layouts_of(catalog, ids)
    plain, flipped = catalog.keypoints_of(ids), catalog.keypoints_of([h for h, _, _ in task], mirrored=True)
    out = {}
    for holder, partner, given in task:
        box = given or _box(holder, partner, plain, flipped, layouts)
        if box is None:
            out[holder] = _Region(partner)
            continue
        try:
            region = cropped(decode(info[holder].path, max_side=CROP_SCALE * side, traits=False).pixels, box)
        except (OSError, UnreadableImageError):
            continue
        if min(region.shape[:2]) < _MIN_SIDE:
            out[holder] = _Region(partner)
            continue
        partial = given is not None and not _flat(layouts.get(holder), box)
        out[holder] = _Region(partner, embedder_of(catalog).embed([region])[0].astype(np.float32),
                              orb_and_mirror(region, side=side), partial, box)
    return out


def _searched(catalog: Catalog, index: FeatureIndex, regions: Mapping[int, _Region],
              excluded: Mapping[int, set[int]], linked: Mapping[int, int]
              ) -> tuple[dict[int, Searched], dict[int, tuple[Box, list[int]]]]:
    """What searching each of `regions` found: its TOP nearest by the CNN's `index` but those
    `excluded`, verified against it (`pasted_match`); none in the holder's own component of
    kept links (`linked`: another copy of its picture) or matching its copy (`_shares`). And
    holder -> (its region's box, its `cutout.TOP` nearest outside its component) for each
    region where none was found, to be compared by `cutout`."""
    partners = sorted({r.partner for r in regions.values()})
    plain, flipped = catalog.keypoints_of(partners), catalog.keypoints_of(partners, mirrored=True)
    # a region its copy matches over most of itself shows that picture: nothing is pasted there
    # (a screenshot's or a distorted copy's whole picture can differ in colour from its copy)
    out = {h: Searched(r.partner, -1, _NOTHING, np.zeros(0, np.float32)) for h, r in regions.items()
           if r.vector is None or _shows(r.features, r.partner, plain)}
    searched = [h for h in regions if h not in out]
    if not searched:
        return out, {}
    unmatched: dict[int, tuple[Box, list[int]]] = {}
    found = index.knn(np.stack([regions[h].vector for h in searched]), TOP + max(len(excluded[h]) for h in searched))
    near = {h: ranked(((n.image_id, n.distance) for n in found[row]), excluded[h]) for row, h in enumerate(searched)}
    stored = catalog.keypoints_of(sorted({i for candidates in near.values() for i, _ in candidates}))
    for h in searched:
        region = regions[h]
        matches = {i: pasted_match(region.features, LocalFeatures(*stored[i]), partial=region.partial)
                   for i, _ in near[h] if i in stored}
        pasted = [i for i, m in matches.items() if m is not None and linked.get(i, -1) != linked.get(h, -2)
                  and not _shares(region.partner, LocalFeatures(*stored[i]), plain, flipped)]
        # the candidate matched best: a copy of the pasted picture may carry a picture of its own
        best = max(pasted, key=lambda i: matches[i].inliers, default=-1)
        floor = min(cosine for _, cosine in near[h]) if len(near[h]) == TOP else -1.0
        out[h] = Searched(region.partner, best, floor, region.vector)
        if best == -1 and region.box is not None:
            nearest = [i for i, _ in near[h] if linked.get(i, -1) != linked.get(h, -2)][:cutout.TOP]
            if nearest:
                unmatched[h] = (region.box, nearest)
    return out, unmatched


def _cut_outs(catalog: Catalog, pending: Mapping[int, tuple[Box, list[int]]], searched: Mapping[int, Searched],
              progress: Progress, workers: int) -> dict[int, Searched]:
    """The searches of `pending` holders (holder -> its region's box, its nearest candidates)
    that found a cut-out (`cutout.cutout_match`) of one of their candidates there, taken for
    the picture pasted (the one matched by most, none matching the holder's copy: `_shares`).
    Compared TASK holders a task on `workers` processes, holders sharing a first candidate in
    one task, whose candidates' features are found once."""
    if not pending:
        return {}
    progress.start(len(pending), CUTTING)
    holders = sorted(pending, key=lambda h: (pending[h][1][0], h))
    tasks = [[(h, *pending[h]) for h in holders[i : i + TASK]] for i in range(0, len(holders), TASK)]
    if workers > 1 and len(tasks) > 1:
        compared = parallel_map(_cut_outs_in_worker, tasks, (catalog_location(catalog),), workers=workers, chunk=1)
    else:
        known: dict = {}  # in this process, each candidate's features are found once a run
        compared = (_compared(catalog, task, known) for task in tasks)
    matched: dict[int, list[tuple[int, int]]] = {}
    for task, found in zip(tasks, compared):
        matched.update((h, m) for h, m in found.items() if m)
        progress.advance(len(task))
    partners = sorted({searched[h].partner for h in matched})
    plain, flipped = catalog.keypoints_of(partners), catalog.keypoints_of(partners, mirrored=True)
    stored = catalog.keypoints_of(sorted({c for m in matched.values() for c, _ in m}))
    out = {}
    for h, found in matched.items():
        kept = [(n, c) for c, n in found
                if c in stored and not _shares(searched[h].partner, LocalFeatures(*stored[c]), plain, flipped)]
        if kept:
            out[h] = replace(searched[h], pasted=max(kept)[1])
    return out


def _cut_outs_in_worker(task: list[tuple[int, Box, list[int]]], location: object) -> dict[int, list[tuple[int, int]]]:
    return _compared(worker_catalog(location), task)


def _compared(catalog: Catalog, task: list[tuple[int, Box, list[int]]],
              features: dict[int, tuple[cutout.CutoutFeatures, cutout.Box] | None] | None = None
              ) -> dict[int, list[tuple[int, int]]]:
    """Holder -> (candidate, matches) of the candidates whose cut-out each holder's region
    shows (`cutout.cutout_match`): the region cut again from the holder's file, each candidate
    decoded at the decode side (its `features` found once, kept there). A holder or candidate
    whose file cannot be decoded now is left out."""
    side = catalog.settings.decode_side
    info = catalog.images(sorted({i for holder, _, candidates in task for i in (holder, *candidates)}))
    features = {} if features is None else features
    out = {}
    for holder, box, candidates in task:
        try:
            region = cropped(decode(info[holder].path, max_side=CROP_SCALE * side, traits=False).pixels, box)
        except (OSError, UnreadableImageError):
            continue
        shown = cutout.sift_features(region)
        out[holder] = []
        for c in candidates:
            if c not in features:
                try:
                    features[c] = cutout.candidate_features(decode(info[c].path, max_side=side, traits=False).pixels)
                except (OSError, UnreadableImageError):
                    features[c] = None
            if features[c] is not None and (n := cutout.cutout_match(shown, region.shape, *features[c])):
                out[holder].append((c, n))
    return out


def _flat(layout: ColourLayout | None, box: Box) -> bool:
    """Whether more than MAX_STRIP_FLAT of a layout's cells inside `box` are flat; True where
    that is unknown (no layout, or one without flat cells marked)."""
    if layout is None or layout.flat is None:
        return True
    x0, y0, x1, y1 = (round(share * LAYOUT_SIDE) for share in box)
    cells = layout.flat[y0:y1, x0:x1]
    return not cells.size or float(cells.mean()) > MAX_STRIP_FLAT


def _shows(region: tuple[LocalFeatures, LocalFeatures], partner: int, plain: Mapping[int, tuple]) -> bool:
    """Whether the holder's copy matches a region (as cut, or mirrored) over most of the region
    (MIN_COVERAGE of its keypoint-bearing cells)."""
    if partner not in plain:
        return False
    copy = LocalFeatures(*plain[partner])
    if max(coverage_bound(view, copy)[0] for view in region) < MIN_COVERAGE:  # as in `pasted_match`
        return False
    found = best_match(list(region), copy, mirrored=(False, True))
    return found.inliers >= VERIFY_THRESHOLD and found.query.coverage >= MIN_COVERAGE


def _shares(partner: int, candidate: LocalFeatures, plain: Mapping[int, tuple], flipped: Mapping[int, tuple]) -> bool:
    """Whether a candidate matches the holder's copy (VERIFY_THRESHOLD inliers, as it is or
    mirrored): then it shows that picture, or one alike (a crop of it, a template's other
    variant), not a second picture pasted on it."""
    views = [LocalFeatures(*found[partner]) for found in (plain, flipped) if partner in found]
    return bool(views) and best_match(views, candidate, mirrored=(False, True)).inliers >= VERIFY_THRESHOLD


def _box(holder: int, partner: int, plain: Mapping[int, tuple], flipped: Mapping[int, tuple],
         layouts: Mapping[int, ColourLayout]) -> Box | None:
    """`pasted_box` of a holder and its partner, aligned by the homography of their stored
    keypoints (the holder's mirror's, flipped back, when only those match); None without one."""
    if holder not in plain or partner not in plain or holder not in layouts or partner not in layouts:
        return None
    target = LocalFeatures(*plain[partner])
    found = homography(LocalFeatures(*plain[holder]), target)
    if found is not None:
        return pasted_box(layouts[holder], layouts[partner], found)
    found = homography(LocalFeatures(*flipped[holder]), target) if holder in flipped else None
    if found is None:
        return None
    box = pasted_box(layouts[holder].mirrored(), layouts[partner], found)
    return None if box is None else (1.0 - box[2], box[1], 1.0 - box[0], box[3])
