"""Composites (search.composites): an image linking two groups through different parts of itself."""

from __future__ import annotations

import numpy as np

from neardup.search.composites import composites
from neardup.search.verify import REGION_GRID, VERIFY_THRESHOLD, Side, Verification

LEFT = sum(1 << (row * REGION_GRID + col) for row in range(REGION_GRID) for col in range(REGION_GRID // 2))
RIGHT = LEFT << (REGION_GRID // 2)


def link(inliers: int, cells_in_first: int) -> Verification:
    return Verification(inliers, Side(coverage=0.5, cells=cells_in_first), Side(coverage=1.0, cells=(1 << 64) - 1))


def test_an_image_linked_to_two_pictures_through_its_two_halves_contains_both() -> None:
    pairs = np.array([[1, 2], [1, 3]], np.int64)
    kept = np.ones(2, bool)
    verified = {0: link(40, LEFT), 1: link(40, RIGHT)}
    assert composites(pairs, kept, verified) == {1: [2, 3]}


def test_a_link_whose_geometry_did_not_verify_has_no_region() -> None:
    """A copy kept with one image on its hashes, whose few chance inliers fall on the other
    half of it, is no composite: those inliers say nothing about where the two match."""
    pairs = np.array([[1, 2], [1, 3]], np.int64)
    kept = np.ones(2, bool)
    weak = {0: link(40, LEFT), 1: link(VERIFY_THRESHOLD - 1, RIGHT)}
    assert composites(pairs, kept, weak) == {}
    unverified = {0: link(40, LEFT)}
    assert composites(pairs, kept, unverified) == {}


def test_a_link_everywhere_overlaps_even_a_small_region() -> None:
    """However few cells the other link holds (a copy matching a corner of the image), a link
    without a region (or a whole picture shown in another's strip) may lie there too."""
    corner = 1 | 1 << 1 | 1 << REGION_GRID | 1 << (REGION_GRID + 1)
    pairs = np.array([[1, 2], [1, 3]], np.int64)
    kept = np.ones(2, bool)
    assert composites(pairs, kept, {0: link(40, corner)}) == {}
    assert composites(pairs, kept, {0: link(40, corner), 1: link(40, (1 << 64) - 1)}) == {}
