"""Images that contain other images: a collage, a picture-in-picture, a sticker made of
another photo. Such an image shares content with each picture it contains, so single linkage
would chain the groups of those pictures into one; a group means "copies of one original".

An image is taken for a composite when it links two or more groups (the connected components
that remain without it) through *different regions of itself*: the cells of it that hold the
inliers verified against some group barely overlap those verified against the group it
matches most widely, and lie mostly outside them. A true copy that bridges two groups (say,
an original between two sets of crops) matches both in the same place, or one within the
other (a crop's few matched cells inside a whole copy's), and two crops of one original
usually overlap and link directly. A composite keeps its links to none of the groups and is
reported as containing them instead. Its links are the kept pairs and the strip links
(`strips`), which find a second picture in the part of an image its match leaves free when
no candidate search paired the two.

An image that holds a picture inset where a duplicate it links to shows its own picture
(`inset`) contains that one too, though it links to one group only: the inset's picture may
be nowhere in the collection, or paired with it by no search (`with_held`). So does an image
that shows another whole beside a second picture (`canvas.beside`), whose links all leave a
part of it beyond their partner's frame: its links to that picture's other copies (a
captioned one, whose seam is weaker) would put it in their group.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from .verify import REGION_GRID, VERIFY_THRESHOLD

MAX_OVERLAP = 0.2  # Jaccard overlap of two matched regions below which they are different parts ...
MAX_INSIDE = 0.5  # ... unless this share of the smaller lies inside the larger: a part of it
MAX_COMPONENT = 500  # a larger component is not searched for composites (bounded cost)
_EVERYWHERE = (1 << (REGION_GRID * REGION_GRID)) - 1  # a link without geometry: its region is unknown


def link_regions(inliers: NDArray[np.int32], query_cells: NDArray[np.uint64],
                 candidate_cells: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """(M, 2) where each pair's link lies in its first and in its second image, from its
    verification's columns (`inliers` -1: not verified): the cells holding its inliers. A
    few chance inliers (a pair kept on its hashes, whose geometry did not verify) lie
    anywhere: their cells are no region, and a copy whose blur or noise leaves it a handful of
    them must not look linked "elsewhere" in itself; such a link, like an unverified one, lies
    everywhere."""
    known = inliers >= VERIFY_THRESHOLD
    out = np.full((len(inliers), 2), _EVERYWHERE, np.uint64)
    out[known, 0], out[known, 1] = query_cells[known], candidate_cells[known]
    return out


def placed_links(inliers: NDArray[np.int32]) -> NDArray[np.bool_]:
    """(M, 2) whether each pair's link has a place in its two images (`link_regions`): its
    geometry verified."""
    return np.repeat((inliers >= VERIFY_THRESHOLD)[:, None], 2, axis=1)


def composites(pairs: NDArray[np.int64], kept: NDArray[np.bool_], regions: NDArray[np.uint64],
               placed: NDArray[np.bool_]) -> dict[int, list[int]]:
    """Composite image id -> one image id of each group it contains, from the (M, 2) `pairs`,
    which of them are `kept` as duplicates, where each link lies in its two images
    (`link_regions`) and whether that place is known there (`placed_links`; else the link
    lies everywhere)."""
    # image -> (neighbour, its region in the image, or None where the link has no place)
    links: dict[int, list[tuple[int, int | None]]] = defaultdict(list)
    rows = np.flatnonzero(kept)
    for (a, b), (in_a, in_b), (at_a, at_b) in zip(pairs[rows].tolist(), regions[rows].tolist(),
                                                   placed[rows].tolist()):
        links[a].append((b, in_a if at_a else None))
        links[b].append((a, in_b if at_b else None))
    out = {}
    for image, around in links.items():
        if len(around) < 2:
            continue
        parts = _parts_without(image, [n for n, _ in around], links)
        if len(set(parts.values())) < 2:
            continue
        # a group's links that have no place in the image (kept on hashes or a vector) lie
        # where its placed ones do: its copies show one picture, in one part of the image; a
        # copy of a composite's second picture found on its hashes alone no longer makes
        # that picture's group lie everywhere, over the first one's
        placed_in: dict[int, int] = {}
        for neighbour, cells in around:
            if cells is not None:
                placed_in[parts[neighbour]] = placed_in.get(parts[neighbour], 0) | cells
        regions_of = {part: placed_in.get(part, _EVERYWHERE) for part in dict.fromkeys(parts[n] for n, _ in around)}
        # a group lying apart from the one it matches most widely, which need not be the
        # second widest: a strip may show a second picture's group and a look-alike's (two
        # star fields), both in one part
        widest, *others = sorted(regions_of.values(), key=_size, reverse=True)
        if any(_apart(widest, other) for other in others):
            out[image] = sorted({min(n for n, _ in around if parts[n] == part) for part in regions_of})
    return out


def _apart(one: int, other: int) -> bool:
    """Whether two regions of an image (REGION_GRID bitmasks) are different parts of it: they
    barely overlap, and the smaller does not lie mostly inside the larger, which makes it a
    part of that one (a crop's few matched cells within a whole copy's), however small beside
    it. A link everywhere (no geometry, or the whole image shown in another's strip: a colour
    link) overlaps every other region; links in the image's content box alone (no cells) lie
    apart from its verified ones, not from each other."""
    first, second = sorted((one, other), key=_size, reverse=True)
    common = _size(first & second)
    return (first not in (_EVERYWHERE, 0) and common <= MAX_OVERLAP * _size(first | second)
            and common <= MAX_INSIDE * _size(second))


def with_held(found: Mapping[int, list[int]], held: NDArray[np.int64]) -> dict[int, list[int]]:
    """`found` (composite image id -> one image id of each group it contains) with the first
    image of each pair of `held` ((K, 2): an image holding a picture inset, and one its link
    shows its own picture in place of it; or an image showing the second whole beside another
    picture) containing the images it was paired with."""
    out = {image: list(inside) for image, inside in found.items()}
    for holder, other in held.tolist():
        if holder not in found:
            out.setdefault(holder, []).append(other)
    return out


def _parts_without(image: int, neighbours: list[int], links: Mapping[int, list[tuple[int, int]]]) -> dict[int, int]:
    """Which part (a label) each neighbour falls in once `image` is taken out of the graph of
    kept links; all one part when the component is too large to search."""
    part: dict[int, int] = {}
    wanted = set(neighbours)
    for start in neighbours:
        if start in part:
            continue
        seen, frontier = {start}, [start]
        # the first search stops as soon as it has met every neighbour: all one part, the
        # usual case (copies of one picture linked among themselves), found without walking
        # their whole component: for each of 100,000 images that walk was most of the time
        missing = len(wanted) - 1 if not part else -1
        while frontier:
            node = frontier.pop()
            for other, _ in links[node]:
                if other != image and other not in seen:
                    seen.add(other)
                    frontier.append(other)
                    missing -= other in wanted
            if missing == 0:
                return {n: start for n in neighbours}
            if len(seen) > MAX_COMPONENT:
                return {n: 0 for n in neighbours}
        for n in neighbours:
            if n in seen:
                part[n] = start
    return part


def _size(cells: int) -> int:
    return bin(cells).count("1")
