"""decode(): every format and mode to 8-bit RGB, EXIF orientation, limits, clear errors."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from neardup.indexer.decode import UnreadableImageError, _noise, decode, fit

from conftest import DATA, PHOTOS, photo, scene


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF"])
def test_every_format_decodes_to_rgb_close_to_the_source(fmt: str) -> None:
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    rgb = scene(1, (200, 150))
    kw = {"quality": 95} if fmt in ("JPEG", "WEBP", "HEIF") else {}
    out = decode(_encode(Image.fromarray(rgb), fmt, **kw))
    assert out.pixels.shape == (150, 200, 3) and out.pixels.dtype == np.uint8
    assert (out.width, out.height, out.format) == (200, 150, fmt)
    tolerance = 40 if fmt == "GIF" else 12  # GIF is palettised to 256 colours
    assert np.abs(out.pixels.astype(int) - rgb).mean() < tolerance


def test_gif_gives_its_first_frame() -> None:
    frames = [Image.fromarray(np.full((40, 40, 3), v, np.uint8)) for v in (30, 220)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert abs(int(decode(buf.getvalue()).pixels.mean()) - 30) <= 2


# where the stored image's top-left corner shows once turned upright, by EXIF orientation
_CORNER = {1: "top-left", 2: "top-right", 3: "bottom-right", 4: "bottom-left",
           5: "top-left", 6: "top-right", 7: "bottom-right", 8: "bottom-left"}


def _brightest_corner(rgb: np.ndarray) -> str:
    h, w = rgb.shape[0] // 4, rgb.shape[1] // 4
    corners = {"top-left": rgb[:h, :w], "top-right": rgb[:h, -w:],
               "bottom-left": rgb[-h:, :w], "bottom-right": rgb[-h:, -w:]}
    return max(corners, key=lambda k: corners[k].mean())


def _marked(width: int, height: int, orientation: int) -> Image.Image:
    """A black image, white in its stored top-left corner, that says how to turn it upright."""
    grey = np.zeros((height, width), np.uint8)
    grey[: height // 3, : width // 3] = 255
    im = Image.fromarray(grey)
    im.getexif()[0x0112] = orientation
    return im


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(fmt: str, orientation: int) -> None:
    im = _marked(60, 40, orientation)
    out = decode(_encode(im, fmt, exif=im.getexif(), **({"quality": 95} if fmt == "JPEG" else {})))
    size = (40, 60) if orientation >= 5 else (60, 40)
    assert (out.width, out.height) == size
    assert out.pixels.shape[:2] == (size[1], size[0])
    assert _brightest_corner(out.pixels) == _CORNER[orientation]


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
@pytest.mark.parametrize("orientation", [1, 2, 6, 7])
def test_exif_orientation_is_applied_to_an_image_too_large_to_decode_whole(fmt: str, orientation: int) -> None:
    # over 16 MP, reduced as it is decoded; Pillow turns a TIFF itself as it loads it, and
    # that TIFF was turned a second time here, its sides reported unturned
    im = _marked(4200, 4000, orientation)
    out = decode(_encode(im, fmt, exif=im.getexif()))
    size = (4000, 4200) if orientation >= 5 else (4200, 4000)
    assert (out.width, out.height) == size
    assert out.pixels.shape[:2] == ((384, 366) if orientation >= 5 else (366, 384))
    assert _brightest_corner(out.pixels) == _CORNER[orientation]


def test_a_jpeg_with_pictures_after_it_decodes_as_the_jpeg_it_starts_with() -> None:
    # a camera's JPEG with a preview appended (CIPA multi-picture format), which Pillow opens
    # as MPO: read whole before, eight times slower at 12 MP, of no JPEG quality to the keeper
    rgb = cv2.resize(photo("coffee"), (1600, 1200), interpolation=cv2.INTER_CUBIC)
    preview = Image.fromarray(rgb[::4, ::4].copy())
    multi = _encode(Image.fromarray(rgb), "MPO", save_all=True, append_images=[preview], quality=90)
    assert Image.open(io.BytesIO(multi)).format == "MPO"
    plain = decode(_encode(Image.fromarray(rgb), "JPEG", quality=90))
    out = decode(multi)
    assert (out.format, out.jpeg_quality, out.width, out.height) == ("JPEG", 90, 1600, 1200)
    assert np.array_equal(out.pixels, plain.pixels)  # decoded small in the DCT domain, as a JPEG
    assert (out.noise, out.enlargement) == (plain.noise, plain.enlargement)


def test_alpha_is_flattened_on_white() -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:, :10] = (255, 0, 0, 255)  # opaque red left half, transparent right half
    out = decode(_encode(Image.fromarray(rgba, "RGBA"), "PNG")).pixels
    assert tuple(out[5, 2]) == (255, 0, 0)
    assert tuple(out[5, 15]) == (255, 255, 255)


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    out = decode(_encode(Image.fromarray(ramp), "PNG")).pixels
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255
    assert 120 <= out[0, 32, 0] <= 135  # mid-grey, not saturated


def test_cmyk_and_grayscale_become_rgb() -> None:
    rgb = scene(2, (64, 48))
    cmyk = decode(_encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)).pixels
    assert cmyk.shape == (48, 64, 3) and np.abs(cmyk.astype(int) - rgb).mean() < 20
    gray = decode(_encode(Image.fromarray(rgb).convert("L"), "PNG")).pixels
    assert gray.shape == (48, 64, 3) and (gray[..., 0] == gray[..., 2]).all()


def test_large_jpeg_is_reduced_to_max_side_and_matches_a_full_decode() -> None:
    big = np.asarray(Image.open(DATA / "coffee.jpg").convert("RGB").resize((2400, 1600)))
    data = _encode(Image.fromarray(big), "JPEG", quality=92)
    reduced = decode(data, max_side=300)
    assert max(reduced.pixels.shape[:2]) == 300 and (reduced.width, reduced.height) == (2400, 1600)
    full = fit(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), 300)
    assert reduced.pixels.shape == full.shape
    assert np.abs(reduced.pixels.astype(int) - full).mean() < 4


def test_pixels_alone_are_the_pixels_a_decode_with_the_keepers_traits_gives() -> None:
    """A 1,200-pixel JPEG (its luma decoded again at full size for the traits) and a PNG: without
    the traits, the same pixels, size, format and quality, and no noise or enlargement read."""
    rgb = np.asarray(Image.open(DATA / "coffee.jpg").convert("RGB").resize((1200, 800)))
    for data in (_encode(Image.fromarray(rgb), "JPEG", quality=90), _encode(Image.fromarray(rgb), "PNG")):
        full, alone = decode(data, max_side=384), decode(data, max_side=384, traits=False)
        assert np.array_equal(full.pixels, alone.pixels)
        assert (full.width, full.height, full.format, full.jpeg_quality) == (
            alone.width, alone.height, alone.format, alone.jpeg_quality)
        assert full.noise > 0 and full.enlargement is not None
        assert alone.noise == 0.0 and alone.enlargement is None


def test_small_images_are_never_enlarged() -> None:
    assert decode(_encode(Image.fromarray(scene(3, (50, 30))), "PNG"), max_side=384).pixels.shape == (30, 50, 3)


def test_megapixel_limit_rejects_decompression_bombs() -> None:
    data = _encode(Image.new("L", (3000, 3000)), "PNG")
    with pytest.raises(UnreadableImageError, match="9 MP, over the 5 MP limit"):
        decode(data, max_megapixels=5)


@pytest.mark.parametrize("payload", [b"", b"not an image at all", _encode(Image.new("RGB", (50, 50)), "JPEG")[:200]])
def test_garbage_and_truncated_files_raise_unreadable(payload: bytes) -> None:
    with pytest.raises(UnreadableImageError):
        decode(payload)


def test_path_and_bytes_decode_identically(tmp_path: Path) -> None:
    path = DATA / "chelsea.jpg"
    assert np.array_equal(decode(path).pixels, decode(path.read_bytes()).pixels)


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImageError):
        decode(tmp_path / "nope.jpg")


@pytest.mark.parametrize("quality", [20, 50, 75, 90, 98])
def test_a_jpeg_tells_the_quality_it_was_saved_at(quality: int) -> None:
    out = decode(_encode(Image.fromarray(scene(2, (160, 120))), "JPEG", quality=quality))
    assert out.jpeg_quality is not None and abs(out.jpeg_quality - quality) <= 1


def test_a_lossless_file_has_no_jpeg_quality() -> None:
    assert decode(_encode(Image.fromarray(scene(2, (160, 120))), "PNG")).jpeg_quality is None


@pytest.mark.parametrize("name", PHOTOS)
def test_noise_is_the_deviation_of_the_flattest_patches(name: str) -> None:
    """`_noise`'s figure, by its definition in plain NumPy: the mean deviation of the flattest
    tenth of 8 x 8 patches, on a photo and on a grainy copy of it (which must read noisier)."""
    rgb = photo(name)
    grainy = np.clip(rgb + np.random.default_rng(0).normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    for pixels in (rgb, grainy):
        gray = cv2.cvtColor(fit(pixels, 768), cv2.COLOR_RGB2GRAY).astype(np.float32)
        h, w = (gray.shape[0] // 8) * 8, (gray.shape[1] // 8) * 8
        patches = np.sort(gray[:h, :w].reshape(h // 8, 8, w // 8, 8).std(axis=(1, 3)).ravel())
        assert _noise(pixels, 384) == pytest.approx(round(float(patches[: len(patches) // 10].mean()), 3), abs=0.011)
    assert _noise(grainy, 384) > 2 * _noise(rgb, 384)


def _grainy_pair(name: str, side: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """A photo enlarged to `side` pixels, and a copy of it with grain of 6 grey levels added."""
    rgb = photo(name)
    f = side / max(rgb.shape[:2])
    big = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    return big, np.clip(big + np.random.default_rng(0).normal(0, 6, big.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", PHOTOS)
def test_a_jpeg_with_added_grain_reads_at_least_twice_as_noisy_at_its_native_size(name: str) -> None:
    """A 1,000-pixel JPEG is decoded at half size for the features, where grain of 6 levels
    averages down to little more than the texture of its original; measured on the full-size
    luma it reads at least twice as noisy (the keeper's step: log2(1 + noise) one higher)."""
    original, grainy = _grainy_pair(name)
    plain = decode(_encode(Image.fromarray(original), "JPEG", quality=92), max_side=384)
    noisy = decode(_encode(Image.fromarray(grainy), "JPEG", quality=96), max_side=384)
    assert max(plain.pixels.shape[:2]) == 384  # decoded reduced
    assert np.log2(1 + noisy.noise) - np.log2(1 + plain.noise) > 1.0, (plain.noise, noisy.noise)


def test_a_jpeg_and_a_png_of_one_picture_read_the_same_noise() -> None:
    original, grainy = _grainy_pair("coffee")
    for rgb in (original, grainy):
        jpeg = decode(_encode(Image.fromarray(rgb), "JPEG", quality=98), max_side=384).noise
        png = decode(_encode(Image.fromarray(rgb), "PNG"), max_side=384).noise
        assert jpeg == pytest.approx(png, rel=0.15, abs=0.1)
