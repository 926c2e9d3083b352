"""The one check that an array is an RGB image neardup can work on, and its error."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from neardup.storage.errors import NeardupError


class InvalidImageError(NeardupError, ValueError):
    """An array handed in as an image is not (H, W, 3) uint8 RGB with H, W >= 1."""


def checked_rgb(image: Any, label: str = "") -> NDArray[np.uint8]:
    """`image` as a C-contiguous (H, W, 3) uint8 array, or `InvalidImageError` (its message
    starts with `label`, e.g. "image 3: ", to say which of several)."""
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"{label}expected an (H, W, 3) uint8 RGB image, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise InvalidImageError(
            f"{label}expected an (H, W, 3) uint8 RGB image, got a {image.dtype} array of shape {image.shape}")
    return np.ascontiguousarray(image)
