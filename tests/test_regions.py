"""Query variants: the content box finds the picture inside a screenshot or a frame."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from neardup.indexer.decode import fit
from neardup.indexer import regions
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


def test_the_thin_frame_of_a_thumbnail_is_found_at_the_decode_side() -> None:
    """A 5-pixel frame around a 128-pixel thumbnail: at its own size the texture window and
    the closing swallow the frame; enlarged to the decode side they are a fraction of it. The
    box is cropped from the thumbnail's own pixels."""
    thumb = cv2.resize(photo("coffee"), (128, 85), interpolation=cv2.INTER_AREA)
    framed = cv2.copyMakeBorder(thumb, 5, 5, 5, 5, cv2.BORDER_CONSTANT, value=(40, 220, 200))
    assert content_box(framed) is None
    box = content_box(framed, 384)
    assert box is not None and abs(box.shape[0] - 85) <= 3 and abs(box.shape[1] - 128) <= 3
    assert len(query_variants(framed, 384)) == 3
    assert content_box(thumb, 384) is None and content_box(photo("coffee"), 384) is None


def test_a_frame_is_the_background_even_where_the_picture_inside_outnumbers_it() -> None:
    """A green border around a photo on a white page: white is the most common colour, so
    the frame and the photo both stood out from it and made one box of the whole image."""
    page = np.full((520, 700, 3), 255, np.uint8)
    page[110:410, 125:575] = cv2.resize(photo("coffee"), (450, 300), interpolation=cv2.INTER_AREA)
    framed = np.asarray(ImageOps.expand(Image.fromarray(page), border=36, fill=(40, 200, 60)))
    box = content_box(framed)
    assert box is not None
    assert abs(box.shape[0] - page.shape[0]) <= 12 and abs(box.shape[1] - page.shape[1]) <= 12


def _viewer(rgb: np.ndarray, *, dark: bool) -> np.ndarray:
    """``rgb`` at 100 % in an image viewer a program drew on one flat theme colour: a title
    bar, a toolbar, a sidebar of file names and a status line around the picture."""
    theme = (36, 37, 41) if dark else (245, 245, 247)
    ink = (210, 210, 210) if dark else (60, 60, 60)
    height, width = rgb.shape[:2]
    sidebar, top, bottom, pad = 190, 70, 26, 16
    window = Image.new("RGB", (width + sidebar + 2 * pad, height + top + bottom + 2 * pad), theme)
    draw = ImageDraw.Draw(window)
    draw.rectangle((0, 0, window.width, 34), fill=(90, 70, 160))
    draw.rectangle((0, 34, window.width, top), fill=tuple(v - 18 for v in theme))
    for row in range((window.height - top - bottom) // 40):
        draw.text((14, top + 20 + 40 * row), f"photo_{row:03d}.jpg", fill=ink)
    draw.text((sidebar + pad, window.height - bottom + 6), f"{width} x {height}  100 %", fill=ink)
    window.paste(Image.fromarray(rgb), (sidebar + pad, top + pad))
    return np.asarray(window)


def test_a_night_photo_in_a_dark_viewer_is_found_on_the_windows_flat_colour() -> None:
    """The rocket's night sky is as dark as the dark theme around it, and mostly flat: the
    colour mask cannot tell it from the window, and the closing joins it to the file names
    beside it. What was drawn on the window's one exact colour can."""
    picture = cv2.resize(photo("rocket"), (256, 171), interpolation=cv2.INTER_AREA)
    shot = fit(_viewer(picture, dark=True), 384)
    scale = shot.shape[1] / (256 + 190 + 2 * 16)
    box = content_box(shot, 384)
    assert box is not None
    assert abs(box.shape[0] - 171 * scale) <= 3 and abs(box.shape[1] - 256 * scale) <= 3
    assert content_box(fit(_viewer(picture, dark=False), 384), 384) is not None  # the masks find it there


@pytest.mark.parametrize("name", PHOTOS)
def test_no_bar_or_gradient_on_flat_chrome_is_a_picture_nor_is_a_photo(name: str) -> None:
    """On a page of one flat colour, a toolbar of buttons across the whole page and a gradient
    panel (a wallpaper's), too close to the page's colour and too smooth for the masks, are
    what was drawn on it, but no picture; nor is anything in a photo at the decode side."""
    toolbar = Image.new("RGB", (400, 300), (245, 245, 247))
    draw = ImageDraw.Draw(toolbar)
    draw.rectangle((0, 0, 400, 60), fill=(227, 227, 229))
    for i, colour in enumerate(((230, 80, 80), (80, 160, 90), (70, 110, 220), (240, 180, 40), (150, 90, 200))):
        draw.rounded_rectangle((10 + 56 * i, 12, 52 + 56 * i, 48), radius=6, fill=colour)
    for row in range(5):
        draw.text((14, 90 + 40 * row), f"photo_{row:03d}.jpg", fill=(60, 60, 60))
    panel = np.full((300, 400, 3), 245, np.uint8)
    panel[:40] = 227  # a plain bar: the page has no uniform frame
    panel[120:270, 40:220] = np.linspace(226, 244, 180).astype(np.uint8)[None, :, None]
    for page in (np.asarray(toolbar), panel):
        assert content_box(page, 384) is None
    assert content_box(fit(photo(name), 384), 384) is None


def _every_region_box(pixels: np.ndarray) -> np.ndarray | None:
    """Oracle: the detector as first written, labelling every region of both masks (no
    shortcut), and where they hold no box on an image with no uniform frame, `_on_chrome`'s;
    `content_box` must give exactly its answer."""
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(gray, (5, 5))
    textured = (cv2.blur(gray * gray, (5, 5)) - mean * mean > 16).astype(np.uint8)
    ring = np.concatenate([pixels[:2].reshape(-1, 3), pixels[-2:].reshape(-1, 3),
                           pixels[:, :2].reshape(-1, 3), pixels[:, -2:].reshape(-1, 3)]).astype(np.int16)
    frame = np.median(ring, axis=0)
    uniform = (np.abs(ring - frame).max(axis=1) <= 12).mean() >= 0.98
    if uniform:  # a uniform frame: its colour
        background = frame
    else:  # the most common colour
        bins = (pixels >> 4).astype(np.uint16)
        code = (bins[..., 0] << 8) | (bins[..., 1] << 4) | bins[..., 2]
        common = code == np.bincount(code.ravel(), minlength=4096).argmax()
        background = np.round(cv2.mean(pixels, mask=common.view(np.uint8))[:3]).astype(np.int16)
    far = (np.abs(pixels.astype(np.int16) - background).max(axis=2) > 24).astype(np.uint8)
    standing_out = cv2.morphologyEx(textured | far, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    height, width = gray.shape
    best = None
    for mask in (standing_out, far):
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((15, 15), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        for x, y, w, h, area in stats[1:count]:
            if (area >= 0.04 * height * width and area >= 0.9 * w * h and w >= 0.15 * width
                    and h >= 0.15 * height and (best is None or area > best[4])):
                best = (x, y, w, h, area)
    if best is None or best[2] * best[3] > 0.9 * height * width:
        best = None if uniform else regions._on_chrome(pixels)  # no shortcut there to check
        return None if best is None else pixels[best[1] : best[1] + best[3], best[0] : best[0] + best[2]]
    x, y, w, h, _ = best
    return pixels[y : y + h, x : x + w]


@functools.cache
def _region_cases() -> list[np.ndarray]:
    """Photos, screenshots and frames of them, two pictures side by side, flat and noise images."""
    rng = np.random.default_rng(3)
    cases = []
    for name in PHOTOS:
        rgb = fit(photo(name), 384)
        cases += [rgb, fit(screenshot(rgb, fill=0.3), 384), fit(screenshot(rgb, fill=0.7), 384),
                  np.asarray(ImageOps.expand(Image.fromarray(rgb), border=30, fill=(20, 120, 200))),
                  np.ascontiguousarray(rgb[::2, ::-1])]
    halves = np.full((200, 400, 3), 240, np.uint8)
    halves[20:180, 10:190] = cv2.resize(photo("coffee"), (180, 160), interpolation=cv2.INTER_AREA)
    halves[20:180, 210:390] = cv2.resize(photo("chelsea"), (180, 160), interpolation=cv2.INTER_AREA)
    cases += [halves, np.full((100, 150, 3), 90, np.uint8), rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)]
    for _ in range(_COLLAGES):  # one to three photo crops pasted at random on a flat canvas
        canvas = np.full((int(rng.integers(150, 384)), int(rng.integers(150, 384)), 3), rng.integers(0, 256, 3), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            h, w = (int(rng.integers(20, side)) for side in canvas.shape[:2])
            y, x = int(rng.integers(0, canvas.shape[0] - h)), int(rng.integers(0, canvas.shape[1] - w))
            canvas[y : y + h, x : x + w] = cv2.resize(photo(PHOTOS[int(rng.integers(len(PHOTOS)))]), (w, h))
        cases.append(canvas)
    return cases


_COLLAGES = 40


@pytest.mark.parametrize("case", range(len(PHOTOS) * 5 + 3 + _COLLAGES))
def test_content_box_equals_labelling_every_region(case: int) -> None:
    pixels = _region_cases()[case]
    found, expected = content_box(pixels), _every_region_box(pixels)
    assert (found is None) == (expected is None)
    if expected is not None:
        assert np.array_equal(found, expected)
