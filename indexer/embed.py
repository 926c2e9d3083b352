"""Image embedders: RGB images of any size -> (N, D) float32 unit vectors, cosine = dot product.

`CnnEmbedder` is torchvision's ImageNet MobileNetV2 (ported to Keras in `mobilenet`) with its
classifier removed: the whole image squashed to 224×224 (no centre crop, so borders and corners
count), the last 1280-channel feature map pooled, the vector L2-normalised. It runs through
LiteRT when ``ai_edge_litert`` is installed (the network compiled once and cached, `litert`;
TensorFlow is then needed only to compile), else through Keras; nothing is loaded until the
first batch is embedded. Both runtimes give the same vectors to 1e-5.

Pooling is GeM with p = 3 (generalised mean, Radenović et al. 2018), chosen over the mean on
the project corpus (1,272 images; 300 of them copied 5 ways: 60 % crop, mirror, JPEG q30, 10 %
border, +30 % brightness; each copy searched among all originals): recall@1 0.990 against 0.981
(astrophotos 0.982 against 0.962), and 95 % of copies score above the 99.9th percentile of
distinct pairs against 90 %. Letterboxing instead of squashing changed none of this (0.991).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from . import litert
from .pixels import InvalidImageError, checked_rgb
from .mobilenet import WEIGHTS_RESOURCE, build_mobilenet_v2, import_keras, normalise
from .torch_weights import locate_weights

__all__ = [
    "CnnEmbedder",
    "Embedder",
    "check_image",
    "l2_normalise",
    "resize_square",
    "worker_copy",
]


class Embedder(Protocol):
    """What every embedder offers; the attributes identify the vectors it makes.

    ``name`` is its vector feature's name (`embedders.VECTOR_FEATURES`). What shapes the
    vectors (``model_id``, ``version``, ``dim``, ``input_size``) is recorded in the catalog with
    them (`ModelRecord`): vectors of different models never mix.
    """

    name: str
    model_id: str
    version: int
    dim: int
    input_size: int

    def embed(self, images: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """N images, each (H, W, 3) uint8 RGB of any size -> (N, dim) float32, unit L2 norm."""
        ...


def worker_copy(embedder: Embedder) -> Embedder | None:
    """A picklable copy of `embedder` that the indexer's worker processes run beside decoding
    (one thread each: the workers already use every core), so that only vectors travel back;
    None when it must run in the calling process. Embedders offer one through an optional
    ``in_worker()`` method; without it they run in the calling process."""
    method = getattr(embedder, "in_worker", None)
    return method() if method is not None else None




def resize_square(image: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    """(H, W, 3) uint8 -> (size, size, 3) uint8, the whole image squashed to a square.

    Shrinking uses pixel-area averaging (no aliasing); enlarging on either axis, bilinear.
    """
    height, width = image.shape[:2]
    shrinking = height >= size and width >= size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def l2_normalise(vectors: NDArray[np.floating]) -> NDArray[np.float32]:
    """(N, D) -> (N, D) float32, each row divided by its L2 norm (all-zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


class CnnEmbedder:
    """MobileNetV2 (torchvision, ImageNet-1k v1 weights) features, GeM-pooled by default.

    ``runtime`` runs the network through LiteRT (``"litert"``), Keras' ``predict_on_batch``
    (``"keras"``), or LiteRT when installed, else Keras (``"auto"``; also Keras, with a
    RuntimeWarning, when the compiled network cannot be cached: a read-only cache folder); it
    is not a model setting: the vectors agree within float16 storage precision. The network is loaded once
    per instance, on the first call to `embed`; LiteRT's first use on a machine compiles it
    (about 10 s, `litert.load_network`). Constructing one only checks that the weights package
    (`MissingWeightsError` otherwise) and a requested ``"litert"`` are installed.

    ``batch_size`` (images per network call) defaults to 1 for LiteRT and 32 for Keras, the
    fastest of each in `scripts/bench_cnn.py` (docs/BENCHMARKS.md). ``threads`` is LiteRT's
    thread count (default: every CPU this process may use).
    """

    name = "cnn"
    model_id = "mobilenet_v2-torchvision-imagenet1k_v1"
    version = 1
    dim = 1280
    input_size = 224

    def __init__(
        self,
        *,
        pooling: Literal["gem", "mean"] = "gem",
        batch_size: int | None = None,
        runtime: Literal["auto", "litert", "keras"] = "auto",
        threads: int | None = None,
    ) -> None:
        if pooling not in ("gem", "mean"):
            raise ValueError(f"pooling must be 'gem' or 'mean', got {pooling!r}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if runtime not in ("auto", "litert", "keras"):
            raise ValueError(f"runtime must be 'auto', 'litert' or 'keras', got {runtime!r}")
        if runtime == "litert" and not litert.is_available():
            raise ModuleNotFoundError("runtime 'litert' needs LiteRT: pip install ai-edge-litert")
        locate_weights(WEIGHTS_RESOURCE)
        self.pooling: str = pooling
        self.batch_size = batch_size
        self.runtime = runtime
        self.threads = threads
        self._forward: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the loaded network: a copy in another process loads its own."""
        return {**self.__dict__, "_forward": None}

    def in_worker(self) -> CnnEmbedder | None:
        """A copy run by LiteRT on one thread, for the indexer's worker processes (`worker_copy`);
        the network is compiled now if this machine has not cached it yet. None when Keras
        runs the network: TensorFlow in every worker would cost seconds and ~1 GB each."""
        spec = self._litert_spec()
        if spec is None:
            return None
        try:
            litert.ensure_compiled(spec)
        except OSError:  # the compiled network cannot be cached: Keras, in this process
            return None
        return CnnEmbedder(pooling=self.pooling, batch_size=1, runtime="litert", threads=1)

    def embed(self, images: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """N images, each (H, W, 3) uint8 RGB of any size -> (N, 1280) float32, unit L2 norm."""
        for index, image in enumerate(images):
            check_image(image, index)
        vectors = np.empty((len(images), self.dim), dtype=np.float32)
        if len(images) and self._forward is None:
            self._forward = self._build()  # before the batch size: it may fall back to Keras
        size = self.batch_size or (1 if self._litert_spec() is not None else 32)
        for start in range(0, len(images), size):
            chunk = images[start : start + size]
            batch = np.stack([resize_square(image, self.input_size) for image in chunk])
            vectors[start : start + len(chunk)] = self.embed_batch(batch)
        return l2_normalise(vectors)

    @property
    def compiles_on_first_use(self) -> bool:
        """Whether the first `embed` must compile the network for LiteRT (not cached on this
        machine yet: about 10 s, once), so that a command can say why it pauses."""
        spec = self._litert_spec()
        return self._forward is None and spec is not None and not spec.path().is_file()

    def _litert_spec(self) -> litert.NetworkSpec | None:
        """The compiled network LiteRT runs, or None when Keras runs the network."""
        if self.runtime == "keras" or (self.runtime == "auto" and not litert.is_available()):
            return None
        return litert.NetworkSpec(model=f"{self.model_id}/{self.version}", pooling=self.pooling,
                                  input_size=self.input_size)

    def embed_batch(self, batch: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(N, 224, 224, 3) uint8 RGB -> (N, 1280) float32 pooled features, not normalised."""
        if self._forward is None:
            self._forward = self._build()
        return np.asarray(self._forward(normalise(batch)), dtype=np.float32)

    def _build(self) -> Any:
        """The network up to the pooled embedding, (N, 224, 224, 3) `normalise`d float32 ->
        (N, 1280) float32: LiteRT's interpreter (XNNPACK kernels), ~1.6x faster than Keras'
        `predict_on_batch` and starting without TensorFlow once compiled (docs/BENCHMARKS.md),
        or Keras when LiteRT is missing or cannot cache the compiled network."""
        spec = self._litert_spec()
        if spec is not None:
            try:
                return litert.load_network(spec, threads=self.threads)
            except OSError as error:  # the compiled network cannot be cached
                if self.runtime == "litert":
                    raise
                warnings.warn(
                    f"cannot cache the compiled CNN in {spec.path().parent} ({error}); running it "
                    "with Keras instead (slower). Set NEARDUP_CACHE_DIR to a writable folder.",
                    RuntimeWarning, stacklevel=2,
                )
                self.runtime = "keras"
        keras = import_keras()
        network = build_mobilenet_v2(input_size=self.input_size, pooling=self.pooling)
        model = keras.Model(network.input, network.output["embedding"])
        return model.predict_on_batch


def check_image(image: Any, index: int) -> None:
    """Raise `InvalidImageError` unless `image` (the `index`-th of a batch) is (H, W, 3) uint8."""
    checked_rgb(image, f"image {index}: ")
