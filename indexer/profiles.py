"""Colour profiles: pixels of a file saved in another RGB colour space, given in sRGB.

An editor's export, a Mac's screenshots and an iPhone's photos store their pixels in a wider
colour space and say so in an embedded ICC profile; a camera set to Adobe RGB mostly says so
in its EXIF instead (the DCF option file: colour space "uncalibrated", interoperability index
R03), and a HEIF may say Display P3 in its colour description (nclx) alone. The copies
people share are usually converted to sRGB on export. Read as they are, the original's colours
are duller than its copy's, as far apart as a colour edit. Converted by its profile
(LittleCMS, through Pillow's `ImageCms`), the original shows the colours its copy shows, as a
browser or viewer shows them; and its grain, measured in sRGB's tones, is its copy's.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageCms

# Colorants (red, green, blue XYZ adapted to D50, as an ICC profile stores them) of the wide
# colour spaces files come in; each set sums to D50's white.
D50 = (0.9642, 1.0, 0.8249)
ADOBE_RGB = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))
DISPLAY_P3 = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))
_ADOBE_GAMMA = 563 / 256  # Adobe RGB's tone curve, as ICC profiles round it

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


def converts(icc_profile: bytes | None) -> bool:
    """Whether `in_srgb` changes pixels in the space `icc_profile` describes."""
    return bool(icc_profile) and _conversion(icc_profile) is not None


@lru_cache(maxsize=64)  # a collection holds few distinct profiles, each a few KB
def _conversion(icc_profile: bytes) -> _Conversion | None:
    """The conversion of an RGB profile to sRGB, or None where there is nothing to convert."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            if source.profile.xcolor_space.strip() != "RGB":
                return None
            # NOCACHE: one transform serves every thread (the web app decodes thumbnails in
            # several), and LittleCMS's cache of the last pixel is not safe to share
            convert = ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), "RGB", "RGB",
                                              renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                              flags=ImageCms.Flags.NOCACHE)
            probe = np.asarray(ImageCms.applyTransform(Image.fromarray(_PROBE), convert), dtype=np.int16)
            greys = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
            tones = np.asarray(ImageCms.applyTransform(Image.fromarray(greys), convert))[0].mean(axis=1)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    if np.abs(probe - _PROBE).max() <= _SAME:
        return None
    return _Conversion(convert, np.round(tones).astype(np.uint8))


def profile_of(info: Mapping[str, Any], exif: Image.Exif) -> bytes | None:
    """The ICC profile of the colour space an image's file says its pixels are in (`info` and
    `exif` as Pillow reads them): the profile it embeds; or, embedding none, Display P3 for a
    HEIF whose colour description (nclx) names P3's primaries with sRGB's tone curve, as
    phones write it, and Adobe RGB for a camera's JPEG whose EXIF says so
    (`implied_profile`); None for sRGB, or where nothing is said."""
    if icc := info.get("icc_profile"):
        return icc
    nclx = info.get("nclx_profile")
    if isinstance(nclx, Mapping) and (nclx.get("color_primaries"), nclx.get("transfer_characteristics")) == (12, 13):
        return _display_p3()
    return implied_profile(exif)


def implied_profile(exif: Image.Exif) -> bytes | None:
    """The profile a file's EXIF implies when it embeds none: Adobe RGB for a camera's DCF
    option file (colour space 0xFFFF, "uncalibrated", with interoperability index R03), as
    exiftool and photo editors read it; None otherwise (sRGB, or nothing said)."""
    try:
        if exif.get_ifd(0x8769).get(0xA001) != 0xFFFF:  # ColorSpace, in the Exif IFD
            return None
        index = exif.get_ifd(0xA005).get(0x0001)  # InteroperabilityIndex
    except (KeyError, TypeError, ValueError, OSError, struct.error):  # damaged EXIF says nothing
        return None
    return _adobe_rgb() if isinstance(index, str) and index.strip("\0 ") == "R03" else None


@lru_cache(maxsize=1)
def _adobe_rgb() -> bytes:
    return matrix_profile(ADOBE_RGB, _ADOBE_GAMMA, "Adobe RGB compatible (neardup)")


@lru_cache(maxsize=1)
def _display_p3() -> bytes:
    return matrix_profile(DISPLAY_P3, None, "Display P3 (neardup)")


def matrix_profile(colorants=ADOBE_RGB, gamma: float | None = _ADOBE_GAMMA, name: str = "RGB") -> bytes:
    """An ICC version 2 display profile of an RGB colour space: its `colorants` and one tone
    curve for the three channels, a plain `gamma` or (None) sRGB's curve. Written here, from
    the published primaries, so that no profile file ships with neardup."""
    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    if gamma is not None:
        curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))
    else:
        c = np.linspace(0, 1, 1024)
        table = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        curve = b"curv" + bytes(4) + struct.pack(">I", 1024) + np.round(table * 65535).astype(">u2").tobytes()
    text = name.encode("ascii") + b"\0"
    description = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8 + 3 + 67)
    (r, g, b) = colorants
    tags = [(b"desc", description), (b"wtpt", xyz(*D50)), (b"rXYZ", xyz(*r)), (b"gXYZ", xyz(*g)),
            (b"bXYZ", xyz(*b)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
            (b"cprt", b"text" + bytes(4) + b"No copyright, use freely\0")]
    offset = 128 + 4 + 12 * len(tags)
    table_, data = b"", b""
    for signature, body in tags:
        table_ += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    header = (struct.pack(">I", offset + len(data)) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + bytes(28) + s15(D50[0]) + s15(D50[1])
              + s15(D50[2]) + bytes(4 + 16 + 28))
    return header + struct.pack(">I", len(tags)) + table_ + data
