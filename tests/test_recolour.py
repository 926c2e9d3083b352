"""Colour layouts (indexer.colours) and the recolour rule (search.recolour), on real photos: an
object recoloured on the same background differs in one region; a copy under a colour filter,
a re-encoded copy, a crop and a change at the frame's edge do not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from neardup.indexer.colours import LAYOUT_SIDE, ColourLayout, colour_layout
from neardup.search.recolour import recoloured

from conftest import photo
from images import jpeg

IDENTITY = np.eye(3)
TINTS = {"purple": (150, 40, 170), "teal": (20, 160, 150), "orange": (240, 140, 20)}


def drawing(tint: str) -> np.ndarray:
    """A template: a darkened, blurred photo, with one object (a real photo's shading,
    colourised as clip-art is: black shadows, white highlights, `tint` between) over a fifth
    of the frame in the middle."""
    back = cv2.GaussianBlur(photo("astronaut"), (0, 0), 2.0)
    back = cv2.resize(back, (384, 288), interpolation=cv2.INTER_AREA)
    out = (back * 0.6).astype(np.uint8)
    shade = cv2.cvtColor(cv2.resize(photo("coffee"), (200, 150), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    mask = np.zeros((150, 200), np.uint8)
    cv2.ellipse(mask, (100, 75), (96, 72), 0, 0, 360, 1, -1)
    tinted = np.asarray(ImageOps.colorize(PILImage.fromarray(shade), black=(10, 10, 10), white=(255, 255, 255),
                                          mid=TINTS[tint]))
    region = out[69:219, 92:292]
    region[mask.astype(bool)] = tinted[mask.astype(bool)]
    return out


def gamma(rgb: np.ndarray, g: float) -> np.ndarray:
    return (255.0 * (rgb / 255.0) ** g).astype(np.uint8)


def hue_shifted(rgb: np.ndarray, degrees: int) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(int) + degrees // 2) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def test_a_layout_is_the_cell_means_and_survives_storage() -> None:
    rgb = photo("chelsea")
    layout = colour_layout(rgb)
    assert (layout.width, layout.height) == (rgb.shape[1], rgb.shape[0])
    assert layout.cells.shape == (LAYOUT_SIDE, LAYOUT_SIDE, 3)
    h, w = rgb.shape[0] // LAYOUT_SIDE, rgb.shape[1] // LAYOUT_SIDE  # chelsea is 451 x 300: the top-left cell
    assert np.abs(layout.cells[0, 0].astype(float) - rgb[:h, :w].reshape(-1, 3).mean(axis=0)).max() <= 3
    again = ColourLayout.from_bytes(layout.width, layout.height, layout.to_bytes())
    assert np.array_equal(again.cells, layout.cells)
    assert np.array_equal(layout.mirrored().cells, colour_layout(np.ascontiguousarray(rgb[:, ::-1])).cells)


def test_the_same_drawing_in_another_colour_is_recoloured() -> None:
    assert recoloured(colour_layout(drawing("purple")), colour_layout(drawing("teal")), IDENTITY)
    assert recoloured(colour_layout(drawing("teal")), colour_layout(jpeg(drawing("purple"), 50)), IDENTITY)
    assert recoloured(colour_layout(drawing("purple")), colour_layout(drawing("orange")), IDENTITY)
    assert recoloured(colour_layout(drawing("orange")), colour_layout(jpeg(drawing("purple"), 50)), IDENTITY)


FILTERS = {"same": lambda x: x, "jpeg40": lambda x: jpeg(x, 40), "gamma0.6": lambda x: gamma(x, 0.6),
           "gamma1.6": lambda x: gamma(x, 1.6), "grey": grey, "blur": lambda x: cv2.GaussianBlur(x, (0, 0), 2.0),
           "hue90": lambda x: hue_shifted(x, 90), "hue180": lambda x: hue_shifted(x, 180)}
# A hue shift of the drawing is left out: where one object is the only colourful part of a
# picture, shifting every hue is recolouring that object, to any rule that reads colours.
CASES = [(name, f) for name in ("drawing", "chelsea", "coffee", "rocket") for f in FILTERS
         if not (name == "drawing" and f.startswith("hue"))]


@pytest.mark.parametrize(("name", "copy"), CASES)
def test_a_copy_under_a_colour_filter_is_not_recoloured(name, copy) -> None:
    original = drawing("purple") if name == "drawing" else photo(name)
    assert not recoloured(colour_layout(original), colour_layout(FILTERS[copy](original)), IDENTITY)


def test_a_crop_is_aligned_through_its_homography() -> None:
    """The candidate is the right 70 % of the query, scaled by 1.5: cells compare through the
    homography, so the crop of the same drawing agrees and that of another colour does not."""
    def crop(rgb: np.ndarray) -> np.ndarray:
        part = rgb[:, 115:]
        size = (round(part.shape[1] * 1.5), round(part.shape[0] * 1.5))
        return cv2.resize(part, size, interpolation=cv2.INTER_LINEAR)

    to_crop = np.array([[1.5, 0, -115 * 1.5], [0, 1.5, 0], [0, 0, 1]])
    purple = colour_layout(drawing("purple"))
    assert not recoloured(purple, colour_layout(crop(drawing("purple"))), to_crop)
    assert recoloured(purple, colour_layout(crop(drawing("teal"))), to_crop)


def test_a_band_at_the_frame_s_edge_is_not_a_recolour() -> None:
    """A banner or frame added to a copy lies at the edge, where no region counts."""
    rgb = photo("rocket")
    banner = rgb.copy()
    banner[: rgb.shape[0] // 9] = (200, 30, 30)
    assert not recoloured(colour_layout(rgb), colour_layout(banner), IDENTITY)
