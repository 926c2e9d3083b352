"""A cut-out pasted into another picture, matched by SIFT where ORB finds too little
(`search.cutout`), and found so by `duplicates`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import neardup
from neardup.indexer.colours import colour_layout
from neardup.indexer.features import orb_and_mirror, orb_features
from neardup.search.cutout import cutout_match, object_box, sift_features
from neardup.search.pasted import cropped, pasted_box, pasted_match
from neardup.search.verify import VERIFY_THRESHOLD, homography

from conftest import photo, save
from images import jpeg
from test_trusted_groups import turned_onto
from test_verify import fit384


def _star(w: int, h: int) -> np.ndarray:
    """(10, 2) the corners of a five-pointed star filling a w x h frame but 4 pixels."""
    angles = np.arange(10) * np.pi / 5 - np.pi / 2
    radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.7)[:, None] * (np.array([w, h]) / 2 - 4)
    return (np.array([w, h]) / 2 + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii).astype(np.int32)


def _star_on_white(rgb: np.ndarray) -> np.ndarray:
    """A five-pointed star cut from `rgb`, on a white page: a clip-art stamp."""
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [_star(w, h)], 255)
    out = np.full_like(rgb, 255)
    out[mask > 0] = rgb[mask > 0]
    return out


def _stuck(rgb: np.ndarray, stamp: np.ndarray, *, side: float = 0.35, turn: float = 20.0) -> np.ndarray:
    """`stamp`'s object (what is not white) cut out, outlined in white, turned by `turn`
    degrees and pasted near the top left of `rgb` at `side` of its shorter side; saved as a
    JPEG of quality 70, as a sticker app would."""
    h, w = rgb.shape[:2]
    scale = side * min(h, w) / max(stamp.shape[:2])
    piece = cv2.resize(stamp, (round(stamp.shape[1] * scale), round(stamp.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    pad = 8
    piece = cv2.copyMakeBorder(piece, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    mask = (piece.min(axis=2) < 235).astype(np.uint8) * 255
    outline = cv2.dilate(mask, np.ones((pad + 1, pad + 1), np.uint8))
    layer = np.where(mask[..., None] > 0, piece, 255).astype(np.uint8)
    return jpeg(turned_onto(rgb, layer, outline, (piece.shape[1] / 2, piece.shape[0] / 2), turn, (0.15, 0.2),
                            fill=(255, 255, 255)), 70)


def _region(holder: np.ndarray, copy: np.ndarray) -> np.ndarray:
    """Where `holder` differs from its `copy` (`pasted_box`), cut at twice the decode side, as
    `pasted` cuts it."""
    box = pasted_box(colour_layout(fit384(holder)), colour_layout(fit384(copy)),
                     homography(orb_features(fit384(holder)), orb_features(fit384(copy))))
    assert box is not None
    scale = 768 / max(holder.shape[:2])
    return cropped(cv2.resize(holder, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), box)


def _matched(region: np.ndarray, candidate: np.ndarray) -> int:
    candidate = fit384(candidate)
    return cutout_match(sift_features(region), region.shape, sift_features(candidate), object_box(candidate))


def test_a_cut_out_whose_orb_match_falls_short_is_matched_by_its_gradients() -> None:
    """A star cut from chelsea, turned on the rocket: ORB finds no picture pasted in the region
    where the rocket's copy differs, the stamp included; SIFT's similarity covers the star,
    inside the region. Another stamp (a star cut from coffee) is no match."""
    stamp = _star_on_white(photo("chelsea"))
    region = _region(_stuck(photo("rocket"), stamp), photo("rocket"))
    assert pasted_match(orb_and_mirror(region, side=384), orb_features(fit384(stamp))) is None
    assert _matched(region, stamp) >= VERIFY_THRESHOLD
    assert _matched(region, _star_on_white(photo("coffee"))) == 0


def test_a_banner_two_pictures_share_is_a_part_of_each_not_a_picture_pasted() -> None:
    """The same banner across the top of the astronaut and of coffee: the astronaut's region
    where its bannerless copy differs is the banner, which matches coffee's banner closely,
    but that is a strip of coffee, not most of it nor its centre; the banner alone, on a white
    page, is the picture pasted there."""
    banner = np.full((70, 384, 3), 255, np.uint8)
    banner[:, :, :] = (30, 60, 140)
    for i, word in enumerate(("SUMMER", "SALE", "-40%")):
        cv2.putText(banner, word, (12 + 125 * i, 50), cv2.FONT_HERSHEY_DUPLEX, 1.3, (255, 220, 60), 3, cv2.LINE_AA)
    cv2.circle(banner, (360, 35), 20, (240, 80, 60), -1)

    def bannered(rgb: np.ndarray) -> np.ndarray:
        out = cv2.resize(rgb, (384, round(rgb.shape[0] * 384 / rgb.shape[1])), interpolation=cv2.INTER_AREA)
        out[10 : 10 + banner.shape[0]] = banner
        return out

    region = _region(bannered(photo("astronaut")), fit384(photo("astronaut")))
    sharing = bannered(photo("coffee"))
    plain = cv2.copyMakeBorder(banner, 60, 60, 20, 20, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    assert cutout_match(sift_features(region), region.shape, sift_features(sharing),
                        (0, 0, sharing.shape[1], sharing.shape[0])) == 0
    assert _matched(region, plain) >= VERIFY_THRESHOLD


def test_a_picture_that_holds_the_cut_out_and_more_is_not_the_picture_pasted() -> None:
    """The region holds chelsea's star; a page holding that star and, far from it, a mark of
    its own matches it over most of its keypoints, but mapped into the region the page reaches
    far outside it: the region shows a part of that page, not the picture pasted whole."""
    stamp = _star_on_white(photo("chelsea"))
    region = _region(_stuck(photo("rocket"), stamp), photo("rocket"))
    h, w = stamp.shape[:2]
    page = np.full((h * 2, w * 2, 3), 255, np.uint8)
    page[:h, :w] = stamp
    cv2.circle(page, (2 * w - 30, 2 * h - 30), 12, (200, 40, 40), -1)
    assert _matched(region, stamp) >= VERIFY_THRESHOLD
    assert _matched(region, page) == 0


def test_the_object_of_clip_art_is_what_differs_from_its_plain_surround() -> None:
    stamp = _star_on_white(photo("chelsea"))
    corners = _star(stamp.shape[1], stamp.shape[0])
    expected = (*corners.min(axis=0), *(corners.max(axis=0) + 1))
    assert np.abs(np.subtract(object_box(stamp), expected)).max() <= 2  # within its anti-aliased edge
    assert object_box(photo("coffee")) == (0, 0, photo("coffee").shape[1], photo("coffee").shape[0])


def test_a_photo_with_a_cut_out_sticker_joins_no_group_and_contains_both_pictures(tmp_path) -> None:
    """The rocket with a star cut from chelsea stuck on it, beside the rocket, chelsea's star,
    a copy of each and the astronaut: ORB finds no picture in the sticker's region, so the
    stickered photo joined the rocket's group as a copy with an overlay; compared by SIFT, it
    holds the star, and contains both pictures."""
    folder = tmp_path / "photos"
    stamp = _star_on_white(photo("chelsea"))
    for name, rgb in (("rocket", photo("rocket")), ("star", stamp)):
        save(rgb, folder / f"{name}.png")
        save(jpeg(rgb, 40), folder / f"{name}_q40.png")
    save(_stuck(photo("rocket"), stamp), folder / "stuck.png")
    save(photo("astronaut"), folder / "astronaut.png")
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="cnn")
    cat.index([folder], workers=1)
    found = cat.duplicates(workers=1)
    groups = {frozenset(Path(m).stem for m in g.members) for g in found if not g.contains}
    assert groups == {frozenset({"rocket", "rocket_q40"}), frozenset({"star", "star_q40"})}
    held = {Path(g.keeper).stem: {Path(c).stem.removesuffix("_q40") for c in g.contains} for g in found if g.contains}
    assert held == {"stuck": {"rocket", "star"}}
