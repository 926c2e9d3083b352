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
unchanged by a 64-bit key of its row (`vectors.row_keys`), stored in place of the row.

An inverted file of vectors (an approximate index) answers from the entries filed under the
`nprobe` centroids nearest to the query, and adding images moves no centroid (they are filed
under the ones there are, until it is trained again). So its lists are kept too, each with
the lists it probed (`FeatureIndex.probes`), and merged with a search of those lists among
the added entries alone (`FeatureIndex.preassigned`): the list its search of the whole index
gives, without each query's scan of the centroids and of every entry in its lists again. Such
lists are stored under the name of the index's training (`FeatureIndex.training`): trained or
tuned again, it answers differently, and every list is searched again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import faiss
import numpy as np
from numpy.typing import NDArray

from neardup.storage.models import IMAGE
from neardup.storage.pairs import Columns
from neardup.storage.vectors import FAR, FeatureIndex, Neighbourhoods, build_float, ordered_neighbours, row_keys

_SEP = "|"  # between a list's name and its column's in the stored columns
_FIELDS = ("query_ids", "keys", "ids", "values")
_PROBES = ("coarse", "probes")  # an inverted file's lists also keep the lists they probed
_PART = 8192  # queries searched or merged at once
_DISTANCES = 1 << 23  # Hamming distances counted at once (queries x codes added): 32 MB of int32


@dataclass(frozen=True)
class NeighbourList:
    """Each query's nearest entries of an exact index, itself included, in the order of
    `vectors.ordered_neighbours`: `query_ids` (Q,) int64 ascending, the `keys` (Q,) uint64 of
    the rows they were found for (`row_keys`), `ids` (Q, W) int64 (-1 past the last) and
    their scores `values` (Q, W) float64; of an inverted file, the inverted lists each query
    probed (`FeatureIndex.probes`: scores `coarse` (Q, P) float32, numbers `probes` (Q, P))."""

    query_ids: NDArray[np.int64]
    keys: NDArray[np.uint64]
    ids: NDArray[np.int64]
    values: NDArray[np.float64]
    coarse: NDArray[np.float32] | None = None
    probes: NDArray[np.int64] | None = None

    def neighbourhoods(self) -> Neighbourhoods:
        """The lists without each query's own entry, as `FeatureIndex.neighbourhoods` gives
        them for k = W - 1 (a query that is no entry keeps W others)."""
        return Neighbourhoods(self.query_ids, np.where(self.ids == self.query_ids[:, None], -1, self.ids),
                              self.values)


def list_name(algo: str, view: str, training: str | None = None) -> str:
    """The stored name of the lists of `algo`'s codes of `view` (an image view or a turn), in
    an inverted file of that `training` (`FeatureIndex.training`)."""
    return f"{algo}:{view}" + (f"@{training}" if training else "")


def neighbour_list(index: FeatureIndex, feature: str, entries: tuple[NDArray[np.int64], NDArray],
                   query_ids: NDArray[np.int64], queries: NDArray, width: int, name: str,
                   known: Mapping[str, NeighbourList], training: str | None = None) -> NeighbourList:
    """Each query's `width` nearest entries of `feature`'s exact `index`, or of its inverted
    file of that `training`, which holds `entries` (ids ascending, rows): the list stored as
    `name` in `known` brought up to date where it can be, searched otherwise. `known`'s
    whole-image list of `feature` tells its entries then."""
    before, stored = known.get(list_name(feature, IMAGE, training)), known.get(name)
    keys = row_keys(queries)
    ids = np.full((len(query_ids), width), -1, np.int64)
    values = np.zeros((len(query_ids), width))
    kept = np.zeros(len(query_ids), bool)
    probed = None
    if training is not None:
        probed = (np.zeros((len(query_ids), 0), np.float32), np.zeros((len(query_ids), 0), np.int64))
    if before is not None and stored is not None and stored.ids.shape[1] == width and \
            (stored.probes is None) == (training is None):
        entry_keys = keys if entries[0] is query_ids else row_keys(entries[1])  # whole images: the entries
        at = _positions(query_ids, stored.query_ids)
        kept = _unchanged(query_ids, keys, stored.query_ids, stored.keys)
        removed = before.query_ids[~_unchanged(before.query_ids, before.keys, entries[0], entry_keys)]
        kept[kept] = ~np.isin(stored.ids[at[kept]], removed).any(axis=1)
        ids[kept], values[kept] = stored.ids[at[kept]], stored.values[at[kept]]
        if probed is not None:
            probed = (np.zeros((len(query_ids), stored.coarse.shape[1]), np.float32),
                      np.zeros((len(query_ids), stored.probes.shape[1]), np.int64))
            probed[0][kept], probed[1][kept] = stored.coarse[at[kept]], stored.probes[at[kept]]
        added = ~_unchanged(entries[0], entry_keys, before.query_ids, before.keys)
        if kept.any() and added.any():
            among = (entries[0][added], entries[1][added])
            # the added entries alone, indexed once for every part (codes need no index: `_merged_codes`)
            flat = index.filed(*among) if probed is not None else \
                None if among[1].dtype == np.uint8 else build_float(*among)
            for part in _parts(kept):
                if among[1].dtype == np.uint8:
                    ids[part], values[part] = _merged_codes(queries[part], (ids[part], values[part]), among, width)
                    continue
                more = (ordered_neighbours(flat, queries[part], width) if probed is None else
                        index.preassigned(queries[part], (probed[0][part], probed[1][part]), width, within=flat))
                ids[part], values[part] = _merged((ids[part], values[part]), more, width)
    for part in _parts(~kept):
        if probed is None:
            ids[part], values[part] = index.ordered(queries[part], width)
            continue
        found = index.probes(queries[part])
        if probed[1].shape[1] != found[1].shape[1]:
            probed = tuple(np.zeros((len(query_ids), f.shape[1]), f.dtype) for f in found)
        probed[0][part], probed[1][part] = found
        ids[part], values[part] = index.preassigned(queries[part], found, width)
    return NeighbourList(query_ids, keys, ids, values, *(probed or (None, None)))


def _parts(rows: NDArray[np.bool_]) -> list[NDArray[np.intp]]:
    """The rows marked, a few thousand at a time: gathered all at once, 100,000 1,280-d
    queries are a 512 MB copy beside the queries themselves."""
    marked = np.flatnonzero(rows)
    return [marked[i : i + _PART] for i in range(0, len(marked), _PART)]


def lists_to_columns(lists: Mapping[str, NeighbourList]) -> Columns:
    """The lists as named columns for `storage.pairs` (a hash's distances in 16 bits)."""
    out: Columns = {}
    for name, found in lists.items():
        for field in _FIELDS + (_PROBES if found.probes is not None else ()):
            column = getattr(found, field)
            if field == "values" and np.array_equal(column, column.astype(np.int16)):
                column = column.astype(np.int16)
            elif field == "values" and np.array_equal(column, column.astype(np.float32)):
                column = column.astype(np.float32)  # an inverted file's scores are float32
            elif field == "probes":
                column = column.astype(np.int32)
            out[f"{name}{_SEP}{field}"] = column
    return out


def lists_from_columns(columns: Columns) -> dict[str, NeighbourList]:
    """The lists `lists_to_columns` stored."""
    names = {key.rpartition(_SEP)[0] for key in columns}
    out = {}
    for name in (n for n in names if all(f"{n}{_SEP}{f}" in columns for f in _FIELDS)):
        found = [columns[f"{name}{_SEP}{f}"] for f in _FIELDS]
        probed = [columns.get(f"{name}{_SEP}{f}") for f in _PROBES]
        out[name] = NeighbourList(*found[:3], found[3].astype(np.float64),
                                  *((None, None) if any(p is None for p in probed)
                                    else (probed[0].astype(np.float32), probed[1].astype(np.int64))))
    return out


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


def _merged_codes(queries: NDArray[np.uint8], listed: tuple[NDArray[np.int64], NDArray[np.float64]],
                  among: tuple[NDArray[np.int64], NDArray[np.uint8]], width: int
                  ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Row by row, the `width` first of a list of binary codes (`listed`, ordered) and of the
    entries `among` (ids ascending, codes): what `_merged` makes of it and a search of `among`.
    A search keeps a heap for each query to scan the few codes added, several times the cost
    of counting every distance at once (FAISS's `hammings`) and ordering only the entries
    ahead of a full list's last (by distance, then id), which few are."""
    among_ids, codes = among
    out = (listed[0].copy(), listed[1].copy())
    step = max(1, _DISTANCES // max(len(among_ids), 1))
    for lo in range(0, len(queries), step):
        part = np.ascontiguousarray(queries[lo:lo + step])
        far = np.empty((len(part), len(among_ids)), np.int32)
        faiss.hammings(faiss.swig_ptr(part), faiss.swig_ptr(codes), len(part), len(among_ids), codes.shape[1],
                       faiss.swig_ptr(far))
        ids, values = listed[0][lo:lo + step], listed[1][lo:lo + step]
        last = np.where(ids[:, -1] == -1, np.inf, values[:, -1])[:, None]
        ahead = (far < last) | ((far == last) & (among_ids[None, :] < ids[:, -1:]))
        rows = np.flatnonzero(ahead.any(axis=1))
        if not len(rows):
            continue
        # each such row's entries ahead, in order: ids by distance (those behind: last), then id
        ranked = np.where(ahead[rows], far[rows], np.iinfo(np.int32).max)
        order = np.lexsort((np.broadcast_to(among_ids, ranked.shape), ranked), axis=-1)[:, :width]
        found = np.where(np.take_along_axis(ahead[rows], order, 1), among_ids[order], -1)
        scores = np.where(found == -1, float(FAR), np.take_along_axis(ranked, order, 1).astype(np.float64))
        merged = _merged((ids[rows], values[rows]), (found, scores), width)
        out[0][lo + rows], out[1][lo + rows] = merged
    return out


def _merged(a: tuple[NDArray[np.int64], NDArray[np.float64]], b: tuple[NDArray[np.int64], NDArray[np.float64]],
            width: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Row by row, the first `width` of two ordered lists of different entries, in their order."""
    ids, values = np.concatenate([a[0], b[0]], axis=1), np.concatenate([a[1], b[1]], axis=1)
    order = np.lexsort((ids, np.where(ids == -1, np.inf, values)))[:, :width]
    return np.take_along_axis(ids, order, 1), np.take_along_axis(values, order, 1)
