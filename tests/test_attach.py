"""Attachment: a copy that verifies with one geometric vote against two or more members of a
group joins that group (its best), while one such vote alone joins nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import neardup
from neardup.indexer.features import orb_features
from neardup.search.auto import POLICY, attachments
from neardup.search.verify import VERIFY_FULL, VERIFY_THRESHOLD, inliers

from conftest import PHOTOS, photo, save, scene
from images import jpeg, scaled
from test_verify import fit384, rotated_crop

THRESHOLD = 0.5


def _attachments(pairs, kept, verified, threshold):
    return attachments(pairs, kept, verified, threshold, POLICY.attach_links)


def _pairs(*edges: tuple[int, int]) -> np.ndarray:
    return np.array(edges, dtype=np.int64)


def test_an_image_weakly_linked_to_two_members_joins_their_group() -> None:
    pairs = _pairs((1, 2), (2, 3), (1, 9), (2, 9), (1, 8))
    kept = np.array([True, True, False, False, False])
    verified = np.array([0.9, 0.9, 0.6, 0.55, 0.7])
    attached = _attachments(pairs, kept, verified, THRESHOLD)
    # 9 has two weak links into {1, 2, 3}: one of them attaches it; 8 has one: nothing
    assert attached.sum() == 1 and attached[[2, 3]].sum() == 1 and not attached[4]


def test_links_below_the_threshold_do_not_count() -> None:
    pairs = _pairs((1, 2), (1, 9), (2, 9))
    attached = _attachments(pairs, np.array([True, False, False]), np.array([0.9, 0.6, 0.49]), THRESHOLD)
    assert not attached.any()


def test_an_image_linked_to_two_groups_joins_only_the_better_linked() -> None:
    a, b = [(1, 2), (2, 3)], [(4, 5), (5, 6)]
    weak = [(1, 9), (2, 9), (4, 9), (5, 9), (6, 9)]  # two links into {1,2,3}, three into {4,5,6}
    pairs = _pairs(*a, *b, *weak)
    kept = np.array([True] * 4 + [False] * 5)
    verified = np.array([0.9] * 4 + [0.6] * 5)
    attached = _attachments(pairs, kept, verified, THRESHOLD)
    assert attached[:6].sum() == 0 and attached[6:].sum() == 1  # one link, into {4, 5, 6}


def _hard_copy(rgb: np.ndarray) -> np.ndarray:
    """Turned 20 degrees, cropped to half, colour-shifted, JPEG 30: no hash match left, and
    tens of ORB inliers against the original, one geometric vote but not a strong one."""
    shifted = rotated_crop(rgb, 20.0, 0.5).astype(np.int16)
    shifted[..., 0] += 40
    shifted[..., 2] -= 40
    return jpeg(np.clip(shifted, 0, 255).astype(np.uint8), 30)


def test_hard_copy_evidence_is_one_geometric_vote() -> None:
    coffee = photo("coffee")
    found = inliers(orb_features(fit384(_hard_copy(coffee))), orb_features(fit384(coffee)))
    strong = VERIFY_THRESHOLD + (VERIFY_FULL - VERIFY_THRESHOLD) * 0.25 / 0.45  # confidence 0.75
    assert VERIFY_THRESHOLD <= found < strong


def _collection(folder: Path, *, with_copies: bool) -> Path:
    coffee = photo("coffee")
    save(coffee, folder / "coffee.png")
    save(_hard_copy(coffee), folder / "coffee_hard.png")
    if with_copies:
        save(jpeg(coffee, 40), folder / "coffee_q40.png")
        save(scaled(coffee, 0.6), folder / "coffee_small.png")
    for name in PHOTOS[1:]:
        save(photo(name), folder / f"{name}.png")
    for seed in range(3):
        save(scene(seed), folder / f"scene{seed}.png")
    return folder


def _groups(tmp_path: Path, **kw) -> set[frozenset[str]]:
    cat = neardup.open(tmp_path / "cat.db", create=True, embedder="none")
    cat.index([_collection(tmp_path / "photos", **kw)], workers=1)
    return {frozenset(Path(m).stem for m in g.members) for g in cat.duplicates()}


def test_hard_copy_joins_a_group_it_verifies_against_twice(tmp_path) -> None:
    assert _groups(tmp_path, with_copies=True) == {frozenset({"coffee", "coffee_q40", "coffee_small", "coffee_hard"})}


def test_hard_copy_of_a_lone_original_stays_apart(tmp_path) -> None:
    assert _groups(tmp_path, with_copies=False) == set()
