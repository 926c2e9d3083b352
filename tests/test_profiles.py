"""Colour profiles: a file saved in a wider RGB colour space with its ICC profile decodes to
the colours of its sRGB copy, is grouped with it and keeps over it; sRGB, damaged and non-RGB
profiles leave the pixels as a file without a profile gives them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import neardup
from neardup.indexer.decode import decode
from neardup.indexer.profiles import ADOBE_RGB, DISPLAY_P3, matrix_profile

from conftest import photo

_WIDE = {"Adobe RGB": matrix_profile(ADOBE_RGB, 563 / 256), "Display P3": matrix_profile(DISPLAY_P3, None)}
_SRGB = ImageCms.createProfile("sRGB")


def _encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _in(profile: bytes, im: Image.Image) -> Image.Image:
    """`im` (sRGB) converted into the colour space of `profile`, as an editor saves it; the
    profile is embedded only where a test passes it (Pillow would save the one it attaches)."""
    out = ImageCms.profileToProfile(im, _SRGB, ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                                    renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    out.info.pop("icc_profile", None)
    return out


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def _nebula(size: int = 320) -> Image.Image:
    """Saturated clouds of colour on black with stars, as an astronomy photo: the kind of
    picture whose colours a wider colour space moves most."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size, 3))
    for _ in range(3):
        cy, cx, s = *rng.uniform(60, 260, 2), rng.uniform(20, 60)
        colour = rng.choice([[0, 0.8, 1.0], [0.1, 0.3, 1.0], [1.0, 0.1, 0.4], [0.2, 1.0, 0.3]])
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))[..., None] * colour
    for _ in range(80):
        y, x = rng.integers(2, size - 2, 2)
        img[y - 1:y + 2, x - 1:x + 2] = rng.uniform(0.6, 1)
    return Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("space", sorted(_WIDE))
@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP", "JPEG"])
def test_a_picture_saved_in_a_wider_colour_space_decodes_to_the_colours_of_its_srgb_copy(space, fmt) -> None:
    srgb = Image.fromarray(photo("coffee"))
    wide = _in(_WIDE[space], srgb)
    kw = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    expected = decode(_encoded(srgb, fmt, **kw)).pixels
    read_as_is = decode(_encoded(wide, fmt, **kw)).pixels
    converted = decode(_encoded(wide, fmt, icc_profile=_WIDE[space], **kw)).pixels
    assert _gap(read_as_is, expected) > 4  # what the profile is there to undo
    assert _gap(converted, expected) < 1.5


@pytest.mark.parametrize("profile", [ImageCms.ImageCmsProfile(_SRGB).tobytes(),
                                     matrix_profile(((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971),
                                                     (0.1431, 0.0606, 0.7141)), None, "another sRGB")],
                         ids=["LittleCMS sRGB", "another sRGB"])
def test_an_srgb_profile_leaves_the_pixels_as_a_file_without_a_profile(profile: bytes) -> None:
    im = Image.fromarray(photo("chelsea"))
    assert np.array_equal(decode(_encoded(im, "PNG", icc_profile=profile)).pixels, decode(_encoded(im, "PNG")).pixels)


@pytest.mark.parametrize("profile", [b"not a profile", _WIDE["Adobe RGB"][:200],
                                     ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()],
                         ids=["garbage", "truncated", "not RGB"])
def test_a_damaged_or_foreign_profile_is_ignored(profile: bytes) -> None:
    im = Image.fromarray(photo("rocket"))
    out = decode(_encoded(im, "PNG", icc_profile=profile))
    assert np.array_equal(out.pixels, decode(_encoded(im, "PNG")).pixels)


@pytest.mark.parametrize("embedder", ["cnn", "none"])
def test_an_adobe_rgb_original_and_its_srgb_export_are_one_group(tmp_path: Path, embedder: str) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    copy = _nebula()
    copy.save(folder / "export.png")
    _in(_WIDE["Adobe RGB"], copy).save(folder / "original.png", icc_profile=_WIDE["Adobe RGB"])
    cat = neardup.open(tmp_path / "c.db", create=True, embedder=embedder)
    cat.index([folder], workers=1)
    groups = cat.duplicates()
    assert [sorted(Path(p).stem for p in g.members) for g in groups] == [["export", "original"]]


def grainy_adobe_rgb_pair(folder: Path) -> None:
    """A grainy nebula in `folder`: "original.jpg" saved in Adobe RGB (quality 95, its profile
    embedded) beside "export.jpg", its sRGB export (quality 85)."""
    rng = np.random.default_rng(1)
    grainy = np.asarray(_nebula(), dtype=np.float64) + rng.normal(0, 1.2, (320, 320, 3))
    picture = Image.fromarray(np.clip(grainy + 0.5, 0, 255).astype(np.uint8))
    folder.mkdir(parents=True, exist_ok=True)
    picture.save(folder / "export.jpg", quality=85)
    _in(_WIDE["Adobe RGB"], picture).save(folder / "original.jpg", quality=95, icc_profile=_WIDE["Adobe RGB"])


def test_an_adobe_rgb_original_keeps_over_its_srgb_export_though_its_tones_stretch_dark_grain(tmp_path: Path) -> None:
    # Adobe RGB's plain gamma spreads the grain of a black sky over three times the levels
    # sRGB's curve does: measured as stored, the original read as the grainier copy
    folder = tmp_path / "photos"
    grainy_adobe_rgb_pair(folder)
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="none")
    cat.index([folder], workers=1)
    [group] = cat.duplicates()
    assert Path(group.keeper).stem == "original", group.reason


def _camera_exif(colour_space: int, interop_index: str | None) -> bytes:
    """EXIF as a camera writes it: the colour space (1 sRGB, 0xFFFF uncalibrated) and the
    DCF interoperability index (R98 sRGB, R03 the Adobe RGB option file)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA001] = colour_space
    if interop_index is not None:
        exif.get_ifd(0x8769)[0xA005] = {0x0001: interop_index}
    return exif.tobytes()


def test_a_camera_s_adobe_rgb_jpeg_without_a_profile_decodes_to_the_colours_of_its_srgb_copy() -> None:
    # cameras set to Adobe RGB mostly embed no ICC profile and say so in their EXIF
    srgb = Image.fromarray(photo("coffee"))
    wide = _in(_WIDE["Adobe RGB"], srgb)
    expected = decode(_encoded(srgb, "JPEG", quality=95)).pixels
    said = decode(_encoded(wide, "JPEG", quality=95, exif=_camera_exif(0xFFFF, "R03"))).pixels
    assert _gap(said, expected) < 1.5
    for unsaid in (_camera_exif(1, "R98"), _camera_exif(0xFFFF, None), _camera_exif(0xFFFF, "R98")):
        assert _gap(decode(_encoded(wide, "JPEG", quality=95, exif=unsaid)).pixels, expected) > 4


def test_a_heif_that_names_display_p3_in_its_colour_description_alone_decodes_to_srgb() -> None:
    # libheif writes no ICC profile unless asked: the colour description (nclx) is all it says
    from pillow_heif import register_heif_opener

    register_heif_opener()
    srgb = Image.fromarray(photo("coffee"))
    wide = _in(_WIDE["Display P3"], srgb)
    as_srgb = {"color_primaries": 1, "transfer_characteristics": 13, "matrix_coefficients": 6, "full_range_flag": 1}
    as_p3 = dict(as_srgb, color_primaries=12)
    expected = decode(_encoded(srgb, "HEIF", quality=95, nclx_profile=as_srgb)).pixels
    said = decode(_encoded(wide, "HEIF", quality=95, nclx_profile=as_p3)).pixels
    unsaid = decode(_encoded(wide, "HEIF", quality=95, nclx_profile=as_srgb)).pixels
    assert _gap(unsaid, expected) > 2.5
    assert _gap(said, expected) < 1.5
