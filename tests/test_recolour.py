"""Colour layouts (indexer.colours) and the recolour rule (search.recolour), through geometric
verification of real photos: an object recoloured on the same background differs in one
region, and so does a picture pasted in the middle; thin strokes recoloured differ in their
keypoints' own colours; a copy under a colour filter, a re-encoded copy, a crop and a change
at the frame's edge do not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from neardup.indexer.colours import LAYOUT_SIDE, ColourLayout, colour_layout
from neardup.indexer.decode import fit
from neardup.indexer.features import LocalFeatures, orb_features
from neardup.search.recolour import _TONE_BINS, shifted_hues, sorted_quantiles, tone_mapped
from neardup.search.verify import _match, verify

from conftest import photo
from images import jpeg

TINTS = {"purple": (150, 40, 170), "teal": (20, 160, 150), "orange": (240, 140, 20), "yellow": (235, 205, 20),
         "red": (215, 30, 40)}  # CIELAB hues: red 33, orange 66, yellow 94 degrees


def drawing(tint: str, *, grey_backdrop: bool = False) -> np.ndarray:
    """A template: a darkened, blurred photo (in grey with `grey_backdrop`), with one object (a
    real photo's shading, colourised as clip-art is: black shadows, white highlights, `tint`
    between) over a fifth of the frame in the middle."""
    back = cv2.GaussianBlur(photo("astronaut"), (0, 0), 2.0)
    back = cv2.resize(grey(back) if grey_backdrop else back, (384, 288), interpolation=cv2.INTER_AREA)
    out = (back * 0.6).astype(np.uint8)
    shade = cv2.cvtColor(cv2.resize(photo("coffee"), (200, 150), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    mask = np.zeros((150, 200), np.uint8)
    cv2.ellipse(mask, (100, 75), (96, 72), 0, 0, 360, 1, -1)
    tinted = np.asarray(ImageOps.colorize(PILImage.fromarray(shade), black=(10, 10, 10), white=(255, 255, 255),
                                          mid=TINTS[tint]))
    region = out[69:219, 92:292]
    region[mask.astype(bool)] = tinted[mask.astype(bool)]
    return out


def flagged(query: np.ndarray, candidate: np.ndarray) -> bool:
    """Whether verifying `candidate` against `query` finds them aligned and recoloured."""
    colours = (colour_layout(query), colour_layout(candidate))
    found = verify(orb_features(query), orb_features(candidate), colours=colours)
    assert found.inliers >= 16, "the pair should align"
    return found.recoloured


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
    assert flagged(drawing("purple"), drawing("teal"))
    assert flagged(drawing("teal"), jpeg(drawing("purple"), 50))
    assert flagged(drawing("purple"), drawing("orange"))
    assert flagged(drawing("orange"), jpeg(drawing("purple"), 50))


FILTERS = {"same": lambda x: x, "jpeg40": lambda x: jpeg(x, 40), "jpeg15": lambda x: jpeg(x, 15),
           "gamma0.6": lambda x: gamma(x, 0.6), "gamma1.6": lambda x: gamma(x, 1.6), "grey": grey,
           "blur": lambda x: cv2.GaussianBlur(x, (0, 0), 2.0), "hue30": lambda x: hue_shifted(x, 30),
           "hue90": lambda x: hue_shifted(x, 90), "hue180": lambda x: hue_shifted(x, 180)}
# A hue shift of the drawing is left out: where one object is the only colourful part of a
# picture, shifting every hue is recolouring that object, to any rule that reads colours.
CASES = [(name, f) for name in ("drawing", "chelsea", "coffee", "rocket") for f in FILTERS
         if not (name == "drawing" and f.startswith("hue"))]


@pytest.mark.parametrize(("name", "copy"), CASES)
def test_a_copy_under_a_colour_filter_is_not_recoloured(name, copy) -> None:
    original = drawing("purple") if name == "drawing" else photo(name)
    assert not flagged(original, FILTERS[copy](original))


def test_a_crop_is_aligned_through_its_homography() -> None:
    """The candidate is the right 70 % of the drawing, scaled by 1.5: cells compare through the
    homography verification finds, so the crop of the same drawing agrees and that of another
    colour does not."""
    def crop(rgb: np.ndarray) -> np.ndarray:
        part = rgb[:, 115:]
        size = (round(part.shape[1] * 1.5), round(part.shape[0] * 1.5))
        return fit(cv2.resize(part, size, interpolation=cv2.INTER_LINEAR), 384)

    assert not flagged(drawing("purple"), crop(drawing("purple")))
    assert flagged(drawing("purple"), crop(drawing("teal")))


def test_a_band_at_the_frame_s_edge_is_not_a_recolour() -> None:
    """A banner or frame added to a copy lies at the edge, where no region counts."""
    rgb = fit(photo("rocket"), 384)
    banner = rgb.copy()
    banner[: rgb.shape[0] // 9] = (200, 30, 30)
    assert not flagged(rgb, banner)


def lower_third(rgb: np.ndarray) -> np.ndarray:
    """A TV channel's lower third over the picture: a coloured bar with a red "LIVE" tab and a
    headline, a dark ticker under it, across the full width, just above the bottom edge."""
    out = rgb.copy()
    h, w = out.shape[:2]
    bar, tick = round(w * 0.085), round(w * 0.045)
    top = h - round(w * 0.03) - bar - tick
    out[top : top + bar] = (30, 60, 160)
    out[top : top + bar, : round(w * 0.22)] = (200, 16, 32)
    out[top + bar : top + bar + tick] = (16, 24, 64)
    for text, x, y, scale, thick in (("LIVE", round(w * 0.04), top + bar * 2 // 3, bar / 40, 2),
                                     ("MARKETS RALLY AFTER THE NEWS", round(w * 0.25), top + bar * 2 // 3, bar / 50, 2),
                                     ("weather . sport . traffic", 8, top + bar + tick * 3 // 4, tick / 45, 1)):
        cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (240, 240, 240), thick, cv2.LINE_AA)
    return out


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_a_lower_third_added_to_a_copy_is_not_a_recolour(name) -> None:
    """The bar is deeper than the ring at the frame's edge, so its inner part is a region that
    differs strongly; but it spans the picture's width from that edge, as banners and caption
    bars do, and no recoloured object or pasted picture does."""
    rgb = fit(photo(name), 384)
    assert not flagged(rgb, lower_third(rgb))


@pytest.mark.parametrize("name", ["chelsea", "coffee", "astronaut"])
def test_a_picture_pasted_in_the_middle_is_a_region_that_differs(name) -> None:
    """Another picture pasted over a photo's middle (a third of its width) is what the rule
    looks for as much as a recolour: a composite's pasted part is flagged, and so is a copy
    carrying a logo that large. Requiring the region's keypoints to match as well (a recolour
    keeps its shading) spares such copies but lets composites and letter variants through;
    docs/BENCHMARKS.md has both."""
    rgb = fit(photo(name), 384)
    h, w = rgb.shape[:2]
    logo = cv2.resize(fit(photo("hubble"), 384), (w // 3, h // 3), interpolation=cv2.INTER_AREA)
    pasted = rgb.copy()
    pasted[h // 3 : h // 3 + logo.shape[0], w // 3 : w // 3 + logo.shape[1]] = logo
    assert flagged(rgb, pasted)


def test_a_grey_copy_of_a_picture_whose_one_colourful_part_is_an_object_is_no_recolour() -> None:
    """Greyed, the object alone loses its colour, as a recolour changes it, but keeps every
    keypoint of its shading; another colour of it on the same backdrop is still a recolour."""
    picture = drawing("purple", grey_backdrop=True)
    assert not flagged(picture, grey(picture))
    assert not flagged(grey(picture), jpeg(picture, 60))
    assert flagged(picture, drawing("teal", grey_backdrop=True))


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_a_colour_picture_pasted_on_a_grey_photo_still_differs(name) -> None:
    """The grey photo has no colour, but the pasted picture holds none of its keypoints."""
    rgb = grey(fit(photo(name), 384))
    h, w = rgb.shape[:2]
    pasted = rgb.copy()
    pasted[h // 3 : h // 3 + h // 3, w // 3 : w // 3 + w // 3] = cv2.resize(
        fit(photo("rocket"), 384), (w // 3, h // 3), interpolation=cv2.INTER_AREA)
    assert flagged(rgb, pasted)


def line_drawing(tint: str, *, soft: bool = False) -> np.ndarray:
    """A template whose variants differ in thin strokes only: a darkened, blurred photo under
    a title bar in the template's own colour, and a figure of 2-pixel lines in `tint`,
    outlined in black, over a twelfth of the frame. `soft`: the photo blurred so far, and the
    figure drawn with twice the lines, that the figure holds most of the keypoints."""
    blur, lines = (8.0, 20) if soft else (2.0, 10)
    back = cv2.resize(cv2.GaussianBlur(photo("astronaut"), (0, 0), blur), (384, 288), interpolation=cv2.INTER_AREA)
    out = (back * 0.6).astype(np.uint8)
    out[:40] = (170, 40, 110)
    cv2.putText(out, "PICK ONE", (110, 30), cv2.FONT_HERSHEY_DUPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
    corners = np.random.default_rng(3).integers([150, 110], [250, 210], size=(lines, 2)).tolist()
    for start, end in zip(corners, corners[1:]):
        cv2.line(out, tuple(start), tuple(end), (10, 10, 10), 4, cv2.LINE_AA)
        cv2.line(out, tuple(start), tuple(end), TINTS[tint], 2, cv2.LINE_AA)
    return out


def without_keypoint_colours(rgb: np.ndarray) -> LocalFeatures:
    found = orb_features(rgb)
    return LocalFeatures(found.points, found.descriptors)


@pytest.mark.parametrize(("tint", "other"), [("purple", "teal"), ("teal", "orange"), ("orange", "purple")])
def test_thin_strokes_in_another_colour_are_told_by_their_keypoints_colours(tint, other) -> None:
    """Too thin to move any layout cell far, the strokes keep their shading, so their corners
    match; their own colours turned hue while the title bar's did not."""
    a, b = line_drawing(tint), line_drawing(other)
    colours = (colour_layout(a), colour_layout(b))
    assert not verify(without_keypoint_colours(a), without_keypoint_colours(b), colours=colours).recoloured
    assert flagged(a, b)


@pytest.mark.parametrize(("drawn", "tint", "other"), [(d, t, o) for d in ("strokes", "object")
                                                       for t, o in (("orange", "yellow"), ("red", "orange"))])
def test_a_neighbouring_hue_is_told_when_every_keypoint_turned_one_way(drawn, tint, other) -> None:
    """Red to orange, orange to yellow: some 30 degrees, under HUE_SHIFT, but every keypoint on
    the figure turned by about that angle the same way, and the rest of the picture did not."""
    draw = line_drawing if drawn == "strokes" else drawing
    assert flagged(draw(tint), draw(other))
    assert flagged(draw(other), jpeg(draw(tint), 50))


@pytest.mark.parametrize(("tint", "other"), [("red", "orange"), ("orange", "yellow")])
def test_a_figure_holding_most_of_the_inliers_is_told_recoloured(tint, other) -> None:
    """On a soft backdrop most matched keypoints lie on the figure, and they all turned one
    way while the title bar and the backdrop kept their hues: a recolour, however large a
    share of the match it is."""
    assert flagged(line_drawing(tint, soft=True), line_drawing(other, soft=True))
    assert flagged(line_drawing(other, soft=True), jpeg(line_drawing(tint, soft=True), 50))


def dimmed_line_drawing(tint: str) -> np.ndarray:
    """`line_drawing` on a backdrop whose colours are weakened to a tint, under a grey title
    bar: the figure is the picture's only saturated part."""
    drawn, other = line_drawing(tint), line_drawing("teal" if tint != "teal" else "purple")
    grey_level = drawn.astype(np.float32).mean(axis=2, keepdims=True)
    out = (grey_level + 0.35 * (drawn - grey_level)).astype(np.uint8)
    figure = np.any(drawn != other, axis=2)
    out[figure] = drawn[figure]
    out[:40] = grey_level[:40].astype(np.uint8)
    return out


def hues_turned(query: np.ndarray, candidate: np.ndarray) -> bool:
    """`shifted_hues` of the pair's inliers, as `verify` asks it."""
    q, c = orb_features(query), orb_features(candidate)
    homography, q_idx, c_idx = _match(q, c)
    return shifted_hues(colour_layout(query), colour_layout(candidate), homography, q.points[q_idx],
                        q.colours[q_idx], c.colours[c_idx])


@pytest.mark.parametrize(("tint", "other"), [("purple", "teal"), ("teal", "orange"), ("orange", "purple")])
def test_strokes_recoloured_on_a_greyish_picture_are_told_by_its_tints(tint, other) -> None:
    """No cell away from the figure is saturated, but many are tinted, and those kept their
    hue while the strokes turned."""
    assert flagged(dimmed_line_drawing(tint), dimmed_line_drawing(other))


@pytest.mark.parametrize("copy", ["same", "jpeg40", "jpeg15", "gamma1.6", "grey", "hue30", "hue90", "hue180"])
def test_a_greyish_picture_under_a_colour_filter_has_no_turned_hues(copy) -> None:
    """A hue rotation turns the tints by its angle too. (The layouts take a quarter turn of
    this picture for a recolour: its figure is its only colourful region, see the module.)"""
    assert not hues_turned(dimmed_line_drawing("purple"), FILTERS[copy](dimmed_line_drawing("purple")))


def confetti(seed: int) -> np.ndarray:
    """A dimmed photo strewn with 400 small dots of five saturated colours, under a banner."""
    rng = np.random.default_rng(seed)
    out = (cv2.resize(photo("chelsea"), (480, 320), interpolation=cv2.INTER_AREA) * 0.8).astype(np.uint8)
    palette = [(230, 30, 30), (30, 200, 40), (40, 60, 230), (240, 200, 20), (200, 40, 200)]
    for _ in range(400):
        x, y = rng.integers(0, 480), rng.integers(0, 320)
        colour = palette[int(rng.integers(len(palette)))]
        cv2.circle(out, (int(x), int(y)), int(rng.integers(2, 5)), colour, -1)
    out[:40] = (30, 150, 200)
    return out


@pytest.mark.parametrize("seed", [0, 5])
def test_small_saturated_details_re_encoded_are_not_recoloured(seed) -> None:
    """JPEG at quality 10 averages the dots' colours with their surroundings at half
    resolution: a dozen keypoints turn 25 degrees or more, but every which way, as no
    recolour turns an object."""
    assert not flagged(confetti(seed), jpeg(confetti(seed), 10))


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("copy", ["same", "jpeg40", "jpeg15", "gamma1.6", "grey", "hue30", "hue90", "hue180"])
def test_a_copy_of_thin_strokes_under_a_colour_filter_is_not_recoloured(copy, soft) -> None:
    """A hue rotation turns the strokes and the title bar alike: no context kept its colours."""
    assert not flagged(line_drawing("purple", soft=soft), FILTERS[copy](line_drawing("purple", soft=soft)))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("half", [0.0, 0.5])  # whole levels (a layout's own, sorted as uint8) and halves too
def test_the_tone_curve_is_the_median_of_each_quantile_bin_made_non_decreasing(seed: int, half: float) -> None:
    """`tone_mapped` by its definition in plain NumPy: cells binned by their level in `a` into
    _TONE_BINS quantile bins, each bin's (of three or more) median level in `a` mapped to the
    median in `b`, made non-decreasing; levels with ties, as cell means of flat regions have."""
    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 40, (32, 32, 3)) * 6.0 + half * rng.integers(0, 2, (32, 32, 3))).astype(np.float32)  # ties
    b = np.clip(a * 0.8 + 20 + rng.normal(0, 4, a.shape), 0, 255).astype(np.float32)
    cells = rng.random((32, 32)) < 0.8
    x, y = a[cells].ravel(), b[cells].ravel()
    edges = np.quantile(x, np.linspace(0.0, 1.0, _TONE_BINS + 1))
    bins = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, _TONE_BINS - 1)
    used = [k for k in range(_TONE_BINS) if (bins == k).sum() >= 3]
    xs = np.array([np.median(x[bins == k]) for k in used], np.float32)
    ys = np.maximum.accumulate(np.array([np.median(y[bins == k]) for k in used], np.float32))
    xs, first = np.unique(xs, return_index=True)
    expected = np.interp(a, xs, ys[first]).astype(np.float32)
    assert np.array_equal(tone_mapped(a, b, cells), expected)


@pytest.mark.parametrize("size", [1, 2, 3, 16, 17, 100, 1023, 3072])
@pytest.mark.parametrize("levels", ["whole", "ties", "any"])
def test_quantiles_of_sorted_values_are_numpy_s_bit_for_bit(size: int, levels: str) -> None:
    """The tone curve's bin edges, read off its values already sorted, are np.quantile's
    (which partitions them first): the same float64s, so the same bins and the same curve."""
    rng = np.random.default_rng(size)
    values = {"whole": rng.integers(0, 256, size).astype(np.float32),
              "ties": np.repeat(rng.integers(0, 256, size), 7)[:size].astype(np.float32),
              "any": (rng.random(size) * 255).astype(np.float32)}[levels]
    ordered = np.sort(values)
    for quantiles in (np.linspace(0.0, 1.0, _TONE_BINS + 1), np.array([0.0, 0.3, 0.5, 0.75, 0.999, 1.0])):
        found, expected = sorted_quantiles(ordered, quantiles), np.quantile(ordered, quantiles)
        assert found.dtype == expected.dtype and np.array_equal(found, expected)
