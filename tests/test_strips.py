"""Strips (search.strips): the part of an image its match leaves free, searched for a second
picture, so that a side-by-side composite whose global features find only one of its two
pictures is still reported as containing both, while a copy with a caption band stays a copy.

The catalogs here are small, so every pair would be a candidate; the policy's neighbour
counts are cut to one, as in a large collection where a composite's nearest neighbours hold
only one of its pictures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import neardup
from neardup.indexer.colours import LAYOUT_SIDE, colour_layout
from neardup.search import evidence
from neardup.search.auto import AutoPolicy
from neardup.search.candidates import pair_candidates
from neardup.search.duplicates import decide
from neardup.search.features import default_threshold
from neardup.search.incremental import judged_pairs
from neardup.search.strips import (LISTED, MIN_STRIP, TOP, _thumbnail, _whole_thumbnails, colour_link, containers,
                                   free_edge, strip_candidates)
from neardup.search.verify import REGION_GRID, VERIFY_THRESHOLD

from conftest import photo, save, scene
from images import galaxy, jpeg
from test_trusted_groups import _caption, _collage, _with_q40_copies

FEW = AutoPolicy(pair_k=1, verify_top=1, verify_hash_top=1)


def _cells(columns: range) -> int:
    return sum(1 << (row * REGION_GRID + col) for row in range(REGION_GRID) for col in columns)


def test_a_match_on_the_left_leaves_a_strip_free_a_match_everywhere_does_not() -> None:
    top_rows = sum(1 << (row * REGION_GRID + col)
                   for row in range(REGION_GRID - MIN_STRIP) for col in range(REGION_GRID))
    cells = [_cells(range(REGION_GRID - MIN_STRIP)), _cells(range(MIN_STRIP, REGION_GRID)),
             _cells(range(REGION_GRID - MIN_STRIP + 1)), _cells(range(REGION_GRID)), top_rows, 0]
    assert free_edge(np.array(cells, np.uint64)).tolist() == [True, True, False, False, True, True]


def test_a_container_goes_with_the_partner_matching_the_fewest_of_its_cells() -> None:
    """Each image's partner is the one whose match leaves an edge free and covers the fewest
    of its cells (the first pair on a tie); a match covering more of the partner than of the
    image does not make the image a container."""
    everywhere = _cells(range(REGION_GRID))
    pairs = np.array([[1, 2], [1, 3], [1, 4], [5, 1], [6, 7]], np.int64)
    regions = np.array([[_cells(range(5)), everywhere],  # 1 in 2: five columns
                        [_cells(range(3)), everywhere],  # 1 in 3: three columns
                        [_cells(range(3, 6)), everywhere],  # 1 in 4: three columns too, later
                        [everywhere, _cells(range(2))],  # 1 in 5: two columns, but not kept
                        [_cells(range(4)), _cells(range(2))]], np.uint64)  # 6 covers more of itself
    kept = np.array([True, True, True, False, True])
    assert containers(pairs, kept, regions) == {1: 3, 7: 6}


def test_on_a_tie_a_container_goes_with_the_partner_its_match_covers_most_of() -> None:
    """Two partners match the same columns of image 1; the match covers all of 3 but only the
    middle of 2 (a copy of one picture rotated onto a larger canvas: its margins hold no
    inlier), whose frame would narrow the strip. 3 wins, though 2 comes first."""
    inner = range(1, REGION_GRID - 1)
    middle = sum(1 << (row * REGION_GRID + col) for row in inner for col in inner)
    pairs = np.array([[1, 2], [1, 3]], np.int64)
    regions = np.array([[_cells(range(3)), middle], [_cells(range(3)), _cells(range(REGION_GRID))]], np.uint64)
    assert containers(pairs, np.array([True, True]), regions) == {1: 3}


def _judged(tmp_path: Path, folder: Path, policy: AutoPolicy = FEW):
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="none")
    cat.index([folder], workers=1)
    catalog = cat.catalog
    threshold = default_threshold("auto")
    judged, _ = judged_pairs(catalog, threshold, merge={}, policy=policy)
    names = {i: Path(im.path).stem for i, im in catalog.images(np.unique(judged.pairs).tolist()).items()}
    ordinary = pair_candidates(catalog, threshold, policy.weights(catalog.settings.hashes), [], verifying=True,
                               merge={}, policy=policy).pairs
    return judged, decide(judged, threshold), names, {frozenset(names.get(int(i), "?") for i in p) for p in ordinary}


def test_a_collage_whose_neighbours_hold_one_picture_still_contains_both(tmp_path) -> None:
    folder = tmp_path / "photos"
    _with_q40_copies(folder, ("coffee", "chelsea"))
    save(_collage(photo("coffee"), photo("chelsea")), folder / "collage.png")
    for seed in range(4):
        save(scene(seed), folder / f"scene{seed}.png")
    judged, found, names, ordinary = _judged(tmp_path, folder)
    # as in a large collection: the collage is an ordinary candidate of one picture's group only
    partners = {n for pair in ordinary if "collage" in pair for n in pair} - {"collage"}
    assert len({n.split("_")[0] for n in partners} & {"coffee", "chelsea"}) == 1
    assert judged.strip_links().any()
    (composite,) = found.composites
    assert names[composite] == "collage"
    assert {names[i].split("_")[0] for i in found.composites[composite]} == {"coffee", "chelsea"}
    grouped = {names[int(i)] for i in np.concatenate([found.edges.src, found.edges.dst])}
    assert "collage" not in grouped and {"coffee", "coffee_q40", "chelsea", "chelsea_q40"} <= grouped


def test_a_copy_with_a_caption_band_stays_a_copy(tmp_path) -> None:
    folder = tmp_path / "photos"
    save(photo("coffee"), folder / "coffee.png")
    save(_caption(photo("coffee"), "MONDAY MORNING", band=True), folder / "coffee_caption.png")
    for name in ("chelsea", "astronaut", "rocket"):
        save(photo(name), folder / f"{name}.png")
    for seed in range(3):
        save(scene(seed), folder / f"scene{seed}.png")
    _, found, names, _ = _judged(tmp_path, folder)
    assert found.composites == {}
    pairs = {frozenset((names[int(a)], names[int(b)])) for a, b in zip(found.edges.src, found.edges.dst)}
    assert pairs == {frozenset({"coffee", "coffee_caption"})}


def _coffee_collage(folder: Path) -> None:
    """Coffee and its q40 copy, a collage of coffee and chelsea (whose picture is not indexed
    on its own) and four scenes."""
    _with_q40_copies(folder, ("coffee",))
    save(_collage(photo("coffee"), photo("chelsea")), folder / "collage.png")
    for seed in range(4):
        save(scene(seed), folder / f"scene{seed}.png")


def test_a_picture_added_later_makes_the_collage_a_composite_as_a_fresh_run_does(tmp_path) -> None:
    """Strip candidates and links are stored with the other judgements and searched again on
    every run that judges anything: once the collage's second picture is indexed, the
    stored judgements brought up to date give the composites and strip links a run from
    nothing gives."""
    folder = tmp_path / "photos"
    _coffee_collage(folder)
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="none")
    cat.index([folder], workers=1)
    threshold = default_threshold("auto")
    before, _ = judged_pairs(cat.catalog, threshold, merge={}, policy=FEW)
    assert decide(before, threshold).composites == {}
    _with_q40_copies(folder, ("chelsea",))
    cat.index([folder], workers=1)
    after, report = judged_pairs(cat.catalog, threshold, merge={}, policy=FEW)
    assert report.reused > 0  # judged incrementally, not from nothing
    fresh = neardup.open(tmp_path / "fresh.db", create=True, embedder="none")
    fresh.index([folder], workers=1)
    from_nothing, _ = judged_pairs(fresh.catalog, threshold, merge={}, policy=FEW)

    def named(catalog, judged):
        names = {i: Path(im.path).stem for i, im in catalog.images(np.unique(judged.pairs).tolist()).items()}
        found = decide(judged, threshold)
        return ({names[c]: sorted(names[i].split("_")[0] for i in inside) for c, inside in found.composites.items()},
                sorted(tuple(sorted((names[int(a)], names[int(b)]))) for a, b in judged.pairs[judged.strip_links()]))

    assert named(cat.catalog, after) == named(fresh.catalog, from_nothing)
    assert named(cat.catalog, after)[0] == {"collage": ["chelsea", "coffee"]}


def test_a_container_s_strip_is_found_again_only_when_it_or_its_partner_changed(tmp_path, monkeypatch) -> None:
    """A container's strip (a homography with its partner) is stored with the judgements:
    an image added elsewhere finds none again; the container changed finds its own again."""
    folder = tmp_path / "photos"
    _coffee_collage(folder)
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="none")
    threshold = default_threshold("auto")
    found: list[int] = []
    strip_of = evidence.strip_of
    monkeypatch.setattr(evidence, "strip_of", lambda c, *rest: found.append(len(c.points)) or strip_of(c, *rest))

    def judged_after(change) -> tuple[int, int]:
        change()
        cat.index([folder], workers=1)
        before = len(found)
        _, report = judged_pairs(cat.catalog, threshold, merge={}, policy=FEW)
        return len(found) - before, report.images

    first, _ = judged_after(lambda: None)
    assert first >= 1  # the collage, beside coffee's picture
    assert judged_after(lambda: save(scene(7), folder / "scene7.png")) == (0, 1)
    again, _ = judged_after(lambda: save(_collage(photo("coffee"), photo("rocket")), folder / "collage.png"))
    assert again >= 1


def _picture_in_picture(background: np.ndarray, inset: np.ndarray) -> np.ndarray:
    """`inset` at half the width, framed in white, in the top-left corner of `background`."""
    out = background.copy()
    height, width = out.shape[:2]
    small = cv2.resize(inset, (width // 2, round(inset.shape[0] * (width // 2) / inset.shape[1])),
                       interpolation=cv2.INTER_AREA)[: int(height * 0.6)]
    small = cv2.copyMakeBorder(small, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    margin = width // 30
    out[margin:margin + small.shape[0], margin:margin + small.shape[1]] = small
    return out


def test_a_picture_in_picture_whose_background_keeps_too_few_keypoints_still_contains_both(tmp_path) -> None:
    """The inset's sharp picture and white frame take the composite's keypoints; its soft
    background picture does not verify against them, but shows its colours cell for cell."""
    folder = tmp_path / "photos"
    soft = cv2.GaussianBlur(photo("coffee"), (0, 0), 8)
    save(soft, folder / "coffee.png")
    save(jpeg(soft, 40), folder / "coffee_q40.png")
    _with_q40_copies(folder, ("chelsea",))
    save(_picture_in_picture(soft, photo("chelsea")), folder / "pip.png")
    for seed in range(4):
        save(scene(seed), folder / f"scene{seed}.png")
    judged, found, names, _ = _judged(tmp_path, folder, policy=AutoPolicy())
    by_keypoints = {names[int(b if names[int(a)] == "pip" else a)]: judged.verification(row)
                    for row, (a, b) in enumerate(judged.pairs) if "pip" in (names[int(a)], names[int(b)])
                    and not judged.strip_links()[row]}
    assert by_keypoints["chelsea"].count >= VERIFY_THRESHOLD
    weak = by_keypoints.get("coffee")  # judged pairs hold only those with some evidence
    assert weak is None or weak.count < VERIFY_THRESHOLD
    (composite,) = found.composites
    assert names[composite] == "pip"
    assert {names[i].split("_")[0] for i in found.composites[composite]} == {"coffee", "chelsea"}
    grouped = {names[int(i)] for i in np.concatenate([found.edges.src, found.edges.dst])}
    assert "pip" not in grouped and {"coffee", "coffee_q40", "chelsea", "chelsea_q40"} <= grouped


def test_a_strip_showing_a_picture_whole_or_in_place_is_a_colour_link() -> None:
    left, right = photo("coffee"), photo("chelsea")
    side = _collage(left, right)
    strip = (LAYOUT_SIDE * left.shape[1] * 400 // left.shape[0] // side.shape[1] + 1, 0, LAYOUT_SIDE, LAYOUT_SIDE)
    found = colour_link(colour_layout(side), colour_layout(right), strip)
    assert found is not None and found.inliers == VERIFY_THRESHOLD
    assert found.query.cells & 1 == 0 and found.query.cells >> (REGION_GRID * REGION_GRID - 1) == 1
    in_place = _picture_in_picture(left, right)
    free = (LAYOUT_SIDE // 2 + 2, 0, LAYOUT_SIDE, LAYOUT_SIDE)
    assert colour_link(colour_layout(in_place), colour_layout(left), free) is not None
    # another picture, the same one brighter, a flat margin, a band too narrow for a picture
    assert colour_link(colour_layout(side), colour_layout(photo("astronaut")), strip) is None
    brighter = np.clip(right.astype(np.int16) + 24, 0, 255).astype(np.uint8)
    assert colour_link(colour_layout(side), colour_layout(brighter), strip) is None
    margin = np.hstack([left, np.full_like(left, 200)])
    assert colour_link(colour_layout(margin), colour_layout(np.full_like(left, 200)),
                       (LAYOUT_SIDE // 2, 0, LAYOUT_SIDE, LAYOUT_SIDE)) is None
    narrow = (LAYOUT_SIDE - LAYOUT_SIDE // 5, 0, LAYOUT_SIDE, LAYOUT_SIDE)
    assert colour_link(colour_layout(side), colour_layout(right), narrow) is None


def _beside_a_star_field(picture: np.ndarray, sky: np.ndarray) -> np.ndarray:
    """`picture` and `sky` side by side at one height, a white gap between, saved as JPEG."""
    height = 480
    parts = [cv2.resize(p, (round(p.shape[1] * height / p.shape[0]), height), interpolation=cv2.INTER_AREA)
             for p in (picture, sky)]
    return jpeg(np.hstack([parts[0], np.full((height, 12, 3), 255, np.uint8), parts[1]]), 85)


def test_a_photo_beside_a_star_field_contains_the_sky_and_no_look_alike_sky(tmp_path) -> None:
    """The sky's stars link it to the collage's free half; a look-alike sky beside it is not
    taken for the collage's second picture."""
    folder = tmp_path / "photos"
    _with_q40_copies(folder, ("coffee",))
    save(galaxy(1), folder / "sky.png")
    save(galaxy(11), folder / "other_sky.png")
    save(_beside_a_star_field(photo("coffee"), galaxy(1)), folder / "collage.png")
    for seed in range(4):
        save(scene(seed), folder / f"scene{seed}.png")
    judged, found, names, _ = _judged(tmp_path, folder)
    assert judged.strip_links().any()
    (composite,) = found.composites
    assert names[composite] == "collage"
    assert {names[i].split("_")[0] for i in found.composites[composite]} == {"coffee", "sky"}
    grouped = {names[int(i)] for i in np.concatenate([found.edges.src, found.edges.dst])}
    assert "collage" not in grouped and {"coffee", "coffee_q40"} <= grouped


def test_whole_layouts_shrink_at_once_to_the_thumbnails_one_at_a_time_give() -> None:
    """Lists kept from runs before are merged with thumbnails made now: the batch must give
    every value the one-at-a-time shrink gives, bit for bit (real photos, a flat picture,
    noise)."""
    rng = np.random.default_rng(3)
    cells = [colour_layout(photo(name)).cells for name in ("astronaut", "chelsea", "coffee", "hubble")]
    cells += [np.full((LAYOUT_SIDE, LAYOUT_SIDE, 3), 90, np.uint8)]
    cells += list(rng.integers(0, 256, (300, LAYOUT_SIDE, LAYOUT_SIDE, 3), dtype=np.uint8))
    one_by_one = np.stack([_thumbnail(c) for c in cells])
    assert np.array_equal(_whole_thumbnails(np.stack(cells)).view(np.uint32), one_by_one.view(np.uint32))


def test_strip_candidates_are_each_container_s_most_alike_images_outside_its_group() -> None:
    """Against a brute-force oracle (every image ranked by a stable sort): a container's group
    is the images most alike its strip, more of them than TOP, and still TOP others are found."""
    rng = np.random.default_rng(7)

    def layout(seed_image: np.ndarray) -> object:
        return colour_layout(cv2.GaussianBlur(seed_image, (0, 0), 3))

    pictures = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(60)]
    layouts = {i: layout(p) for i, p in enumerate(pictures, 1)}
    # images 2-16 are the container's strip, lightly changed: its group, all more alike it than any other
    strip = (LAYOUT_SIDE // 2, 0, LAYOUT_SIDE, LAYOUT_SIDE)
    shown = cv2.resize(pictures[0][:, 48:], (96, 96))
    for i in range(2, 17):
        layouts[i] = layout(np.clip(shown.astype(np.int16) + rng.integers(-6, 7, shown.shape), 0, 255).astype(np.uint8))
    group = np.array([[1, i] for i in range(2, 17)], np.int64)
    strips = {1: strip, 20: (0, 0, LAYOUT_SIDE // 3, LAYOUT_SIDE), 33: (0, LAYOUT_SIDE // 2, LAYOUT_SIDE, LAYOUT_SIDE)}
    found, _ = strip_candidates(strips, group, lambda ids: {i: layouts[i].cells for i in ids if i in layouts},
                                sorted(layouts))
    ids = np.array(sorted(layouts))
    thumbs = np.stack([_thumbnail(layouts[i].cells) for i in ids]).astype(np.float64)
    expected = []
    for image, (left, top, right, bottom) in sorted(strips.items()):
        similar = (thumbs * _thumbnail(layouts[image].cells[top:bottom, left:right]).astype(np.float64)).sum(axis=1)
        others = [int(i) for i in ids[np.lexsort((ids, -similar))]
                  if i != image and not (image == 1 and 2 <= i <= 16)]
        expected += [(image, other, strips[image]) for other in others[:TOP]]
    assert found == expected
    assert [c for i, c, _ in found if i == 1] and not {c for i, c, _ in found if i == 1} & set(range(2, 17))


def _random_layouts(rng, ids, *, flat=()) -> dict:
    """Blurred random pictures' layouts for `ids` (those in `flat` one colour: a thumbnail of
    0, tied with every other), a few of them copies of one another (ties)."""
    out = {}
    for i in ids:
        picture = np.full((64, 64, 3), 90, np.uint8) if i in flat else rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        out[i] = colour_layout(cv2.GaussianBlur(picture, (0, 0), 3))
    for i in list(ids)[5:9]:
        out[i] = out[list(ids)[4]]
    return out


def _oracle(layouts: dict, strips: dict, ids, width: int) -> np.ndarray:
    """Each container's `width` most alike images by a float64 sort of all, ties by id."""
    ids = np.array(ids)
    thumbs = np.stack([_thumbnail(layouts[i].cells) for i in ids]).astype(np.float64)
    rows = []
    for image, (left, top, right, bottom) in sorted(strips.items()):
        query = _thumbnail(layouts[image].cells[top:bottom, left:right]).astype(np.float64)
        rows.append(ids[np.lexsort((ids, -(thumbs * query).sum(axis=1)))][:width])
    return np.stack(rows)


def test_containers_lists_brought_up_to_date_are_what_a_search_of_all_images_gives() -> None:
    """Images added, removed and changed: each kept list is merged with the added images
    alone, and equals the list a search of every image gives (ties included: a flat strip
    ties with every image); only the lists of containers changed, with another strip, or
    that held an image removed are searched again."""
    rng = np.random.default_rng(11)
    ids = list(range(1, 301))
    layouts = _random_layouts(rng, ids, flat={3})
    half = (LAYOUT_SIDE // 2, 0, LAYOUT_SIDE, LAYOUT_SIDE)
    strips = {i: half for i in range(1, 301, 10)} | {3: half}
    read: list[int] = []

    def of(some):
        read.extend(some)
        return {i: layouts[i].cells for i in some if i in layouts}

    _, known = strip_candidates(strips, np.zeros((0, 2), np.int64), of, ids)
    assert np.array_equal(known.ids, _oracle(layouts, strips, ids, LISTED))
    # then: 20 added, 10 removed, 2 changed; one container's strip moved
    gone = [12, 44, 45, 46, 47, 48, 49, 120, 260, 299]
    changed = [33, 150]
    added = list(range(301, 321))
    now = [i for i in ids if i not in gone] + added
    layouts.update(_random_layouts(rng, changed + added))
    strips_now = {i: s for i, s in strips.items() if i in now} | {301: half, 51: (0, 0, LAYOUT_SIDE // 2, LAYOUT_SIDE)}
    found, lists = strip_candidates(strips_now, np.zeros((0, 2), np.int64), of, now, known, changed + added)
    assert np.array_equal(lists.ids, _oracle(layouts, strips_now, now, LISTED))
    fresh, again = strip_candidates(strips_now, np.zeros((0, 2), np.int64), of, now)
    assert found == fresh and np.array_equal(lists.values, again.values)
    # unchanged since: only the containers' own layouts are read, no other image's
    read.clear()
    strip_candidates(strips_now, np.zeros((0, 2), np.int64), of, now, lists, [])
    assert sorted(read) == sorted(strips_now)
    # one image added: its layout too, and no list is searched again
    read.clear()
    layouts.update(_random_layouts(rng, [400]))
    more, _ = strip_candidates(strips_now, np.zeros((0, 2), np.int64), of, now + [400], lists, [400])
    assert sorted(read) == sorted([*strips_now, 400])
    assert more == strip_candidates(strips_now, np.zeros((0, 2), np.int64), of, now + [400])[0]


def test_a_group_too_large_for_the_list_kept_is_searched_deeper() -> None:
    rng = np.random.default_rng(5)
    ids = list(range(1, 201))
    layouts = _random_layouts(rng, ids)
    strips = {1: (LAYOUT_SIDE // 2, 0, LAYOUT_SIDE, LAYOUT_SIDE)}
    ranked = _oracle(layouts, strips, ids, 200)[0]
    group = np.array([[1, int(i)] for i in ranked[:LISTED + 5] if i != 1], np.int64)  # its LISTED most alike
    found, _ = strip_candidates(strips, group, lambda some: {i: layouts[i].cells for i in some}, ids)
    members = set(group.ravel().tolist())
    assert [o for _, o, _ in found] == [int(i) for i in ranked if int(i) not in members][:TOP]


def test_copies_tied_past_the_slack_are_listed_by_id() -> None:
    """200 images with one layout (copies of one picture) tie for a strip that shows it, more
    than the float32 product's extra picks reach: the list holds the first by id, as a sort
    of all gives, and so does a list merged with more copies."""
    rng = np.random.default_rng(2)
    ids = list(range(1, 501))
    layouts = _random_layouts(rng, ids)
    picture = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (0, 0), 3)
    for i in range(100, 300):
        layouts[i] = colour_layout(picture)
    layouts[1] = colour_layout(np.hstack([cv2.resize(picture, (32, 64)), cv2.resize(picture, (32, 64))]))
    strips = {1: (LAYOUT_SIDE // 2, 0, LAYOUT_SIDE, LAYOUT_SIDE)}
    _, lists = strip_candidates(strips, np.zeros((0, 2), np.int64),
                                lambda some: {i: layouts[i].cells for i in some}, ids)
    assert np.array_equal(lists.ids, _oracle(layouts, strips, ids, LISTED))
    assert set(range(100, 100 + LISTED - 1)) <= set(lists.ids[0].tolist())  # tied copies, by id
    for i in range(501, 521):
        layouts[i] = layouts[100]
    _, merged = strip_candidates(strips, np.zeros((0, 2), np.int64), lambda some: {i: layouts[i].cells for i in some},
                                 ids + list(range(501, 521)), lists, list(range(501, 521)))
    assert np.array_equal(merged.ids, lists.ids)  # later copies tie and come after by id
