"""Synthetic test images drawn in NumPy, and the edits tests apply to them.

Every image is an ``(H, W, 3) uint8`` RGB array; every random one takes a seed.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

DATA = Path(__file__).parent / "data"
PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "hubble")


def photo(name: str) -> NDArray[np.uint8]:
    """A real test photo from ``tests/data/<name>.jpg`` as ``(H, W, 3) uint8`` RGB: the one
    way every test loads one."""
    with Image.open(DATA / f"{name}.jpg") as image:
        return np.asarray(image.convert("RGB"))


def flat(height: int, width: int, rgb: tuple[int, int, int] = (128, 128, 128)) -> NDArray[np.uint8]:
    """A single-colour image."""
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (height, width, 3)).copy()


def noisy_flat(height: int, width: int, *, sigma: float = 1.5, seed: int = 0) -> NDArray[np.uint8]:
    """A mid-grey image with faint Gaussian noise: looks blank."""
    noise = np.random.default_rng(seed).normal(0, sigma, (height, width, 1))
    return np.clip(128 + noise, 0, 255).repeat(3, axis=2).astype(np.uint8)


def gradient(height: int, width: int) -> NDArray[np.uint8]:
    """Red rising left to right, green top to bottom, blue falling along the diagonal."""
    y, x = np.mgrid[0:height, 0:width]
    fy, fx = y / max(height - 1, 1), x / max(width - 1, 1)
    channels = (fx, fy, 1 - (fx + fy) / 2)
    return (np.stack(channels, axis=2) * 255).round().astype(np.uint8)


def shapes(height: int, width: int, *, seed: int) -> NDArray[np.uint8]:
    """A scene of random coloured rectangles and discs on a random smooth background."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), dtype=np.float64)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    for channel in range(3):
        a, b, c = rng.uniform(-100, 100, 3)
        image[..., channel] = 128 + a * x + b * y + c * x * y
    for _ in range(12):
        colour = rng.integers(0, 256, 3)
        cy, cx, radius = rng.uniform(0, 1, 3) * (height, width, min(height, width) / 3)
        if rng.random() < 0.5:
            top, left = max(0, int(cy - radius)), max(0, int(cx - radius))
            image[top : int(cy + radius), left : int(cx + radius)] = colour
        else:
            yy, xx = np.ogrid[0:height, 0:width]
            image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = colour
    return np.clip(image, 0, 255).astype(np.uint8)


def galaxy(seed: int) -> NDArray[np.uint8]:
    """An astrophoto's look, 512 pixels square: a tinted elliptical glow on a black sky with
    150 small stars."""
    size = 512
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = size * rng.uniform(0.35, 0.65, 2)
    a, b, turn = size * rng.uniform(0.12, 0.25), size * rng.uniform(0.05, 0.12), rng.uniform(0, np.pi)
    u = (x - cx) * np.cos(turn) + (y - cy) * np.sin(turn)
    v = (y - cy) * np.cos(turn) - (x - cx) * np.sin(turn)
    sky = np.exp(-((u / a) ** 2 + (v / b) ** 2))[..., None] * 220 * rng.uniform(0.6, 1.0, 3)
    for _ in range(150):
        centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        cv2.circle(sky, centre, int(rng.integers(1, 3)), tuple(float(c) for c in rng.uniform(150, 255, 3)), -1)
    return np.clip(cv2.GaussianBlur(sky.astype(np.float32), (0, 0), 1.0) + 6, 0, 255).astype(np.uint8)


def stars(seed: int) -> NDArray[np.uint8]:
    """A star field, 512 pixels square: 600 small stars on a black sky, no glow."""
    rng = np.random.default_rng(seed)
    sky = np.zeros((512, 512, 3), np.float32)
    for _ in range(600):
        centre = (int(rng.integers(0, 512)), int(rng.integers(0, 512)))
        cv2.circle(sky, centre, int(rng.integers(1, 3)), tuple(float(c) for c in rng.uniform(120, 255, 3)), -1)
    return np.clip(cv2.GaussianBlur(sky, (0, 0), 1.0) + 6, 0, 255).astype(np.uint8)


def jpeg(image: NDArray[np.uint8], quality: int = 50) -> NDArray[np.uint8]:
    """``image`` re-encoded as JPEG at ``quality`` in memory and decoded again."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def scaled(image: NDArray[np.uint8], factor: float) -> NDArray[np.uint8]:
    """``image`` resized by ``factor`` with PIL's bicubic filter."""
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def brightened(image: NDArray[np.uint8], levels: int = 10) -> NDArray[np.uint8]:
    """``image`` with ``levels`` added to every channel, clipped to [0, 255]."""
    return np.clip(image.astype(np.int16) + levels, 0, 255).astype(np.uint8)


def cropped(image: NDArray[np.uint8], fraction: float = 0.01) -> NDArray[np.uint8]:
    """``image`` with ``fraction`` of its height and width cut from every side."""
    height, width = image.shape[:2]
    dy, dx = int(height * fraction), int(width * fraction)
    return image[dy : height - dy, dx : width - dx].copy()


def meme(rgb: NDArray[np.uint8], size: float = 2.4) -> NDArray[np.uint8]:
    """Large white meme text with a black outline, one line above and one below the middle,
    at OpenCV font scale `size`."""
    out = rgb.copy()
    height, width = out.shape[:2]
    outline, stroke = round(size * 11 / 2.4), round(size * 5 / 2.4)
    for y, text in ((int(height * 0.16), "NOT AGAIN"), (int(height * 0.95), "MONDAY")):
        (w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, size, stroke)
        for colour, thick in (((0, 0, 0), outline), ((255, 255, 255), stroke)):
            cv2.putText(out, text, ((width - w) // 2, y), cv2.FONT_HERSHEY_DUPLEX, size, colour, thick, cv2.LINE_AA)
    return out
