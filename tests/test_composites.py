"""Composites (search.composites): an image linking two groups through different parts of itself."""

from __future__ import annotations

import numpy as np

from neardup.search.auto import GEOMETRY, HASHES, Evidence, verified_links
from neardup.search.composites import composites, link_regions, placed_links
from neardup.search.evidence import Verified
from neardup.search.incremental import JudgedPairs
from neardup.search.verify import REGION_GRID, VERIFY_THRESHOLD, Side, Verification


def columns(cols: range) -> int:
    """The REGION_GRID cells of these columns, every row, as a bitmask."""
    return sum(1 << (row * REGION_GRID + col) for row in range(REGION_GRID) for col in cols)


LEFT = columns(range(REGION_GRID // 2))
RIGHT = LEFT << (REGION_GRID // 2)
ALL = (1 << 64) - 1


def regions(*links: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Where each pair's link lies and whether it has a place (`composites`' last two
    arguments), from (its inliers, their cells in the first image; the second image matches
    everywhere), or None for a pair not verified."""
    inliers = np.array([-1 if link is None else link[0] for link in links], np.int32)
    first = np.array([0 if link is None else link[1] for link in links], np.uint64)
    return link_regions(inliers, first, np.full(len(links), ALL, np.uint64)), placed_links(inliers)


def test_an_image_linked_to_two_pictures_through_its_two_halves_contains_both() -> None:
    pairs = np.array([[1, 2], [1, 3]], np.int64)
    kept = np.ones(2, bool)
    assert composites(pairs, kept, *regions((40, LEFT), (40, RIGHT))) == {1: [2, 3]}


def test_a_link_whose_geometry_did_not_verify_has_no_region() -> None:
    """A copy kept with one image on its hashes, whose few chance inliers fall on the other
    half of it, is no composite: those inliers say nothing about where the two match."""
    pairs = np.array([[1, 2], [1, 3]], np.int64)
    kept = np.ones(2, bool)
    assert composites(pairs, kept, *regions((40, LEFT), (VERIFY_THRESHOLD - 1, RIGHT))) == {}
    assert composites(pairs, kept, *regions((40, LEFT), None)) == {}


def test_a_link_everywhere_overlaps_even_a_small_region() -> None:
    """However few cells the other link holds (a copy matching a corner of the image), a link
    without a region (or a whole picture shown in another's strip) may lie there too."""
    corner = 1 | 1 << 1 | 1 << REGION_GRID | 1 << (REGION_GRID + 1)
    pairs = np.array([[1, 2], [1, 3]], np.int64)
    kept = np.ones(2, bool)
    assert composites(pairs, kept, *regions((40, corner), None)) == {}
    assert composites(pairs, kept, *regions((40, corner), (40, ALL))) == {}


def test_a_link_through_the_content_box_alone_lies_apart_from_the_verified_one() -> None:
    """Image 1's content box (one picture of it) found image 2 by its hashes alone, while its
    keypoints verified image 3 (`JudgedPairs.regions_in_boxes`: such a link holds no cell).
    Two links through the box alone both lie in the box: no composite."""
    pairs = np.array([[1, 2], [1, 3]], np.int64)
    kept = np.ones(2, bool)
    boxed, placed = regions(None, (40, LEFT))
    boxed[0, 0], placed[0, 0] = 0, True
    assert composites(pairs, kept, boxed, placed) == {1: [2, 3]}
    both_boxed, placed = regions(None, None)
    both_boxed[:, 0], placed[:, 0] = 0, True
    assert composites(pairs, kept, both_boxed, placed) == {}


def test_a_group_placed_by_one_link_lies_there_though_another_has_no_place() -> None:
    """Image 1 shows image 2's picture in its left half and image 3's in its right (both
    verified), and image 4, a copy of 3 kept with 1 on its hashes alone, has no place in it:
    3's group still lies in the right half, and 1 contains both pictures. So too when 3 was
    found through 1's content box alone (no cells, a place all the same)."""
    pairs = np.array([[1, 2], [1, 3], [1, 4], [3, 4]], np.int64)
    kept = np.ones(4, bool)
    assert composites(pairs, kept, *regions((40, LEFT), (40, RIGHT), None, (40, ALL))) == {1: [2, 3]}
    boxed, placed = regions((40, LEFT), None, None, (40, ALL))
    boxed[1, 0], placed[1, 0] = 0, True
    assert composites(pairs, kept, boxed, placed) == {1: [2, 3]}
    # with no placed link, 3's group may lie anywhere, over 2's picture too
    assert composites(pairs, kept, *regions((40, LEFT), None, None, (40, ALL))) == {}


def test_two_groups_in_one_part_do_not_hide_a_third_in_another() -> None:
    """Image 1's strip showed two groups' pictures (a star field and a look-alike one: the
    same region, its right half), its left part a third group's: it still contains them,
    though its two largest regions are one."""
    left = columns(range(3))  # smaller than the right half
    pairs = np.array([[1, 2], [1, 3], [1, 4]], np.int64)
    kept = np.ones(3, bool)
    assert composites(pairs, kept, *regions((40, left), (40, RIGHT), (40, RIGHT))) == {1: [2, 3, 4]}
    assert composites(pairs[1:], kept[1:], *regions((40, RIGHT), (40, RIGHT))) == {}


def test_crops_of_two_parts_of_a_picture_matched_whole_by_a_third_are_no_second_picture() -> None:
    """Image 1 matches image 2 almost whole, image 3 in its left part and image 4 in its right
    part (crops of it, not linked to each other): 3 and 4 lie apart, but within 2's match."""
    pairs = np.array([[1, 2], [1, 3], [1, 4]], np.int64)
    kept = np.ones(3, bool)
    found = regions((40, columns(range(7))), (40, columns(range(3))), (40, columns(range(4, 7))))
    assert composites(pairs, kept, *found) == {}


def test_a_few_matched_cells_inside_a_whole_match_are_no_second_picture() -> None:
    """A blurred or stretched copy verified on two cells of image 1, both within the cells
    another copy matches: a part of the one picture, however small beside the whole."""
    whole = columns(range(6))
    two_cells = 1 << (2 * REGION_GRID + 2) | 1 << (3 * REGION_GRID + 2)
    pairs = np.array([[1, 2], [1, 3]], np.int64)
    kept = np.ones(2, bool)
    assert composites(pairs, kept, *regions((40, whole), (40, two_cells))) == {}
    assert composites(pairs, kept, *regions((40, whole), (40, two_cells << 4))) == {1: [2, 3]}  # beside it
    # a match mostly beside it, two of its five cells within it: a second picture still
    mostly_beside = (two_cells | two_cells << 4 | 1 << (4 * REGION_GRID + 6)) & ~(1 << (3 * REGION_GRID + 2))
    assert composites(pairs, kept, *regions((40, whole), (40, mostly_beside))) == {1: [2, 3]}


def _beside(seam: float, *, held_beyond: float = 0.0) -> Verification:
    """A verified match where the query shows half of itself beyond the candidate's frame,
    not flat, with this `seam` where the candidate's frame ends; the candidate lies
    `held_beyond` outside the query's frame."""
    return Verification(60, Side(coverage=0.5, beyond=0.5, blank=0.05, seam=seam),
                        Side(coverage=0.9, beyond=held_beyond))


def test_an_image_showing_another_whole_beside_a_picture_holds_it_unless_a_match_covers_it() -> None:
    """Image 1 shows image 2 whole beside a second picture (a sharp seam) and image 3, a copy
    of 2 whose frame reaches beyond 1's (a caption band), with no seam to show: every match
    of 1 leaves half of it beyond: 1 holds 2. Image 4 shows its crop 5 with a sharp edge
    beside it too, but its re-encoded copy 6 matches it whole: a picture, no collage."""
    pairs = np.array([[1, 2], [1, 3], [4, 5], [4, 6]], np.int64)
    found = {0: _beside(4.0), 1: _beside(1.0, held_beyond=0.2), 2: _beside(3.0),
             3: Verification(200, Side(coverage=1.0), Side(coverage=1.0))}
    judged = JudgedPairs(pairs, Evidence({}), Verified.of(found).scattered(len(pairs)))
    assert judged.held_beside().tolist() == [[1, 2]]
    # the relation is found whichever image was the query
    judged = JudgedPairs(pairs[:, ::-1].copy(), Evidence({}), Verified.of(
        {row: Verification(v.inliers, v.candidate, v.query) for row, v in found.items()}).scattered(len(pairs)))
    assert judged.held_beside().tolist() == [[1, 2]]


def test_an_image_showing_another_whole_in_a_flat_surround_is_its_copy_on_one_geometric_vote() -> None:
    """Image 1 shows image 2 whole inside a surround of half its area, 80 % flat (a viewer's
    window): their one geometric vote links them, and 1 is named as showing 2 on a canvas, for
    the keeper to pass over. Image 3 shows 4 whole beside a second picture (mostly not flat),
    and 5 and 6 leave nothing of themselves beyond each other: one vote is not enough there."""
    pairs = np.array([[1, 2], [3, 4], [5, 6]], np.int64)
    found = {0: Verification(60, Side(coverage=0.4, beyond=0.5, blank=0.8), Side(coverage=0.9)),
             1: Verification(60, Side(coverage=0.5, beyond=0.5, blank=0.1), Side(coverage=0.9)),
             2: Verification(60, Side(coverage=0.6), Side(coverage=0.6))}
    evidence = Evidence({HASHES: np.full(3, 0.3), GEOMETRY: np.full(3, 0.6)})
    judged = JudgedPairs(pairs, evidence, Verified.of(found).scattered(len(pairs)))
    assert judged.shown_whole().tolist() == [True, False, False]
    assert judged.on_canvas().tolist() == [[1, 2]]
    differs = np.zeros(len(pairs), bool)
    linked = verified_links(pairs, evidence, differs, 0.5, shown_whole=judged.shown_whole())
    assert linked.tolist() == [True, False, False]
    assert not verified_links(pairs, evidence, differs, 0.5).any()
