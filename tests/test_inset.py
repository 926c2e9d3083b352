"""A picture inset into another (`search.inset`): found in the image holding it, through real
verification of real photos, and not in copies carrying a caption, a banner, a logo or a date
stamp, nor in a re-encoded copy; two images holding different pictures in one frame differ."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from neardup.indexer.colours import colour_layout
from neardup.indexer.decode import fit
from neardup.indexer.features import orb_features
from neardup.search.verify import VERIFY_THRESHOLD, Verification, verify

from conftest import photo
from images import jpeg, meme


def _verified(query: np.ndarray, candidate: np.ndarray) -> Verification:
    colours = (colour_layout(query), colour_layout(candidate))
    found = verify(orb_features(query), orb_features(candidate), colours=colours)
    assert found.count >= VERIFY_THRESHOLD, "the pair should align on its content"
    return found


def inset(rgb: np.ndarray, picture: np.ndarray, *, corner: tuple[int, int] = (1, 0), width: float = 0.44) -> np.ndarray:
    """`picture` framed in white, `width` of `rgb`'s width, in one corner (x, y: 0 left/top,
    1 right/bottom), 3 % from the edges: a picture-in-picture."""
    h, w = rgb.shape[:2]
    small = cv2.resize(picture, (round(w * width), round(picture.shape[0] * w * width / picture.shape[1])),
                       interpolation=cv2.INTER_AREA)[: round(h * 0.6)]
    framed = cv2.copyMakeBorder(small, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    margin = round(w * 0.03)
    x = margin if corner[0] == 0 else w - framed.shape[1] - margin
    y = margin if corner[1] == 0 else h - framed.shape[0] - margin
    out = rgb.copy()
    out[y : y + framed.shape[0], x : x + framed.shape[1]] = framed
    return out


@pytest.mark.parametrize(("name", "other", "corner", "width"), [
    ("chelsea", "coffee", (1, 0), 0.44), ("chelsea", "coffee", (0, 1), 0.44), ("coffee", "hubble", (1, 0), 0.44),
    ("coffee", "chelsea", (1, 1), 0.44),
    # the tone curve fitted from one frame takes part of the inset for the background there,
    # leaving the block half filled in that frame
    ("hubble", "astronaut", (1, 1), 0.44), ("hubble", "coffee", (0, 0), 0.5)])
def test_a_picture_inset_in_a_corner_is_found_in_the_image_holding_it(name, other, corner, width) -> None:
    rgb = fit(photo(name), 384)
    pip = inset(rgb, fit(photo(other), 384), corner=corner, width=width)
    found = _verified(pip, rgb)
    assert found.query.inset and not found.candidate.inset
    found = _verified(rgb, pip)
    assert found.candidate.inset and not found.query.inset


def _banner(rgb: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[: rgb.shape[0] // 5] = (200, 30, 30)
    cv2.putText(out, "SPECIAL OFFER", (10, rgb.shape[0] // 8), cv2.FONT_HERSHEY_DUPLEX, 1.0, (255, 255, 255), 2)
    return out


def _logo(rgb: np.ndarray) -> np.ndarray:
    """A solid logo a fifth of the width in a corner: the largest overlay a copy usually carries."""
    out = rgb.copy()
    h, w = out.shape[:2]
    side = w // 5
    out[h - side - 8 : h - 8, w - side - 8 : w - 8] = (20, 90, 200)
    cv2.putText(out, "TV", (w - side, h - side // 2), cv2.FONT_HERSHEY_DUPLEX, 1.2, (255, 255, 255), 3)
    return out


def _date_stamp(rgb: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    h, w = out.shape[:2]
    cv2.putText(out, "2019 07 14", (w - 170, h - 14), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 140, 0), 2, cv2.LINE_AA)
    return out


@pytest.mark.parametrize("name", ["chelsea", "rocket", "coffee"])
@pytest.mark.parametrize("copy", ["banner", "caption", "logo", "date stamp", "jpeg"])
def test_a_copy_with_an_overlay_holds_no_inset(name, copy) -> None:
    rgb = fit(photo(name), 384)
    edited = {"banner": _banner, "caption": lambda x: meme(x, 1.6), "logo": _logo, "date stamp": _date_stamp,
              "jpeg": lambda x: jpeg(x, 30)}[copy](rgb)
    found = _verified(edited, rgb)
    assert not found.query.inset and not found.candidate.inset
    assert not found.block


@pytest.mark.parametrize(("name", "first", "second", "corner"), [("chelsea", "rocket", "coffee", (1, 0)),
                                                                 ("chelsea", "rocket", "coffee", (0, 1)),
                                                                 ("astronaut", "hubble", "coffee", (1, 0))])
def test_one_frame_holding_two_pictures_differs_in_a_block(name, first, second, corner) -> None:
    """Each image holds its own picture in the same corner of one background: the block's
    edge stands out in both, so neither holds an inset the other lacks, yet they differ
    there, and the pair is no copy (their shared background verifies)."""
    rgb = fit(photo(name), 384)
    one, other = (inset(rgb, fit(photo(picture), 384), corner=corner) for picture in (first, second))
    found = _verified(one, other)
    assert found.block and found.content_differs
    assert not found.query.inset and not found.candidate.inset
