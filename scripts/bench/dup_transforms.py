"""Edits the duplicates benchmark needs beyond ``transforms.py``: one kind per failure class.

- **Keeper traps** (``LARGER``): copies whose canvas or file is *larger* than their original
  (fine noise, padding, upscaling, a PNG re-save, a tilt onto a wider canvas, a border, a stretch,
  a screenshot at native scale, a caption strip), so "largest resolution, then largest file"
  picks the copy. Each comes with the format it is saved in.
- **Shared overlays** (``SharedOverlay``): one caption, watermark, logo, date stamp, news banner
  or app frame drawn once and applied identically, at the same pixel size, to many distinct
  pictures. Pictures that share only the overlay are not duplicates.
- **Composites**: picture-in-picture, a sticker, a side-by-side collage of two originals ``a``
  and ``b``. A composite is a duplicate of neither; it *contains* both.
- **Look-alike templates** (``Template``): one backdrop and layout with a large letter or digit,
  or an object in one colour, that changes from variant to variant. Identity rule: a recolour
  of the *whole* image is a copy (the ``colour`` family); a change confined to one distinct
  object or letter makes a different image.

Every edit is a pure function of its images and a numpy ``Generator``, like ``transforms.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from bench import transforms
from bench.transforms import _colour, _font, _phrase, _sticker

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]
_NAMES = ("JANE DOE", "M. KOWALSKI", "STUDIO NORD", "A. OKAFOR", "LUMEN PHOTO", "R. TANAKA")
_PALETTE = {"red": (214, 32, 38), "orange": (245, 128, 20), "yellow": (236, 200, 24),
            "green": (34, 160, 64), "teal": (20, 170, 170), "blue": (36, 78, 214),
            "purple": (130, 56, 196), "pink": (236, 92, 164)}
GLYPHS = "ABCDEFGHJKLMNPRSTUVWXYZ2345679"
COLOURS = tuple(_PALETTE)


def _resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to ``size`` (w, h) with Lanczos (up or down)."""
    return img.resize((max(1, size[0]), max(1, size[1])), Image.Resampling.LANCZOS)


def _to_width(img: Image.Image, width: int) -> Image.Image:
    """Scale to ``width`` pixels wide, keeping the aspect ratio."""
    return _resize(img, (width, round(img.height * width / img.width)))


def _to_long_side(img: Image.Image, side: int) -> Image.Image:
    """Scale so the longer side is ``side`` pixels, keeping the aspect ratio."""
    scale = side / max(img.size)
    return _resize(img, (round(img.width * scale), round(img.height * scale)))


def _cover(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale and centre-crop ``img`` to fill exactly ``size`` (w, h)."""
    return ImageOps.fit(img, size, Image.Resampling.LANCZOS)


# --- keeper traps: copies larger than their original -----------------------------------------

def fine_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Mild Gaussian noise (σ 5–9): same size, but a much larger file at high JPEG quality."""
    return transforms.noise(img, rng, sigma=float(rng.uniform(5.0, 9.0)), salt=0.0)


def pad_to_canvas(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Centre on a larger square canvas (white, black or a blurred stretch of itself), as
    square-only apps do."""
    side = round(max(img.size) * rng.uniform(1.05, 1.2))
    fill = int(rng.integers(0, 3))
    if fill == 2:
        canvas = _resize(img, (side, side)).filter(ImageFilter.GaussianBlur(side / 30))
    else:
        canvas = Image.new("RGB", (side, side), (255, 255, 255) if fill == 0 else (0, 0, 0))
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas


def upscale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Enlarge 1.5–2.2× (Lanczos): more pixels, no more detail."""
    f = float(rng.uniform(1.5, 2.2))
    return _resize(img, (round(img.width * f), round(img.height * f)))


def unchanged(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The pixels as they are (a re-save in another format is the whole edit)."""
    return img


def rotate_on_canvas(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Tilt by ±3–10° onto the expanded canvas, corners filled white or black."""
    fill = (255, 255, 255) if rng.random() < 0.5 else (0, 0, 0)
    angle = float(rng.uniform(3.0, 10.0)) * float(rng.choice((-1.0, 1.0)))
    return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


def viewer_window(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A screenshot of an image viewer showing ``img`` at 100 %: title bar, toolbar, sidebar and
    status bar around it, so the screenshot is always larger than the picture."""
    sidebar, top, bottom, pad = int(rng.integers(140, 240)), 70, 26, 16
    theme = (245, 245, 247) if rng.random() < 0.5 else (36, 37, 41)
    ink = (60, 60, 60) if theme[0] > 128 else (210, 210, 210)
    w, h = img.width + sidebar + 2 * pad, img.height + top + bottom + 2 * pad
    win = Image.new("RGB", (w, h), theme)
    draw = ImageDraw.Draw(win)
    draw.rectangle((0, 0, w, 34), fill=_colour(rng))
    for i, c in enumerate(((255, 95, 86), (255, 189, 46), (39, 201, 63))):
        draw.ellipse((12 + 22 * i, 10, 26 + 22 * i, 24), fill=c)
    draw.rectangle((0, 34, w, top), fill=tuple(max(0, v - 18) for v in theme))
    for i in range(int(rng.integers(4, 9))):
        draw.rounded_rectangle((12 + 44 * i, 42, 44 + 44 * i, 62), radius=5, fill=_colour(rng))
    for i in range((h - top - bottom) // 40):
        draw.text((14, top + 20 + 40 * i), _phrase(rng, 2).lower(), font=_font(14), fill=ink)
    draw.text((sidebar + pad, h - bottom + 5), f"{img.width} × {img.height}  100 %", font=_font(13), fill=ink)
    win.paste(img, (sidebar + pad, top + pad))
    return win


def caption_strip(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Add a white strip above the picture with a two-line caption (the social-media meme
    layout): a taller canvas than the original."""
    strip = round(img.width * rng.uniform(0.16, 0.24))
    out = Image.new("RGB", (img.width, img.height + strip), (255, 255, 255))
    out.paste(img, (0, strip))
    draw = ImageDraw.Draw(out)
    size = max(10, strip // 4)
    for line in range(2):
        draw.text((img.width // 2, round(strip * (0.32 + 0.36 * line))), _phrase(rng, 3).lower(),
                  font=_font(size), fill=(20, 20, 20), anchor="mm")
    return out


@dataclass(frozen=True)
class Save:
    """How a file is written: Pillow format and JPEG quality (None for PNG)."""

    format: str
    quality: int | None = None

    @property
    def suffix(self) -> str:
        return ".png" if self.format == "PNG" else ".jpg"


RESHARED = Save("JPEG", 90)     # a copy passed around: re-encoded once more
HIGH_QUALITY = Save("JPEG", 96)
PNG = Save("PNG")

LARGER: dict[str, tuple[Edit, Save]] = {
    "larger_noise": (fine_noise, HIGH_QUALITY),
    "larger_pad": (pad_to_canvas, HIGH_QUALITY),
    "larger_upscale": (upscale, Save("JPEG", 92)),
    "larger_png": (unchanged, PNG),
    "larger_rotate": (rotate_on_canvas, HIGH_QUALITY),
    "larger_border": (partial(transforms.border, letterbox=False), HIGH_QUALITY),
    "larger_stretch": (partial(transforms.stretch, factor=(1.2, 1.5)), HIGH_QUALITY),
    "larger_screenshot": (viewer_window, PNG),
    "larger_caption": (caption_strip, HIGH_QUALITY),
}


# --- shared overlays: one overlay on many distinct pictures ----------------------------------

OVERLAY_KINDS = ("meme", "watermark", "logo", "datestamp", "banner", "frame")
_FRAME_SIZE = (720, 1280)
_FRAME_WINDOW = (0, 150, 720, 1010)   # where the picture is fitted inside the app frame


@dataclass(frozen=True, eq=False)
class SharedOverlay:
    """An overlay drawn once. Every picture is first scaled to ``width``, so each layer lands
    pixel-identical in every picture; ``frame`` (app chrome) instead fits the picture into
    ``window`` of a fixed canvas."""

    kind: str
    width: int
    layers: tuple[tuple[Image.Image, str], ...]   # (RGBA layer, anchor: top|bottom|bottom-right|centre)
    frame: Image.Image | None = None


def _text_layer(text: str, width: int, size: int, *, fill: tuple[int, ...], stroke: tuple[int, ...],
                stroke_width: int) -> Image.Image:
    """A transparent ``width``-wide RGBA strip with ``text`` centred on it."""
    layer = Image.new("RGBA", (width, round(size * 1.5)), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((width // 2, layer.height // 2), text, font=_font(size), fill=fill,
                               anchor="mm", stroke_width=stroke_width, stroke_fill=stroke)
    return layer


def _meme(width: int, rng: np.random.Generator) -> tuple[tuple[Image.Image, str], ...]:
    """Top and bottom caption in white outlined capitals."""
    size = round(width * 0.075)
    style = {"fill": (255, 255, 255, 255), "stroke": (0, 0, 0, 255), "stroke_width": max(2, size // 12)}
    return ((_text_layer(_phrase(rng, 3), width, size, **style), "top"),
            (_text_layer(_phrase(rng, 3), width, size, **style), "bottom"))


def _watermark(width: int, rng: np.random.Generator) -> tuple[tuple[Image.Image, str], ...]:
    """A photographer's semi-transparent name across the middle and a small credit line."""
    name = str(rng.choice(_NAMES))
    big = _text_layer(f"© {name}", width, round(width * 0.085), fill=(255, 255, 255, 120),
                      stroke=(0, 0, 0, 90), stroke_width=2)
    small = _text_layer(f"{name.lower().replace(' ', '').replace('.', '')}photo.com", width // 2,
                        round(width * 0.03), fill=(255, 255, 255, 200), stroke=(0, 0, 0, 160), stroke_width=1)
    return ((big, "centre"), (small, "bottom-right"))


def _datestamp(width: int, rng: np.random.Generator) -> tuple[tuple[Image.Image, str], ...]:
    """A camera's orange date imprint in the bottom-right corner."""
    y, m, d = int(rng.integers(95, 125)) % 100, int(rng.integers(1, 13)), int(rng.integers(1, 29))
    layer = _text_layer(f"'{y:02d} {m:2d} {d:2d}", round(width * 0.4), round(width * 0.05),
                        fill=(255, 150, 30, 235), stroke=(120, 40, 0, 160), stroke_width=1)
    return ((layer, "bottom-right"),)


def _banner(width: int, rng: np.random.Generator) -> tuple[tuple[Image.Image, str], ...]:
    """A TV channel's lower third: a coloured bar with a headline and a ticker below it."""
    bar_h, tick_h = round(width * 0.085), round(width * 0.045)
    layer = Image.new("RGBA", (width, bar_h + tick_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rectangle((0, 0, width, bar_h), fill=(*_colour(rng), 235))
    draw.rectangle((0, 0, round(width * 0.22), bar_h), fill=(200, 16, 32, 255))
    draw.text((round(width * 0.11), bar_h // 2), "LIVE", font=_font(bar_h // 2), fill="white", anchor="mm")
    draw.text((round(width * 0.25), bar_h // 2), _phrase(rng, 4), font=_font(bar_h * 2 // 5),
              fill="white", anchor="lm")
    draw.rectangle((0, bar_h, width, bar_h + tick_h), fill=(16, 24, 64, 240))
    draw.text((8, bar_h + tick_h // 2), " · ".join(_phrase(rng, 3).lower() for _ in range(4)),
              font=_font(tick_h * 3 // 5), fill=(230, 230, 230), anchor="lm")
    return ((layer, "bottom"),)


def _app_frame(rng: np.random.Generator) -> Image.Image:
    """A phone app's chrome around an empty picture window (720 × 1280)."""
    w, h = _FRAME_SIZE
    dark = rng.random() < 0.5
    bg, ink = ((0, 0, 0), (240, 240, 240)) if dark else ((255, 255, 255), (20, 20, 20))
    frame = Image.new("RGB", _FRAME_SIZE, bg)
    draw = ImageDraw.Draw(frame)
    draw.text((24, 24), "9:41", font=_font(26), fill=ink, anchor="lm")
    draw.rounded_rectangle((w - 80, 12, w - 30, 36), radius=5, outline=ink, width=3)
    draw.ellipse((20, 62, 96, 138), fill=_colour(rng))
    draw.text((112, 86), _phrase(rng, 1).lower() + "_" + _phrase(rng, 1).lower(), font=_font(26), fill=ink,
              anchor="lm")
    draw.text((112, 118), "Sponsored", font=_font(18), fill=(128, 128, 128), anchor="lm")
    y = _FRAME_WINDOW[3] + 24
    for i in range(3):
        draw.ellipse((24 + 70 * i, y, 72 + 70 * i, y + 48), outline=ink, width=4)
    draw.text((24, y + 90), f"Liked by {_phrase(rng, 1).lower()} and {int(rng.integers(50, 999))} others",
              font=_font(24), fill=ink, anchor="lm")
    for i in range(3):
        draw.text((24, y + 140 + 40 * i), _phrase(rng, 5).lower(), font=_font(22), fill=ink, anchor="lm")
    return frame


def draw_shared_overlay(kind: str, rng: np.random.Generator) -> SharedOverlay:
    """Draw the overlay of one set: its kind, the width its pictures are scaled to, its layers."""
    width = int(rng.choice((640, 720, 800)))
    if kind == "frame":
        return SharedOverlay(kind, _FRAME_SIZE[0], (), frame=_app_frame(rng))
    if kind == "logo":
        corner = "bottom-right" if rng.random() < 0.5 else "top-left"
        return SharedOverlay(kind, width, ((_sticker(rng, round(width * 0.24)), corner),))
    makers = {"meme": _meme, "watermark": _watermark, "datestamp": _datestamp, "banner": _banner}
    if kind not in makers:
        raise KeyError(f"unknown overlay kind {kind!r}; kinds: {OVERLAY_KINDS}")
    return SharedOverlay(kind, width, makers[kind](width, rng))


def _anchor_xy(anchor: str, layer: Image.Image, canvas: Image.Image) -> tuple[int, int]:
    """Top-left corner of ``layer`` placed at ``anchor`` of ``canvas`` (3 % margins)."""
    mx, my = round(canvas.width * 0.03), round(canvas.width * 0.03)
    x_mid, y_mid = (canvas.width - layer.width) // 2, (canvas.height - layer.height) // 2
    return {"top": (x_mid, my), "bottom": (x_mid, canvas.height - layer.height - my),
            "centre": (x_mid, y_mid), "top-left": (mx, my),
            "bottom-right": (canvas.width - layer.width - mx, canvas.height - layer.height - my)}[anchor]


def apply_shared_overlay(img: Image.Image, overlay: SharedOverlay) -> Image.Image:
    """``img`` scaled to the overlay's width with its layers pasted, or fitted into its frame."""
    if overlay.frame is not None:
        x0, y0, x1, y1 = _FRAME_WINDOW
        out = overlay.frame.copy()
        shown = ImageOps.contain(img, (x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
        out.paste(shown, (x0 + (x1 - x0 - shown.width) // 2, y0 + (y1 - y0 - shown.height) // 2))
        return out
    out = _to_width(img, overlay.width)
    for layer, anchor in overlay.layers:
        out.paste(layer, _anchor_xy(anchor, layer, out), layer)
    return out


# --- composites: one image containing two originals ------------------------------------------

def _base(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The composite's background picture at a long side of 640–900 px."""
    return _to_long_side(img, int(rng.integers(640, 901)))


def picture_in_picture(a: Image.Image, b: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``b`` as a framed inset, 38–50 % of the width, in a corner of ``a``."""
    out = _base(a, rng)
    inset = _to_width(b, round(out.width * rng.uniform(0.38, 0.5)))
    inset = inset.crop((0, 0, inset.width, min(inset.height, round(out.height * 0.6))))
    inset = ImageOps.expand(inset, border=max(3, out.width // 160), fill=(255, 255, 255))
    m = round(out.width * 0.03)
    x = m if rng.random() < 0.5 else out.width - inset.width - m
    y = m if rng.random() < 0.5 else out.height - inset.height - m
    out.paste(inset, (x, y))
    return out


def _cutout_mask(img: Image.Image) -> Image.Image:
    """An L mask of the object: the non-white pixels of a cut-out on white (a clip-art stamp),
    else a centred ellipse."""
    gray = np.asarray(img.convert("L"))
    edge = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if edge.mean() > 240:
        mask = Image.fromarray(((gray < 235) * 255).astype(np.uint8), "L")
        return mask.filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.MinFilter(3))
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).ellipse((0, 0, img.width - 1, img.height - 1), fill=255)
    return mask


def sticker(a: Image.Image, b: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``b`` cut out (its object, or an oval), white-outlined, tilted, pasted on ``a`` at
    45–60 % of ``a``'s shorter side."""
    out = _base(a, rng)
    piece = _to_long_side(b, round(min(out.size) * rng.uniform(0.45, 0.6)))
    mask = _cutout_mask(piece)
    pad = max(4, piece.width // 30)
    big = ImageOps.expand(mask, border=pad, fill=0)
    outline = big.filter(ImageFilter.MaxFilter(2 * (pad // 2) + 1))
    layer = Image.new("RGBA", big.size, (255, 255, 255, 0))
    layer.putalpha(outline)
    layer.paste(piece, (pad, pad), mask)
    layer = layer.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BICUBIC, expand=True)
    x = int(rng.integers(0, max(1, out.width - layer.width)))
    y = int(rng.integers(0, max(1, out.height - layer.height)))
    out.paste(layer, (x, y), layer)
    return out


def side_by_side(a: Image.Image, b: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``a`` and ``b`` next to each other (same height) or stacked (same width) with a gap."""
    gap = int(rng.integers(6, 20))
    fill = (255, 255, 255) if rng.random() < 0.6 else (0, 0, 0)
    if rng.random() < 0.7:
        height = int(rng.integers(420, 601))
        left, right = (_resize(p, (round(p.width * height / p.height), height)) for p in (a, b))
        out = Image.new("RGB", (left.width + gap + right.width, height), fill)
        out.paste(left, (0, 0))
        out.paste(right, (left.width + gap, 0))
        return out
    width = int(rng.integers(420, 601))
    top, low = (_to_width(p, width) for p in (a, b))
    out = Image.new("RGB", (width, top.height + gap + low.height), fill)
    out.paste(top, (0, 0))
    out.paste(low, (0, top.height + gap))
    return out


COMPOSITES: dict[str, Callable[[Image.Image, Image.Image, np.random.Generator], Image.Image]] = {
    "composite_pip": picture_in_picture,
    "composite_sticker": sticker,
    "composite_side": side_by_side,
}


# --- look-alike templates --------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Template:
    """A layout shared by a set of distinct images: a dimmed photo backdrop, a title bar and a
    frame; each variant adds its own large letter or coloured object in the middle."""

    backdrop: Image.Image
    ink: tuple[int, int, int]
    plate: tuple[int, int, int, int]


def draw_template(photo: Image.Image, rng: np.random.Generator) -> Template:
    """The layout of one set, built around ``photo`` (which never appears on its own)."""
    size = (800, 600) if rng.random() < 0.6 else (600, 800)
    back = _cover(photo, size).filter(ImageFilter.GaussianBlur(1.5))
    back = ImageEnhance.Brightness(back).enhance(float(rng.uniform(0.55, 0.7)))
    draw = ImageDraw.Draw(back)
    border = _colour(rng)
    draw.rectangle((0, 0, size[0] - 1, size[1] - 1), outline=border, width=14)
    draw.rectangle((14, 14, size[0] - 15, 74), fill=border)
    draw.text((size[0] // 2, 44), _phrase(rng, 3), font=_font(30), fill="white", anchor="mm",
              stroke_width=1, stroke_fill="black")
    draw.text((size[0] - 30, size[1] - 34), f"{int(rng.integers(1, 40))} / 40", font=_font(20),
              fill="white", anchor="rm")
    return Template(back, ink=_colour(rng), plate=(*_colour(rng), 170))


def letter_variant(template: Template, glyph: str) -> Image.Image:
    """The template with ``glyph`` large (half the height) on a translucent plate in the middle."""
    out = template.backdrop.copy().convert("RGBA")
    w, h = out.size
    plate = Image.new("RGBA", out.size, (0, 0, 0, 0))
    r = round(min(w, h) * 0.33)
    ImageDraw.Draw(plate).rounded_rectangle((w // 2 - r, h // 2 - r, w // 2 + r, h // 2 + r), radius=r // 4,
                                            fill=template.plate)
    out = Image.alpha_composite(out, plate)
    ImageDraw.Draw(out).text((w // 2, h // 2), glyph, font=_font(round(h * 0.5)), fill=template.ink,
                             anchor="mm", stroke_width=6, stroke_fill=(255, 255, 255))
    return out.convert("RGB")


def colour_variant(template: Template, stamp: Image.Image, colour: str) -> Image.Image:
    """The template with the object cut from ``stamp`` (a clip-art on white) recoloured to
    ``colour`` (its shading kept), 65 % of the height, in the middle. Only the object changes."""
    out = template.backdrop.copy()
    obj = _to_long_side(stamp, round(min(out.size) * 0.65))
    mask = _cutout_mask(obj)
    tinted = ImageOps.colorize(ImageOps.grayscale(obj), black=(10, 10, 10), white=(255, 255, 255),
                               mid=_PALETTE[colour])
    out.paste(tinted, ((out.width - obj.width) // 2, (out.height - obj.height) // 2 + 20), mask)
    return out
