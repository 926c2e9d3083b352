"""MobileNetV2 run by LiteRT: the Keras network compiled once to a flatbuffer, cached on disk.

`mobilenet.build_mobilenet_v2` stays the network's definition. The first time a network is
needed, a child Python process builds it in Keras and converts it with TensorFlow's
``TFLiteConverter`` into a LiteRT flatbuffer (about 10 s, 9 MB), written atomically into
`cache_dir` under a name derived from everything that shapes its output (`NetworkSpec.key`).
From then on Google's LiteRT interpreter (``ai_edge_litert``, XNNPACK kernels) runs it: it
loads in 0.06 s, never imports TensorFlow, and agrees with Keras to 1e-5.

Compiling in a child process keeps the converter's prints and logs, TensorFlow's memory and
its thread pools out of the caller (the indexer forks workers only while TensorFlow is absent).
A cached file that LiteRT's verifier rejects (truncated, corrupt) is compiled again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from neardup.storage.places import cache_dir

from . import mobilenet
from .workers import cores

__all__ = [
    "COMPILE_VERSION",
    "CompileError",
    "LiteRTNetwork",
    "NetworkSpec",
    "cache_dir",
    "ensure_compiled",
    "is_available",
    "load_network",
    "write_flatbuffer",
]

COMPILE_VERSION = 1  # bump when a change here changes what a compiled file computes
_DELEGATE_NOTICE = (b"Created TensorFlow Lite XNNPACK delegate",)
_COMPILE_SCRIPT = (
    "import json, sys; from pathlib import Path; "
    "from neardup.indexer.litert import NetworkSpec, write_flatbuffer; "
    "write_flatbuffer(NetworkSpec(**json.loads(sys.argv[1])), Path(sys.argv[2]))"
)


class CompileError(RuntimeError):
    """Converting the Keras network to a LiteRT flatbuffer failed (the converter's output is
    in the message)."""


@dataclass(frozen=True)
class NetworkSpec:
    """What shapes a compiled network's output, besides the weights and the network's code.

    ``model`` is the embedder's model id and version; the rest are `build_mobilenet_v2`'s
    arguments (``gem_p`` its default).
    """

    model: str
    pooling: str
    input_size: int = 224
    gem_p: float = 3.0

    def key(self) -> str:
        """16 hex digits of a SHA-256 over this spec, the weights' SHA-256, the source of
        `mobilenet` and `COMPILE_VERSION`: any change gives another file."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        digest.update(mobilenet.WEIGHTS_SHA256.encode())
        digest.update(Path(mobilenet.__file__).read_bytes())
        digest.update(str(COMPILE_VERSION).encode())
        return digest.hexdigest()[:16]

    def path(self) -> Path:
        """Where this network's flatbuffer is cached."""
        return cache_dir() / f"mobilenet_v2-{self.pooling}-{self.key()}.tflite"


def is_available() -> bool:
    """Whether the LiteRT interpreter (PyPI ``ai-edge-litert``) is installed; imports nothing."""
    return importlib.util.find_spec("ai_edge_litert") is not None


class LiteRTNetwork:
    """A compiled network run by LiteRT on every CPU available to this process.

    Raises ValueError if LiteRT rejects the file (absent, truncated, not a flatbuffer).
    """

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        threads = threads or cores()
        with mobilenet._stderr_without(_DELEGATE_NOTICE):  # printed by the first allocation
            self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self._interpreter.allocate_tensors()
        (image,) = self._interpreter.get_input_details()
        (features,) = self._interpreter.get_output_details()
        self._input, self._output = image["index"], features["index"]
        self._shape = tuple(int(n) for n in image["shape"])
        self._lock = threading.Lock()  # an interpreter must not run two batches at once

    def __call__(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """(N, S, S, 3) float32, `mobilenet.normalise`d -> (N, 1280) float32 pooled features.

        The interpreter is resized whenever N differs from the previous batch's.
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            if batch.shape != self._shape:
                self._interpreter.resize_tensor_input(self._input, batch.shape, strict=True)
                self._interpreter.allocate_tensors()
                self._shape = batch.shape
            self._interpreter.set_tensor(self._input, batch)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output)


def load_network(spec: NetworkSpec, *, threads: int | None = None) -> LiteRTNetwork:
    """``spec``'s network from the cache, compiled first if absent or rejected by LiteRT.

    A process loads each network once per thread count: later calls return the same one (its
    lock serialises callers), so that an embedder unpickled for every task of a worker process
    does not load it again (~0.1 s). A forked child loads its own.
    Raises `CompileError` if compiling fails (TensorFlow missing, converter error).
    """
    path = spec.path()
    key = (os.getpid(), str(path), threads or cores())
    if key not in _loaded:
        _loaded[key] = _load(spec, path, key[2])
    return _loaded[key]


_loaded: dict[tuple[int, str, int], LiteRTNetwork] = {}


def _load(spec: NetworkSpec, path: Path, threads: int) -> LiteRTNetwork:
    if path.is_file():
        try:
            return LiteRTNetwork(path, threads=threads)
        except ValueError:  # LiteRT verifies the flatbuffer: truncated or corrupt
            pass
    _compile(spec, path)
    return LiteRTNetwork(path, threads=threads)


def ensure_compiled(spec: NetworkSpec) -> Path:
    """The path of ``spec``'s compiled network, compiling it first if it is not cached (so
    that worker processes about to load it do not each compile it). Raises `CompileError`
    as `load_network` does, OSError when the cache folder cannot be written."""
    path = spec.path()
    if not path.is_file():
        _compile(spec, path)
    return path


def write_flatbuffer(spec: NetworkSpec, path: Path) -> None:
    """Build ``spec``'s network in Keras (its pooled embedding only) and write it to ``path``
    as a LiteRT flatbuffer of built-in ops. Imports TensorFlow; prints the converter's noise."""
    network = mobilenet.build_mobilenet_v2(
        input_size=spec.input_size, pooling=spec.pooling, gem_p=spec.gem_p
    )
    keras = mobilenet.import_keras()  # already imported by the build
    import tensorflow as tf

    model = keras.Model(network.input, network.output["embedding"])
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def _compile(spec: NetworkSpec, path: Path) -> None:
    """Run `write_flatbuffer` in a child process into a temporary file beside ``path``, check
    that LiteRT loads it, then move it to ``path`` (atomic: readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.stem}.", suffix=".tmp")
    os.close(fd)
    temporary = Path(name)
    try:
        command = [sys.executable, "-c", _COMPILE_SCRIPT, json.dumps(asdict(spec)), name]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()
            raise CompileError(
                f"compiling {spec} to LiteRT failed (exit {result.returncode}); the converter "
                "said:\n" + "\n".join(output[-30:])
            )
        try:
            LiteRTNetwork(temporary, threads=1)
        except ValueError as error:
            raise CompileError(f"LiteRT cannot load the network it was given: {error}") from error
        temporary.chmod(0o644)  # mkstemp made it private; a cache is readable like any other
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
