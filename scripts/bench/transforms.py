"""Image transformations that turn a reference into a near-duplicate query.

Every transformation is a pure function ``(PIL.Image RGB, numpy Generator) -> PIL.Image RGB``:
all randomness comes from the generator, so a query is reproducible from (seed, query index).
``FAMILIES`` maps a family name to its ``mild`` and ``hard`` variants; the benchmark reports
recall per family, so each family is one kind of edit people make to pictures they re-share.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import partial

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]
STRENGTHS = ("mild", "hard")
_WORDS = ("when", "the", "code", "works", "friday", "mood", "me", "every", "monday", "nobody",
          "literally", "cat", "star", "wow", "so", "much", "share", "this", "best", "day")


# --- small helpers ---------------------------------------------------------------------------

def _pick(rng: np.random.Generator, low: float, high: float, *, signed: bool = False) -> float:
    """A uniform draw in [low, high), with a random sign when ``signed``."""
    value = float(rng.uniform(low, high))
    return value * float(rng.choice((-1.0, 1.0))) if signed else value


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A random opaque RGB colour."""
    r, g, b = (int(v) for v in rng.integers(0, 256, size=3))
    return r, g, b


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled default font at ``size`` pixels (FreeType build) or its bitmap fallback."""
    return ImageFont.load_default(size=max(8, size))


def _phrase(rng: np.random.Generator, words: int) -> str:
    """``words`` random words, upper-cased like a meme caption."""
    return " ".join(str(w) for w in rng.choice(_WORDS, size=words)).upper()


def _from_array(pixels: NDArray[np.floating]) -> Image.Image:
    """(H, W, 3) float in 0..255 -> RGB image, clipped and rounded."""
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


# --- photometric -----------------------------------------------------------------------------

def jpeg(img: Image.Image, rng: np.random.Generator, *, quality: tuple[int, int]) -> Image.Image:
    """Re-encode as a baseline JPEG at a quality drawn from ``quality`` (inclusive range)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(quality[0], quality[1] + 1)))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def adjust_colour(img: Image.Image, rng: np.random.Generator, *, low: float, high: float) -> Image.Image:
    """Scale brightness, contrast and saturation, each by 1 ± a factor in [low, high)."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhancer(img).enhance(1.0 + _pick(rng, low, high, signed=True))
    return img


def grayscale(img: Image.Image, rng: np.random.Generator, *, duotone: bool) -> Image.Image:
    """Drop colour; with ``duotone`` map the gray ramp between two random colours (a 'filter')."""
    gray = ImageOps.grayscale(img)
    if not duotone:
        return gray.convert("RGB")
    dark = tuple(int(v) for v in rng.integers(0, 90, size=3))
    light = tuple(int(v) for v in rng.integers(170, 256, size=3))
    return ImageOps.colorize(ImageOps.autocontrast(gray), black=dark, white=light)


def gamma(img: Image.Image, rng: np.random.Generator, *, low: float, high: float) -> Image.Image:
    """Apply gamma g or 1/g with g drawn from [low, high) (g > 1 darkens)."""
    g = _pick(rng, low, high)
    g = g if rng.random() < 0.5 else 1.0 / g
    lut = [round(255.0 * (i / 255.0) ** g) for i in range(256)]
    return img.point(lut * 3)


def blur(img: Image.Image, rng: np.random.Generator, *, radius: float) -> Image.Image:
    """Gaussian blur with a radius of ``radius`` × the shorter side (±20 %)."""
    r = radius * min(img.size) * _pick(rng, 0.8, 1.2)
    return img.filter(ImageFilter.GaussianBlur(radius=max(0.5, r)))


def noise(img: Image.Image, rng: np.random.Generator, *, sigma: float, salt: float) -> Image.Image:
    """Add Gaussian noise of std ``sigma`` (0..255 scale) and a ``salt`` fraction of black/white pixels."""
    pixels = np.asarray(img, dtype=np.float32)
    pixels = pixels + rng.normal(0.0, sigma, size=pixels.shape)
    if salt > 0:
        mask = rng.random(pixels.shape[:2]) < salt
        pixels[mask] = rng.choice((0.0, 255.0), size=(int(mask.sum()), 1))
    return _from_array(pixels)


# --- geometric -------------------------------------------------------------------------------

def downscale(img: Image.Image, rng: np.random.Generator, *, side: tuple[int, int]) -> Image.Image:
    """Shrink to a thumbnail whose longer side is drawn from ``side`` (never enlarges)."""
    target = int(rng.integers(side[0], side[1] + 1))
    scale = min(1.0, target / max(img.size))
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def _crop_box(w: int, h: int, area: float, fx: float, fy: float) -> tuple[int, int, int, int]:
    """Box keeping ``area`` of a w×h image at its aspect, its corner at fractions (fx, fy) of the slack."""
    cw, ch = max(1, round(w * area**0.5)), max(1, round(h * area**0.5))
    x0, y0 = round((w - cw) * fx), round((h - ch) * fy)
    return x0, y0, x0 + cw, y0 + ch


def crop_center(img: Image.Image, rng: np.random.Generator, *, area: tuple[float, float]) -> Image.Image:
    """Keep a centred window of a fraction of the area drawn from ``area``, same aspect."""
    return img.crop(_crop_box(img.width, img.height, _pick(rng, *area), 0.5, 0.5))


def crop_offcenter(img: Image.Image, rng: np.random.Generator, *, area: tuple[float, float]) -> Image.Image:
    """Keep a window near a random corner: area fraction from ``area``, same aspect."""
    fx, fy = (float(rng.uniform(0.0, 0.25)) for _ in range(2))
    fx, fy = (fx if rng.random() < 0.5 else 1 - fx), (fy if rng.random() < 0.5 else 1 - fy)
    return img.crop(_crop_box(img.width, img.height, _pick(rng, *area), fx, fy))


def rotate_small(img: Image.Image, rng: np.random.Generator, *, degrees: tuple[float, float]) -> Image.Image:
    """Rotate by ± an angle from ``degrees``, canvas expanded, corners filled black."""
    angle = _pick(rng, *degrees, signed=True)
    return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0))


def rotate_right_angle(img: Image.Image, rng: np.random.Generator, *, quarter: bool) -> Image.Image:
    """Rotate 90° either way (``quarter``) or 180°."""
    if not quarter:
        return img.transpose(Image.Transpose.ROTATE_180)
    return img.transpose(Image.Transpose.ROTATE_90 if rng.random() < 0.5 else Image.Transpose.ROTATE_270)


def flip(img: Image.Image, rng: np.random.Generator, *, vertical: bool) -> Image.Image:
    """Mirror left-right, or upside down when ``vertical``."""
    return ImageOps.flip(img) if vertical else ImageOps.mirror(img)


def stretch(img: Image.Image, rng: np.random.Generator, *, factor: tuple[float, float]) -> Image.Image:
    """Change the aspect ratio: scale one random axis by a factor from ``factor``."""
    f = _pick(rng, *factor)
    w, h = img.size
    size = (round(w * f), h) if rng.random() < 0.5 else (w, round(h * f))
    return img.resize(size, Image.Resampling.BICUBIC)


def _perspective_coeffs(src: NDArray[np.float64], dst: NDArray[np.float64]) -> list[float]:
    """8 coefficients mapping output points ``dst`` (4, 2) to input points ``src`` (4, 2) for PIL."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64)).tolist()


def perspective(img: Image.Image, rng: np.random.Generator, *, shift: tuple[float, float]) -> Image.Image:
    """Warp as if photographed at an angle: move each corner inwards by a fraction from ``shift``."""
    w, h = img.size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
    amount = rng.uniform(*shift, size=(4, 2)) * np.array([w, h])
    amount[rng.integers(0, 2)::2] *= 0.3   # keep two opposite corners nearly in place: a tilt, not a shrink
    coeffs = _perspective_coeffs(corners, corners + inward * amount)
    return img.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC,
                         fillcolor=(0, 0, 0))


# --- overlays and framing --------------------------------------------------------------------

def _outlined_text(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int) -> None:
    """White text with a black outline centred on ``xy`` (meme style)."""
    draw.text(xy, text, font=_font(size), fill="white", anchor="mm",
              stroke_width=max(1, size // 12), stroke_fill="black")


def caption(img: Image.Image, rng: np.random.Generator, *, meme: bool) -> Image.Image:
    """Write a short caption near the bottom, or large meme text at top and bottom when ``meme``."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    size = round(h * (0.11 if meme else 0.06))
    _outlined_text(draw, (w // 2, round(h * 0.9)), _phrase(rng, 3 if meme else 2), size)
    if meme:
        _outlined_text(draw, (w // 2, round(h * 0.1)), _phrase(rng, 3), size)
    return out


def _sticker(rng: np.random.Generator, width: int) -> Image.Image:
    """An RGBA logo ``width`` px wide: a rounded badge in a random colour with a short word."""
    height = max(8, width // 2)
    logo = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.rounded_rectangle((0, 0, width - 1, height - 1), radius=height // 3, fill=(*_colour(rng), 235))
    draw.ellipse((height // 6, height // 6, height * 5 // 6, height * 5 // 6), fill=(*_colour(rng), 255))
    draw.text((width * 0.62, height // 2), str(rng.choice(("NEWS", "TV", "@me", "HD", "LOL"))),
              font=_font(height // 3), fill="white", anchor="mm", stroke_width=1, stroke_fill="black")
    return logo


def overlay(img: Image.Image, rng: np.random.Generator, *, width: tuple[float, float],
            anywhere: bool) -> Image.Image:
    """Paste a logo whose width is a fraction (from ``width``) of the image's: in a corner, or anywhere."""
    out = img.copy()
    logo = _sticker(rng, max(16, round(out.width * _pick(rng, *width))))
    slack_x, slack_y = max(0, out.width - logo.width), max(0, out.height - logo.height)
    if anywhere:
        x, y = int(rng.integers(0, slack_x + 1)), int(rng.integers(0, slack_y + 1))
    else:
        margin = round(0.03 * out.width)
        x = min(margin, slack_x) if rng.random() < 0.5 else max(0, slack_x - margin)
        y = min(margin, slack_y) if rng.random() < 0.5 else max(0, slack_y - margin)
    out.paste(logo, (x, y), logo)
    return out


def border(img: Image.Image, rng: np.random.Generator, *, letterbox: bool) -> Image.Image:
    """Add a plain frame (4–8 % a side), or letterbox into a canvas of the opposite orientation."""
    w, h = img.size
    if not letterbox:
        pad = round(max(w, h) * _pick(rng, 0.04, 0.08))
        return ImageOps.expand(img, border=pad, fill=_colour(rng))
    colour = (0, 0, 0) if rng.random() < 0.7 else _colour(rng)
    if w >= h:   # landscape into a 9:16 portrait canvas, bars above and below
        canvas = Image.new("RGB", (w, round(w * 16 / 9)), colour)
        canvas.paste(img, (0, (canvas.height - h) // 2))
    else:        # portrait into a 16:9 landscape canvas, bars left and right
        canvas = Image.new("RGB", (round(h * 16 / 9), h), colour)
        canvas.paste(img, ((canvas.width - w) // 2, 0))
    return canvas


def screenshot(img: Image.Image, rng: np.random.Generator, *, fill: tuple[float, float]) -> Image.Image:
    """Draw a fake app window (title bar, toolbar, sidebar, text) around a scaled copy of ``img``.

    ``fill`` bounds the fraction of the window's area the picture occupies.
    """
    win_w, win_h = 1024, 720
    theme = (245, 245, 247) if rng.random() < 0.5 else (36, 37, 41)
    ink = (60, 60, 60) if theme[0] > 128 else (210, 210, 210)
    window = Image.new("RGB", (win_w, win_h), theme)
    draw = ImageDraw.Draw(window)
    draw.rectangle((0, 0, win_w, 34), fill=_colour(rng))                       # title bar
    for i, c in enumerate(((255, 95, 86), (255, 189, 46), (39, 201, 63))):
        draw.ellipse((12 + 22 * i, 10, 26 + 22 * i, 24), fill=c)
    draw.text((win_w // 2, 17), f"IMG_{int(rng.integers(1000, 9999))}.jpg - Viewer", font=_font(16),
              fill="white", anchor="mm")
    draw.rectangle((0, 34, win_w, 70), fill=tuple(max(0, v - 18) for v in theme))  # toolbar
    for i in range(int(rng.integers(4, 9))):
        draw.rounded_rectangle((12 + 44 * i, 42, 44 + 44 * i, 62), radius=5, fill=_colour(rng))
    sidebar = int(rng.integers(150, 260))
    for i in range(14):                                                        # sidebar text
        draw.text((14, 90 + 40 * i), _phrase(rng, 2).lower(), font=_font(15), fill=ink)
    area_w, area_h = win_w - sidebar - 20, win_h - 70 - 20
    frac = _pick(rng, *fill) * win_w * win_h / (area_w * area_h)
    scale = min(area_w / img.width, area_h / img.height) * min(1.0, frac**0.5)
    shown = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                       Image.Resampling.LANCZOS)
    window.paste(shown, (sidebar + (area_w - shown.width) // 2, 80 + (area_h - shown.height) // 2))
    return window


def combo(img: Image.Image, rng: np.random.Generator, *, hard: bool) -> Image.Image:
    """Chain edits: crop + mirror + JPEG; when ``hard`` also off-centre, colour and a small tilt."""
    if hard:
        img = crop_offcenter(img, rng, area=(0.45, 0.6))
        img = adjust_colour(img, rng, low=0.2, high=0.35)
        img = rotate_small(img, rng, degrees=(3.0, 6.0))
    else:
        img = crop_center(img, rng, area=(0.8, 0.9))
    img = flip(img, rng, vertical=False)
    return jpeg(img, rng, quality=(12, 20) if hard else (40, 60))


FAMILIES: dict[str, dict[str, Transform]] = {
    "jpeg": {"mild": partial(jpeg, quality=(25, 40)), "hard": partial(jpeg, quality=(5, 10))},
    "downscale": {"mild": partial(downscale, side=(180, 240)), "hard": partial(downscale, side=(56, 72))},
    "crop_center": {"mild": partial(crop_center, area=(0.75, 0.85)),
                    "hard": partial(crop_center, area=(0.38, 0.45))},
    "crop_offcenter": {"mild": partial(crop_offcenter, area=(0.75, 0.85)),
                       "hard": partial(crop_offcenter, area=(0.38, 0.45))},
    "rotate_small": {"mild": partial(rotate_small, degrees=(2.0, 5.0)),
                     "hard": partial(rotate_small, degrees=(10.0, 20.0))},
    "rotate_90": {"mild": partial(rotate_right_angle, quarter=False),
                  "hard": partial(rotate_right_angle, quarter=True)},
    "flip": {"mild": partial(flip, vertical=False), "hard": partial(flip, vertical=True)},
    "colour": {"mild": partial(adjust_colour, low=0.1, high=0.2),
               "hard": partial(adjust_colour, low=0.35, high=0.5)},
    "grayscale": {"mild": partial(grayscale, duotone=False), "hard": partial(grayscale, duotone=True)},
    "gamma": {"mild": partial(gamma, low=1.2, high=1.4), "hard": partial(gamma, low=2.0, high=2.6)},
    "blur": {"mild": partial(blur, radius=0.005), "hard": partial(blur, radius=0.02)},
    "noise": {"mild": partial(noise, sigma=10.0, salt=0.0), "hard": partial(noise, sigma=30.0, salt=0.02)},
    "caption": {"mild": partial(caption, meme=False), "hard": partial(caption, meme=True)},
    "overlay": {"mild": partial(overlay, width=(0.12, 0.18), anywhere=False),
                "hard": partial(overlay, width=(0.35, 0.45), anywhere=True)},
    "border": {"mild": partial(border, letterbox=False), "hard": partial(border, letterbox=True)},
    "screenshot": {"mild": partial(screenshot, fill=(0.45, 0.6)), "hard": partial(screenshot, fill=(0.15, 0.25))},
    "perspective": {"mild": partial(perspective, shift=(0.03, 0.07)),
                    "hard": partial(perspective, shift=(0.12, 0.2))},
    "stretch": {"mild": partial(stretch, factor=(1.15, 1.3)), "hard": partial(stretch, factor=(1.7, 2.2))},
    "combo": {"mild": partial(combo, hard=False), "hard": partial(combo, hard=True)},
}


def apply(img: Image.Image, family: str, strength: str, rng: np.random.Generator) -> Image.Image:
    """Apply ``FAMILIES[family][strength]`` to ``img`` (any mode) and return an RGB image."""
    if family not in FAMILIES or strength not in STRENGTHS:
        raise KeyError(f"unknown transform {family!r}/{strength!r}; families: {sorted(FAMILIES)}, "
                       f"strengths: {STRENGTHS}")
    return FAMILIES[family][strength](img.convert("RGB"), rng).convert("RGB")
