"""Duplicate groups one can act on: each failure class of an untuned collection, with small
real photos. What many images share (a caption) makes no group; a collage joins neither of
the groups it contains and is reported as containing them, as is a photo with another inset
in its corner, and two copies of one photo with different pictures inset in one corner are
no copies of each other, nor does an inset copy take the photo's copy from it; variants of
one template (a different letter on the same picture, or the same drawing in another colour)
are not copies; a photo beside a picture the collection lacks is no copy of it; the keeper
is the original, not a noisy, bordered or captioned copy, nor one rotated or warped onto a
larger canvas; and a user's "not a duplicate" holds. (A copy with a caption band added above
it still wins the keeper over its original: no rule tells an added band from a cropped-off
one yet.)"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageEnhance

import neardup
from neardup.indexer.features import orb_features
from neardup.search.verify import VERIFY_THRESHOLD, verify

from conftest import PHOTOS, photo, save, scene
from images import jpeg, meme, stars
from test_inset import inset
from test_recolour import drawing, gamma


_THREE = ("coffee", "chelsea", "rocket")


def _names(paths) -> frozenset[str]:
    return frozenset(Path(p).stem for p in paths)


def _catalog(tmp_path: Path, folder: Path, embedder: str = "cnn") -> neardup.Collection:
    cat = neardup.open(tmp_path / "c.db", create=True, embedder=embedder)
    cat.index([folder], workers=1)
    return cat


def _originals_kept(cat: neardup.Collection, suffix: str, reason: str) -> None:
    """Each of _THREE is grouped with its `suffix` copy alone and kept, for `reason`."""
    groups = [g for g in cat.duplicates() if not g.contains]
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_{suffix}"}) for n in _THREE}
    for g in groups:
        assert Path(g.keeper).stem in _THREE, (g.keeper, g.reason)
        assert reason in g.reason, g.reason


def _caption(rgb: np.ndarray, text: str, *, band: bool) -> np.ndarray:
    """A meme caption: white text with a black outline over the top and bottom of the picture,
    or (`band`) on a white band added above it."""
    height, width = rgb.shape[:2]
    out = np.vstack([np.full((height // 5, width, 3), 255, np.uint8), rgb]) if band else rgb.copy()
    scale = width / 400
    for y, line in ((int(height * 0.12), text), (out.shape[0] - int(height * 0.05), text[::-1])):
        for colour, thick in (((0, 0, 0), 7), ((255, 255, 255) if not band else (0, 0, 0), 2)):
            cv2.putText(out, line, (int(width * 0.05), y), cv2.FONT_HERSHEY_DUPLEX, 1.2 * scale, colour,
                        max(1, int(thick * scale)), cv2.LINE_AA)
    return out


def test_a_caption_shared_by_three_distinct_photos_makes_no_group(tmp_path) -> None:
    folder = tmp_path / "photos"
    for name in PHOTOS[:3]:
        save(_caption(photo(name), "WHEN THE CODE FINALLY WORKS", band=False), folder / f"meme_{name}.png")
    for seed in range(3):
        save(scene(seed), folder / f"scene{seed}.png")
    assert _catalog(tmp_path, folder).duplicates() == []


@pytest.mark.parametrize("name", ["chelsea", "rocket"])
def test_a_caption_shared_with_a_plain_card_is_no_match_on_content(name) -> None:
    """A text-only meme on a plain card (or a dark star field) has keypoints on its caption
    only, all matching the photo's caption: its flat middle cannot tell a copy, so the
    photo's middle, which matches nothing, decides."""
    card = meme(np.full((360, 480, 3), 236, np.uint8))
    found = verify(orb_features(card), orb_features(meme(cv2.resize(photo(name), (480, 360),
                                                                     interpolation=cv2.INTER_AREA))))
    assert found.inliers >= VERIFY_THRESHOLD and found.query.coverage >= 0.9  # the captions match
    assert found.query.central == 0 and found.candidate.central > 0
    assert not found.on_content and found.count == 0


def _in_app(rgb: np.ndarray) -> np.ndarray:
    """A phone screenshot of `rgb` (720 x 1280): a status line and an account above it, buttons,
    likes and a caption below, in dark text on white."""
    out = np.full((1280, 720, 3), 255, np.uint8)
    picture = cv2.resize(rgb, (720, round(rgb.shape[0] * 720 / rgb.shape[1])), interpolation=cv2.INTER_AREA)[:860]
    out[150 : 150 + picture.shape[0]] = picture
    ink = (20, 20, 20)
    cv2.circle(out, (58, 100), 38, (120, 220, 140), -1)
    for i in range(3):
        cv2.circle(out, (48 + 70 * i, 1058), 24, ink, 4)
    for text, place, scale in (("9:41", (24, 34), 0.9), ("literally_works", (112, 95), 0.9),
                               ("Sponsored", (112, 125), 0.6), ("Liked by day and 522 others", (24, 1130), 0.8),
                               ("so star day this star", (24, 1180), 0.75),
                               ("literally monday code this cat", (24, 1220), 0.75)):
        cv2.putText(out, text, place, cv2.FONT_HERSHEY_SIMPLEX, scale, ink, 2, cv2.LINE_AA)
    return out


def _viewer(rgb: np.ndarray, fill: float) -> np.ndarray:
    """A desktop screenshot of an image viewer showing `rgb` small (`fill` of the window's
    area): a coloured title bar, a toolbar of buttons and a sidebar of file names on a light
    theme."""
    out = np.full((720, 1024, 3), 245, np.uint8)
    out[:34] = (70, 110, 180)
    out[34:70] = 227
    for i, colour in enumerate(((200, 80, 60), (60, 160, 90), (220, 170, 40), (90, 90, 200), (150, 70, 160))):
        cv2.rectangle(out, (12 + 44 * i, 42), (44 + 44 * i, 62), colour, -1)
    for i in range(7):
        cv2.putText(out, f"holiday_{2011 + i}_{i * 37 % 100:02d}.jpg", (14, 100 + 80 * i), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (60, 60, 60), 1, cv2.LINE_AA)
    scale = (fill * out.shape[0] * out.shape[1] / (rgb.shape[0] * rgb.shape[1])) ** 0.5
    picture = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    top, left = 80 + (630 - picture.shape[0]) // 2, 220 + (794 - picture.shape[1]) // 2
    out[top : top + picture.shape[0], left : left + picture.shape[1]] = picture
    return out


def test_a_screenshot_showing_a_photo_small_in_a_viewer_is_its_copy(tmp_path) -> None:
    """The viewer's window is most of the screenshot, so its hashes and CNN vector see the
    window, not the photo (neither votes); the photo's keypoints verify (one vote), and its
    whole frame lies inside the screenshot's, on a surround that is mostly flat
    (`canvas.shown_whole`): a copy, and not the keeper. Another photo in the same viewer
    shares only the window."""
    folder = tmp_path / "photos"
    save(photo("hubble"), folder / "hubble.png")
    save(jpeg(_viewer(photo("hubble"), 0.3), 90), folder / "hubble_viewed.png")
    save(jpeg(_viewer(photo("coffee"), 0.3), 90), folder / "coffee_viewed.png")
    save(photo("astronaut"), folder / "astronaut.png")
    groups = _catalog(tmp_path, folder).duplicates()
    assert [_names(g.members) for g in groups] == [frozenset({"hubble", "hubble_viewed"})]
    assert Path(groups[0].keeper).stem == "hubble", groups[0].reason


def test_star_fields_in_one_app_s_frame_make_no_group(tmp_path) -> None:
    """Four star fields shown in one app's frame: their hashes and CNN vectors see the frame
    and the black sky alike, and the frame's text matches (a hundred inliers) on a fifth to a
    third of their cells, while their centres' stars match nothing. A screenshot's copy and
    the star field it shows are still its duplicates."""
    folder = tmp_path / "shots"
    for seed in range(4):
        save(_in_app(stars(seed)), folder / f"shot{seed}.png")
    save(jpeg(_in_app(stars(0)), 40), folder / "shot0_q40.png")
    save(stars(0), folder / "stars0.png")
    groups = _catalog(tmp_path, folder).duplicates()
    assert [_names(g.members) for g in groups] == [frozenset({"shot0", "shot0_q40", "stars0"})]


def _collage(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    height = 400
    parts = [cv2.resize(p, (round(p.shape[1] * height / p.shape[0]), height), interpolation=cv2.INTER_AREA)
             for p in (left, right)]
    return np.hstack(parts)


def _with_q40_copies(folder: Path, names: tuple[str, ...]) -> None:
    """Each named photo, and a copy of it re-encoded at quality 40 (saved losslessly)."""
    for name in names:
        save(photo(name), folder / f"{name}.png")
        save(jpeg(photo(name), 40), folder / f"{name}_q40.png")


def test_a_collage_of_two_photos_joins_neither_group_and_contains_both(tmp_path) -> None:
    folder = tmp_path / "photos"
    _with_q40_copies(folder, ("coffee", "chelsea"))
    save(_collage(photo("coffee"), photo("chelsea")), folder / "collage.png")
    for name in ("astronaut", "rocket"):
        save(photo(name), folder / f"{name}.png")
    cat = _catalog(tmp_path, folder)
    found = cat.duplicates()
    groups = {_names(g.members) for g in found if not g.contains}
    assert groups == {frozenset({"coffee", "coffee_q40"}), frozenset({"chelsea", "chelsea_q40"})}
    (composite,) = [g for g in found if g.contains]
    assert Path(composite.keeper).stem == "collage" and composite.members == (composite.keeper,)
    assert _names(composite.contains) <= {"coffee", "coffee_q40", "chelsea", "chelsea_q40"}
    assert len(composite.contains) == 2
    stored = cat.duplicate_report()  # read back from the stored decision: the composite too
    assert stored.evidence.decided and stored.groups == found



def test_a_collage_beside_a_crop_of_a_photo_joins_neither_group_and_contains_both(tmp_path) -> None:
    """The collage's second picture is a crop of chelsea: no search paired the collage with
    chelsea, and the strip its coffee match leaves free does not show chelsea's colours cell for
    cell (`strips`), so it joined coffee's group as a copy with a band beside it. That strip,
    cut from the file and searched by its own CNN vector and keypoints (`pasted`), finds chelsea."""
    folder = tmp_path / "photos"
    _with_q40_copies(folder, ("coffee", "chelsea"))
    chelsea = photo("chelsea")
    h, w = chelsea.shape[:2]
    save(_collage(photo("coffee"), np.ascontiguousarray(chelsea[h // 8 : h - h // 8, w // 8 : w - w // 8])),
         folder / "collage.png")
    save(photo("hubble"), folder / "hubble.png")
    found = _catalog(tmp_path, folder).duplicates()
    assert {_names(g.members) for g in found if not g.contains} == {frozenset({"coffee", "coffee_q40"}),
                                                                    frozenset({"chelsea", "chelsea_q40"})}
    (composite,) = [g for g in found if g.contains]
    assert Path(composite.keeper).stem == "collage"
    inside = _names(composite.contains)
    assert len(inside) == 2 and inside & {"coffee", "coffee_q40"} and inside & {"chelsea", "chelsea_q40"}

@pytest.mark.parametrize("embedder", ["cnn", "none"])
def test_a_photo_beside_one_the_collection_lacks_joins_no_group(tmp_path, embedder) -> None:
    """The second picture is nowhere else, so nothing shows the collage to be one: the seam
    where the photo ends does (`canvas.beside`). None of the collage's matches covers it
    whole, so it is reported as containing the photo (its links to the photo's other copies,
    a captioned one among them, would otherwise put it in their group)."""
    folder = tmp_path / "photos"
    _with_q40_copies(folder, ("astronaut", "hubble"))
    save(_caption(photo("astronaut"), "LOOK AT THIS", band=True), folder / "astronaut_band.png")
    save(_collage(photo("astronaut"), photo("coffee")), folder / "astronaut_beside.png")
    save(_collage(photo("hubble"), photo("chelsea")), folder / "hubble_beside.png")
    save(photo("rocket"), folder / "rocket.png")
    found = _catalog(tmp_path, folder, embedder).duplicates()
    assert {_names(g.members) for g in found if not g.contains} == {
        frozenset({"astronaut", "astronaut_q40", "astronaut_band"}), frozenset({"hubble", "hubble_q40"})}
    held = {Path(g.keeper).stem: _names(g.contains) for g in found if g.contains}
    assert set(held) == {"astronaut_beside", "hubble_beside"}
    assert len(held["astronaut_beside"]) == 1 and held["astronaut_beside"] < {"astronaut", "astronaut_q40"}
    assert len(held["hubble_beside"]) == 1 and held["hubble_beside"] < {"hubble", "hubble_q40"}


@pytest.mark.parametrize("embedder", ["cnn", "none"])
def test_photos_inset_into_one_background_join_neither_it_nor_each_other(tmp_path, embedder) -> None:
    """Two pictures inset in two corners of one photo (hubble nowhere else, coffee with its
    copy): each verifies against the other on the background they share, and a group of two
    distinct images followed. The block where each differs from the other says it holds another
    picture there (`inset`): each is reported as containing the photo (or the other inset
    showing it), and no group holds either. With the CNN, the inset coffee is also found in its
    region (`pasted`): that image contains coffee too."""
    folder = tmp_path / "photos"
    _with_q40_copies(folder, ("chelsea", "coffee"))
    save(inset(photo("chelsea"), photo("coffee"), corner=(0, 1), width=0.38), folder / "chelsea_inset_coffee.png")
    save(inset(photo("chelsea"), photo("hubble"), width=0.38), folder / "chelsea_inset_hubble.png")
    save(photo("astronaut"), folder / "astronaut.png")
    found = _catalog(tmp_path, folder, embedder).duplicates()
    assert {_names(g.members) for g in found if not g.contains} == {frozenset({"chelsea", "chelsea_q40"}),
                                                                    frozenset({"coffee", "coffee_q40"})}
    composites = {Path(g.keeper).stem: _names(g.contains) for g in found if g.contains}
    assert composites.keys() == {"chelsea_inset_coffee", "chelsea_inset_hubble"}
    for name, inside in composites.items():
        background = inside - {"coffee", "coffee_q40"}
        assert len(background) == 1 and background <= {"chelsea", "chelsea_q40", *composites.keys()} - {name}, inside
    coffee = {"coffee", "coffee_q40"}
    assert len(composites["chelsea_inset_coffee"] & coffee) == (1 if embedder == "cnn" else 0)
    assert not composites["chelsea_inset_hubble"] & coffee


@pytest.mark.parametrize("picture", ["rocket", "chelsea"])
def test_a_photo_stays_with_its_bordered_copy_when_a_copy_with_a_picture_inset_matches_it_better(
        tmp_path, picture) -> None:
    """A photo, a copy of it in a wide coloured border, and the photo with another picture
    inset in a corner (the picture nowhere else): the inset copy differs from the photo, but
    matches the bordered copy more strongly than the photo does. The group is cut between the
    photo and the inset copy at the link that covers less of both frames (the inset copy's,
    0.77 of the smaller side's cells at 0.90-0.95), not at the weaker one (the photo's, all of
    its cells at 0.83): the photo keeps its copy."""
    folder = tmp_path / "photos"
    coffee = photo("coffee")
    pad = round(max(coffee.shape[:2]) * 0.06)
    save(inset(coffee, photo(picture), corner=(1, 1), width=0.38), folder / "a_inset.png")
    save(cv2.copyMakeBorder(coffee, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(40, 90, 200)),
         folder / "b_bordered.png")
    save(coffee, folder / "c_coffee.png")
    save(photo("astronaut"), folder / "d_astronaut.png")
    found = _catalog(tmp_path, folder).duplicates()
    assert {_names(g.members) for g in found if not g.contains} == {frozenset({"b_bordered", "c_coffee"})}


@pytest.mark.parametrize("embedder", ["cnn", "none"])
@pytest.mark.parametrize("background", ["astronaut", "coffee"])
def test_one_background_holding_two_pictures_in_one_corner_makes_no_group(tmp_path, embedder, background) -> None:
    """Two images of one photo, each with its own picture inset in the same corner (neither
    picture, nor the bare photo, is in the collection): the inset's frame stands out in both,
    so neither holds an inset the other lacks, but they differ in that block, and the
    background they share verifies. They are no copies: no group."""
    folder = tmp_path / "photos"
    others = tuple(n for n in ("chelsea", "astronaut", "coffee") if n != background)
    _with_q40_copies(folder, others)
    for picture in ("hubble", "rocket"):
        save(inset(photo(background), photo(picture), corner=(0, 1)), folder / f"{background}_{picture}.png")
    found = _catalog(tmp_path, folder, embedder).duplicates()
    assert {_names(g.members) for g in found} == {frozenset({n, f"{n}_q40"}) for n in others}


def _poster() -> np.ndarray:
    """A photo cut to a disc on a plain light card: a frame the content box sees through."""
    out = np.full((480, 640, 3), 236, np.uint8)
    picture = cv2.resize(photo("astronaut"), (380, 380), interpolation=cv2.INTER_AREA)
    disc = np.zeros((380, 380), np.uint8)
    cv2.ellipse(disc, (190, 190), (185, 185), 0, 0, 360, 1, -1)
    out[60:440, 30:410][disc.astype(bool)] = picture[disc.astype(bool)]
    return out


@pytest.mark.parametrize("embedder", ["cnn", "none"])
def test_a_soft_picture_inset_in_a_poster_joins_neither_group_and_contains_both(tmp_path, embedder) -> None:
    """The inset is the poster's content box, whose hashes find the soft picture (too smooth
    for keypoints to verify), while its keypoints verify the poster: the box link lies in the
    box, apart from the poster's match, so the image contains both, and no longer joins them."""
    folder = tmp_path / "photos"
    soft = cv2.GaussianBlur(photo("chelsea"), (0, 0), 5.0)
    for name, rgb in (("poster", _poster()), ("soft", soft)):
        save(rgb, folder / f"{name}.png")
        save(jpeg(rgb, 40), folder / f"{name}_q40.png")
    save(inset(_poster(), soft, corner=(0, 1), width=0.36), folder / "poster_inset.png")
    save(photo("rocket"), folder / "rocket.png")
    found = _catalog(tmp_path, folder, embedder).duplicates()
    assert {_names(g.members) for g in found if not g.contains} == {frozenset({"poster", "poster_q40"}),
                                                                    frozenset({"soft", "soft_q40"})}
    (composite,) = [g for g in found if g.contains]
    assert Path(composite.keeper).stem == "poster_inset"
    assert len(composite.contains) == 2 and _names(composite.contains) <= {"poster", "poster_q40", "soft", "soft_q40"}


def _sticker(rgb: np.ndarray, picture: np.ndarray, *, side: float = 0.45, turn: float = 10.0,
             at: tuple[float, float] = (0.9, 0.1)) -> np.ndarray:
    """`picture` cut to an oval, outlined in white, turned by `turn` degrees and pasted inside
    `rgb` at `side` of its shorter side, `at` (x, y: 0 left/top, 1 right/bottom) of the room
    around it: a sticker made of another photo."""
    h, w = rgb.shape[:2]
    scale = side * min(h, w) / max(picture.shape[:2])
    piece = cv2.resize(picture, (round(picture.shape[1] * scale), round(picture.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    pad = 8
    layer = cv2.copyMakeBorder(piece, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    oval, outline = np.zeros(layer.shape[:2], np.uint8), np.zeros(layer.shape[:2], np.uint8)
    centre, axes = (layer.shape[1] // 2, layer.shape[0] // 2), (piece.shape[1] // 2, piece.shape[0] // 2)
    cv2.ellipse(oval, centre, axes, 0, 0, 360, 255, -1)
    cv2.ellipse(outline, centre, (axes[0] + pad, axes[1] + pad), 0, 0, 360, 255, -1)
    layer[(outline > 0) & (oval == 0)] = 255
    return turned_onto(rgb, layer, outline, centre, turn, at)


def turned_onto(rgb: np.ndarray, layer: np.ndarray, outline: np.ndarray, centre: tuple[float, float], turn: float,
                at: tuple[float, float], *, fill: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """`layer` turned by `turn` degrees about `centre` (`fill` where it turns in from outside)
    and laid on `rgb` where its `outline` (0-255, turned alike) is, `at` (x, y: 0 left/top, 1
    right/bottom) of the room around it."""
    h, w = rgb.shape[:2]
    turned = cv2.getRotationMatrix2D(centre, turn, 1.0)
    size = (layer.shape[1], layer.shape[0])
    layer = cv2.warpAffine(layer, turned, size, flags=cv2.INTER_CUBIC, borderValue=fill)
    alpha = cv2.warpAffine(outline, turned, size, flags=cv2.INTER_LINEAR).astype(np.float32)[..., None] / 255
    x, y = round((w - size[0]) * at[0]), round((h - size[1]) * at[1])
    out = rgb.astype(np.float32)
    out[y : y + size[1], x : x + size[0]] = alpha * layer + (1 - alpha) * out[y : y + size[1], x : x + size[0]]
    return out.round().astype(np.uint8)


@pytest.mark.parametrize(("background", "picture"), [("coffee", "chelsea"), ("chelsea", "coffee")])
def test_a_photo_stuck_on_another_as_a_sticker_joins_neither_group_and_contains_both(
        tmp_path, background, picture) -> None:
    """A sticker cut from one photo in a corner of another changes too little of the other for
    its hashes or CNN vector, and its 500 keypoints lie mostly on the other: it matched that
    photo's copies only, as a copy with an overlay, and joined their group. The region where it
    differs from them, searched by its own CNN vector and keypoints (`pasted`), finds the
    sticker's photo whole: it contains both, and joins neither group."""
    folder = tmp_path / "photos"
    _with_q40_copies(folder, (background, picture))
    save(_sticker(photo(background), photo(picture), side=0.4, at=(0.9, 0.9)), folder / "stuck.png")
    save(photo("hubble"), folder / "hubble.png")
    found = _catalog(tmp_path, folder).duplicates()
    assert {_names(g.members) for g in found if not g.contains} == {
        frozenset({background, f"{background}_q40"}), frozenset({picture, f"{picture}_q40"})}
    (composite,) = [g for g in found if g.contains]
    assert Path(composite.keeper).stem == "stuck" and composite.members == (composite.keeper,)
    inside = _names(composite.contains)
    assert len(inside) == 2 and inside & {background, f"{background}_q40"} and inside & {picture, f"{picture}_q40"}

def _tile(rgb: np.ndarray, letter: str, colour: tuple[int, int, int]) -> np.ndarray:
    """A template: the same picture behind a large letter filling a tile in its middle (the
    letter is the variant's subject, a third of the picture's width and half its height)."""
    out = rgb.copy()
    height, width = out.shape[:2]
    top, left = height // 4, width // 3
    cv2.rectangle(out, (left, top), (width - left, height - top), colour, -1)
    (w, h), _ = cv2.getTextSize(letter, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 3)
    scale = 0.8 * min((width - 2 * left) / w, (height - 2 * top) / h)
    origin = (left + int((width - 2 * left - w * scale) / 2), height - top - int((height - 2 * top - h * scale) / 2))
    cv2.putText(out, letter, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), max(2, int(scale * 4)),
                cv2.LINE_AA)
    return out


@pytest.mark.parametrize("letters", ["PRFB", "AHEK"])
def test_variants_of_one_template_whose_letters_share_strokes_are_not_grouped(tmp_path, letters) -> None:
    """P, R, F and B (or A, H, E and K) share most of their strokes: the tile holds no large
    region that differs in both (`verify.MIN_HOLE`), yet matched over all of both pictures,
    the match misses the middle of both, where each has its letter (`verify.MIN_CENTRAL`).
    Without that, P and F, and B and R (E, H and K) were grouped. A real copy still is."""
    folder = tmp_path / "photos"
    background = photo("astronaut")
    for letter in letters:
        save(_tile(background, letter, (140, 40, 160)), folder / f"tile_{letter}.png")
    save(jpeg(_tile(background, letters[0], (140, 40, 160)), 50), folder / f"tile_{letters[0]}_q50.png")
    for seed in range(3):
        save(scene(seed), folder / f"scene{seed}.png")
    groups = {_names(g.members) for g in _catalog(tmp_path, folder).duplicates()}
    assert groups == {frozenset({f"tile_{letters[0]}", f"tile_{letters[0]}_q50"})}


def test_variants_of_one_template_with_different_letters_are_not_grouped(tmp_path) -> None:
    """Letters whose strokes differ over a large part of the tile (O, T, L)."""
    folder = tmp_path / "photos"
    background = photo("astronaut")
    for letter in "OTL":
        save(_tile(background, letter, (140, 40, 160)), folder / f"tile_{letter}.png")
    save(jpeg(_tile(background, "O", (140, 40, 160)), 50), folder / "tile_O_q50.png")  # a real copy
    for seed in range(3):
        save(scene(seed), folder / f"scene{seed}.png")
    groups = {_names(g.members) for g in _catalog(tmp_path, folder).duplicates()}
    assert groups == {frozenset({"tile_O", "tile_O_q50"})}


def test_one_drawing_in_three_colours_is_not_grouped_but_its_copies_are(tmp_path) -> None:
    """The same object recoloured on the same background verifies as a copy (its shading, and
    so its keypoints, are the same); its colours, compared after alignment, tell it apart. A
    re-encoded and a blurred copy stay with their original."""
    folder = tmp_path / "photos"
    for tint in ("purple", "teal", "orange"):
        save(drawing(tint), folder / f"drawing_{tint}.png")
    save(jpeg(drawing("purple"), 50), folder / "drawing_purple_q50.png")
    save(cv2.GaussianBlur(drawing("purple"), (0, 0), 1.5), folder / "drawing_purple_blur.png")
    for seed in range(3):
        save(scene(seed), folder / f"scene{seed}.png")
    groups = {_names(g.members) for g in _catalog(tmp_path, folder).duplicates()}
    assert groups == {frozenset({"drawing_purple", "drawing_purple_q50", "drawing_purple_blur"})}


def test_a_gamma_copy_of_one_colour_variant_does_not_link_another(tmp_path) -> None:
    """Its layout differs from the other variant's everywhere (no one region stands out), but
    a gamma keeps hues: the object's keypoints turned hue, the rest did not."""
    folder = tmp_path / "photos"
    for tint in ("purple", "teal"):
        save(drawing(tint), folder / f"drawing_{tint}.png")
    save(gamma(drawing("purple"), 0.7), folder / "drawing_purple_gamma.png")
    groups = {_names(g.members) for g in _catalog(tmp_path, folder).duplicates()}
    assert groups == {frozenset({"drawing_purple", "drawing_purple_gamma"})}


def test_a_thumbnail_of_one_colour_variant_does_not_chain_it_to_another(tmp_path) -> None:
    """A 96-pixel thumbnail of the purple drawing is too small for its colours to be compared,
    and its hashes and CNN vector match both variants alike: it links to both. The variants
    themselves verify as aligned and recoloured, so they are kept apart: the chain is cut."""
    folder = tmp_path / "photos"
    for tint in ("purple", "teal"):
        save(drawing(tint), folder / f"drawing_{tint}.png")
    purple = drawing("purple")
    save(cv2.resize(purple, (96, 96 * purple.shape[0] // purple.shape[1]), interpolation=cv2.INTER_AREA),
         folder / "drawing_purple_thumb.png")
    for seed in range(3):
        save(scene(seed), folder / f"scene{seed}.png")
    groups = {_names(g.members) for g in _catalog(tmp_path, folder).duplicates()}
    assert not any({"drawing_purple", "drawing_teal"} <= g for g in groups)
    assert len(groups) == 1 and "drawing_purple_thumb" in next(iter(groups))


def _noisy(rgb: np.ndarray) -> np.ndarray:
    noise = np.random.default_rng(0).normal(0, 12, rgb.shape)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def _bordered(rgb: np.ndarray) -> np.ndarray:
    return cv2.copyMakeBorder(rgb, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=(250, 250, 250))


def _captioned(rgb: np.ndarray) -> np.ndarray:
    return _caption(rgb, "NOBODY ASKED", band=False)


@pytest.mark.parametrize("copy", ["noisy", "bordered", "captioned"])
def test_a_noisy_bordered_or_captioned_copy_never_wins_the_keeper(tmp_path, copy) -> None:
    folder = tmp_path / "photos"
    for name in ("coffee", "chelsea", "rocket"):
        original = photo(name)
        save(original, folder / f"{name}.jpg", quality=92)
        edited = {"noisy": _noisy, "bordered": _bordered, "captioned": _captioned}[copy](original)
        save(edited, folder / f"{name}_{copy}.png")  # a larger file than the original, often larger pixels
    groups = [g for g in _catalog(tmp_path, folder).duplicates() if not g.contains]
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_{copy}"}) for n in ("coffee", "chelsea", "rocket")}
    for g in groups:
        assert Path(g.keeper).suffix == ".jpg", (g.keeper, g.reason)


def test_a_thumbnail_in_a_thin_frame_never_wins_the_keeper(tmp_path) -> None:
    """Square 128-pixel originals and copies with a 5-pixel frame, as square (so no aspect rule
    decides): the frame is found at the decode side (`regions.content_box`), so the framed
    copy, larger and with a box, is passed over; at its own size it won by resolution."""
    folder = tmp_path / "photos"
    for name in ("coffee", "chelsea", "rocket"):
        rgb = photo(name)
        side = min(rgb.shape[:2])
        top, left = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
        thumb = _resized(rgb[top : top + side, left : left + side], 128 / side)
        save(thumb, folder / f"{name}.jpg", quality=92)
        save(cv2.copyMakeBorder(thumb, 5, 5, 5, 5, cv2.BORDER_CONSTANT, value=(40, 220, 200)),
             folder / f"{name}_framed.jpg", quality=95)  # JPEG rings through so thin a frame: no flat canvas
    groups = [g for g in _catalog(tmp_path, folder).duplicates() if not g.contains]
    names = ("coffee", "chelsea", "rocket")
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_framed"}) for n in names}
    for g in groups:
        assert not Path(g.keeper).stem.endswith("_framed"), (g.keeper, g.reason)


@pytest.mark.parametrize("embedder", ["cnn", "none"])
def test_a_grainy_copy_of_a_larger_jpeg_never_wins_the_keeper(tmp_path, embedder) -> None:
    """1,000-pixel JPEGs, which the features see decoded at half size: grain of 6 levels
    added and saved at a higher quality, a file twice as large. At half size the grain
    averages down to the texture of the original; the noise is measured at native size."""
    folder = tmp_path / "photos"
    for name in ("coffee", "chelsea", "rocket"):
        rgb = photo(name)
        original = _resized(rgb, 1000 / max(rgb.shape[:2]))
        save(original, folder / f"{name}.jpg", quality=92)
        grainy = np.clip(original + np.random.default_rng(1).normal(0, 6, original.shape), 0, 255).astype(np.uint8)
        save(grainy, folder / f"{name}_grainy.jpg", quality=96)
    _originals_kept(_catalog(tmp_path, folder, embedder), "grainy", "less grain")


def test_a_grainy_original_keeps_its_place_beside_its_smoother_thumbnail(tmp_path) -> None:
    """A high-ISO photo's own grain (8 levels) averages away in its quarter-size thumbnail:
    grain is compared only between members shown at one scale, so the thumbnail never reads
    as the cleaner original."""
    folder = tmp_path / "photos"
    for name in ("coffee", "chelsea", "rocket"):
        rgb = photo(name)
        original = _resized(rgb, 1000 / max(rgb.shape[:2]))
        original = np.clip(original + np.random.default_rng(2).normal(0, 8, original.shape), 0, 255).astype(np.uint8)
        save(original, folder / f"{name}.jpg", quality=92)
        save(_resized(original, 0.25), folder / f"{name}_thumb.jpg", quality=92)
    groups = [g for g in _catalog(tmp_path, folder, "none").duplicates() if not g.contains]
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_thumb"}) for n in _THREE}
    assert {Path(g.keeper).stem for g in groups} == set(_THREE), [(g.keeper, g.reason) for g in groups]


def test_a_grainy_jpeg_original_keeps_its_place_beside_its_smoother_re_encoded_copy(tmp_path) -> None:
    """The demo's group: a 1,000-pixel JPEG whose own grain a quality-30 copy of the same size
    smooths away. The copy is out of the running as lossier before grain is weighed: compared
    with it, the original would read twice as grainy and lose to its half-size copy."""
    folder = tmp_path / "photos"
    for name in _THREE:
        rgb = photo(name)
        original = _resized(rgb, 1000 / max(rgb.shape[:2]))
        original = np.clip(original + np.random.default_rng(3).normal(0, 6, original.shape), 0, 255).astype(np.uint8)
        save(original, folder / f"{name}.jpg", quality=90)
        save(original, folder / f"{name}_q30.jpg", quality=30)
        save(_resized(original, 0.5), folder / f"{name}_half.jpg", quality=90)
    groups = [g for g in _catalog(tmp_path, folder, "none").duplicates() if not g.contains]
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_q30", f"{n}_half"}) for n in _THREE}
    assert {Path(g.keeper).stem for g in groups} == set(_THREE), [(g.keeper, g.reason) for g in groups]


def _on_canvas(rgb: np.ndarray, copy: str) -> np.ndarray:
    """Turned 7 degrees onto an expanded canvas (corners white), or warped as if photographed
    at an angle onto a canvas 1.1 times as large (black): larger, with the picture whole inside."""
    h, w = rgb.shape[:2]
    if copy == "rotated":
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 7.0, 1.0)
        cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
        size = (round(w * cos + h * sin), round(w * sin + h * cos))
        matrix[:, 2] += (size[0] - w) / 2, (size[1] - h) / 2
        return cv2.warpAffine(rgb, matrix, size, flags=cv2.INTER_CUBIC, borderValue=(255, 255, 255))
    size = (round(w * 1.1), round(h * 1.1))
    source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    target = np.float32([[0.1 * w, 0.08 * h], [w, 0.02 * h], [1.1 * w, 1.1 * h], [0, 1.1 * h]])
    return cv2.warpPerspective(rgb, cv2.getPerspectiveTransform(source, target), size, flags=cv2.INTER_CUBIC)


@pytest.mark.parametrize("copy", ["rotated", "warped"])
def test_a_copy_on_a_larger_blank_canvas_never_wins_the_keeper(tmp_path, copy) -> None:
    """More pixels and a larger file than the original, and no content box (the canvas around
    the picture is no rectangular frame): verification's homography shows the extra is blank."""
    folder = tmp_path / "photos"
    for name in ("coffee", "chelsea", "rocket"):
        save(photo(name), folder / f"{name}.jpg", quality=92)
        save(_on_canvas(photo(name), copy), folder / f"{name}_{copy}.jpg", quality=92)
    groups = [g for g in _catalog(tmp_path, folder).duplicates() if not g.contains]
    names = ("coffee", "chelsea", "rocket")
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_{copy}"}) for n in names}
    for g in groups:
        assert Path(g.keeper).stem in names, (g.keeper, g.reason)
        assert "blank canvas" in g.reason


def test_not_a_duplicate_is_never_grouped_again_even_after_reindexing(tmp_path) -> None:
    folder = tmp_path / "photos"
    save(photo("coffee"), folder / "coffee.png")
    save(jpeg(photo("coffee"), 40), folder / "coffee_q40.png")
    save(cv2.resize(photo("coffee"), (300, 200)), folder / "coffee_small.png")
    save(photo("rocket"), folder / "rocket.png")
    cat = _catalog(tmp_path, folder, embedder="none")
    assert {_names(g.members) for g in cat.duplicates()} == {frozenset({"coffee", "coffee_q40", "coffee_small"})}
    cat.not_duplicate(folder / "coffee.png", folder / "coffee_q40.png")
    apart = {_names(g.members) for g in cat.duplicates()}
    assert all(not {"coffee", "coffee_q40"} <= g for g in apart) and any("coffee_small" in g for g in apart)
    (folder / "coffee_q40.png").rename(folder / "renamed.png")  # moved: the word is kept by content
    cat.index([folder], workers=1)
    again = {_names(g.members) for g in neardup.open(cat.path).duplicates()}
    assert all(not {"coffee", "renamed"} <= g for g in again)
    with pytest.raises(neardup.NeardupError, match="not an indexed image"):
        cat.not_duplicate(folder / "coffee.png", folder / "nowhere.png")


def test_a_copy_re_encoded_at_a_lower_quality_never_wins_the_keeper(tmp_path) -> None:
    # The low-quality copy is often the noisier-looking or the larger file by other measures;
    # what it lost in its quantisation tables is the tell.
    folder = tmp_path / "photos"
    for name in ("coffee", "chelsea", "rocket"):
        save(photo(name), folder / f"{name}.jpg", quality=95)
        save(photo(name), folder / f"{name}_copy.jpg", quality=35)
    groups = _catalog(tmp_path, folder, embedder="none").duplicates()
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_copy"}) for n in ("coffee", "chelsea", "rocket")}
    for g in groups:
        assert Path(g.keeper).stem in ("coffee", "chelsea", "rocket"), (g.keeper, g.reason)


@pytest.mark.parametrize("scale", [1, 4])
def test_a_lossless_re_save_of_a_jpeg_loses_to_the_jpeg(tmp_path, scale) -> None:
    # scale 4: large enough for the JPEG to be decoded at reduced size
    folder = tmp_path / "photos"
    for name in ("coffee", "chelsea"):
        rgb = cv2.resize(photo(name), None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        save(rgb, folder / f"{name}.jpg", quality=90)
        with PILImage.open(folder / f"{name}.jpg") as original:
            original.save(folder / f"{name}_resaved.png")
    groups = _catalog(tmp_path, folder, embedder="none").duplicates()
    assert {Path(g.keeper).name for g in groups} == {"coffee.jpg", "chelsea.jpg"}, [(g.keeper, g.reason) for g in groups]


@pytest.mark.parametrize("quality", [85, 92])
def test_a_lossless_master_keeps_over_its_jpeg_export_of_the_same_size(tmp_path, quality) -> None:
    # a scan or an edit kept as a PNG or TIFF, and the JPEG exported from it to share: the
    # export does not hold the master's pixels, so the master is no re-save of it
    folder = tmp_path / "photos"
    for name, suffix in (("coffee", ".png"), ("chelsea", ".tif"), ("rocket", ".png")):
        master = save(photo(name), folder / f"{name}{suffix}")
        with PILImage.open(master) as im:
            im.save(folder / f"{name}_export.jpg", quality=quality)
    groups = _catalog(tmp_path, folder, embedder="none").duplicates()
    names = ("coffee", "chelsea", "rocket")
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_export"}) for n in names}
    assert {Path(g.keeper).stem for g in groups} == set(names), [(g.keeper, g.reason) for g in groups]


def test_a_lossless_original_keeps_its_place_beside_lossy_smaller_and_brightened_copies(tmp_path) -> None:
    # The demo's groups: a PNG original, a JPEG of it at quality 30 (the same size), a
    # half-size JPEG at quality 90 and a brightened PNG (a larger file), written in that order.
    # The quality-30 JPEG once made every same-size PNG look like a re-save of a JPEG, so the
    # half-size copy won; and the brightened PNG won on its larger file.
    folder = tmp_path / "photos"
    for name in ("coffee", "chelsea", "rocket"):
        original = save(photo(name), folder / f"{name}.png")
        with PILImage.open(original) as im:
            im.save(folder / f"{name}_q30.jpg", quality=30)
            im.resize((im.width // 2, im.height // 2), PILImage.LANCZOS).save(folder / f"{name}_half.jpg", quality=90)
            ImageEnhance.Brightness(im).enhance(1.1).save(folder / f"{name}_bright.png")
    groups = [g for g in _catalog(tmp_path, folder).duplicates() if not g.contains]
    assert {_names(g.members) for g in groups} == {
        frozenset({n, f"{n}_q30", f"{n}_half", f"{n}_bright"}) for n in ("coffee", "chelsea", "rocket")}
    assert {Path(g.keeper).name for g in groups} == {"coffee.png", "chelsea.png", "rocket.png"}, \
        [(g.keeper, g.reason) for g in groups]


def _resized(rgb: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(rgb, None, fx=factor, fy=factor,
                      interpolation=cv2.INTER_LANCZOS4 if factor > 1 else cv2.INTER_AREA)


@pytest.mark.parametrize("copy", ["jpg", "large-jpg", "png", "captioned"])
def test_an_enlarged_copy_never_wins_the_keeper_on_its_resolution(tmp_path, copy) -> None:
    """Enlarged 1.8 times: more pixels, and nothing in them the original lacks. "large-jpg":
    enlarged 2.2 times, to 880 pixels, which the features see decoded at half size;
    "captioned": sharp text pasted on the enlargement, which a measure of the whole picture
    would take for detail."""
    folder = tmp_path / "photos"
    suffix, kw = (".png", {}) if copy == "png" else (".jpg", {"quality": 92})
    for name in ("coffee", "chelsea", "rocket"):
        original = _resized(photo(name), 400 / max(photo(name).shape[:2]))
        save(original, folder / f"{name}{suffix}", **kw)
        enlarged = _resized(original, 2.2 if copy == "large-jpg" else 1.8)
        if copy == "captioned":
            enlarged = _caption(enlarged, "SAME PICTURE MORE PIXELS", band=False)
        save(enlarged, folder / f"{name}_enlarged{suffix}", **kw)
    groups = [g for g in _catalog(tmp_path, folder).duplicates() if not g.contains]
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_enlarged"}) for n in ("coffee", "chelsea", "rocket")}
    for g in groups:
        assert Path(g.keeper).stem in ("coffee", "chelsea", "rocket"), (g.keeper, g.reason)
        # the captioned enlargement may lose first for its caption (`overlay`)
        assert "not an enlarged copy" in g.reason or (copy == "captioned" and "overlay" in g.reason), g.reason


def _mosaic() -> np.ndarray:
    """The five test photos and the first of them mirrored, each reduced to 300 x 200 and laid
    out 3 x 2: a 900-pixel picture with detail at its own scale (the test photos are smaller
    than that, and enlarged they would be soft). One only: two would share their tiles."""
    tiles = [cv2.resize(photo(n), (300, 200), interpolation=cv2.INTER_AREA) for n in PHOTOS]
    tiles.append(np.ascontiguousarray(tiles[0][:, ::-1]))
    return np.vstack([np.hstack(tiles[:3]), np.hstack(tiles[3:])])


@pytest.mark.parametrize("embedder", ["cnn", "none"])
def test_an_enlargement_beyond_four_times_the_decode_side_never_wins_the_keeper(tmp_path, embedder) -> None:
    """A 900-pixel picture enlarged 2.1 times is a 1,890-pixel JPEG, which the features see
    decoded at a quarter (472 pixels): smaller than its original. Its enlargement is measured
    on its full-size luma all the same, so it loses the keeper for it rather than winning it
    on its resolution (as it did while only files up to 4 x 384 pixels were measured so)."""
    folder = tmp_path / "photos"
    original = _mosaic()
    save(original, folder / "mosaic.jpg", quality=92)
    save(_resized(original, 2.1), folder / "mosaic_enlarged.jpg", quality=92)
    groups = _catalog(tmp_path, folder, embedder).duplicates()
    assert [_names(g.members) for g in groups] == [frozenset({"mosaic", "mosaic_enlarged"})]
    assert Path(groups[0].keeper).stem == "mosaic", groups[0].reason
    assert "not an enlarged copy" in groups[0].reason, groups[0].reason


@pytest.mark.parametrize("embedder", ["cnn", "none"])
def test_a_stretched_copy_never_wins_the_keeper_on_its_resolution(tmp_path, embedder) -> None:
    """Stretched 1.33–1.5 times along one side (3:2 to 2:1 or square, aspect ratios as usual as
    the originals') and saved at a higher quality: more pixels, a larger file, and nothing in
    its extra pixels that the original lacks."""
    _save_resized(tmp_path / "photos", (("coffee", 0, 4 / 3), ("chelsea", 1, 1.5), ("rocket", 1, 1.5)), "stretched")
    _originals_kept(_catalog(tmp_path, tmp_path / "photos", embedder), "stretched", "stretched along one side")


def _save_resized(folder: Path, how: tuple[tuple[str, int, float], ...], suffix: str) -> None:
    """Each photo (at quality 90) and a copy of it resized by `factor` along one side (0: its
    width, 1: its height), at quality 96."""
    for name, side, factor in how:
        original = photo(name)
        size = [original.shape[1], original.shape[0]]
        size[side] = round(size[side] * factor)
        save(original, folder / f"{name}.jpg", quality=90)
        interpolation = cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA
        save(cv2.resize(original, tuple(size), interpolation=interpolation), folder / f"{name}_{suffix}.jpg",
             quality=96)


def test_a_mild_stretch_never_wins_the_keeper_on_its_resolution(tmp_path) -> None:
    """Stretched only 1.2–1.25 times: along that side it loses about half what its original
    loses reduced as much (`keeper._STRETCHED`). At the share an enlargement of the whole
    picture is told by (`keeper._ENLARGED`, about a third), a stretched copy won the keeper."""
    _save_resized(tmp_path / "photos", (("coffee", 0, 1.25), ("chelsea", 1, 1.2), ("rocket", 0, 1.25)), "stretched")
    _originals_kept(_catalog(tmp_path, tmp_path / "photos"), "stretched", "stretched along one side")


def test_a_squeezed_copy_never_makes_its_original_a_stretch(tmp_path) -> None:
    """The same geometry the other way round: the original is the longer one, and a copy
    squeezed to 0.8 or 0.7 of one side is sharper per pixel along it. The original keeps
    the keeper, and is never called a stretch of its copy."""
    _save_resized(tmp_path / "photos", (("coffee", 0, 0.8), ("chelsea", 1, 0.7), ("rocket", 0, 0.7)), "squeezed")
    groups = [g for g in _catalog(tmp_path, tmp_path / "photos").duplicates() if not g.contains]
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_squeezed"}) for n in _THREE}
    for g in groups:
        assert Path(g.keeper).stem in _THREE and "stretched along one side" not in g.reason, (g.keeper, g.reason)


def test_a_crop_of_another_aspect_never_makes_its_original_an_enlargement(tmp_path) -> None:
    """A crop shows the picture at its own scale: reduced along a side, it loses what its
    original loses, so its shorter side accuses no one; neither does a crop reduced to 60 %
    (sharper per pixel, as a reduced copy is). (Which member is kept is not asked: the crop,
    closest to both others, wins it, a weakness of the `central` rule.)"""
    folder = tmp_path / "photos"
    for name in PHOTOS[:4]:
        original = photo(name)
        h, w = original.shape[:2]
        crop = original[:, w // 8: w - w // 8]  # the full height, three quarters of the width
        save(original, folder / f"{name}.jpg", quality=92)
        save(crop, folder / f"{name}_crop.jpg", quality=92)
        save(_resized(crop, 0.6), folder / f"{name}_crop_small.jpg", quality=92)
    groups = [g for g in _catalog(tmp_path, folder, embedder="none").duplicates() if not g.contains]
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_crop", f"{n}_crop_small"}) for n in PHOTOS[:4]}
    assert not any("enlarged" in g.reason for g in groups), [(g.keeper, g.reason) for g in groups]


def test_a_reduced_copy_never_wins_over_its_original_as_an_enlargement(tmp_path) -> None:
    """The other way round: an original beside its half-size copy, both JPEGs of one quality,
    is no enlargement of it (reduced by half, both lose their finest detail)."""
    folder = tmp_path / "photos"
    for name in PHOTOS[:5]:
        save(photo(name), folder / f"{name}.jpg", quality=92)
        save(_resized(photo(name), 0.5), folder / f"{name}_half.jpg", quality=92)
    groups = [g for g in _catalog(tmp_path, folder, embedder="none").duplicates() if not g.contains]
    assert {Path(g.keeper).stem for g in groups} == set(PHOTOS[:5]), [(g.keeper, g.reason) for g in groups]
    assert not any("enlarged" in g.reason for g in groups)


def test_a_blurred_copy_never_wins_the_keeper_even_when_it_is_the_oldest_file(tmp_path) -> None:
    """Blurred (σ 2), same size and format, and older on disk: the last rule, 'oldest file',
    would keep it. Halved, it loses far less detail than its original does."""
    folder = tmp_path / "photos"
    for i, name in enumerate(("coffee", "chelsea", "rocket")):
        save(cv2.GaussianBlur(photo(name), (0, 0), 2.0), folder / f"{name}_blurred.png")
        os.utime(folder / f"{name}_blurred.png", (1_000_000 + i, 1_000_000 + i))
        save(photo(name), folder / f"{name}.png")
    groups = [g for g in _catalog(tmp_path, folder).duplicates() if not g.contains]
    assert {_names(g.members) for g in groups} == {frozenset({n, f"{n}_blurred"}) for n in ("coffee", "chelsea", "rocket")}
    for g in groups:
        assert Path(g.keeper).stem in ("coffee", "chelsea", "rocket"), (g.keeper, g.reason)
        assert "not blurred" in g.reason


@pytest.mark.parametrize("embedder", ["cnn", "none"])
def test_the_original_of_a_mirrored_and_a_turned_copy_wins_the_keeper(tmp_path, embedder) -> None:
    """A mirror and a quarter turn are one step from their original and two from each other;
    similarity cannot tell the original from its mirror (the CNN barely sees a mirror), and
    the copies here are as large as it. Names sort the original last."""
    folder = tmp_path / "photos"
    for name in ("coffee", "chelsea", "rocket"):
        original = photo(name)
        save(original, folder / f"z_{name}.jpg", quality=92)
        save(np.ascontiguousarray(original[:, ::-1]), folder / f"a_{name}_mirrored.jpg", quality=92)
        save(np.ascontiguousarray(np.rot90(original, -1)), folder / f"b_{name}_turned.jpg", quality=92)
    groups = [g for g in _catalog(tmp_path, folder, embedder).duplicates() if not g.contains]
    assert {_names(g.members) for g in groups} == {
        frozenset({f"z_{n}", f"a_{n}_mirrored", f"b_{n}_turned"}) for n in ("coffee", "chelsea", "rocket")}
    for g in groups:
        assert Path(g.keeper).stem.startswith("z_"), (g.keeper, g.reason)
        assert "turned or mirrored" in g.reason, g.reason
