"""Decoding: the only place neardup reads image files.

One path for indexing and querying: EXIF orientation applied, every mode turned into 8-bit
RGB (alpha flattened on white, 16-bit scaled, CMYK converted), colours in another RGB colour
space converted to sRGB as the file says (`profiles`: an ICC profile, a HEIF's nclx, EXIF),
first frame of animations, HEIC/HEIF through pillow-heif. Large JPEGs are decoded at a
reduced size in the DCT domain (libjpeg scaling, via Pillow's `draft`) when only `max_side`
pixels are needed. Beside the pixels, what the keeper weighs is measured here: noise, JPEG
quality and what reducing the image would lose (`enlargement`), both at the image's native
size up to a few times `max_side`, for which a moderately large JPEG's luma is decoded again
at full size.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from neardup.storage.errors import NeardupError

from .enlargement import Enlargement, enlargement
from .pixels import checked_rgb
from .profiles import converts, in_srgb, in_srgb_tones, profile_of

# .jfif: what browsers on Windows name a saved JPEG; .mpo: a stereo camera's pair of JPEGs;
# .apng: an animated PNG; .avif: read by Pillow 11.3 or later (an older one reports such a file
# unreadable, saying why, rather than passing over it without a word)
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".apng", ".webp", ".bmp", ".tif", ".tiff", ".gif",
     ".heic", ".heif", ".avif"}
)
DEFAULT_MAX_MEGAPIXELS = 150.0
# How files become pixels and traits, raised whenever some file decodes otherwise, so that a
# catalog's rows an older neardup decoded are read again (`decodes_otherwise` says which).
# 2: a TIFF's EXIF orientation read after loading, colours converted from the file's colour
# space to sRGB, a multi-picture JPEG decoded as the JPEG it starts with.
DECODING = 2
LARGE_PIXELS = 16_000_000  # decoded images larger than this are shrunk at once (`_reduced`)
_STRIP_BOXES = 16  # rows of reduce() boxes per strip
_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
# A JPEG decoded at a fraction of its size (`draft`) has lost the finest detail that tells an
# enlarged copy from its original (`enlargement`), and averaged away most of the grain that
# tells a noisy copy (`_noise`): up to this many times `max_side` its luma is decoded again
# at full size for both (at 384: 3.5 ms for a 1,024-pixel file, 6 ms for 2,304 pixels, the
# largest; larger files, mostly camera photos, are measured as decoded). Six, not four: a
# 1,024-pixel picture, the web's usual size, enlarged twice is 2,048 pixels, and measured as
# decoded (a quarter) it is smaller than its original and cannot be told (docs/BENCHMARKS.md).
_NATIVE_LUMA_UP_TO = 6


class UnreadableImageError(NeardupError, ValueError):
    """A file that is not an image neardup can decode (the message says why)."""


@dataclass(frozen=True)
class DecodedImage:
    """An image ready for hashing and embedding.

    `pixels` is (h, w, 3) uint8 RGB with max(h, w) <= the requested `max_side` (never
    enlarged); `width` and `height` are the full size after EXIF orientation.
    """

    pixels: NDArray[np.uint8]
    width: int
    height: int
    format: str
    noise: float = 0.0  # grey-level deviation in its flattest patches at native size (`_noise`)
    jpeg_quality: int | None = None  # the quality a JPEG was saved at, estimated from its tables
    enlargement: Enlargement | None = None  # what reducing it would lose (None: too small or flat)


def decode(
    source: str | Path | bytes,
    *,
    max_side: int = 384,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    traits: bool = True,
) -> DecodedImage:
    """Decode a file (path or its bytes) to RGB no larger than `max_side` on its long side.

    `traits`: also measure the keeper's traits of the file (`noise`, `enlargement`), which
    decode a moderately large JPEG's luma again at full size; a caller that wants the pixels
    alone (a query, a thumbnail, a region to cut) skips them and gets the same pixels.

    Raises `UnreadableImageError` for anything that is not a decodable image, and for images
    over `max_megapixels` (decompression bombs).
    """
    _setup_pillow()
    if not isinstance(source, bytes):
        try:
            source = Path(source).read_bytes()
        except OSError as e:
            raise UnreadableImageError(f"cannot read: {e.strerror or e}") from e
    if not source:
        raise UnreadableImageError("empty file")
    try:
        with warnings.catch_warnings():
            # our own megapixel limit applies (below); a NaN in a float image is checked for
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            # Pillow's notes on damaged metadata ("Corrupt EXIF data", "Tag data larger than
            # file"): the pixels decode or fail on their own, and a line on the terminal that
            # names no file helps nobody (found by fuzzing)
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(io.BytesIO(source)) as im:
                return _decode_open(im, max_side, max_megapixels, source, traits)
    except UnreadableImageError:
        raise
    except UnidentifiedImageError as e:
        raise UnreadableImageError("not an image neardup can read (unknown format, or a damaged header)") from e
    except (OSError, ValueError, SyntaxError, EOFError, TypeError) as e:
        # TypeError: Pillow's TIFF reader given a rational where an offset belongs (fuzzing)
        raise UnreadableImageError(f"damaged image data ({e})") from e


def _decode_open(im: Image.Image, max_side: int, max_megapixels: float, source: bytes, traits: bool) -> DecodedImage:
    fmt = (im.format or "unknown").upper()
    if fmt == "MPO":
        # a JPEG with more pictures after it (CIPA's multi-picture format: the previews many
        # cameras and phones append, a stereo pair), which Pillow opens as MPO: the first is the
        # photo, a JPEG to its owner and to every rule, and decoded small in the DCT domain
        fmt = "JPEG"
    quality = jpeg_quality(im) if fmt == "JPEG" else None
    w, h = im.size
    if w * h > max_megapixels * 1e6:
        raise UnreadableImageError(
            f"{w}x{h} is {w * h / 1e6:.0f} MP, over the {max_megapixels:g} MP limit"
        )
    if fmt == "JPEG" and max(w, h) > max_side:
        scale = max_side / max(w, h)
        im.draft("RGB", (max(1, round(w * scale)), max(1, round(h * scale))))
    im.seek(0)
    small = _reduced(im, max_side)
    im.load()
    # read once decoded, as `ImageOps.exif_transpose` reads it: Pillow's TIFF reader turns the
    # image itself as it loads (and gives its size turned already) and then drops the tag, so
    # the orientation read before would turn such a TIFF twice and swap its sides back
    orientation = im.getexif().get(0x0112, 1)
    full_w, full_h = (h, w) if orientation in _ROTATED else (w, h)
    # turned without a copy for the upright image most files are (`exif_transpose` copies)
    rgb = _to_rgb(_oriented(small, orientation))
    profile = profile_of(im.info, im.getexif())
    pixels = in_srgb(fit(rgb, max_side), profile)  # converted once reduced, where it costs least
    if not traits:
        return DecodedImage(pixels=pixels, width=full_w, height=full_h, format=fmt, jpeg_quality=quality)
    # the keeper's traits (grain, what reducing would lose) in sRGB's tones, as the pixels
    if fmt == "JPEG" and max(rgb.shape[:2]) < max(w, h) <= _NATIVE_LUMA_UP_TO * max_side:
        luma = in_srgb_tones(_full_size_luma(source), profile)
        noise = _noise(luma, max_side)
        enlarged = enlargement(luma)
        if enlarged is not None and orientation in _ROTATED:  # the luma as stored: its sides swap
            enlarged = enlarged.transposed()
    else:
        toned = in_srgb_tones(rgb, profile)
        noise = _noise(toned, max_side)
        enlarged = enlargement(toned, max(rgb.shape[:2]) / max(w, h))
    return DecodedImage(pixels=pixels, width=full_w, height=full_h, format=fmt, noise=noise,
                        jpeg_quality=quality, enlargement=enlarged)


def decodes_otherwise(path: str | Path, since: int) -> bool | None:
    """Whether `decode` now gives the file at `path` other pixels, sides or traits than the
    `DECODING` version `since` gave it, read from its header alone (a few of a collection's
    files are affected, and reading the header of every one costs far less than decoding it
    again); None when its header cannot be read now."""
    if since >= DECODING:
        return False
    _setup_pillow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(Path(path)) as im:
                fmt = (im.format or "").upper()
                exif = im.getexif()
                # before version 2 a TIFF's orientation, which Pillow's reader applies itself,
                # was applied again; a multi-picture JPEG was decoded whole, as "MPO"
                turned = fmt == "TIFF" and exif.get(0x0112, 1) != 1
                return turned or fmt == "MPO" or converts(profile_of(im.info, exif))
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, UnidentifiedImageError):
        return None


def _full_size_luma(source: bytes) -> NDArray[np.uint8]:
    """A JPEG's grey levels at full size, as stored (orientation does not matter to
    `enlargement` but for which side is which); libjpeg decodes the luma alone."""
    with Image.open(io.BytesIO(source)) as im:
        im.draft("L", im.size)
        return np.asarray(im.convert("L"))


# The luminance quantization table of the JPEG standard (Annex K), which libjpeg scales by
# quality: 5000 / q percent below 50, 200 - 2 q above.
_STANDARD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)


def jpeg_quality(im: Image.Image) -> int | None:
    """The libjpeg quality (1-100) a JPEG's luminance table corresponds to, or None."""
    tables = getattr(im, "quantization", None)
    if not tables or 0 not in tables:
        return None
    scale = 100.0 * float(np.mean(tables[0])) / float(_STANDARD_LUMA.mean())
    return int(round((200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale))


def _noise(pixels: NDArray[np.uint8], max_side: int) -> float:
    """Noise of an image, RGB or grey, at its native size up to _NATIVE_LUMA_UP_TO times
    `max_side` (larger ones, which a JPEG is not decoded at, are shrunk to twice `max_side`):
    the mean grey-level deviation of its flattest tenth of 8 x 8 patches. A grainy copy has
    more than its original (`search.keeper`). At native size: reduced, grain averages away,
    and a grainy copy reads little noisier than an original with some texture.

    Measured on a JPEG's full-size luma where `decode` has it, so a JPEG and a lossless file
    of one picture are measured alike."""
    gray = pixels if pixels.ndim == 2 else cv2.cvtColor(checked_rgb(pixels), cv2.COLOR_RGB2GRAY)
    if max(gray.shape) > _NATIVE_LUMA_UP_TO * max_side:
        gray = cv2.resize(gray, _fitted(gray.shape, 2 * max_side), interpolation=cv2.INTER_AREA)
    height, width = (gray.shape[0] // 8) * 8, (gray.shape[1] // 8) * 8
    if height < 16 or width < 16:
        return 0.0
    # each 8 x 8 patch's sums of x and x² from integral images, exact (integers): a flat
    # patch's variance is a small difference of large squares; 32-bit sums hold 8 MP
    depth = cv2.CV_32S if height * width < 8_000_000 else cv2.CV_64F
    sums, squares = cv2.integral2(np.ascontiguousarray(gray[:height, :width]), sdepth=depth, sqdepth=cv2.CV_64F)
    sums, squares = sums[::8, ::8].astype(np.float64), squares[::8, ::8]
    total = sums[1:, 1:] - sums[:-1, 1:] - sums[1:, :-1] + sums[:-1, :-1]
    total_sq = squares[1:, 1:] - squares[:-1, 1:] - squares[1:, :-1] + squares[:-1, :-1]
    patches = np.sqrt(np.maximum(total_sq / 64 - (total / 64) ** 2, 0.0)).ravel()
    tenth = max(1, len(patches) // 10)
    flattest = np.partition(patches, tenth - 1)[:tenth]
    return round(float(flattest.mean()), 3)


def _reduced(im: Image.Image, max_side: int) -> Image.Image:
    """A very large image (over LARGE_PIXELS, not JPEG: those are decoded small already)
    shrunk by an integer factor right after decoding, before any copy or conversion: a
    144 MP RGBA PNG is 576 MB decoded, and every further full-size step would add as much."""
    w, h = im.size
    factor = max(w, h) // max_side
    if w * h <= LARGE_PIXELS or factor < 2:
        return im
    im.load()
    if im.mode == "P":  # reduce() works on true-colour modes only
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    # in strips: reduce() converts an RGBA image to premultiplied alpha first, a second
    # full-size copy; a strip's copy is small
    step = factor * _STRIP_BOXES
    small = Image.new(im.mode, (-(-w // factor), -(-h // factor)))
    for top in range(0, h, step):
        small.paste(im.crop((0, top, w, min(h, top + step))).reduce(factor), (0, top // factor))
    return small


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _oriented(im: Image.Image, orientation: int) -> Image.Image:
    """`im` turned upright by its EXIF orientation (a reduced image no longer carries EXIF)."""
    return im.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else im


def _to_rgb(im: Image.Image) -> NDArray[np.uint8]:
    """Any Pillow mode -> (h, w, 3) uint8 RGB; transparency flattened on white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        g = np.clip(a * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info
    ) or (im.mode in ("RGB", "L") and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        alpha = rgba[:, :, 3:4] / 255.0
        return (rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def fit(rgb: NDArray[np.uint8], max_side: int) -> NDArray[np.uint8]:
    """(h, w, 3) uint8 RGB shrunk (area interpolation) so its long side is <= max_side."""
    rgb = checked_rgb(rgb)
    if max(rgb.shape[:2]) <= max_side:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, _fitted(rgb.shape, max_side), interpolation=cv2.INTER_AREA)


def _fitted(shape: tuple[int, ...], max_side: int) -> tuple[int, int]:
    """(width, height) of an image of `shape` (h, w, ...) shrunk so its long side is max_side."""
    h, w = shape[:2]
    scale = max_side / max(h, w)
    return max(1, round(w * scale)), max(1, round(h * scale))


_pillow_ready = False


def _setup_pillow() -> None:
    """On first use rather than at import: teach Pillow HEIC/HEIF (pillow-heif), and leave
    the size limit to `decode`'s own megapixel limit (Pillow's would refuse bigger images with
    its own figure before ours is checked)."""
    global _pillow_ready
    if not _pillow_ready:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        Image.MAX_IMAGE_PIXELS = None
        _pillow_ready = True


_EXIF_IFD = 0x8769  # the Exif sub-IFD, where cameras write DateTimeOriginal
_DATE_TIME_ORIGINAL, _DATE_TIME, _MAKE, _MODEL = 0x9003, 0x0132, 0x010F, 0x0110


@dataclass(frozen=True)
class Exif:
    """What a person reviewing copies asks of a photo's header: when it was taken (EXIF
    DateTimeOriginal, else DateTime, as written: "2023:07:14 18:02:11") and with what camera
    (Make and Model). None where the file does not say."""

    taken: str | None
    camera: str | None


def read_exif(path: str | Path) -> Exif:
    """The date and camera recorded in an image file's EXIF header; the pixels are not decoded.

    Raises `UnreadableImageError` when the file cannot be read or is not an image.
    """
    _setup_pillow()
    try:
        with Image.open(Path(path)) as im:
            exif = im.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
    except UnidentifiedImageError as e:
        raise UnreadableImageError("not an image neardup can read (unknown format, or a damaged header)") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise UnreadableImageError(f"cannot read: {getattr(e, 'strerror', None) or e}") from e
    taken = _text(sub.get(_DATE_TIME_ORIGINAL)) or _text(exif.get(_DATE_TIME))
    make, model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
    if make and model and model.lower().startswith(make.lower()):
        make = None  # "Canon" + "Canon EOS 5D" reads as the model alone
    camera = " ".join(p for p in (make, model) if p) or None
    return Exif(taken=taken, camera=camera)


def _text(value: object) -> str | None:
    """An EXIF ASCII value as clean text (cameras pad with NULs and spaces), or None."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "").strip() or None
