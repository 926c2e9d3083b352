"""An overlay pasted on a copy (search.overlay): which side of a verified pair holds it, through
geometric verification of real photos, and the edge measure on layouts made by hand."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from neardup.indexer.colours import colour_layout
from neardup.indexer.decode import fit
from neardup.indexer.features import orb_features
from neardup.search.overlay import has_overlay, standouts
from neardup.search.verify import verify

from conftest import photo
from images import jpeg
from test_trusted_groups import _caption


def _stickered(rgb: np.ndarray) -> np.ndarray:
    """A broadcaster's badge in the top-right corner: a rounded red box with a white word."""
    out = rgb.copy()
    h, w = out.shape[:2]
    x0, y0, x1, y1 = int(w * 0.72), int(h * 0.05), int(w * 0.95), int(h * 0.2)
    cv2.rectangle(out, (x0, y0), (x1, y1), (200, 30, 40), -1)
    cv2.putText(out, "NEWS", (x0 + (x1 - x0) // 8, y1 - (y1 - y0) // 4), cv2.FONT_HERSHEY_DUPLEX,
                (y1 - y0) / 40, (255, 255, 255), max(1, (y1 - y0) // 15), cv2.LINE_AA)
    return out


def _brighter(rgb: np.ndarray) -> np.ndarray:
    return np.clip(255.0 * (rgb / 255.0) ** 0.7, 0, 255).astype(np.uint8)


def _verified(query: np.ndarray, candidate: np.ndarray):
    """`verify` of two images as the duplicates search sees them (saved as JPEG, decoded to 384)."""
    a, b = (fit(jpeg(rgb, 90), 384) for rgb in (query, candidate))
    return verify(orb_features(a), orb_features(b), colours=(colour_layout(a), colour_layout(b)))


@pytest.mark.parametrize("edit", ["captioned", "stickered"])
@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket", "astronaut"])
def test_the_copy_holds_the_overlay_from_either_side(edit, name) -> None:
    original = photo(name)
    copy = _caption(original, "WHEN IT WORKS", band=False) if edit == "captioned" else _stickered(original)
    found = _verified(original, copy)
    assert found.count > 0 and found.overlay_side == "candidate", (found.query.standout, found.candidate.standout)
    assert _verified(copy, original).overlay_side == "query"


@pytest.mark.parametrize("edit", [lambda rgb: jpeg(rgb, 40), _brighter,
                                  lambda rgb: cv2.resize(rgb, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)])
@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket", "astronaut"])
def test_an_original_never_holds_an_overlay_beside_a_copy_changed_all_over(edit, name) -> None:
    """Re-encoded, brightened or reduced: no part of the picture is new. (A brightened copy
    whose sky turns white may differ in that part more than one tone curve explains, and be
    taken for the overlaid one: still the copy.)"""
    original = photo(name)
    found = _verified(original, np.ascontiguousarray(edit(original)))
    assert found.count > 0 and found.overlay_side != "query", (found.query.standout, found.candidate.standout)
    assert _verified(np.ascontiguousarray(edit(original)), original).overlay_side != "candidate"


@pytest.mark.parametrize("name", ["rocket", "hubble"])
def test_a_darker_flatter_copy_leaves_its_original_no_overlay(name) -> None:
    """Brightness and contrast both cut to 0.6: a night photo's bright parts move further than
    one tone curve explains, a region that stands out in the original as an overlay would. But
    every keypoint of the picture is still matched there: no part of it is new."""
    original = photo(name)
    darker = ImageEnhance.Brightness(Image.fromarray(original)).enhance(0.6)
    copy = np.asarray(ImageEnhance.Contrast(darker).enhance(0.6))
    found = _verified(original, copy)
    assert found.count > 0 and found.overlay_side is None, (found.query.standout, found.candidate.standout)
    assert _verified(copy, original).overlay_side is None


def test_standouts_need_a_region_that_differs_in_part_of_the_picture() -> None:
    picture = photo("chelsea")
    same = np.eye(3)
    assert standouts(colour_layout(picture), colour_layout(picture), same) == (-1.0, -1.0)  # nothing differs
    inverted = 255 - picture
    assert standouts(colour_layout(picture), colour_layout(inverted), same) == (-1.0, -1.0)  # everything does
    pasted = picture.copy()
    pasted[30:90, 300:420] = (255, 0, 255)  # a magenta block over part of it
    theirs, mine = standouts(colour_layout(picture), colour_layout(pasted), same)
    assert mine > 0 and theirs >= 0 and has_overlay(mine, theirs) and not has_overlay(theirs, mine)
    assert standouts(colour_layout(pasted), colour_layout(picture), same) == pytest.approx((mine, theirs), abs=1e-3)
