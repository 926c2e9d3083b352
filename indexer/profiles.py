"""Colour profiles: pixels of a file saved in another RGB colour space, given in sRGB.

A camera set to Adobe RGB, a Mac's screenshots and an iPhone's photos store their pixels in a
wider colour space and say so in an embedded ICC profile; the copies people share are usually
converted to sRGB on export. Read as they are, the original's colours are duller than its
copy's, as far apart as a colour edit. Converted by its profile (LittleCMS, through Pillow's
`ImageCms`), the original shows the colours its copy shows, as a browser or viewer shows them;
and its grain, measured in sRGB's tones, is its copy's.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageCms

# A profile whose conversion moves none of these colours by more than a level is sRGB for
# our purposes (the many sRGB profiles cameras and editors embed): such files are left as
# they are, so that their pixels stay those of every file without a profile.
_LEVELS = np.arange(0, 256, 15, dtype=np.uint8)
_PROBE = np.stack(np.meshgrid(_LEVELS, _LEVELS, _LEVELS, indexing="ij"), axis=-1).reshape(1, -1, 3)
_SAME = 1


@dataclass(frozen=True)
class _Conversion:
    transform: ImageCms.ImageCmsTransform
    tones: NDArray[np.uint8]  # (256,): the sRGB level each grey level of the profile shows as


def in_srgb(rgb: NDArray[np.uint8], icc_profile: bytes | None) -> NDArray[np.uint8]:
    """`rgb` (h, w, 3) uint8 in the RGB colour space `icc_profile` describes, given in sRGB
    (relative colorimetric). Unchanged without a profile, for an sRGB one, and for one that
    is not an RGB profile or cannot be read: a damaged profile never makes an image unreadable."""
    conversion = _conversion(icc_profile) if icc_profile else None
    if conversion is None:
        return rgb
    return np.asarray(ImageCms.applyTransform(Image.fromarray(rgb), conversion.transform), dtype=np.uint8)


def in_srgb_tones(levels: NDArray[np.uint8], icc_profile: bytes | None) -> NDArray[np.uint8]:
    """`levels` (grey, or each channel of RGB) moved along the profile's grey axis to sRGB's:
    the tones of `in_srgb` without its mixing of channels, cheap enough for a full-size image.
    The keeper's traits are read on them: a profile's tone curve stretches dark tones unlike
    sRGB's (Adobe RGB's plain gamma three times as much near black), and read as stored, an
    original's grain in a black sky would be three times its sRGB copy's."""
    conversion = _conversion(icc_profile) if icc_profile else None
    return levels if conversion is None else cv2.LUT(levels, conversion.tones)


@lru_cache(maxsize=64)  # a collection holds few distinct profiles, each a few KB
def _conversion(icc_profile: bytes) -> _Conversion | None:
    """The conversion of an RGB profile to sRGB, or None where there is nothing to convert."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            if source.profile.xcolor_space.strip() != "RGB":
                return None
            convert = ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), "RGB", "RGB",
                                              renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
            probe = np.asarray(ImageCms.applyTransform(Image.fromarray(_PROBE), convert), dtype=np.int16)
            greys = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
            tones = np.asarray(ImageCms.applyTransform(Image.fromarray(greys), convert))[0].mean(axis=1)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    if np.abs(probe - _PROBE).max() <= _SAME:
        return None
    return _Conversion(convert, np.round(tones).astype(np.uint8))
