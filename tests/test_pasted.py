"""A picture pasted into another (`search.pasted`): what makes a region's match one, and
when a stored search stands."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

import neardup
from neardup.indexer.colours import colour_layout
from neardup.indexer.features import orb_and_mirror, orb_features
from neardup.search import pasted
from neardup.search.pasted import (MIN_SHOWN, Searched, _flat, _shows, cropped, pasted_box, pasted_match, still_valid,
                                   suspects)
from neardup.search.verify import MIN_COVERAGE, VERIFY_THRESHOLD, best_match, homography, shown_coverage

from conftest import photo, save
from test_inset import inset
from test_trusted_groups import _sticker, _viewer, _with_q40_copies
from test_verify import fit384


def _with_badge(rgb: np.ndarray, badge: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    out = rgb.copy()
    x, y = at
    out[y : y + badge.shape[0], x : x + badge.shape[1]] = badge
    return out


def _badge() -> tuple:
    """A badge cut from one photo, pasted on coffee: the box where coffee's copy differs, the
    region's features (as cut, and mirrored), the photo the badge was cut from, and chelsea
    carrying the badge in a corner."""
    badge = cv2.resize(photo("astronaut")[:400, 50:450], (160, 160), interpolation=cv2.INTER_AREA)
    coffee, holder = photo("coffee"), _with_badge(photo("coffee"), badge, (380, 200))
    features = [orb_features(fit384(rgb)) for rgb in (holder, coffee)]
    box = pasted_box(colour_layout(fit384(holder)), colour_layout(fit384(coffee)), homography(*features))
    region = orb_and_mirror(cropped(holder, box), side=384) if box is not None else None
    source = orb_features(fit384(photo("astronaut")[:400, 50:450]))
    chelsea = cv2.resize(photo("chelsea"), (900, 600), interpolation=cv2.INTER_CUBIC)
    sharing = orb_features(fit384(_with_badge(chelsea, cv2.resize(badge, (200, 200)), (30, 30))))
    return box, region, source, sharing


def test_a_region_is_a_picture_pasted_there_only_when_its_match_covers_most_of_that_picture() -> None:
    """A badge cut from one photo, pasted on coffee and on chelsea: coffee's region where it
    differs from coffee itself is the badge. Its keypoints match the photo the badge was cut
    from over most of it: pasted. They match chelsea's copy of the badge as well, but that is a
    corner of chelsea: a shared overlay, no picture pasted."""
    box, region, source, sharing = _badge()
    assert box is not None
    x0, y0, x1, y1 = box
    assert x0 <= 380 / 600 and y0 <= 200 / 400 and x1 >= 540 / 600 and y1 >= 360 / 400
    assert pasted_match(region, source) is not None
    shared = best_match(list(region), sharing, mirrored=(False, True))
    assert shared.inliers >= VERIFY_THRESHOLD  # the badges match ...
    assert pasted_match(region, sharing) is None  # ... over a corner of chelsea


def test_a_candidate_whose_ratio_test_matches_cover_little_of_it_is_refused_before_any_fit(monkeypatch) -> None:
    """A pasted picture covers most of the candidate, and no match covers more of it than its
    ratio-test matches do: chelsea, which shows the badge in a corner, is refused from those
    alone, no homography fitted; the photo the badge was cut from is still verified and pasted.
    So is a region that shows the badge in a corner against a copy holding the badge (`_shows`
    asks whether a match covers most of the region)."""
    _, region, source, sharing = _badge()
    assert best_match(list(region), sharing, mirrored=(False, True)).inliers >= VERIFY_THRESHOLD
    badge = cv2.resize(photo("astronaut")[:400, 50:450], (100, 100), interpolation=cv2.INTER_AREA)
    cornered = orb_and_mirror(_with_badge(cv2.resize(photo("chelsea"), (600, 400), interpolation=cv2.INTER_AREA),
                                          badge, (10, 10)), side=384)
    copy = orb_features(fit384(_with_badge(photo("coffee"), cv2.resize(badge, (160, 160)), (380, 200))))
    assert best_match(list(cornered), copy, mirrored=(False, True)).inliers >= VERIFY_THRESHOLD
    fits = []
    real = cv2.findHomography
    monkeypatch.setattr(cv2, "findHomography", lambda *a, **k: fits.append(1) or real(*a, **k))
    assert pasted_match(region, sharing) is None and not fits
    assert not _shows(cornered, 1, {1: tuple(copy)}) and not fits
    assert pasted_match(region, source) is not None and fits


def test_each_image_holding_an_overlay_is_searched_once_beside_the_copy_it_matches_best() -> None:
    pairs = np.array([[1, 2], [1, 3], [4, 5], [6, 7]], np.int64)
    overlaid = np.array([True, True, True, False])
    holder_first = np.array([True, True, False, True])
    inliers = np.array([40, 90, 50, 300], np.int32)
    assert suspects(pairs, overlaid, holder_first, inliers) == {1: 3, 5: 4}


def test_a_stored_search_stands_until_an_image_added_comes_as_close_to_its_region() -> None:
    """The search verified the candidates down to cosine 0.8 with the region: an image added
    since that comes as close is verified too (the search stands no longer), unless it is one
    the holder or its copy already matches (excluded)."""
    axis = np.eye(4, dtype=np.float32)
    searched = Searched(partner=2, pasted=-1, floor=0.8, vector=axis[0])
    close = (0.9 * axis[0] + np.sqrt(1 - 0.81) * axis[1]).astype(np.float32)
    assert still_valid({5: searched}, {7: axis[1], 8: axis[2]}, {5: {1, 2}}) == {5}
    assert still_valid({5: searched}, {7: axis[1], 9: close}, {5: {1, 2}}) == set()
    assert still_valid({5: searched}, {9: close}, {5: {1, 2, 9}}) == {5}
    nothing = Searched(partner=2, pasted=-1, floor=2.0, vector=np.zeros(0, np.float32))  # no region to search
    assert still_valid({5: searched, 6: nothing}, {9: close}, {5: {1, 2}, 6: {1, 2}}) == {6}
    assert still_valid({5: searched, 6: nothing}, {}, {5: set(), 6: set()}) == {5, 6}


def test_stored_searches_are_checked_against_every_image_added_a_few_regions_at_a_time(monkeypatch) -> None:
    """Forty regions, two at a time, against thirty images added: a search stands exactly when
    no image added but those excluded for it reaches its floor, pair by pair."""
    rng = np.random.default_rng(7)

    def unit(v: np.ndarray) -> np.ndarray:
        return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)

    added = dict(enumerate(unit(rng.normal(size=(30, 16))), start=100))
    searches = {h: Searched(partner=0, pasted=-1, floor=float(rng.uniform(0.3, 0.9)), vector=unit(rng.normal(size=16)))
                for h in range(40)}
    excluded = {h: set(rng.choice(list(added), 3).tolist()) for h in searches}
    reach = {h: {i for i, v in added.items() if float(v @ s.vector) >= s.floor} for h, s in searches.items()}
    expected = {h for h in searches if reach[h] <= excluded[h]}
    assert 5 < len(expected) < 35  # both kinds occur
    monkeypatch.setattr(pasted, "_ROWS", 2)
    assert still_valid(searches, added, excluded) == expected


def test_regions_searched_on_two_worker_processes_find_what_one_process_finds(tmp_path, monkeypatch) -> None:
    """Two stickered photos, one region a task, on two workers (each with its own connection
    and one-thread CNN): each is found to contain its background and its sticker's photo."""
    folder = tmp_path / "photos"
    _with_q40_copies(folder, ("coffee", "chelsea"))
    save(_sticker(photo("coffee"), photo("chelsea"), side=0.4, at=(0.9, 0.9)), folder / "coffee_stuck.png")
    save(_sticker(photo("chelsea"), photo("coffee"), side=0.4, at=(0.9, 0.9)), folder / "chelsea_stuck.png")
    monkeypatch.setattr(pasted, "TASK", 1)
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="cnn")
    cat.index([folder], workers=1)
    found = cat.duplicates(workers=2)
    assert {frozenset(Path(m).stem for m in g.members) for g in found if not g.contains} == {
        frozenset({"coffee", "coffee_q40"}), frozenset({"chelsea", "chelsea_q40"})}
    held = {Path(g.keeper).stem: {Path(c).stem.removesuffix("_q40") for c in g.contains} for g in found if g.contains}
    assert held == {"coffee_stuck": {"coffee", "chelsea"}, "chelsea_stuck": {"coffee", "chelsea"}}


def test_a_holder_whose_file_cannot_be_read_is_said_and_searched_on_the_next_run(tmp_path) -> None:
    """A stickered photo whose file is gone when `duplicates` runs (a drive not mounted): the
    run says so and keeps neither its groups nor their text, so the next run, the file back
    and the catalog unchanged, searches it (its pairs reused, none judged again) and finds
    the sticker's photo; the run after that reads the stored groups."""
    folder, away = tmp_path / "photos", tmp_path / "away"
    _with_q40_copies(folder, ("coffee", "chelsea"))
    stuck = folder / "coffee_stuck.png"
    save(_sticker(photo("coffee"), photo("chelsea"), side=0.4, at=(0.9, 0.9)), stuck)
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="cnn")
    cat.index([folder], workers=1)
    away.mkdir()
    stuck.rename(away / stuck.name)
    first = cat.duplicate_text("json", workers=1)
    assert first.evidence.unread == 1 and "1 image could not be read now" in first.evidence.summary()
    assert all(not g["contains"] for g in json.loads(first.text))
    (away / stuck.name).rename(stuck)
    second = cat.duplicate_text("json", workers=1)
    assert (second.evidence.unread, second.evidence.computed, second.evidence.decided) == (0, 0, False)
    held = [g for g in json.loads(second.text) if g["contains"]]
    assert [(Path(g["keeper"]).stem, {Path(c).stem.removesuffix("_q40") for c in g["contains"]}) for g in held] == [
        ("coffee_stuck", {"coffee", "chelsea"})]
    third = cat.duplicate_text("json", workers=1)
    assert third.evidence.decided and third.text == second.text


def test_a_region_its_copy_matches_over_most_of_itself_shows_that_picture() -> None:
    """A screenshot's whole picture can differ in colour from its copy, which makes all of it
    the region searched; the copy matches it over most of itself, so nothing is pasted there.
    A sticker of chelsea on coffee is matched by coffee at its margins at most."""
    coffee = fit384(photo("coffee"))
    stored = {1: orb_features(coffee)}
    window = orb_and_mirror(cv2.resize(photo("coffee")[40:360, 60:540], (480, 320), interpolation=cv2.INTER_AREA),
                            side=384)
    sticker = orb_and_mirror(cv2.resize(photo("chelsea"), (300, 200), interpolation=cv2.INTER_AREA), side=384)
    assert _shows(window, 1, stored)
    assert not _shows(sticker, 1, stored)


def test_a_strip_beside_a_large_inset_finds_the_background_it_shows_part_of() -> None:
    """chelsea inset over the top left of coffee, half its width: the strip the inset's match
    leaves free, coffee's right half, shows about half of coffee. Its match covers too little
    of coffee, nor its centre, for a picture pasted whole; but most of the half it shows, so a
    strip, which may show part of its picture, finds coffee there. astronaut shares nothing."""
    coffee = photo("coffee")
    pip = inset(coffee, photo("chelsea"), corner=(0, 0), width=0.5)
    region = orb_and_mirror(cropped(pip, (0.55, 0.0, 1.0, 1.0)), side=384)
    background = orb_features(fit384(coffee))
    inliers, shown, covered = shown_coverage(region[0], background)
    assert inliers >= VERIFY_THRESHOLD and MIN_SHOWN <= shown <= 0.7 and covered >= MIN_COVERAGE
    assert pasted_match(region, background) is None
    assert pasted_match(region, background, partial=True) is not None
    unrelated = orb_features(fit384(photo("astronaut")))
    assert shown_coverage(region[0], unrelated) == (0, 0.0, 0.0)
    assert pasted_match(region, unrelated, partial=True) is None


def test_a_strip_of_window_chrome_is_too_flat_to_show_part_of_a_picture() -> None:
    """An image viewer's sidebar of file names, beside the photo it shows, is mostly flat: the
    same chrome in another screenshot of the viewer is no picture partly shown there. A strip
    of coffee is a picture."""
    window = colour_layout(_viewer(photo("chelsea"), 0.3))
    sidebar = (0.0, 0.1, 0.2, 1.0)
    assert _flat(window, sidebar)
    assert not _flat(colour_layout(photo("coffee")), (0.5, 0.0, 1.0, 1.0))


def test_a_strip_beside_an_inset_in_a_catalog_finds_the_background_it_shows(tmp_path, monkeypatch) -> None:
    """chelsea inset over the bottom right of coffee, half its width, in a catalog: its strip
    left of the inset, cut from the file and searched by its own CNN vector and keypoints,
    finds coffee (or its copy) though it shows half of coffee only. Not when that strip is
    taken for mostly flat chrome."""
    folder = tmp_path / "photos"
    _with_q40_copies(folder, ("coffee", "chelsea"))
    save(inset(photo("coffee"), photo("chelsea"), corner=(1, 1), width=0.5), folder / "pip.png")
    save(photo("astronaut"), folder / "astronaut.png")
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="cnn")
    cat.index([folder], workers=1)
    ids = {Path(p).stem: i for p, i in cat.catalog.image_ids([str(p) for p in sorted(folder.iterdir())]).items()}
    pip, chelsea = ids["pip"], ids["chelsea"]
    wanted = {pip: (chelsea, (0.0, 0.0, 0.45, 1.0))}
    excluded = {pip: {pip, chelsea, ids["chelsea_q40"]}}
    found = pasted.search_regions(cat.catalog, wanted, excluded, {})
    assert found[pip].pasted in {ids["coffee"], ids["coffee_q40"]}
    monkeypatch.setattr(pasted, "MAX_STRIP_FLAT", -1.0)  # every strip as flat as chrome
    assert pasted.search_regions(cat.catalog, wanted, excluded, {})[pip].pasted == -1
