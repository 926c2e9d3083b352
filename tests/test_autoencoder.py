"""Autoencoder embedder: config checks, training (loss, early stopping, progress, determinism),
the embedding contract, the model file (round trip, checksum, missing file) and the two charts.

Everything trains on 32 seeded synthetic scenes at 32×32 with a 16-value bottleneck, for a few
epochs: these tests check the machinery, not retrieval quality (the module docstring records
that, measured on the real corpus).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from images import gradient, shapes  # noqa: E402

from neardup.indexer.autoencoder import (  # noqa: E402
    MIN_IMAGES,
    AutoencoderConfig,
    AutoencoderEmbedder,
    ModelFileError,
    TooFewImagesError,
    plot_history,
    reconstruction_grid,
    source_size,
    train_autoencoder,
)
from neardup.indexer.embed import resize_square  # noqa: E402
from neardup.indexer.pixels import InvalidImageError  # noqa: E402

CONFIG = AutoencoderConfig(dim=16, image_size=32, epochs=3, batch_size=8)
SIDE = source_size(CONFIG)
COUNT = 32


@pytest.fixture(scope="module")
def collection() -> np.ndarray:
    """(32, SIDE, SIDE, 3) uint8: seeded scenes of discs and rectangles on smooth backgrounds."""
    return np.stack([shapes(SIDE, SIDE, seed=seed) for seed in range(COUNT)])


@pytest.fixture(scope="module")
def trained(collection):
    """The autoencoder trained with CONFIG, its result, and the progress reports it sent."""
    reports = []
    embedder, result = train_autoencoder(collection, CONFIG, progress=reports.append)
    return embedder, result, reports


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dim", 0),
        ("dim", 1.5),
        ("image_size", 40),
        ("image_size", 0),
        ("epochs", 0),
        ("batch_size", 0),
        ("seed", -1),
        ("denoising", "yes"),
        ("validation", 0.0),
        ("validation", 1.0),
        ("patience", 0),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        AutoencoderConfig(**{field: value})


def test_source_size_leaves_room_for_crops():
    assert source_size(AutoencoderConfig()) == 80
    assert source_size(CONFIG) == 40


def test_training_needs_enough_images(collection):
    few = collection[: MIN_IMAGES - 1]
    with pytest.raises(TooFewImagesError, match=f"at least {MIN_IMAGES} images, got {len(few)}"):
        train_autoencoder(few, CONFIG)


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((COUNT, 32, 32, 3), np.uint8),  # the input size, not the source size
        np.zeros((COUNT, SIDE, SIDE, 3), np.float32),
        np.zeros((COUNT, SIDE, SIDE), np.uint8),
    ],
    ids=["wrong-side", "float", "grey"],
)
def test_training_rejects_wrong_shape(images):
    with pytest.raises(InvalidImageError, match=f"expected \\(N, {SIDE}, {SIDE}, 3\\) uint8"):
        train_autoencoder(images, CONFIG)


def test_progress_reports_every_epoch_in_order(trained):
    _, result, reports = trained
    assert [r.epoch for r in reports] == list(range(1, len(result.history) + 1))
    assert all(r.epochs == CONFIG.epochs and r.seconds > 0 for r in reports)
    assert [(r.loss, r.val_loss) for r in reports] == list(result.history)


def test_result_describes_the_split_and_run(trained):
    _, result, _ = trained
    assert (result.train_count, result.val_count) == (COUNT - 3, 3)  # round(32 × 0.1) held out
    assert len(result.history) == CONFIG.epochs and not result.stopped_early
    assert result.best_epoch == int(np.argmin([val for _, val in result.history])) + 1
    assert result.seconds > 0


def test_embed_gives_unit_float32_vectors(trained, collection):
    embedder, _, _ = trained
    vectors = embedder.embed(list(collection[:5]))
    assert vectors.shape == (5, CONFIG.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert embedder.embed([]).shape == (0, CONFIG.dim)


def test_embed_takes_any_size_through_resize_square(trained):
    embedder, _, _ = trained
    images = [shapes(17, 93, seed=40), gradient(300, 200), shapes(1, 1, seed=41)]
    vectors = embedder.embed(images)
    assert vectors.shape == (3, CONFIG.dim) and np.isfinite(vectors).all()
    squares = embedder.embed([resize_square(image, CONFIG.image_size) for image in images])
    np.testing.assert_array_equal(vectors, squares)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((32, 32), np.uint8),
        np.zeros((32, 32, 4), np.uint8),
        np.zeros((32, 32, 3), np.float32),
    ],
    ids=["grey", "rgba", "float"],
)
def test_embed_rejects_what_is_not_rgb_uint8(trained, image):
    embedder, _, _ = trained
    with pytest.raises(InvalidImageError, match="image 1"):
        embedder.embed([shapes(32, 32, seed=0), image])


def test_reconstruct_gives_input_sized_images(trained, collection):
    embedder, _, _ = trained
    redrawn = embedder.reconstruct(list(collection[:3]))
    assert redrawn.shape == (3, 32, 32, 3) and redrawn.dtype == np.uint8


def test_training_lowers_the_loss(collection):
    # An untrained decoder draws mid-grey; these scenes, darkened to [0, 63], are far from it,
    # so a network that learns anything must cut the error (measured: 0.144 -> 0.018).
    config = AutoencoderConfig(
        dim=16, image_size=32, epochs=4, batch_size=8, denoising=False, learning_rate=3e-3
    )
    _, result = train_autoencoder(collection // 4, config)
    first, last = result.history[0][0], result.history[-1][0]
    assert last < 0.5 * first


def test_early_stopping_when_validation_cannot_improve(collection):
    # A learning rate far below float32 resolution leaves every weight as it was: the
    # validation loss repeats exactly, so epoch 1 stays best and patience runs out.
    config = AutoencoderConfig(dim=16, image_size=32, epochs=6, batch_size=16, patience=2,
                               learning_rate=1e-30)
    reports = []
    _, result = train_autoencoder(collection, config, progress=reports.append)
    val = [v for _, v in result.history]
    assert val == [val[0]] * len(val)
    assert result.stopped_early and len(result.history) == 3 < config.epochs
    assert result.best_epoch == int(np.argmin(val)) + 1 == 1
    assert len(reports) == 3


def test_training_is_deterministic_per_seed(trained, collection):
    embedder, _, _ = trained
    probe = list(collection[:8])
    again, _ = train_autoencoder(collection, CONFIG)
    np.testing.assert_allclose(again.embed(probe), embedder.embed(probe), atol=1e-5)
    other, _ = train_autoencoder(collection, AutoencoderConfig(**{**vars(CONFIG), "seed": 1}))
    assert np.abs(other.embed(probe) - embedder.embed(probe)).max() > 1e-2


def test_denoising_training_is_deterministic_and_differs_from_plain(trained, collection):
    embedder, _, _ = trained
    probe = list(collection[:8])
    noisy = AutoencoderConfig(**{**vars(CONFIG), "denoising": True})
    first, _ = train_autoencoder(collection, noisy)
    second, _ = train_autoencoder(collection, noisy)
    np.testing.assert_allclose(first.embed(probe), second.embed(probe), atol=1e-5)
    assert np.abs(first.embed(probe) - embedder.embed(probe)).max() > 1e-3  # the inputs were corrupted


def test_save_and_load_round_trip(trained, collection, tmp_path):
    embedder, _, _ = trained
    path = tmp_path / "autoencoder.npz"
    digest = embedder.save(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["autoencoder.npz"]  # no temporary left
    loaded = AutoencoderEmbedder.load(path, version=3, sha256=digest)
    assert (loaded.config, loaded.version, loaded.dim, loaded.input_size) == (CONFIG, 3, 16, 32)
    probe = list(collection[:8])
    np.testing.assert_array_equal(loaded.embed(probe), embedder.embed(probe))


def test_load_refuses_a_changed_file(trained, tmp_path):
    embedder, _, _ = trained
    path = tmp_path / "autoencoder.npz"
    embedder.save(path)
    with pytest.raises(ModelFileError, match="changed since training"):
        AutoencoderEmbedder.load(path, sha256="0" * 64)


def test_load_explains_a_missing_or_broken_file(tmp_path):
    missing = tmp_path / "gone.npz"
    with pytest.raises(ModelFileError, match="gone.npz.*retrain: neardup train autoencoder"):
        AutoencoderEmbedder.load(missing)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="broken.npz.*not a readable autoencoder"):
        AutoencoderEmbedder.load(broken)


def test_plot_history_writes_a_png(trained, tmp_path):
    _, result, _ = trained
    path = tmp_path / "history.png"
    plot_history(result, path)
    chart = cv2.imread(str(path))
    assert chart is not None and chart.shape == (400, 600, 3)
    assert len(np.unique(chart.reshape(-1, 3), axis=0)) > 10  # lines and text, not a blank page


def test_reconstruction_grid_puts_originals_above_reconstructions(trained, collection, tmp_path):
    embedder, _, _ = trained
    path = tmp_path / "grid.png"
    reconstruction_grid(embedder, list(collection[:8]), path, count=5)
    grid = cv2.imread(str(path))[:, :, ::-1]
    assert grid.shape == (2 * 32 + 2, 5 * 34 - 2, 3)
    np.testing.assert_array_equal(grid[:32, :32], resize_square(collection[0], 32))
    np.testing.assert_array_equal(grid[34:, 34:66], embedder.reconstruct([collection[1]])[0])
    assert (grid[32:34] == 255).all() and (grid[:, 32:34] == 255).all()


def test_importing_the_module_loads_neither_tensorflow_nor_matplotlib():
    code = (
        "import sys, neardup.indexer.autoencoder; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
