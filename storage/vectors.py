"""FAISS indexes: caches of the catalog's hashes (binary, Hamming) and vectors (float, cosine).

A `FeatureIndex` per feature is all callers see: its length, k-nearest search, range search,
and each image's nearest neighbours. Ids are catalog image ids. An index is rebuilt from the
catalog whenever the catalog's generation changed; a file beside the catalog
(photos.db -> photos.<feature>.faiss) saves the rebuild. The file is bound to its catalog by
a sidecar (photos.<feature>.faiss.json: the catalog's identity and generation, and the
file's SHA-256), so an index file restored from a backup, copied from another catalog, or
damaged is rebuilt, never used. A catalog on a database server keeps these files in each
machine's cache folder instead (`Catalog.cache_file`), bound to it the same way: every machine
rebuilds its copy once after another one wrote. FAISS's (D, I) arrays never leave this module.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from .catalog import Catalog


@dataclass(frozen=True)
class Neighbor:
    image_id: int
    distance: float  # Hamming bits for binary indexes, inner product (cosine) for float ones


@dataclass(frozen=True)
class Edges:
    """Pairs (src[i], dst[i]) at `value[i]`: Hamming distance or cosine similarity. (M,) each."""

    src: NDArray[np.int64]
    dst: NDArray[np.int64]
    value: NDArray[np.float32]

    @classmethod
    def empty(cls) -> Edges:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.src)

    def where(self, keep: NDArray[np.bool_]) -> Edges:
        return Edges(self.src[keep], self.dst[keep], self.value[keep])

    def merged(self, into: Mapping[int, int]) -> Edges:
        """The pairs with each id in `into` replaced by the id it maps to, pairs of one id
        dropped, and src < dst again (a pair may then appear twice, with its two values)."""
        if not into or not len(self):
            return self
        keys = np.fromiter(into.keys(), np.int64, len(into))
        values = np.fromiter(into.values(), np.int64, len(into))
        order = np.argsort(keys)
        keys, values = keys[order], values[order]

        def mapped(ids: NDArray[np.int64]) -> NDArray[np.int64]:
            at = np.clip(np.searchsorted(keys, ids), 0, len(keys) - 1)
            return np.where(keys[at] == ids, values[at], ids)

        src, dst = mapped(self.src), mapped(self.dst)
        keep = src != dst
        return Edges(np.minimum(src, dst)[keep], np.maximum(src, dst)[keep], self.value[keep])

    @staticmethod
    def concat(parts: list[Edges]) -> Edges:
        if not parts:
            return Edges.empty()
        return Edges(*(np.concatenate(p) for p in zip(*((e.src, e.dst, e.value) for e in parts))))


@dataclass(frozen=True)
class IndexState:
    """Whether a feature's index file can be used as it is (`fresh`) or will be rebuilt."""

    feature: str
    path: str
    entries: int
    fresh: bool
    exists: bool


class FeatureIndex:
    """The exact nearest-neighbour index of one feature's whole-image hashes or vectors."""

    def __init__(self, catalog: Catalog, feature: str, *, binary: bool) -> None:
        self.catalog, self.feature, self.binary = catalog, feature, binary
        self.path = catalog.cache_file(f"{feature}.faiss")
        self._sidecar = self.path.with_name(self.path.name + ".json")
        self._built: tuple[str, object] | None = None  # (catalog generation, FAISS index)

    def __len__(self) -> int:
        return int(self._current().ntotal)

    def knn(self, queries: NDArray, k: int) -> list[list[Neighbor]]:
        """The k nearest entries of each query row, nearest first (fewer when the index is small)."""
        return knn(self._current(), queries, k)

    def within(self, queries: NDArray, query_ids: NDArray[np.int64], limit: float, *, batch: int = 4096) -> Edges:
        """Every (query, entry) pair within `limit` (see `within`)."""
        return within(self._current(), queries, query_ids, limit, batch=batch)

    def nearest(self, queries: NDArray, query_ids: NDArray[np.int64], k: int, *, rank: bool = False) -> Edges:
        """Each query's k nearest entries as pairs (see `nearest`)."""
        return nearest(self._current(), queries, query_ids, k, rank=rank)

    def state(self) -> IndexState:
        """The index file's state, read without building anything."""
        index = self._read()
        entries = 0 if index is None else int(index.ntotal)
        return IndexState(self.feature, str(self.path), entries, index is not None, self.path.exists())

    def _current(self):
        generation = self.catalog.generation()
        if self._built is None or self._built[0] != generation:
            index = self._read(generation) or self._build(generation)
            self._built = (generation, index)
        return self._built[1]

    def _read(self, generation: str | None = None):
        """The index saved beside the catalog when its sidecar binds it to this catalog at
        `generation` (default: the current one) and its bytes are intact; else None."""
        generation = generation or self.catalog.generation()
        try:
            meta = json.loads(self._sidecar.read_text())
            data = self.path.read_bytes()
        except (OSError, ValueError):
            return None
        expected = {"catalog": self.catalog.identity, "generation": generation,
                    "sha256": hashlib.sha256(data).hexdigest()}
        if any(meta.get(k) != v for k, v in expected.items()):
            return None
        try:
            buffer = np.frombuffer(data, np.uint8)
            index = faiss.deserialize_index_binary(buffer) if self.binary else faiss.deserialize_index(buffer)
        except RuntimeError:
            return None
        self._built = (generation, index)
        return index

    def _build(self, generation: str):
        if self.binary:
            ids, codes = self.catalog.hashes(self.feature)
            index = build_binary(ids, codes if len(ids) else np.zeros((0, 1), np.uint8))
        else:
            ids, vectors = self.catalog.vectors(self.feature)
            index = build_float(ids, vectors if len(ids) else np.zeros((0, 1), np.float32))
        self._save(index, generation)
        return index

    def _save(self, index, generation: str) -> None:
        """Write the index and its sidecar atomically (temporary names, then renames); a
        catalog folder that cannot be written (read-only, full) just keeps it in memory."""
        data = (faiss.serialize_index_binary(index) if self.binary else faiss.serialize_index(index)).tobytes()
        meta = {"catalog": self.catalog.identity, "generation": generation,
                "sha256": hashlib.sha256(data).hexdigest(), "entries": int(index.ntotal)}
        try:
            _write_atomic(self.path, data)
            _write_atomic(self._sidecar, json.dumps(meta).encode())
        except OSError:
            pass  # the index is a cache: without its file it is rebuilt by the next process


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def build_binary(ids: NDArray[np.int64], codes: NDArray[np.uint8]) -> faiss.IndexBinaryIDMap:
    """Exact Hamming index over (N, B) uint8 packed codes with catalog ids (N,) int64."""
    index = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(codes.shape[1] * 8))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(codes), np.ascontiguousarray(ids, np.int64))
    return index


def build_float(ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> faiss.IndexIDMap:
    """Exact inner-product index over (N, D) float32 L2-normalised vectors (cosine)."""
    index = faiss.IndexIDMap(faiss.IndexFlatIP(vectors.shape[1]))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.ascontiguousarray(ids, np.int64))
    return index


def knn(index, queries: NDArray, k: int) -> list[list[Neighbor]]:
    """The k nearest entries of each query row, nearest first; fewer when the index is small."""
    if index.ntotal == 0 or k <= 0:
        return [[] for _ in range(len(queries))]
    distances, ids = index.search(np.ascontiguousarray(queries), min(k, index.ntotal))
    return [
        [Neighbor(int(i), float(d)) for d, i in zip(drow, irow) if i != -1]
        for drow, irow in zip(distances, ids)
    ]


def within(index, queries: NDArray, query_ids: NDArray[np.int64], limit: float, *, batch: int = 4096) -> Edges:
    """Every (query, entry) pair within `limit`, query batch by batch (memory O(pairs)).

    Binary indexes: Hamming distance <= limit (an integer). Float indexes: inner product
    >= limit. Self pairs are dropped; each unordered pair appears once (src < dst).
    """
    binary = isinstance(index, faiss.IndexBinary)
    # FAISS keeps d < radius for Hamming and similarity > radius for inner product.
    radius = int(limit) + 1 if binary else float(np.nextafter(np.float32(limit), np.float32(-1)))
    parts: list[Edges] = []
    for lo in range(0, len(queries), batch):
        lims, dist, ids = index.range_search(np.ascontiguousarray(queries[lo : lo + batch]), radius)
        src = np.repeat(query_ids[lo : lo + batch], np.diff(lims).astype(np.int64))
        keep = src < ids
        parts.append(Edges(src[keep].astype(np.int64), ids[keep].astype(np.int64), dist[keep].astype(np.float32)))
    return Edges.concat(parts)


def nearest(index, queries: NDArray, query_ids: NDArray[np.int64], k: int, *, batch: int = 4096,
            rank: bool = False) -> Edges:
    """Each query's k nearest entries as pairs (src < dst, deduplicated; self pairs dropped).

    Values are distances (as `Edges`), or with ``rank`` each pair's rank in its query's list
    (0 = the nearest other entry), the better of the two when each image found the other.
    """
    parts = []
    for lo in range(0, len(queries), batch):
        q = np.ascontiguousarray(queries[lo : lo + batch])
        dist, ids = index.search(q, min(k + 1, max(index.ntotal, 1)))
        is_self = ids == query_ids[lo : lo + batch, None]
        # rank among the other entries: the column, less the query itself if it came before
        order = np.arange(ids.shape[1]) - (np.cumsum(is_self, axis=1) - is_self)
        src = np.repeat(query_ids[lo : lo + batch], ids.shape[1])
        ids, dist, order = ids.ravel(), dist.ravel(), order.ravel()
        keep = (ids != -1) & (src != ids)
        a, b = np.minimum(src[keep], ids[keep]), np.maximum(src[keep], ids[keep])
        parts.append((a, b, (order if rank else dist)[keep]))
    if not parts:
        return Edges.empty()
    src, dst, val = (np.concatenate(p) for p in zip(*parts))
    if rank:  # each pair found twice keeps its better rank: the first after sorting by rank
        order = np.argsort(val, kind="stable")
        src, dst, val = src[order], dst[order], val[order]
    pairs, first = np.unique(np.stack([src, dst], axis=1), axis=0, return_index=True)
    return Edges(pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64), val[first].astype(np.float32))
