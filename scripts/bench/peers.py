"""The peers neardup is measured against, each as a plain descriptor function.

- imagehash (JohannesBuchner): pHash 64-bit, pHash ``hash_size=16`` (256-bit), dHash 64-bit;
- pdqhash: Meta's PDQ, 256 bits;
- an imagededup-style CNN: ImageNet MobileNetV2, global-average-pooled, cosine, exact search,
  images squashed to 224×224 as imagededup does, nothing else (no TTA, no re-ranking).

Libraries are imported inside the functions: the benchmark lists what is installed and a
missing peer is reported, not a crash at import.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from bench.bruteforce import BruteForceMethod, cosine_similarity, hamming_similarity

CNN_INPUT = (224, 224)
CNN_BATCH = 32


def load_rgb(path: Path) -> Image.Image:
    """Decode ``path`` as an RGB image (EXIF orientation applied)."""
    with Image.open(path) as img:
        return ImageOps.exif_transpose(img).convert("RGB")


def imagehash_bits(paths: Sequence[Path], *, algorithm: str, hash_size: int) -> NDArray[np.uint8]:
    """imagehash.<algorithm>(img, hash_size) of each path: (N, hash_size² / 8) uint8 packed bits."""
    import imagehash

    fn: Callable[..., Any] = getattr(imagehash, algorithm)
    return np.stack([np.packbits(fn(load_rgb(p), hash_size=hash_size).hash.ravel()) for p in paths])


def pdq_bits(paths: Sequence[Path]) -> NDArray[np.uint8]:
    """PDQ hash of each path: (N, 32) uint8 packed bits (pdqhash.compute on the full RGB image)."""
    import pdqhash

    return np.stack([np.packbits(pdqhash.compute(np.asarray(load_rgb(p)))[0].astype(np.uint8))
                     for p in paths])


class CnnDescriber:
    """MobileNetV2 GAP embeddings through neardup's CnnEmbedder, loaded on first use."""

    def __init__(self) -> None:
        self._embedder: Any = None

    def __call__(self, paths: Sequence[Path]) -> NDArray[np.float32]:
        """(N, 1280) float32 L2-normalised embeddings of ``paths`` squashed to 224×224 (bicubic)."""
        if self._embedder is None:
            from neardup.indexer.embed import CnnEmbedder

            self._embedder = CnnEmbedder(pooling="mean")   # imagededup: global average pooling
        out = []
        for start in range(0, len(paths), CNN_BATCH):
            batch = np.stack([np.asarray(load_rgb(p).resize(CNN_INPUT, Image.Resampling.BICUBIC))
                              for p in paths[start:start + CNN_BATCH]])   # (B, 224, 224, 3) uint8
            out.append(np.asarray(self._embedder.embed(batch), dtype=np.float32))
        emb = np.concatenate(out)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:   # a missing parent package
        return False


def peer_factories() -> dict[str, tuple[Callable[[], BruteForceMethod], bool]]:
    """Peer name -> (factory, available). Duplicate thresholds are each tool's usual default:
    Hamming ≤ 10 of 64 bits (imagededup), ≤ 40 of 256 (same fraction), PDQ ≤ 31 of 256
    (Meta's recommendation), cosine ≥ 0.9 (imagededup's CNN default).
    """
    ih, pdq = _installed("imagehash"), _installed("pdqhash")
    cnn = _installed("neardup.indexer.embed")
    return {
        "ih-phash": (lambda: BruteForceMethod(
            "ih-phash", partial(imagehash_bits, algorithm="phash", hash_size=8),
            hamming_similarity, 1 - 10 / 64), ih),
        "ih-phash256": (lambda: BruteForceMethod(
            "ih-phash256", partial(imagehash_bits, algorithm="phash", hash_size=16),
            hamming_similarity, 1 - 40 / 256), ih),
        "ih-dhash": (lambda: BruteForceMethod(
            "ih-dhash", partial(imagehash_bits, algorithm="dhash", hash_size=8),
            hamming_similarity, 1 - 10 / 64), ih),
        "pdqhash": (lambda: BruteForceMethod("pdqhash", pdq_bits, hamming_similarity, 1 - 31 / 256), pdq),
        "mobilenet-cnn": (lambda: BruteForceMethod(
            "mobilenet-cnn", CnnDescriber(), cosine_similarity, 0.9), cnn),
    }
