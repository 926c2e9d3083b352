"""What the keeper needs to know of an image besides its pixels: when and with what camera
it was taken, from its EXIF record (a copy made by an editor, a messenger or a screenshot
tool usually loses it). Detail and noise are measured while decoding (`decode._measure`).
"""

from __future__ import annotations

import io
import warnings
from datetime import datetime

from PIL import ExifTags, Image, UnidentifiedImageError

_EXIF_TIME = "%Y:%m:%d %H:%M:%S"


def exif_record(data: bytes) -> tuple[str | None, str | None]:
    """(capture time as ISO 8601, "Make Model") from a file's EXIF, each None when absent."""
    with warnings.catch_warnings():
        # Pillow warns of damaged EXIF ("Corrupt EXIF data"), also while reading tags lazily
        # below: then there is no date or camera to use, and nothing for the terminal
        warnings.simplefilter("ignore", UserWarning)
        return _exif_record(data)


def _exif_record(data: bytes) -> tuple[str | None, str | None]:
    try:
        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif()
            detail = exif.get_ifd(ExifTags.IFD.Exif)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None, None
    raw = detail.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
    try:
        taken = datetime.strptime(str(raw).strip("\x00 "), _EXIF_TIME).isoformat() if raw else None
    except ValueError:
        taken = None
    parts = [str(exif.get(tag, "")).strip("\x00 ") for tag in (ExifTags.Base.Make, ExifTags.Base.Model)]
    camera = " ".join(p for p in parts if p) or None
    return taken, camera
