"""What reducing an image would lose: little for an enlarged copy, its own finest detail for
an original (real photos), and where it cannot be known."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from neardup.indexer.decode import decode
from neardup.indexer.enlargement import SCALES, Enlargement, enlargement

from conftest import PHOTOS, photo


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


@pytest.mark.parametrize("name", PHOTOS[:4])
@pytest.mark.parametrize("factor", [1.5, 2.0, 3.0])
def test_an_enlarged_copy_loses_far_less_than_its_original_reduced_by_the_same_factor(name, factor) -> None:
    original = _grey(photo(name))
    enlarged = cv2.resize(original, None, fx=factor, fy=factor, interpolation=cv2.INTER_LANCZOS4)
    back = 1 / factor
    assert enlargement(enlarged).loss(back) < 0.4 * enlargement(original).loss(back)


@pytest.mark.parametrize("name", PHOTOS[:4])
def test_an_original_loses_about_what_its_half_size_copy_loses(name) -> None:
    """Why a downscaled copy never accuses its original: reduced by the same factor, both lose
    their finest detail (the copy, sharper per pixel, a little more)."""
    original = _grey(photo(name))
    half = cv2.resize(original, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    assert enlargement(original).loss(0.5) > 0.4 * enlargement(half).loss(0.5)


def test_rgb_and_its_grey_levels_give_the_same_losses() -> None:
    rgb = photo(PHOTOS[0])
    assert enlargement(rgb).losses == pytest.approx(enlargement(_grey(rgb)).losses, abs=0.01)


def test_a_flat_or_tiny_image_has_no_losses() -> None:
    assert enlargement(np.full((200, 300), 128, np.uint8)) is None
    assert enlargement(np.zeros((20, 300), np.uint8)) is None


def test_losses_are_known_only_between_the_measured_scale_and_the_coarsest_reduction() -> None:
    measured = Enlargement(0.5, tuple(np.linspace(0.1, 0.9, len(SCALES))))
    assert measured.loss(0.6) is None  # finer than the half-size decode it was measured on
    assert measured.loss(0.4) == pytest.approx(0.1)  # 0.8 of the decoded image: the first scale
    assert measured.loss(0.5 * SCALES[-1]) == pytest.approx(0.9)
    assert measured.loss(0.01) is None
    assert Enlargement.from_bytes(measured.to_bytes()).losses == pytest.approx(measured.losses)


def _jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=92)
    return out.getvalue()


def test_a_jpeg_decoded_at_reduced_size_is_measured_at_full_size_up_to_six_times_max_side() -> None:
    """A 1,100- or 2,200-pixel JPEG is decoded at half or a quarter size for the features but
    its enlargement is measured on its full-size luma (a 1,024-pixel picture enlarged twice is
    such a file); a 2,600-pixel one as decoded (a quarter)."""
    rgb = photo(PHOTOS[0])
    for side, scale in ((1100, 1.0), (2200, 1.0), (2600, 0.25)):
        f = side / max(rgb.shape[:2])
        big = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
        decoded = decode(_jpeg(big), max_side=384)
        assert max(decoded.pixels.shape[:2]) == 384
        assert decoded.enlargement.scale == pytest.approx(scale, rel=0.01)
    native = _grey(np.asarray(Image.open(io.BytesIO(_jpeg(big))).convert("RGB")))
    assert decoded.enlargement.losses != pytest.approx(enlargement(native).losses, abs=0.01)


def _stretched(grey: np.ndarray, factor: float, side: str) -> np.ndarray:
    fx, fy = (factor, 1.0) if side == "across" else (1.0, factor)
    return cv2.resize(grey, None, fx=fx, fy=fy, interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("name", PHOTOS[:4])
@pytest.mark.parametrize("side", ["across", "down"])
@pytest.mark.parametrize("factor", [1.3, 2.0])
def test_a_stretched_copy_loses_far_less_along_its_stretched_side_only(name, side, factor) -> None:
    """Reduced back along the side it was stretched, a stretched copy loses far less than its
    original reduced by as much; along the other side, and as a whole, it keeps the original's
    detail (which is why the whole-picture losses cannot tell it)."""
    original = _grey(photo(name))
    stretched = enlargement(_stretched(original, factor, side))
    mine = enlargement(original)
    other = "down" if side == "across" else "across"
    back = 1 / factor
    assert stretched.loss(back, side) < 0.35 * mine.loss(back, side)
    assert stretched.loss(back, other) > 0.7 * mine.loss(back, other)
    assert stretched.loss(back) > 0.35 * mine.loss(back)


def test_an_older_record_without_sides_is_read_and_knows_no_side_losses() -> None:
    older = np.array((1.0, *np.linspace(0.1, 0.9, len(SCALES))), "<f4").tobytes()
    record = Enlargement.from_bytes(older)
    assert record.loss(0.5) is not None and record.loss(0.5, "across") is None
    measured = enlargement(_grey(photo(PHOTOS[0])))
    assert Enlargement.from_bytes(measured.to_bytes()).across == pytest.approx(measured.across)
    assert Enlargement.from_bytes(measured.to_bytes()).down == pytest.approx(measured.down)


def test_a_jpeg_stored_turned_a_quarter_reports_its_sides_as_shown() -> None:
    """A camera stores the sensor's rows and says in EXIF how to turn them: the side stretched
    in the picture as shown is the one reported, whichever way the pixels are stored."""
    grey = _grey(photo(PHOTOS[0]))
    shown = _stretched(grey, 1.6, "across")
    stored = np.ascontiguousarray(np.rot90(shown))  # orientation 6 turns it back clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.fromarray(stored).save(out, "JPEG", quality=92, exif=exif)
    decoded = decode(out.getvalue(), max_side=384)
    assert (decoded.width, decoded.height) == (shown.shape[1], shown.shape[0])
    assert decoded.enlargement.scale == 1.0
    assert decoded.enlargement.loss(1 / 1.6, "across") < 0.35 * decoded.enlargement.loss(1 / 1.6, "down")
