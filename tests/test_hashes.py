"""Tests for neardup.indexer.hashes: golden values, the near-duplicate contract, PDQ
quality, and properties of the shared helpers."""

from __future__ import annotations

import functools
import itertools

import cv2
import images
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neardup.indexer.hashes import (
    HASHES,
    InvalidImageError,
    UnknownHashError,
    compute_hashes,
    dihedral,
    hamming,
    luma,
    pdq,
    phash,
    phash256,
    quality,
    to_gray,
)

# Exact hashes (hex of the packed bits) of fixed inputs, to catch silent drift.
GOLDEN = {
    "chelsea": {
        "ahash": "c2c08e4b08a37767",
        "dhash": "54145a9aa94b878f",
        "pdq": "bffccdbe8c44a26242912fc4bdb34823c2cba5946ed471916a85b80f84cad7fa",
        "phash": "bbcd8ca2422fbd48",
        "phash256": "bff4cdbe8c44a26242912fc4bdb74820c2cba5946ed471917a85ba0f84cad7fa",
        "whash": "c480f0f7550bcf8b",
        "colorhash": "8ce8ef8000000000",
    },
    "astronaut": {
        "ahash": "7f775fc744f8a060",
        "dhash": "dd8dbd0d9d3295a6",
        "pdq": "24ed993faa1f64507b20bb738136982b2c15f64a6bc539e394a36a15cf58f4b4",
        "phash": "2499aa647bbf9198",
        "phash256": "24ed993faa1f64507b20bb638136982b6c15f64a6bc539e694a36a15cf58f4b4",
        "whash": "8aaae2ea870f0d3e",
        "colorhash": "eceeee8000008808",
    },
    "shapes": {
        "ahash": "1f1f0f4fc18191e1",
        "dhash": "f8f8989b033323c3",
        "pdq": "23731d89fc87c27624623f29d8ff58c40446a46f9bf0cf193c0f06749f62f90b",
        "phash": "231dfcc2263fd858",
        "phash256": "23731d89fc87c27624623f29d8ff58c48446a4ef9bf0cf193c0d0674df62d90a",
        "whash": "b21053ff6fd07111",
        "colorhash": "00c0c00ec8eeec8e",
    },
}

# Unrelated images must be at least this far apart: the 1% quantile of distances between
# the 808,356 distinct pairs of the corpus the thresholds were measured on (colorhash:
# between its colourful images), so no test pair is closer than 99% of unrelated pairs.
FAR = {
    "ahash": 5, "dhash": 11, "pdq": 104, "phash": 20, "phash256": 104, "whash": 12, "colorhash": 4,
}

# Hashes that also keep a 1% crop of every side within threshold (>= 99.7% of the corpus).
CROP_ROBUST = ("pdq", "phash256", "colorhash")

EDITS = {
    "jpeg-q50": images.jpeg,
    "resize-50%": lambda image: images.scaled(image, 0.5),
    "resize-200%": lambda image: images.scaled(image, 2.0),
    "brightness+10": images.brightened,
}


@functools.cache
def sample(name: str) -> np.ndarray:
    """The contract's images: the real test photos and three synthetic scenes."""
    if name.startswith("shapes"):
        return images.shapes(240, 320, seed=int(name.removeprefix("shapes")))
    return images.photo(name)


SAMPLES = (*images.PHOTOS, "shapes1", "shapes2", "shapes3")


@pytest.mark.parametrize("image_name", GOLDEN)
def test_golden_hashes(image_name):
    image = sample("shapes1" if image_name == "shapes" else image_name)
    got = {name: HASHES[name].compute(image).tobytes().hex() for name in GOLDEN[image_name]}
    assert got == GOLDEN[image_name]


def test_compute_hashes_equals_each_hash_alone():
    image = sample("coffee")
    together = compute_hashes(image, HASHES)
    assert list(together) == list(HASHES)
    for name, spec in HASHES.items():
        np.testing.assert_array_equal(together[name], spec.compute(image))


def test_hashes_leave_their_input_alone_and_accept_views():
    image = sample("rocket")[::-1, 10:]  # a read-only, non-contiguous view
    assert not image.flags.writeable and not image.flags.c_contiguous
    from_view = compute_hashes(image, HASHES)
    from_copy = compute_hashes(image.copy(), HASHES)
    for name in HASHES:
        np.testing.assert_array_equal(from_view[name], from_copy[name])


@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize("name", HASHES)
def test_mild_edits_stay_within_threshold(name, edit):
    spec = HASHES[name]
    distances = {
        s: hamming(spec.compute(sample(s)), spec.compute(EDITS[edit](sample(s)))) for s in SAMPLES
    }
    assert max(distances.values()) <= spec.threshold, distances


@pytest.mark.parametrize("name", CROP_ROBUST)
def test_small_crop_stays_within_threshold(name):
    spec = HASHES[name]
    distances = {
        s: hamming(spec.compute(sample(s)), spec.compute(images.cropped(sample(s))))
        for s in SAMPLES
    }
    assert max(distances.values()) <= spec.threshold, distances


# The turns `dihedral` guesses, in its order, as NumPy makes them of an (H, W, 3) array.
_TURNS = (lambda a: a[:, ::-1], lambda a: a[::-1], lambda a: a[::-1, ::-1], lambda a: a.transpose(1, 0, 2),
          lambda a: np.rot90(a, -1), lambda a: np.rot90(a), lambda a: a.transpose(1, 0, 2)[::-1, ::-1])


@pytest.mark.parametrize("compute", [lambda rgb: pdq(rgb)[0], phash256], ids=["pdq", "phash256"])
@pytest.mark.parametrize("name", SAMPLES)
def test_the_turns_guessed_from_a_hash_are_near_the_hashes_of_the_turned_image(name, compute):
    """Each guessed turn lies near the hash of that turn of the image (the medians of the two
    coefficient sets differ a little) and far from the other turns' hashes."""
    rgb = sample(name)
    guessed = dihedral(compute(rgb)[None])[0]
    actual = [compute(np.ascontiguousarray(turn(rgb))) for turn in _TURNS]
    for i, guess in enumerate(guessed):
        distances = [hamming(guess, h) for h in actual]
        assert distances[i] <= 24, (i, distances)
        assert min(d for j, d in enumerate(distances) if j != i) >= 64, (i, distances)


@pytest.mark.parametrize("name", HASHES)
def test_unrelated_images_stay_far_apart(name):
    spec = HASHES[name]
    assert FAR[name] > spec.threshold
    hashes = {s: spec.compute(sample(s)) for s in SAMPLES}
    distances = {
        (a, b): hamming(hashes[a], hashes[b]) for a, b in itertools.combinations(SAMPLES, 2)
    }
    assert min(distances.values()) >= FAR[name], distances


@pytest.mark.parametrize(
    "image",
    [
        images.flat(200, 300),
        images.noisy_flat(200, 300),
        images.noisy_flat(200, 300, sigma=4),
        images.gradient(200, 300),
    ],
    ids=["flat-grey", "faint-noise", "noise-sigma4", "smooth-gradient"],
)
def test_featureless_images_get_low_quality(image):
    assert quality(image) < 50


@pytest.mark.parametrize("name", SAMPLES)
def test_photos_and_scenes_get_high_quality(name):
    assert quality(sample(name)) >= 50


def test_quality_is_pdqs_score():
    image = sample("rocket")
    assert pdq(image)[1] == quality(image)
    assert pdq(image)[0].tobytes() == HASHES["pdq"].compute(image).tobytes()


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (1, 2000), (2000, 3), (7, 5), (64, 64), (65, 63)],
    ids=lambda shape: "x".join(map(str, shape)),
)
def test_any_size_hashes_to_the_spec_shape(shape):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    for name, bits in compute_hashes(image, HASHES).items():
        assert bits.dtype == np.uint8 and bits.shape == (HASHES[name].bits // 8,), name
    assert 0 <= quality(image) <= 100


def test_grey_looking_image_has_no_colour_and_hashes_like_its_luma():
    grey = images.photo("chelsea").mean(axis=2).round().astype(np.uint8)
    as_rgb = np.repeat(grey[..., None], 3, axis=2)
    assert HASHES["colorhash"].compute(as_rgb)[2:].tobytes() == bytes(6)  # hue bins empty
    expected = cv2.resize(grey.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(to_gray(as_rgb, (32, 32)), expected, atol=1e-3)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((4, 4, 3), np.float32),
        np.zeros((0, 4, 3), np.uint8),
        [[0, 0, 0]],
    ],
    ids=["2-D", "RGBA", "float", "empty", "list"],
)
def test_non_rgb_input_is_refused_with_what_was_received(bad):
    for spec in HASHES.values():
        with pytest.raises(InvalidImageError, match="expected an \\(H, W, 3\\) uint8 RGB image"):
            spec.compute(bad)


def test_phash_sizes_and_unknown_names_are_refused():
    image = sample("coffee")
    assert phash(image, bits=256).tobytes() == HASHES["phash256"].compute(image).tobytes()
    with pytest.raises(ValueError, match="64 or 256"):
        phash(image, bits=128)
    with pytest.raises(UnknownHashError, match="mhash"):
        compute_hashes(image, ["phash", "mhash"])


packed = st.sampled_from([8, 32]).flatmap(lambda n: st.tuples(*[arrays(np.uint8, n)] * 3))


@given(packed)
def test_hamming_is_a_metric_on_packed_bits(abc):
    a, b, c = abc
    assert hamming(a, a) == 0
    differing = int(np.count_nonzero(np.unpackbits(a) != np.unpackbits(b)))
    assert hamming(a, b) == hamming(b, a) == differing
    assert hamming(a, c) <= hamming(a, b) + hamming(b, c)


def test_hamming_refuses_hashes_of_different_lengths():
    with pytest.raises(ValueError, match="differ in shape"):
        hamming(np.zeros(8, np.uint8), np.zeros(32, np.uint8))


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    size=st.sampled_from([(8, 8), (9, 8), (32, 32), (64, 64), (17, 5)]),
    seed=st.integers(0, 2**32 - 1),
)
def test_to_gray_equals_opencv_area_resize_of_luma(height, width, size, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    expected = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    got = to_gray(rgb, size)
    assert got.dtype == np.float32 and got.shape == (size[1], size[0])
    np.testing.assert_allclose(got, expected, atol=1e-3)
    np.testing.assert_array_equal(to_gray(luma(rgb), size), got)
