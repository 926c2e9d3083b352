"""A convolutional autoencoder trained on the user's own photos; its encoder is an embedder.

What is trained: four stride-2 3×3 convolutions (32, 64, 128, 128 channels, ReLU) shrink an
``image_size``² RGB image 16-fold per side, one linear layer turns that map into a ``dim``
vector (the bottleneck), and a mirrored decoder (a dense layer, four stride-2 transposed
convolutions, a sigmoid 3×3 convolution) draws the image back. The loss is the mean squared
error on [0, 1] pixels; Adam; the weights of the epoch with the lowest validation loss are
kept, and training stops after ``patience`` epochs without improvement. `embed` runs the
encoder alone and L2-normalises, so cosine is a dot product, as for every `Embedder`.

Denoising (an option, off by default): a plain autoencoder
only learns to compress, and nothing asks it to place a cropped, mirrored or re-encoded
copy next to its original. Here each epoch the input is a
fresh random near-duplicate of the photo (a 60–100 % area crop, mirror, brightness, contrast
and saturation jitter, blur or noise, JPEG at quality 20–60) while the target stays the clean
whole photo, so the encoder must map every copy to the code that draws the original.
Training images therefore arrive larger than the network's input (`source_size`), so crops
keep their detail.

Determinism: the split, the augmentations and the batch order come from NumPy generators
spawned from ``config.seed``; Keras' seed fixes the initial weights (it also reseeds Python's
and NumPy's global generators), and TensorFlow's op determinism, switched on for the whole
process at the first training, fixes the arithmetic. The same images and config give the
same vectors on the same machine and thread count.

Denoising is off by default because plain training did better on every figure of the
project benchmark (docs/BENCHMARKS.md, "The autoencoder"): on a few hundred to a few
thousand photos at 64 px the autoencoder learns layout and colour, not content, and the
ImageNet CNN is far stronger.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from neardup.storage.errors import NeardupError

from .embed import check_image, l2_normalise, resize_square
from .pixels import InvalidImageError
from .mobilenet import import_keras

__all__ = [
    "MIN_IMAGES",
    "AutoencoderConfig",
    "AutoencoderEmbedder",
    "EpochReport",
    "ModelFileError",
    "TooFewImagesError",
    "TrainingResult",
    "plot_history",
    "reconstruction_grid",
    "source_size",
    "train_autoencoder",
]

MIN_IMAGES = 8
ENCODER_FILTERS = (32, 64, 128, 128)  # each halves the side: image_size must divide by 16
DECODER_FILTERS = (128, 64, 32, 32)
SOURCE_MARGIN = 1.25  # training images are this much larger than the input, for crops
RETRAIN = "retrain: neardup train autoencoder"
_BATCH = 256  # images per inference batch


class ConfigError(NeardupError, ValueError):
    """An autoencoder setting out of its range."""


@dataclass(frozen=True)
class AutoencoderConfig:
    """What shapes a trained autoencoder; saved with its weights."""

    dim: int = 128  # bottleneck size, the vector's length
    image_size: int = 64  # square input side in pixels, a multiple of 16
    epochs: int = 30  # upper bound; early stopping usually ends sooner
    batch_size: int = 32
    seed: int = 0
    denoising: bool = False  # inputs are near-duplicate transformations of the target
    validation: float = 0.1  # held-out fraction (at least one image)
    patience: int = 4  # epochs without val-loss improvement before stopping
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("dim", "image_size", "epochs", "batch_size", "seed", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        lows = {"dim": 1, "epochs": 1, "batch_size": 1, "seed": 0, "patience": 1}
        for name, low in lows.items():
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be at least {low}, got {getattr(self, name)}")
        if self.image_size < 16 or self.image_size % 16:
            raise ConfigError(f"image_size must be a positive multiple of 16, got {self.image_size}")
        if not isinstance(self.denoising, bool):
            raise ConfigError(f"denoising must be True or False, got {self.denoising!r}")
        if not 0 < self.validation < 1:
            raise ConfigError(f"validation must be a fraction in (0, 1), got {self.validation!r}")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < math.inf):
            raise ConfigError(f"learning_rate must be a positive number, got {self.learning_rate!r}")


def source_size(config: AutoencoderConfig) -> int:
    """The side of the square uint8 images `train_autoencoder` takes: 1.25 × image_size."""
    return round(config.image_size * SOURCE_MARGIN)


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch: mean training and validation loss, and its duration."""

    epoch: int  # 1-based
    epochs: int  # the upper bound, config.epochs
    loss: float
    val_loss: float
    seconds: float


@dataclass(frozen=True)
class TrainingResult:
    history: tuple[tuple[float, float], ...]  # (train loss, val loss) per epoch run
    best_epoch: int  # 1-based epoch whose weights were kept
    stopped_early: bool
    seconds: float
    train_count: int
    val_count: int


class TooFewImagesError(NeardupError, ValueError):
    """Fewer than `MIN_IMAGES` images were given to `train_autoencoder`."""


class ModelFileError(NeardupError, ValueError):
    """A saved autoencoder is missing, unreadable, or not the file that was trained."""


def train_autoencoder(
    images: NDArray[np.uint8],
    config: AutoencoderConfig = AutoencoderConfig(),
    *,
    progress: Callable[[EpochReport], None] | None = None,
) -> tuple[AutoencoderEmbedder, TrainingResult]:
    """Train on (N, S, S, 3) uint8 RGB images, S = `source_size(config)`; call `progress` per epoch.

    A seeded ``config.validation`` share (at least one image) is held out. Returns the embedder
    with the best validation-loss weights and what happened.
    """
    _check_training_images(images, config)
    started = time.perf_counter()
    split_rng, val_rng, epoch_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(3)
    )
    order = split_rng.permutation(len(images))
    val_count = max(1, round(len(images) * config.validation))
    train, val = images[order[val_count:]], images[order[:val_count]]
    train_targets, val_targets = _targets(train, config), _targets(val, config)
    val_inputs = _inputs(val, val_targets, config, val_rng)  # drawn once, the same every epoch

    step, losses, model = _trainer(config)
    history: list[tuple[float, float]] = []
    best_weights, best_epoch = model.get_weights(), 0
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        inputs = _inputs(train, train_targets, config, epoch_rng)
        loss = _train_epoch(step, inputs, train_targets, config.batch_size, epoch_rng)
        val_loss = float(np.mean(_batched(losses, val_inputs, val_targets)))
        if val_loss < min((v for _, v in history), default=math.inf):
            best_weights, best_epoch = model.get_weights(), epoch
        history.append((loss, val_loss))
        if progress is not None:
            seconds = time.perf_counter() - epoch_started
            progress(EpochReport(epoch, config.epochs, loss, val_loss, seconds))
        if epoch - best_epoch >= config.patience:
            break
    result = TrainingResult(
        history=tuple(history),
        best_epoch=best_epoch,
        stopped_early=len(history) < config.epochs,
        seconds=time.perf_counter() - started,
        train_count=len(train),
        val_count=val_count,
    )
    return AutoencoderEmbedder(config, best_weights), result


class AutoencoderEmbedder:
    """The encoder of a trained autoencoder as an `Embedder`, plus its decoder for inspection.

    Built from a config and the weights in ``model.get_weights()`` order; Keras is imported here.
    """

    name = "autoencoder"
    model_id = "conv-autoencoder"
    pooling = "bottleneck"

    def __init__(
        self, config: AutoencoderConfig, weights: Sequence[NDArray[np.float32]], *, version: int = 1
    ) -> None:
        self.config = config
        self.version = version
        self.dim = config.dim
        self.input_size = config.image_size
        import_keras()
        import tensorflow as tf

        self._model = _build_model(config)
        expected = [tuple(w.shape) for w in self._model.get_weights()]
        got = [tuple(np.shape(w)) for w in weights]
        if got != expected:
            raise ValueError(f"weights of shapes {got} do not fit the network, expected {expected}")
        self._model.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
        spec = tf.TensorSpec((None, self.input_size, self.input_size, 3), tf.float32)
        encoder = self._model.get_layer("encoder")
        self._encode = tf.function(encoder, input_signature=[spec], jit_compile=False)
        self._redraw = tf.function(self._model, input_signature=[spec], jit_compile=False)

    def embed(self, images: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """N images, each (H, W, 3) uint8 RGB of any size -> (N, dim) float32, unit L2 norm."""
        return l2_normalise(self._run(self._encode, images, (self.dim,)))

    def reconstruct(self, images: Sequence[NDArray[np.uint8]]) -> NDArray[np.uint8]:
        """N images, each (H, W, 3) uint8 RGB -> (N, image_size, image_size, 3) uint8, decoded."""
        pixels = self._run(self._redraw, images, (self.input_size, self.input_size, 3))
        return np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)

    def save(self, path: Path) -> str:
        """Write config and weights to one .npz file, atomically; return its SHA-256 (hex)."""
        path = Path(path)
        arrays = {f"weight_{i:03d}": w for i, w in enumerate(self._model.get_weights())}
        arrays["config"] = np.array(json.dumps(asdict(self.config)))
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, **arrays)
            digest = _sha256(Path(temporary))
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest

    @classmethod
    def load(
        cls, path: Path, *, version: int = 1, sha256: str | None = None
    ) -> AutoencoderEmbedder:
        """Rebuild a saved autoencoder; ``sha256``, if given, must be the file's (what `save`
        returned). Raises `ModelFileError` if the file is missing, unreadable or different."""
        path = Path(path)
        try:
            digest = _sha256(path)
        except OSError as error:
            reason = error.strerror or error
            message = f"{path}: cannot read the autoencoder ({reason}); {RETRAIN}"
            raise ModelFileError(message) from error
        if sha256 is not None and digest != sha256:
            raise ModelFileError(
                f"{path} changed since training: SHA-256 {digest}, expected {sha256}; {RETRAIN}"
            )
        try:
            with np.load(path, allow_pickle=False) as stored:
                settings = json.loads(str(stored["config"]))
                keys = sorted(k for k in stored.files if k.startswith("weight_"))
                weights = [stored[k] for k in keys]
            known = {f.name for f in fields(AutoencoderConfig)}
            if not isinstance(settings, dict) or set(settings) - known:
                raise ValueError(f"unexpected config {settings!r}")
            return cls(AutoencoderConfig(**settings), weights, version=version)
        except (OSError, EOFError, KeyError, ValueError, TypeError) as error:
            message = f"{path}: not a readable autoencoder ({error}); {RETRAIN}"
            raise ModelFileError(message) from error

    def _run(
        self, function: Any, images: Sequence[NDArray[np.uint8]], shape: tuple[int, ...]
    ) -> NDArray[np.float32]:
        """``function`` over the images resized to the input, in batches: (N, *shape) float32."""
        for index, image in enumerate(images):
            check_image(image, index)
        out = np.empty((len(images), *shape), dtype=np.float32)
        for start in range(0, len(images), _BATCH):
            chunk = images[start : start + _BATCH]
            batch = np.stack([resize_square(image, self.input_size) for image in chunk])
            out[start : start + len(chunk)] = function(_to_unit(batch)).numpy()
        return out


def plot_history(result: TrainingResult, path: Path) -> None:
    """Write a PNG chart of training and validation loss per epoch, the kept epoch marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = np.arange(1, len(result.history) + 1)
    train, val = np.array(result.history, dtype=np.float64).T
    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(epochs, train, marker="o", label="training")
    axes.plot(epochs, val, marker="o", label="validation")
    best = result.best_epoch
    axes.axvline(best, color="grey", linestyle="--", linewidth=1)
    axes.annotate(f"kept: epoch {best}", (best, val[best - 1]), textcoords="offset points",
                  xytext=(6, 8))
    axes.set(xlabel="epoch", ylabel="mean squared error", title="Autoencoder training")
    axes.legend()
    figure.tight_layout()
    figure.savefig(Path(path), format="png")


def reconstruction_grid(
    embedder: AutoencoderEmbedder,
    images: Sequence[NDArray[np.uint8]],
    path: Path,
    *,
    count: int = 8,
) -> None:
    """Write a PNG: up to ``count`` originals (resized to the input) above their reconstructions."""
    if count < 1 or len(images) == 0:
        raise ValueError(f"need at least one image and count >= 1, got {len(images)} and {count}")
    chosen = list(images[:count])
    size, gap = embedder.input_size, 2
    originals = np.stack([resize_square(image, size) for image in chosen])
    rows = [originals, embedder.reconstruct(chosen)]
    grid = np.full((2 * size + gap, len(chosen) * (size + gap) - gap, 3), 255, dtype=np.uint8)
    for row, tiles in enumerate(rows):
        for column, tile in enumerate(tiles):
            top, left = row * (size + gap), column * (size + gap)
            grid[top : top + size, left : left + size] = tile
    if not cv2.imwrite(str(path), grid[:, :, ::-1]):
        raise OSError(f"{path}: could not write the PNG")


def _check_training_images(images: Any, config: AutoencoderConfig) -> None:
    side = source_size(config)
    shape, dtype = getattr(images, "shape", type(images).__name__), getattr(images, "dtype", None)
    if not isinstance(images, np.ndarray) or dtype != np.uint8 or shape[1:] != (side, side, 3):
        raise InvalidImageError(f"expected (N, {side}, {side}, 3) uint8 images, got {shape} {dtype}")
    if len(images) < MIN_IMAGES:
        raise TooFewImagesError(f"training needs at least {MIN_IMAGES} images, got {len(images)}")


def _train_epoch(
    step: Any,
    inputs: NDArray[np.float32],
    targets: NDArray[np.float32],
    batch_size: int,
    rng: np.random.Generator,
) -> float:
    """One pass in a seeded random order; the mean training loss over all images."""
    order, total = rng.permutation(len(inputs)), 0.0
    for start in range(0, len(inputs), batch_size):
        batch = order[start : start + batch_size]
        total += float(step(inputs[batch], targets[batch])) * len(batch)
    return total / len(inputs)


def _build_model(config: AutoencoderConfig) -> Any:
    """Keras model ``autoencoder`` = sub-models ``decoder(encoder(image))``, pixels in [0, 1]."""
    keras = import_keras()
    layers, size = keras.layers, config.image_size
    side, depth = size // 2 ** len(ENCODER_FILTERS), ENCODER_FILTERS[-1]
    image = keras.Input((size, size, 3), name="image")
    x = image
    for i, filters in enumerate(ENCODER_FILTERS):
        x = layers.Conv2D(
            filters, 3, strides=2, padding="same", activation="relu", name=f"down{i}"
        )(x)
    vector = layers.Dense(config.dim, name="vector")(layers.Flatten(name="flatten")(x))
    encoder = keras.Model(image, vector, name="encoder")

    code = keras.Input((config.dim,), name="code")
    y = layers.Dense(side * side * depth, activation="relu", name="expand")(code)
    y = layers.Reshape((side, side, depth), name="map")(y)
    for i, filters in enumerate(DECODER_FILTERS):
        y = layers.Conv2DTranspose(
            filters, 3, strides=2, padding="same", activation="relu", name=f"up{i}"
        )(y)
    pixels = layers.Conv2D(3, 3, padding="same", activation="sigmoid", name="pixels")(y)
    decoder = keras.Model(code, pixels, name="decoder")

    source = keras.Input((size, size, 3), name="input")
    return keras.Model(source, decoder(encoder(source)), name="autoencoder")


def _trainer(config: AutoencoderConfig) -> tuple[Any, Any, Any]:
    """Seeded fresh model, its Adam training step ``(inputs, targets) -> mean loss`` and a
    per-image loss function ``(inputs, targets) -> (n,)``; inputs are float32 in [0, 1]."""
    keras = import_keras()
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    model = _build_model(config)
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    optimizer.build(model.trainable_variables)
    spec = tf.TensorSpec((None, config.image_size, config.image_size, 3), tf.float32)

    @tf.function(input_signature=[spec, spec], jit_compile=False)
    def step(inputs, targets):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(inputs, training=True) - targets))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function(input_signature=[spec, spec], jit_compile=False)
    def losses(inputs, targets):
        return tf.reduce_mean(tf.square(model(inputs, training=False) - targets), axis=(1, 2, 3))

    return step, losses, model


def _batched(function: Any, inputs: NDArray[np.float32], targets: NDArray[np.float32]) -> NDArray:
    parts = [function(inputs[i : i + _BATCH], targets[i : i + _BATCH]).numpy()
             for i in range(0, len(inputs), _BATCH)]
    return np.concatenate(parts)


def _inputs(
    images: NDArray[np.uint8], targets: NDArray[np.float32], config: AutoencoderConfig,
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """The network's inputs for one pass: random near-duplicates, or the targets themselves."""
    if not config.denoising:
        return targets
    return _to_unit(np.stack([_near_duplicate(image, config.image_size, rng) for image in images]))


def _near_duplicate(
    image: NDArray[np.uint8], size: int, rng: np.random.Generator
) -> NDArray[np.uint8]:
    """(S, S, 3) uint8 -> (size, size, 3) uint8: a random crop, mirror, colour, blur/noise, JPEG."""
    side = image.shape[0]
    area, aspect = rng.uniform(0.6, 1.0), math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    height = min(side, round(side * math.sqrt(area / aspect)))
    width = min(side, round(side * math.sqrt(area * aspect)))
    top, left = rng.integers(0, side - height + 1), rng.integers(0, side - width + 1)
    out = resize_square(image[top : top + height, left : left + width], size)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    pixels = out.astype(np.float32) * rng.uniform(0.7, 1.3)  # brightness
    mean = pixels.mean()
    pixels = (pixels - mean) * rng.uniform(0.7, 1.3) + mean  # contrast
    grey = pixels @ np.array([[0.299], [0.587], [0.114]], dtype=np.float32)
    pixels = grey + (pixels - grey) * rng.uniform(0.7, 1.3)  # saturation
    if rng.random() < 0.3:
        pixels = cv2.GaussianBlur(pixels, (3, 3), rng.uniform(0.3, 1.0))
    if rng.random() < 0.3:
        pixels = pixels + rng.normal(0, rng.uniform(1, 6), pixels.shape).astype(np.float32)
    out = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        quality = int(rng.integers(20, 61))
        _, buffer = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buffer, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(out)


def _targets(images: NDArray[np.uint8], config: AutoencoderConfig) -> NDArray[np.float32]:
    """(N, S, S, 3) uint8 -> (N, image_size, image_size, 3) float32 in [0, 1], whole images."""
    return _to_unit(np.stack([resize_square(image, config.image_size) for image in images]))


def _to_unit(images: NDArray[np.uint8]) -> NDArray[np.float32]:
    return images.astype(np.float32) / np.float32(255.0)


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
