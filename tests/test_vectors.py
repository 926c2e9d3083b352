"""FAISS wrappers checked against NumPy brute force (k-NN, range search at the boundary), and
index files bound to their catalog."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neardup
from neardup.search.fusion import hamming_rows
from neardup.storage.vectors import (FAR, _ExactNeighbours, build_binary, build_float, in_sorted, knn, nearest, ordered_neighbours,
                                     pair_keys, unique_keys, within)


def _codes(n: int, nbytes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1000, 10**6, n).astype(np.int64), rng.integers(0, 256, (n, nbytes), dtype=np.uint8)


def _oracle(codes: np.ndarray, q: np.ndarray) -> np.ndarray:
    return hamming_rows(codes, np.broadcast_to(q, codes.shape))


def test_binary_knn_equals_brute_force() -> None:
    ids, codes = _codes(300, 32, 0)
    index = build_binary(ids, codes)
    queries = codes[:5] ^ np.uint8(3)
    for q, found in zip(queries, knn(index, queries, 10)):
        d = _oracle(codes, q)
        assert [n.distance for n in found] == sorted(d)[:10]
        assert {n.image_id for n in found} <= set(ids[d <= sorted(d)[9]])


def test_knn_on_empty_index_and_k_larger_than_n() -> None:
    empty = build_binary(np.zeros(0, np.int64), np.zeros((0, 8), np.uint8))
    assert knn(empty, np.zeros((2, 8), np.uint8), 5) == [[], []]
    ids, codes = _codes(3, 8, 1)
    found = knn(build_binary(ids, codes), codes[:1], 10)[0]
    assert len(found) == 3 and all(n.image_id in set(ids) for n in found)


def test_range_search_threshold_is_inclusive() -> None:
    base = np.zeros((1, 8), np.uint8)
    others = np.array([np.packbits(np.r_[np.ones(d, np.uint8), np.zeros(64 - d, np.uint8)]) for d in (4, 5, 6)])
    codes = np.vstack([base, others])
    ids = np.array([1, 2, 3, 4], np.int64)
    edges = within(build_binary(ids, codes), codes, ids, 5)
    pairs = {(int(a), int(b), int(v)) for a, b, v in zip(edges.src, edges.dst, edges.value)}
    # distance 4 and 5 from id 1 are in (<= 5), distance 6 is out; 2-3, 2-4, 3-4 are 1, 2, 1 apart
    assert (1, 2, 4) in pairs and (1, 3, 5) in pairs and not any(p[:2] == (1, 4) for p in pairs)
    assert all(a < b for a, b, _ in pairs)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 64))
def test_range_pairs_equal_brute_force(seed: int, limit: int) -> None:
    ids, codes = _codes(60, 8, seed)
    edges = within(build_binary(ids, codes), codes, ids, limit, batch=17)
    got = set(zip(edges.src.tolist(), edges.dst.tolist()))
    want = {
        (int(ids[i]), int(ids[j]))
        for i in range(len(ids)) for j in range(len(ids))
        if ids[i] < ids[j] and hamming_rows(codes[i], codes[j]) <= limit
    }
    assert got == want


def test_float_range_search_is_inclusive_cosine_and_knn_is_exact() -> None:
    rng = np.random.default_rng(4)
    v = rng.normal(size=(50, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = np.arange(10, 60, dtype=np.int64)
    index = build_float(ids, v)
    sims = v @ v.T
    threshold = float(np.sort(sims[np.triu_indices(50, 1)])[-20])  # exactly the 20th best pair
    edges = within(index, v, ids, threshold)
    want = {(int(ids[i]), int(ids[j])) for i, j in zip(*np.triu_indices(50, 1)) if sims[i, j] >= threshold}
    assert set(zip(edges.src.tolist(), edges.dst.tolist())) == want and len(want) >= 20
    top = knn(index, v[:1], 3)[0]
    assert [n.image_id for n in top] == [int(ids[i]) for i in np.argsort(-sims[0])[:3]]


def test_nearest_pairs_are_each_querys_k_best() -> None:
    """Every pair found is among one of its two images' 3 nearest (ties at the 3rd included),
    and every strictly-nearer-than-the-3rd pair is found: both directions of the oracle."""
    ids, codes = _codes(40, 8, 7)
    edges = nearest(build_binary(ids, codes), codes, ids, 3)
    got = set(zip(edges.src.tolist(), edges.dst.tolist()))
    d = np.stack([hamming_rows(codes, np.broadcast_to(c, codes.shape)) for c in codes]).astype(float)
    np.fill_diagonal(d, np.inf)
    kth = np.sort(d, axis=1)[:, 2]
    position = {int(x): i for i, x in enumerate(ids)}
    for i in range(40):
        must = {tuple(sorted((int(ids[i]), int(ids[j])))) for j in range(40) if d[i, j] < kth[i]}
        assert must <= got
    for a, b in got:
        i, j = position[a], position[b]
        assert d[i, j] <= kth[i] or d[i, j] <= kth[j]


def test_nearest_ranks_are_each_pairs_better_position() -> None:
    rng = np.random.default_rng(5)
    v = rng.standard_normal((30, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = np.arange(100, 130, dtype=np.int64)
    edges = nearest(build_float(ids, v), v, ids, 4, rank=True)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    want: dict[tuple[int, int], int] = {}
    for i in range(30):
        for r, j in enumerate(np.argsort(-sims[i])[:4]):
            key = (int(ids[min(i, j)]), int(ids[max(i, j)]))
            want[key] = min(want.get(key, r), r)
    got = dict(zip(zip(edges.src.tolist(), edges.dst.tolist()), edges.value.astype(int).tolist()))
    assert got == want and 0 in got.values() and 3 in got.values()


def ordered_oracle(ids: np.ndarray, rows: np.ndarray, queries: np.ndarray, width: int):
    """Each query's `width` nearest (Hamming distance, or minus the cosine summed in float64
    along the row; then id) by brute force, padded as `ordered_neighbours` pads."""
    out_ids = np.full((len(queries), width), -1, np.int64)
    out_values = np.full((len(queries), width), float(FAR))
    for row, q in enumerate(queries):
        if rows.dtype == np.uint8:
            d = _oracle(rows, q).astype(np.float64)
        else:
            d = -(rows.astype(np.float64) * q.astype(np.float64)).sum(axis=1)
        first = np.lexsort((ids, d))[:width]
        out_ids[row, : len(first)], out_values[row, : len(first)] = ids[first], d[first]
    return out_ids, out_values


@pytest.mark.parametrize("n", [5, 40, 400])
def test_ordered_neighbours_break_ties_by_id_whatever_order_the_index_holds_them_in(n: int) -> None:
    """Codes of 5 bits tie everywhere, and 70 copies of one code tie past the search's slack:
    the first `width` by distance then id, as brute force orders them, not as FAISS met them."""
    rng = np.random.default_rng(n)
    ids = rng.permutation(np.arange(10, 10 + 2 * n, 2, dtype=np.int64))  # added in no order
    codes = np.zeros((n, 8), np.uint8)
    codes[:, 0] = rng.integers(0, 32, n)
    if n > 100:
        codes[:70] = codes[0]
    index = build_binary(ids, codes)
    queries = np.concatenate([codes[:20], rng.integers(0, 32, (5, 8), dtype=np.uint8)])
    for width in (1, 9, 17):
        got = ordered_neighbours(index, queries, width, batch=7)
        want = ordered_oracle(ids, codes, queries, width)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@pytest.mark.parametrize("n", [5, 60, 400])
def test_ordered_float_neighbours_are_exact_cosines_then_ids(n: int) -> None:
    """Vectors of 1,280 dimensions, 50 copies of one (ties past the search's slack) and pairs
    apart by less than FAISS's rounding: the order of exact cosines, then ids, whatever order
    the index holds them in and however FAISS rounded them in its batches."""
    rng = np.random.default_rng(n)
    ids = rng.permutation(np.arange(10, 10 + 2 * n, 2, dtype=np.int64))
    v = rng.standard_normal((n, 1280)).astype(np.float32)
    v[n // 2 :] = v[: n - n // 2] + np.float32(1e-4) * rng.standard_normal((n - n // 2, 1280)).astype(np.float32)
    if n > 100:
        v[:50] = v[0]
        ids[:50] = np.sort(ids[:50])[::-1]  # the copies' smallest ids where a scan meets them last
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    index = build_float(ids, v)
    queries = np.concatenate([v[:30], v[n - 5 :]])
    for width in (1, 6, 17):
        for batch in (3, 4096):
            got = ordered_neighbours(index, queries, width, batch=batch)
            want = ordered_oracle(ids, v, queries, width)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@pytest.mark.parametrize("block", [4096, 5])
@pytest.mark.parametrize("binary", [True, False])
def test_exact_neighbours_gathered_chunk_by_chunk_are_each_query_s_k_best_scores(binary: bool, block: int,
                                                                                monkeypatch) -> None:
    """The ground truth of an approximate index's recall: over rows given in chunks, each
    query's k best scores against the other rows (ties kept), -inf where there are fewer;
    alike when a chunk is scored a few rows at a time."""
    monkeypatch.setattr("neardup.storage.vectors._TRUTH_BLOCK", block)
    rng = np.random.default_rng(4)
    ids = np.arange(1, 301, dtype=np.int64)
    rows = (rng.integers(0, 4, (300, 8), dtype=np.uint8) if binary
            else rng.standard_normal((300, 16)).astype(np.float32))
    picked = np.array([0, 5, 299])
    truth = _ExactNeighbours(ids[picked], rows[picked], 10, binary=binary)
    for lo, hi in ((0, 7), (7, 150), (150, 300)):
        truth.update(ids[lo:hi], rows[lo:hi])
    for q, got in zip(picked, truth.scores()):
        others = np.delete(np.arange(300), q)
        every = (-_oracle(rows[others], rows[q]).astype(float) if binary
                 else (rows[others] @ rows[q]).astype(np.float64))
        assert np.allclose(got, np.sort(every)[::-1][:10])
    few = _ExactNeighbours(ids[:1], rows[:1], 10, binary=binary)
    few.update(ids[:4], rows[:4])
    assert np.isfinite(few.scores()).sum() == 3 and few.scores()[0, 3:].max() == -np.inf


def _indexed(tmp_path, name: str, folder) -> neardup.Collection:
    cat = neardup.open(tmp_path / f"{name}.db", create=True, embedder="none")
    cat.index([folder], workers=1)
    return cat


def _neighbours(cat) -> list[list[int]]:
    ids, codes = cat.catalog.hashes("pdq")
    return [[n.image_id for n in found] for found in cat.catalog.index("pdq").knn(codes, 5)]


def test_index_files_are_bound_to_their_catalog_and_generation(tmp_path, collection) -> None:
    """An index file restored from a backup, or copied from another catalog, is never used:
    answers equal a fresh rebuild (the catalog is the source of truth)."""
    cat = _indexed(tmp_path, "a", tmp_path / "photos")
    fresh = _neighbours(cat)
    index_file = cat.catalog.index("pdq").path
    backup = tmp_path / "backup.db"
    live, copy = sqlite3.connect(cat.path), sqlite3.connect(backup)
    live.backup(copy)
    live.close(), copy.close()
    (collection["scene0"]).unlink()
    cat.index([tmp_path / "photos"], workers=1)  # the catalog moves on; its index file is rebuilt
    assert len(cat.catalog.index("pdq")) == len(collection) - 1
    cat.close()  # the last connection checkpoints the write-ahead log into the file
    shutil.copyfile(backup, cat.path)  # the old catalog comes back beside the newer index file
    restored = neardup.open(cat.path)
    assert len(restored.catalog.index("pdq")) == len(collection) and _neighbours(restored) == fresh
    other = _indexed(tmp_path, "b", tmp_path / "photos")
    shutil.copyfile(index_file, other.catalog.index("pdq").path)  # a stranger's file, same name
    shutil.copyfile(str(index_file) + ".json", str(other.catalog.index("pdq").path) + ".json")
    assert other.catalog.index("pdq").state().fresh is False
    assert len(other.catalog.index("pdq")) == len(collection) - 1


def test_a_damaged_or_empty_index_file_is_rebuilt(tmp_path, collection) -> None:
    cat = _indexed(tmp_path, "a", tmp_path / "photos")
    fresh = _neighbours(cat)
    path = cat.catalog.index("pdq").path
    for damage in (b"", path.read_bytes()[:100], b"x" * 5000):
        path.write_bytes(damage)
        again = neardup.open(cat.path)
        assert again.catalog.index("pdq").state().fresh is False
        assert _neighbours(again) == fresh
        assert again.catalog.index("pdq").state().fresh is True  # and saved again


def test_an_index_file_damaged_where_it_lies_is_caught_by_its_checksum_and_rebuilt(tmp_path, collection) -> None:
    """Its size and modification time as saved, the file is read while its checksum is
    computed: bytes flipped since are still found, and the index read is not used."""
    cat = _indexed(tmp_path, "a", tmp_path / "photos")
    fresh = _neighbours(cat)
    path = cat.catalog.index("pdq").path
    sidecar = path.with_name(path.name + ".json")
    saved, stat = json.loads(sidecar.read_text())["sha256"], path.stat()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])  # codes: still a valid file
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # its size and time as saved
    again = neardup.open(cat.path)
    assert _neighbours(again) == fresh
    assert hashlib.sha256(path.read_bytes()).hexdigest() == json.loads(sidecar.read_text())["sha256"] == saved


def test_an_exact_index_finds_its_rows_by_id_whatever_order_they_were_added_in() -> None:
    from neardup.storage.vectors import _HeldRows

    rng = np.random.default_rng(4)
    ids = rng.permutation(np.arange(10, 60, dtype=np.int64))
    codes, vectors = _codes(len(ids), 32, 4)[1], rng.normal(size=(len(ids), 16)).astype(np.float32)
    binary, floats = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(256)), faiss.IndexIDMap(faiss.IndexFlatIP(16))
    binary.add_with_ids(codes, ids)
    floats.add_with_ids(vectors, ids)
    wanted = np.array([3, 10, 17, 42, 59, 60], np.int64)  # 3 and 60: not held
    where = {int(i): p for p, i in enumerate(ids.tolist())}
    for index, rows in ((binary, codes), (floats, vectors)):
        found, got = _HeldRows.of(index).get(wanted)
        assert found.tolist() == [10, 17, 42, 59]
        assert np.array_equal(got, rows[[where[i] for i in found.tolist()]])


def test_pair_keys_sets_agree_with_python_sets() -> None:
    """The int64 pair keys the candidate bookkeeping compares: the same distinct pairs, first
    occurrences and membership as Python sets of tuples (ids up to 2**31 - 1)."""
    rng = np.random.default_rng(3)
    pairs = rng.integers(0, 50, (400, 2)).astype(np.int64)
    pairs[:5] = [[2**31 - 1, 0], [0, 2**31 - 1], [7, 7], [2**31 - 1, 0], [3, 4]]
    keys = pair_keys(pairs[:, 0], pairs[:, 1])
    distinct, first = unique_keys(keys)
    as_tuples = [tuple(p) for p in pairs.tolist()]
    assert [(int(k >> 32), int(k & 0xFFFFFFFF)) for k in distinct] == sorted(set(as_tuples))
    assert [as_tuples.index(tuple(pairs[i])) for i in first] == first.tolist()
    queries = rng.integers(0, 60, (300, 2)).astype(np.int64)
    found = in_sorted(distinct, pair_keys(queries[:, 0], queries[:, 1]))
    assert found.tolist() == [tuple(q) in set(as_tuples) for q in queries.tolist()]
    assert in_sorted(distinct[:0], keys).tolist() == [False] * len(keys)


def test_pair_keys_refuse_ids_they_cannot_hold() -> None:
    with pytest.raises(ValueError, match="image ids must lie in"):
        pair_keys(np.array([1]), np.array([2**31]))
    with pytest.raises(ValueError, match="image ids must lie in"):
        pair_keys(np.array([-1]), np.array([2]))
