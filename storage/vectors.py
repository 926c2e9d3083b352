"""FAISS indexes: caches of the catalog's hashes (binary, Hamming) and vectors (float, cosine).

Ids are catalog image ids. Every index can be rebuilt from the catalog at any time; a file
beside the catalog (photos.db -> photos.<feature>.faiss) saves the rebuild, and the catalog
records the generation each file was built at, so a stale file is never used.
FAISS's (D, I) arrays never leave this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import faiss
import numpy as np
from numpy.typing import NDArray

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


@dataclass(frozen=True)
class IndexState:
    feature: str
    path: str
    entries: int
    built_generation: int | None
    catalog_generation: int

    @property
    def stale(self) -> bool:
        return self.built_generation != self.catalog_generation


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


def is_binary(index) -> bool:
    return isinstance(index, faiss.IndexBinary)


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
    binary = is_binary(index)
    # FAISS keeps d < radius for Hamming and similarity > radius for inner product.
    radius = int(limit) + 1 if binary else float(np.nextafter(np.float32(limit), np.float32(-1)))
    parts: list[tuple[NDArray, NDArray, NDArray]] = []
    for lo in range(0, len(queries), batch):
        q = np.ascontiguousarray(queries[lo : lo + batch])
        lims, dist, ids = index.range_search(q, radius)
        src = np.repeat(query_ids[lo : lo + batch], np.diff(lims).astype(np.int64))
        keep = src < ids
        parts.append((src[keep], ids[keep], dist[keep]))
    if not parts:
        empty = np.zeros(0, np.int64)
        return Edges(empty, empty, np.zeros(0, np.float32))
    src, dst, val = (np.concatenate(p) for p in zip(*parts))
    return Edges(src.astype(np.int64), dst.astype(np.int64), val.astype(np.float32))


def nearest(
    index, queries: NDArray, query_ids: NDArray[np.int64], k: int, *, batch: int = 4096, rank: bool = False
) -> Edges:
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
        empty = np.zeros(0, np.int64)
        return Edges(empty, empty, np.zeros(0, np.float32))
    src, dst, val = (np.concatenate(p) for p in zip(*parts))
    if rank:  # each pair found twice keeps its better rank: the first after sorting by rank
        order = np.argsort(val, kind="stable")
        src, dst, val = src[order], dst[order], val[order]
    pairs, first = np.unique(np.stack([src, dst], axis=1), axis=0, return_index=True)
    return Edges(pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64), val[first].astype(np.float32))


def index_path(catalog: Catalog, feature: str) -> str:
    return str(catalog.sibling(f"{feature}.faiss"))


def load_index(catalog: Catalog, feature: str, *, binary: bool):
    """The up-to-date index of `feature`: kept in memory while the catalog is unchanged, else
    read from its file when fresh, else rebuilt from the catalog and saved."""
    generation = catalog.generation()
    cached = catalog.cache.get(("index", feature))
    if cached is not None and cached[0] == generation:
        return cached[1]
    index = _read_or_build(catalog, feature, binary, generation)
    catalog.cache[("index", feature)] = (generation, index)
    return index


def _read_or_build(catalog: Catalog, feature: str, binary: bool, generation: int):
    path = index_path(catalog, feature)
    if catalog.get_setting(f"index.{feature}") == generation:
        try:
            return faiss.read_index_binary(path) if binary else faiss.read_index(path)
        except RuntimeError:
            pass  # missing or unreadable file: rebuild below
    if binary:
        ids, codes = catalog.hashes(feature)
        index = build_binary(ids, codes if len(ids) else np.zeros((0, 1), np.uint8))
        faiss.write_index_binary(index, path)
    else:
        ids, vectors = catalog.vectors(feature)
        index = build_float(ids, vectors if len(ids) else np.zeros((0, 1), np.float32))
        faiss.write_index(index, path)
    catalog.set_setting(f"index.{feature}", generation)
    return index


def index_states(catalog: Catalog, features: dict[str, bool]) -> Iterator[IndexState]:
    """Whether each feature's index file is fresh; `features` maps name -> is binary."""
    generation = catalog.generation()
    for feature, binary in features.items():
        path = index_path(catalog, feature)
        built = catalog.get_setting(f"index.{feature}")
        try:
            entries = (faiss.read_index_binary(path) if binary else faiss.read_index(path)).ntotal
        except RuntimeError:
            entries, built = 0, None
        yield IndexState(feature, path, entries, built if isinstance(built, int) else None, generation)
