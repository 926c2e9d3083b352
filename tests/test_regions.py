"""Query variants: the content box finds the picture inside a screenshot or a frame."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageOps, Image

from neardup.indexer.regions import content_box, query_variants

from conftest import PHOTOS, photo
from test_verify import screenshot


@pytest.mark.parametrize("name", PHOTOS)
def test_a_plain_photo_has_no_content_box(name: str) -> None:
    assert content_box(photo(name)) is None
    assert len(query_variants(photo(name))) == 2  # as given and mirrored


def test_the_box_of_a_screenshot_is_most_of_the_pasted_picture_and_nothing_else() -> None:
    shot = screenshot(photo("chelsea"), fill=0.3)  # pasted at (200, 60), aspect kept
    box = content_box(shot)
    assert box is not None
    h, w = photo("chelsea").shape[:2]
    scale = (0.3 * 1024 * 720 / (h * w)) ** 0.5
    picture_h, picture_w = round(h * scale), round(w * scale)
    assert box.shape[0] <= picture_h + 4 and box.shape[1] <= picture_w + 4  # no window chrome
    assert box.shape[0] * box.shape[1] >= 0.6 * picture_h * picture_w  # textured parts of it
    variants = query_variants(shot)
    assert len(variants) == 3 and np.array_equal(variants[2], box)
    assert np.array_equal(variants[1], shot[:, ::-1])


def test_the_box_of_a_framed_photo_is_the_photo() -> None:
    framed = np.asarray(ImageOps.expand(Image.fromarray(photo("coffee")), border=40, fill=(20, 120, 200)))
    box = content_box(framed)
    assert box is not None
    assert abs(box.shape[0] - photo("coffee").shape[0]) <= 12 and abs(box.shape[1] - photo("coffee").shape[1]) <= 12
