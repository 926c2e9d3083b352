"""Neighbour lists kept from run to run (search.neighbours): brought up to date after entries
were added, removed or changed, they are what a search of the whole index gives now, and only
the lists that cannot be merged are searched again."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import neardup
from neardup.search import neighbours
from neardup.search.neighbours import NeighbourList, list_name, lists_from_columns, lists_to_columns, neighbour_list
from neardup.storage.models import IMAGE
from neardup.storage.pairs import PairStore
from neardup.storage.vectors import build_binary, build_float, ordered_neighbours, row_keys

from test_ann import FLOAT, _clustered, _records, synthetic_catalog
from test_vectors import ordered_oracle

WIDTH = 6


@pytest.fixture
def synthetic(tmp_path):
    """`test_ann`'s catalog: 4,000 clustered vectors in an inverted file."""
    catalog = synthetic_catalog(tmp_path / "syn.db")
    yield catalog
    catalog.close()


class FlatIndex:
    """An exact index of some entries, answering as `FeatureIndex.ordered` does, that counts
    the queries it was asked."""

    def __init__(self, ids: np.ndarray, rows: np.ndarray) -> None:
        self.index, self.searched = _build(ids, rows), 0

    def ordered(self, queries: np.ndarray, width: int):
        self.searched += len(queries)
        return ordered_neighbours(self.index, queries, width)


def _entries(rng, ids: np.ndarray, dims: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Codes of 6 bits (many ties) for `ids`, or unit vectors of `dims` dimensions, 8 of them
    copies (ties)."""
    if dims:
        v = rng.standard_normal((len(ids), dims)).astype(np.float32)
        v[1:8] = v[0]
        return ids, v / np.linalg.norm(v, axis=1, keepdims=True)
    codes = np.zeros((len(ids), 8), np.uint8)
    codes[:, 0] = rng.integers(0, 64, len(ids))
    return ids, codes


def _build(ids: np.ndarray, rows: np.ndarray):
    return (build_binary if rows.dtype == np.uint8 else build_float)(ids, rows)


def _whole_list(ids: np.ndarray, rows: np.ndarray) -> NeighbourList:
    return NeighbourList(ids, row_keys(rows), *ordered_neighbours(_build(ids, rows), rows, WIDTH))


def _changed(rows: np.ndarray, which: np.ndarray) -> np.ndarray:
    out = rows.copy()
    if out.dtype == np.uint8:
        out[which, 0] ^= 1
    else:
        out[which] = -out[which]
    return out


@pytest.mark.parametrize("seed, dims, part", [(0, 0, 8192), (1, 0, 8192), (2, 0, 7), (3, 0, 8192), (4, 64, 8192),
                                              (5, 1280, 8192), (6, 64, 7)])
def test_a_list_brought_up_to_date_is_what_a_search_of_the_whole_index_gives(seed: int, dims: int, part: int,
                                                                             monkeypatch) -> None:
    monkeypatch.setattr(neighbours, "_PART", part)  # queries a few at a time, or all at once
    monkeypatch.setattr(neighbours, "_DISTANCES", part * 3)  # codes' distances to the added: a query at a time too
    rng = np.random.default_rng(seed)
    ids, codes = _entries(rng, np.arange(1, 301, dtype=np.int64), dims)
    known = {list_name("pdq", IMAGE): _whole_list(ids, codes)}
    # then: 5 entries removed, 3 changed, 20 added (the new ones' ids above, as a catalog gives them)
    kept = np.ones(len(ids), bool)
    kept[rng.choice(len(ids), 5, replace=False)] = False
    now_codes = _changed(codes, rng.choice(np.flatnonzero(kept), 3, replace=False))
    added_ids, added_codes = _entries(rng, np.arange(301, 321, dtype=np.int64), dims)
    now_ids = np.concatenate([ids[kept], added_ids])
    now_codes = np.concatenate([now_codes[kept], added_codes])
    index = FlatIndex(now_ids, now_codes)
    entries = (now_ids, now_codes)
    got = neighbour_list(index, "pdq", entries, now_ids, now_codes, WIDTH, list_name("pdq", IMAGE), known)
    want = ordered_oracle(now_ids, now_codes, now_codes, WIDTH)
    assert np.array_equal(got.ids, want[0]) and np.array_equal(got.values, want[1])
    # searched again: the 20 new and 3 changed queries, and the lists that held an entry removed or changed
    before = known[list_name("pdq", IMAGE)]
    gone = np.concatenate([ids[~kept], now_ids[:kept.sum()][(now_codes[:kept.sum()] != codes[kept]).any(axis=1)]])
    held = np.isin(before.ids, gone).any(axis=1)
    stale = np.isin(now_ids, np.concatenate([before.query_ids[held], gone, added_ids]))
    assert index.searched == stale.sum() < len(now_ids) / 2


def test_queries_that_are_not_entries_are_brought_up_to_date_too() -> None:
    """A content box's codes (another view) search the whole images' index: their lists are
    merged the same way, by what the whole images' list says the entries were."""
    rng = np.random.default_rng(9)
    ids, codes = _entries(rng, np.arange(1, 201, dtype=np.int64))
    box_ids, box_codes = _entries(rng, np.arange(1, 201, 10, dtype=np.int64))
    box = NeighbourList(box_ids, row_keys(box_codes), *ordered_neighbours(build_binary(ids, codes), box_codes, WIDTH))
    known = {list_name("pdq", IMAGE): _whole_list(ids, codes), list_name("pdq", "box"): box}
    added_ids, added_codes = _entries(rng, np.arange(201, 211, dtype=np.int64))
    now_ids, now_codes = np.concatenate([ids, added_ids]), np.concatenate([codes, added_codes])
    index = FlatIndex(now_ids, now_codes)
    got = neighbour_list(index, "pdq", (now_ids, now_codes), box_ids, box_codes, WIDTH, list_name("pdq", "box"), known)
    want = ordered_oracle(now_ids, now_codes, box_codes, WIDTH)
    assert np.array_equal(got.ids, want[0]) and np.array_equal(got.values, want[1])
    assert index.searched == 0
    # without the whole images' list, what the entries were is unknown: every list is searched
    alone = {list_name("pdq", "box"): box}
    again = neighbour_list(index, "pdq", (now_ids, now_codes), box_ids, box_codes, WIDTH, list_name("pdq", "box"),
                           alone)
    assert np.array_equal(again.ids, want[0]) and index.searched == len(box_ids)


def test_lists_survive_the_pair_store(tmp_path) -> None:
    rng = np.random.default_rng(3)
    ids, codes = _entries(rng, np.arange(1, 51, dtype=np.int64))
    lists = {list_name("pdq", IMAGE): _whole_list(ids, codes), list_name("phash256", "turn3"): _whole_list(ids, codes)}
    collection = neardup.open(tmp_path / "c.db", create=True, embedder="none")
    store = PairStore(collection.catalog, {"key": 1})
    store.replace(images={}, candidates={}, pairs={}, generation=None, lists=lists_to_columns(lists))
    back = lists_from_columns(store.read().lists)
    collection.close()
    assert back.keys() == lists.keys()
    for name, found in lists.items():
        for field in ("query_ids", "keys", "ids", "values"):
            assert np.array_equal(getattr(back[name], field), getattr(found, field))


def _searched(index, queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's own search of the whole inverted file: (ids, minus scores), as a set per row."""
    import faiss
    distances, found = faiss.extract_index_ivf(index._current().index).search(queries, width)
    return found, -distances.astype(np.float64)


def test_an_inverted_files_lists_brought_up_to_date_are_what_its_search_gives(synthetic, monkeypatch) -> None:
    """Images added to, removed from and changed in an inverted file are filed under the
    centroids it has: a kept list merged with a search of the added entries alone, in the
    lists the query probed, is the list FAISS's search of the whole file gives, and only the
    lists of queries new or changed, or that held an entry removed, are searched again."""
    monkeypatch.setattr(neighbours, "_PART", 1000)  # probed and merged in parts
    index = synthetic.index(FLOAT)
    training = index.training()
    assert training is not None
    ids, vectors = synthetic.vectors(FLOAT)
    name = list_name(FLOAT, IMAGE, training)
    first = neighbour_list(index, FLOAT, (ids, vectors), ids, vectors, WIDTH, name, {}, training)
    want = _searched(index, vectors, WIDTH)
    assert (np.sort(first.ids, axis=1) == np.sort(want[0], axis=1)).all()
    assert np.abs(first.values - want[1]).max() < 1e-5
    known = lists_from_columns(lists_to_columns({name: first}))  # as stored and read back
    assert known[name].probes.shape == (len(ids), int(index.state().nprobe))

    codes, more = _clustered(4300, 0)
    synthetic.write(_records(codes[4000:], more[4000:], 4000))  # 300 added
    synthetic.remove(ids[:40].tolist())  # 40 removed
    synthetic.write([replace(r, sha256="e" + r.sha256[1:], vectors={"image": {FLOAT: -r.vectors["image"][FLOAT]}})
                     for r in _records(codes[3500:3503], more[3500:3503], 3500)])  # 3 changed
    now_ids, now_vectors = synthetic.vectors(FLOAT)
    assert index.training() == training and len(index) == 4260  # refreshed in place, not trained again
    probed = []
    probes = index.probes

    def counted(queries):
        probed.append(len(queries))
        return probes(queries)

    index.probes = counted
    got = neighbour_list(index, FLOAT, (now_ids, now_vectors), now_ids, now_vectors, WIDTH, name, known, training)
    want = _searched(index, now_vectors, WIDTH)
    assert (np.sort(got.ids, axis=1) == np.sort(want[0], axis=1)).all()
    assert np.abs(got.values - want[1]).max() < 1e-5
    before = known[name]
    was = dict(zip(ids.tolist(), vectors))
    changed = [i for i, v in zip(now_ids.tolist(), now_vectors) if i in was and not np.array_equal(v, was[i])]
    added = np.setdiff1d(now_ids, ids)
    assert len(changed) == 3 and len(added) == 300
    gone = np.concatenate([ids[:40], changed])
    stale = np.isin(now_ids, np.concatenate([before.query_ids[np.isin(before.ids, gone).any(axis=1)], gone, added]))
    assert sum(probed) == stale.sum() < len(now_ids) / 4


def test_a_rows_key_is_its_own_whatever_rows_it_is_keyed_with() -> None:
    """Rows are keyed a few thousand at a time (memory): a row's key does not depend on
    where the chunks fall, and any one changed word changes it."""
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((9000, 1280)).astype(np.float32)
    keys = row_keys(vectors)
    assert np.array_equal(keys[[0, 4095, 4096, 8999]], np.concatenate([row_keys(vectors[i:i + 1])
                                                                        for i in (0, 4095, 4096, 8999)]))
    assert len(np.unique(keys)) == len(keys)
    changed = vectors[4096:4097].copy()
    changed[0, 700] = np.nextafter(changed[0, 700], np.float32(2))
    assert row_keys(changed)[0] != keys[4096]
    codes = rng.integers(0, 256, (5000, 32), dtype=np.uint8)
    assert np.array_equal(row_keys(codes)[4090:4100], row_keys(codes[4090:4100]))


def test_an_inverted_file_trained_before_tokens_were_kept_is_given_one_that_lasts(synthetic) -> None:
    import json

    from neardup.storage.catalog import Catalog

    token = synthetic.index(FLOAT).training()
    sidecar = synthetic.index(FLOAT).path.with_name(synthetic.index(FLOAT).path.name + ".json")
    meta = json.loads(sidecar.read_text())
    assert meta["trained"] == token.split(".")[0]
    del meta["trained"]  # as an index built by an older neardup
    sidecar.write_text(json.dumps(meta))
    first, second = Catalog.open(synthetic.path), Catalog.open(synthetic.path)
    given = first.index(FLOAT).training()
    assert given is not None and given != token
    assert second.index(FLOAT).training() == given  # kept in its sidecar
    first.close()
    second.close()


@pytest.mark.parametrize("description", ["IVF64,SQ8", "IVF64,PQ16"])
def test_added_entries_searched_alone_rank_as_in_the_whole_inverted_file(description: str) -> None:
    """The empty copy the added entries are filed in (made beside the index, which another
    thread may be searching) scores them as the whole index does, in the lists probed."""
    from neardup.storage import ann
    from neardup.storage.vectors import _emptied, _preassigned

    rng = np.random.default_rng(8)
    rows = rng.standard_normal((6000, 64)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    index = ann.new_index(description, 64, binary=False)
    ann.train(index, rows[:4000])
    ann.set_nprobe(index, 8)
    index.add_with_ids(rows[:5000], np.arange(5000))
    alone = _emptied(index, description)
    alone.add_with_ids(rows[5000:], np.arange(5000, 6000))
    index.add_with_ids(rows[5000:], np.arange(5000, 6000))
    queries = rows[:500]
    import faiss
    probed = faiss.extract_index_ivf(index).quantizer.search(queries, 8)
    whole = _preassigned(index, queries, probed, 6000)
    added = _preassigned(alone, queries, probed, WIDTH)
    for row in range(len(queries)):
        wanted = whole[0][row][whole[0][row] >= 5000][:WIDTH]
        assert np.array_equal(added[0][row][:len(wanted)], wanted)
    assert faiss.extract_index_ivf(index).invlists.compute_ntotal() == 6000  # the index kept its entries
