"""Neighbour lists kept from run to run (search.neighbours): brought up to date after entries
were added, removed or changed, they are what a search of the whole index gives now, and only
the lists that cannot be merged are searched again."""

from __future__ import annotations

import numpy as np
import pytest

import neardup
from neardup.search.neighbours import NeighbourList, list_name, lists_from_columns, lists_to_columns, neighbour_list
from neardup.storage.models import IMAGE
from neardup.storage.pairs import PairStore
from neardup.storage.vectors import build_binary, build_float, ordered_neighbours, row_keys

from test_vectors import ordered_oracle

WIDTH = 6


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


@pytest.mark.parametrize("seed, dims", [(0, 0), (1, 0), (2, 0), (3, 0), (4, 64), (5, 1280)])
def test_a_list_brought_up_to_date_is_what_a_search_of_the_whole_index_gives(seed: int, dims: int) -> None:
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
