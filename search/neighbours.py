"""Each image's nearest entries in an exact index, kept from one `duplicates` run to the next.

Duplicates draw candidate pairs from every image's nearest entries in the seed hashes' and
the vector features' indexes (`candidates`). Searched again after a few images were added,
each list costs a scan of the whole index, N^2 in all: the term that grows fastest in a run
after adding. So the lists of an exact index are stored with the pair evidence
(`incremental`), in an order that depends on the entries alone (score, then id:
`vectors.ordered_neighbours`), and brought up to date: a list whose query and entries are all
as they were is merged with the entries added since (a scan of those alone); a list that held
an entry since removed or changed, and the list of a query new or changed, is searched again.
Either way it is the list a search of the whole index gives now. A query or entry is told
unchanged by a 64-bit key of its row (`vectors.row_keys`), stored in place of the row. An
approximate index's lists are searched again every time: its answers depend on its lists and
centroids, which adding images moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from neardup.storage.models import IMAGE
from neardup.storage.pairs import Columns
from neardup.storage.vectors import (FeatureIndex, Neighbourhoods, build_binary, build_float, ordered_neighbours,
                                     row_keys)

_SEP = "|"  # between a list's name and its column's in the stored columns
_FIELDS = ("query_ids", "keys", "ids", "values")
@dataclass(frozen=True)
class NeighbourList:
    """Each query's nearest entries of an exact index, itself included, in the order of
    `vectors.ordered_neighbours`: `query_ids` (Q,) int64 ascending, the `keys` (Q,) uint64 of
    the rows they were found for (`row_keys`), `ids` (Q, W) int64 (-1 past the last) and
    their scores `values` (Q, W) float64."""

    query_ids: NDArray[np.int64]
    keys: NDArray[np.uint64]
    ids: NDArray[np.int64]
    values: NDArray[np.float64]

    def neighbourhoods(self) -> Neighbourhoods:
        """The lists without each query's own entry, as `FeatureIndex.neighbourhoods` gives
        them for k = W - 1 (a query that is no entry keeps W others)."""
        return Neighbourhoods(self.query_ids, np.where(self.ids == self.query_ids[:, None], -1, self.ids),
                              self.values)


def list_name(algo: str, view: str) -> str:
    """The stored name of the lists of `algo`'s codes of `view` (an image view or a turn)."""
    return f"{algo}:{view}"


def neighbour_list(index: FeatureIndex, feature: str, entries: tuple[NDArray[np.int64], NDArray],
                   query_ids: NDArray[np.int64], queries: NDArray, width: int, name: str,
                   known: Mapping[str, NeighbourList]) -> NeighbourList:
    """Each query's `width` nearest entries of `feature`'s exact `index`, which holds `entries`
    (ids ascending, rows): the list stored as `name` in `known` brought up to date where it
    can be, searched otherwise. `known`'s whole-image list of `feature` tells its entries then."""
    before, stored = known.get(list_name(feature, IMAGE)), known.get(name)
    keys = row_keys(queries)
    ids = np.full((len(query_ids), width), -1, np.int64)
    values = np.zeros((len(query_ids), width))
    kept = np.zeros(len(query_ids), bool)
    if before is not None and stored is not None and stored.ids.shape[1] == width:
        entry_keys = keys if entries[0] is query_ids else row_keys(entries[1])  # whole images: the entries
        at = _positions(query_ids, stored.query_ids)
        kept = _unchanged(query_ids, keys, stored.query_ids, stored.keys)
        removed = before.query_ids[~_unchanged(before.query_ids, before.keys, entries[0], entry_keys)]
        kept[kept] = ~np.isin(stored.ids[at[kept]], removed).any(axis=1)
        ids[kept], values[kept] = stored.ids[at[kept]], stored.values[at[kept]]
        added = ~_unchanged(entries[0], entry_keys, before.query_ids, before.keys)
        if kept.any() and added.any():
            build = build_binary if entries[1].dtype == np.uint8 else build_float
            more = ordered_neighbours(build(entries[0][added], entries[1][added]), queries[kept], width)
            ids[kept], values[kept] = _merged((ids[kept], values[kept]), more, width)
    if not kept.all():
        ids[~kept], values[~kept] = index.ordered(queries[~kept], width)
    return NeighbourList(query_ids, keys, ids, values)


def lists_to_columns(lists: Mapping[str, NeighbourList]) -> Columns:
    """The lists as named columns for `storage.pairs` (a hash's distances in 16 bits)."""
    out: Columns = {}
    for name, found in lists.items():
        for field in _FIELDS:
            column = getattr(found, field)
            if field == "values" and np.array_equal(column, column.astype(np.int16)):
                column = column.astype(np.int16)
            out[f"{name}{_SEP}{field}"] = column
    return out


def lists_from_columns(columns: Columns) -> dict[str, NeighbourList]:
    """The lists `lists_to_columns` stored."""
    names = {key.rpartition(_SEP)[0] for key in columns}
    return {name: NeighbourList(*(columns[f"{name}{_SEP}{f}"].astype(np.float64) if f == "values"
                                  else columns[f"{name}{_SEP}{f}"] for f in _FIELDS))
            for name in names if all(f"{name}{_SEP}{f}" in columns for f in _FIELDS)}


def _positions(ids: NDArray[np.int64], among: NDArray[np.int64]) -> NDArray[np.int64]:
    """Where each of `ids` would be in the ascending `among` (clipped to its last place)."""
    return np.clip(np.searchsorted(among, ids), 0, max(len(among) - 1, 0))


def _unchanged(ids: NDArray[np.int64], keys: NDArray[np.uint64], other_ids: NDArray[np.int64],
               other_keys: NDArray[np.uint64]) -> NDArray[np.bool_]:
    """(len(ids),) which of (ids, keys) are among (`other_ids` ascending, `other_keys`) with the same key."""
    if not len(other_ids) or not len(ids):
        return np.zeros(len(ids), bool)
    at = _positions(ids, other_ids)
    return (other_ids[at] == ids) & (other_keys[at] == keys)


def _merged(a: tuple[NDArray[np.int64], NDArray[np.float64]], b: tuple[NDArray[np.int64], NDArray[np.float64]],
            width: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Row by row, the first `width` of two ordered lists of different entries, in their order."""
    ids, values = np.concatenate([a[0], b[0]], axis=1), np.concatenate([a[1], b[1]], axis=1)
    order = np.lexsort((ids, np.where(ids == -1, np.inf, values)))[:, :width]
    return np.take_along_axis(ids, order, 1), np.take_along_axis(values, order, 1)
