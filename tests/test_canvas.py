"""A copy on a blank canvas (search.canvas): the flat cells of a colour layout, what lies beyond
the other image's frame under a known homography, and, through geometric verification of real
photos, which side of a pair shows the other on a canvas, and which shows it beside a second
picture (a composite: no copy)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from neardup.indexer.colours import LAYOUT_SIDE, STORED_BYTES, ColourLayout, colour_layout
from neardup.indexer.decode import fit
from neardup.indexer.features import orb_features
from neardup.search.canvas import MIN_BESIDE, MIN_BEYOND, MIN_BLANK, MIN_SEAM, SEAM_BEYOND, beside, beyond, seam
from neardup.search.verify import VERIFY_THRESHOLD, verify

from conftest import photo
from images import jpeg

SHIFT = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 10.0], [0.0, 0.0, 1.0]])


def _padded(rgb: np.ndarray, fill: int = 0) -> np.ndarray:
    """On a square canvas 1.1 times its longer side, as square-only apps pad."""
    side = round(max(rgb.shape[:2]) * 1.1)
    out = np.full((side, side, 3), fill, np.uint8)
    top, left = (side - rgb.shape[0]) // 2, (side - rgb.shape[1]) // 2
    out[top:top + rgb.shape[0], left:left + rgb.shape[1]] = rgb
    return out


def _rotated(rgb: np.ndarray, degrees: float = 7.0, fill: int = 255) -> np.ndarray:
    """Turned onto an expanded canvas, corners filled white (or `fill`)."""
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (round(w * cos + h * sin), round(w * sin + h * cos))
    matrix[:, 2] += (size[0] - w) / 2, (size[1] - h) / 2
    return cv2.warpAffine(rgb, matrix, size, flags=cv2.INTER_CUBIC, borderValue=(fill, fill, fill))


def _warped(rgb: np.ndarray) -> np.ndarray:
    """As if photographed at an angle: the top corners drawn in, on a canvas of the same size."""
    h, w = rgb.shape[:2]
    source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    target = np.float32([[0.12 * w, 0.1 * h], [0.9 * w, 0.03 * h], [w, h], [0, h]])
    return cv2.warpPerspective(rgb, cv2.getPerspectiveTransform(source, target), (w, h), flags=cv2.INTER_CUBIC)


def _verified(query: np.ndarray, candidate: np.ndarray):
    """`verify` of two images as the duplicates search sees them: decoded to 384 pixels, saved
    as JPEG first (a fill colour is no longer exact)."""
    a, b = (fit(jpeg(rgb, 90), 384) for rgb in (query, candidate))
    return verify(orb_features(a), orb_features(b), colours=(colour_layout(a), colour_layout(b)))


def test_a_layout_marks_the_flat_cells_and_keeps_them_in_storage() -> None:
    rgb = photo("chelsea")
    padded = _padded(rgb)
    layout = colour_layout(padded)
    assert layout.flat is not None and layout.flat.shape == (LAYOUT_SIDE, LAYOUT_SIDE)
    assert layout.flat[0].all() and layout.flat[:, 0].all()  # the padding's rows and columns
    assert colour_layout(rgb).flat.mean() < 0.01  # a photo has hardly a cell of one colour ...
    assert not colour_layout(photo("hubble")).flat.any()  # ... and a star field's dark sky none
    stored = layout.to_bytes()
    assert len(stored) == STORED_BYTES
    again = ColourLayout.from_bytes(layout.width, layout.height, stored)
    assert np.array_equal(again.flat, layout.flat) and np.array_equal(again.cells, layout.cells)
    assert np.array_equal(layout.mirrored().flat, colour_layout(np.ascontiguousarray(padded[:, ::-1])).flat)
    older = ColourLayout.from_bytes(layout.width, layout.height, stored[:LAYOUT_SIDE * LAYOUT_SIDE * 3])
    assert older.flat is None and np.array_equal(older.cells, layout.cells)


def test_beyond_counts_the_cells_outside_the_other_frame_and_which_are_flat() -> None:
    picture = np.random.default_rng(0).integers(0, 256, (100, 100, 3), np.uint8)
    padded = np.zeros((120, 120, 3), np.uint8)
    padded[10:110, 10:110] = picture
    # cells are 3.75 pixels wide; those wholly more than 2 pixels left of x = 10 are the first two
    assert beyond(colour_layout(padded), 100, 100, SHIFT) == (1 - (28 / 32) ** 2, 1.0)
    assert beyond(colour_layout(picture), 120, 120, np.linalg.inv(SHIFT)) == (0.0, 0.0)
    assert beyond(colour_layout(picture), 100, 100, np.eye(3)) == (0.0, 0.0)
    noisy = padded.copy()
    noisy[:10] = np.random.default_rng(1).integers(0, 256, (10, 120, 3))  # picture above: not blank
    share, blank = beyond(colour_layout(noisy), 100, 100, SHIFT)
    assert share == pytest.approx(0.234375) and blank < MIN_BLANK
    through_infinity = np.array([[1.0, 0, 0], [0, 1.0, 0], [-0.02, 0, 1.0]])
    assert beyond(colour_layout(padded), 100, 100, through_infinity) == (0.0, 0.0)


@pytest.mark.parametrize("edit", [_padded, _rotated, _warped])
@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_a_copy_on_a_blank_canvas_is_found_from_either_side(edit, name) -> None:
    original = photo(name)
    copy = edit(original)
    found = _verified(original, copy)
    assert found.count > 0 and found.canvas_side == "candidate", (found.candidate.beyond, found.candidate.blank)
    assert found.candidate.beyond >= MIN_BEYOND and found.query.beyond == 0.0
    assert _verified(copy, original).canvas_side == "query"


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_an_original_beside_its_crop_or_itself_is_on_no_canvas(name) -> None:
    original = photo(name)
    h, w = original.shape[:2]
    crop = original[h // 10: h - h // 10, w // 10: w - w // 10]
    found = _verified(original, crop)
    assert found.count > 0 and found.query.beyond >= MIN_BEYOND  # the original extends beyond the crop ...
    assert found.canvas_side is None  # ... with picture, not canvas
    assert _verified(crop, original).canvas_side is None
    assert _verified(original, jpeg(original, 60)).canvas_side is None


def _beside(left: np.ndarray, right: np.ndarray, gap: int = 12, fill: int = 255) -> np.ndarray:
    """Two pictures side by side at one height with a gap, as collage apps make them."""
    height = min(left.shape[0], right.shape[0])
    left, right = (cv2.resize(p, (round(p.shape[1] * height / p.shape[0]), height), interpolation=cv2.INTER_AREA)
                   for p in (left, right))
    out = np.full((height, left.shape[1] + gap + right.shape[1], 3), fill, np.uint8)
    out[:, :left.shape[1]] = left
    out[:, left.shape[1] + gap:] = right
    return out


def test_seam_is_sharp_where_a_second_picture_begins_and_not_across_a_crop() -> None:
    astronaut, coffee = photo("astronaut"), photo("coffee")
    pair = _beside(coffee, astronaut, fill=0)
    h, w = coffee.shape[:2]
    scale = pair.shape[0] / h  # coffee's frame maps onto the left part of the pair, as high as it
    assert seam(colour_layout(pair), w, h, np.diag([scale, scale, 1.0])) >= MIN_SEAM
    # the frame of coffee's left two thirds inside coffee: the picture goes on across it
    assert seam(colour_layout(coffee), 2 * w // 3, h, np.eye(3)) < MIN_SEAM
    # a frame whose edges all lie on the image's own edges has no seam inside it
    assert seam(colour_layout(coffee), w, h, np.eye(3)) == 0.0
    assert SEAM_BEYOND <= MIN_BESIDE  # verification measures the seam wherever `beside` may hold


# Pictures whose colours differ where they meet: a second picture of the same colours there
# shows no seam in a 32 x 32 layout (chelsea beside coffee: 1.1 to 1.6), and stays a copy.
@pytest.mark.parametrize("fill", [0, 255])
@pytest.mark.parametrize(("name", "other"), [("astronaut", "coffee"), ("hubble", "chelsea"), ("astronaut", "rocket")])
def test_a_picture_beside_another_is_no_copy_of_it(name, other, fill) -> None:
    original = photo(name)
    composite = _beside(original, photo(other), fill=fill)
    found = _verified(composite, original)
    assert found.inliers > 0 and found.query.seam >= MIN_SEAM, (found.query.beyond, found.query.blank, found.query.seam)
    assert found.content_differs and found.canvas_side is None
    assert _verified(original, composite).content_differs


def _cutout() -> np.ndarray:
    """Clip-art as many collections hold it: an object (coffee's cup, cut out) on white."""
    cup = cv2.resize(photo("coffee"), (300, 200), interpolation=cv2.INTER_AREA)
    mask = np.zeros(cup.shape[:2], np.uint8)
    cv2.ellipse(mask, (150, 100), (120, 85), 0, 0, 360, 1, -1)
    out = np.full((280, 380, 3), 255, np.uint8)
    out[40:240, 40:340][mask > 0] = cup[mask > 0]
    return out


def _framed(rgb: np.ndarray) -> np.ndarray:
    """In a coloured frame a sixteenth of its longer side wide, on a margin of white."""
    width = max(rgb.shape[:2]) // 16
    margin = cv2.copyMakeBorder(rgb, width // 2, width // 2, width // 2, width // 2, cv2.BORDER_CONSTANT,
                                value=(255, 255, 255))
    return cv2.copyMakeBorder(margin, width, width, width, width, cv2.BORDER_CONSTANT, value=(40, 90, 20))


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket", "cutout"])
def test_an_original_beside_its_crop_or_on_a_canvas_is_still_a_copy(name) -> None:
    original = _cutout() if name == "cutout" else photo(name)
    h, w = original.shape[:2]
    crop = original[h // 10: h - h // 10, w // 10: w - w // 10]
    for first, second in ((original, original[:, : 2 * w // 3]), (original, crop), (original, _padded(original)),
                          (original, _beside(original, np.full_like(original, 255))), (original, _framed(original)),
                          (crop, _framed(original))):  # beyond the crop: picture, then a frame too thin for a seam
        for found in (_verified(first, second), _verified(second, first)):
            q, c = found.query, found.candidate
            assert found.inliers >= VERIFY_THRESHOLD and max(q.beyond, c.beyond) >= MIN_BEYOND
            assert not (beside(q.beyond, q.blank, c.beyond, q.seam) or beside(c.beyond, c.blank, q.beyond, c.seam)), (
                q.seam, c.seam)


def test_a_crop_against_a_copy_turned_a_few_degrees_is_still_a_copy() -> None:
    """Beyond the crop's frame the turned copy shows more picture, and its edge may cut through
    the astronaut's sharp colours; but the frame runs aslant there, which pictures put side by
    side or stacked never do (`canvas._MAX_SEAM_TILT`)."""
    original = photo("astronaut")
    h, w = original.shape[:2]
    turned = _rotated(original, 5.0, fill=0)
    for crop in (original[h // 5: h - h // 5, w // 5: w - w // 5], original[: 2 * h // 3, w // 3:],
                 original[h // 4: h - h // 4, w // 4: w - w // 4]):
        for found in (_verified(crop, turned), _verified(turned, crop)):
            q, c = found.query, found.candidate
            assert found.inliers >= VERIFY_THRESHOLD and max(q.beyond, c.beyond) >= MIN_BESIDE
            assert not (beside(q.beyond, q.blank, c.beyond, q.seam) or beside(c.beyond, c.blank, q.beyond, c.seam)), (
                q.seam, c.seam)
