"""FAISS indexes: caches of the catalog's hashes (binary, Hamming) and vectors (float, cosine).

A `FeatureIndex` per feature is all callers see: its length, k-nearest search, range search,
and each image's nearest neighbours. Ids are catalog image ids. Which FAISS index a feature
gets follows the catalog's size (`ann`): exact below `IndexPolicy.exact_below` entries,
approximate (inverted files, tuned to a measured recall) above. A file beside the catalog
(photos.db -> photos.<feature>.faiss) saves building it again. The file is bound to its
catalog by a sidecar (photos.<feature>.faiss.json: the catalog's identity and generation, the
file's SHA-256, size and modification time, and what the index was built from), and lists the
ids it holds with each one's content (photos.<feature>.faiss.ids.npy, bound the same way), so
an index file restored from a backup, copied from another catalog, or damaged is never used as
it is. When the catalog's generation moved on, an exact index is updated in place when the
added rows come after the kept ones (else built again: cheap at its size) and an approximate
one is brought up to date in place: the images gone or changed are removed, the
new or changed ones added; it is trained again when the data drifted (`ann.drifted`). A
catalog on a database server keeps these files in each machine's cache folder instead
(`Catalog.cache_file`), bound to it the same way. FAISS's (D, I) arrays never leave this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np
from numpy.typing import NDArray

from . import ann
from .errors import NeardupError

if TYPE_CHECKING:
    from .catalog import Catalog

REFINE = 2  # an approximate float index finds REFINE x k candidates, re-ranked by exact cosine
# Approximate float codes misjudge a cosine by up to about this much (SQ8: a byte per
# dimension; PQ: far coarser), so range searches reach this much further, then re-score.
_MARGIN = {"IVF,SQ8": 0.02}
_PQ_MARGIN = 0.1
_CHUNK = 65_536  # rows read from the catalog and added at a time
_TRUTH_BLOCK = 4_096  # rows an approximate index's ground truth scores at a time (`_ExactNeighbours`)
_FEW_QUERIES = 16  # up to this many queries, FAISS searches on one thread (`_threads_for`)
# reading every hash in id order costs about as much as looking up this share of them one by
# one (4.5 against 22 microseconds a row, 100,000 rows, docs/RELIABILITY.md)
_BULK_READ = 0.2
# an ordered search (`ordered_neighbours`) looks this far past the width, so that a tie at its
# edge is seen whole without a second search nearly always (how often: docs/BENCHMARKS.md)
_TIE_SLACK = 32
FAR = np.iinfo(np.int16).max  # the score an ordered list gives a place no entry fills
_FLOAT_ERROR = 1e-3  # more than a cosine of unit vectors as FAISS rounds it can be off the exact one
_TIED_ROWS = 16  # queries whose ties are range-searched at once
_KEYED_ROWS = 4096  # rows keyed at once (`row_keys`: 4,096 x 640 words x 8 B = 21 MB for 1,280-d vectors)
_SCORED = 256  # queries whose candidates' rows are gathered and scored at a time (float64: 256 x 38 x 1,280 x 8 B)


@dataclass(frozen=True)
class Neighbor:
    image_id: int
    distance: float  # Hamming bits for binary indexes, inner product (cosine) for float ones


_KEY_ID_LIMIT = 2**31  # ids fit in the 32 bits of a pair key below its sign


class IdRangeError(NeardupError, ValueError):
    """An image id outside what pair keys can hold."""


def pair_keys(first: NDArray[np.integer], second: NDArray[np.integer]) -> NDArray[np.int64]:
    """One int64 per pair of ids (each in [0, 2**31)), in the pairs' lexicographic order: sets
    of millions of pairs compared in NumPy, not as Python tuples or rows. Catalog ids count up
    from 1; an id out of that range is an error, never a silently wrong pair."""
    first, second = np.asarray(first, np.int64), np.asarray(second, np.int64)
    for ids in (first, second):
        if len(ids) and (ids.min() < 0 or ids.max() >= _KEY_ID_LIMIT):
            raise IdRangeError(f"image ids must lie in [0, {_KEY_ID_LIMIT}) to be paired; "
                               f"got {ids.min()}..{ids.max()}")
    return first << 32 | second


def pair_ids(keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The two ids of each `pair_keys` key."""
    return keys >> 32, keys & 0xFFFFFFFF


def unique_keys(keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(the distinct `keys`, ascending; the index of each one's first occurrence). A sort and
    a comparison of neighbours: np.unique (hashing, then sorting, in NumPy 2.4) took 15 s for
    12 M keys here, where np.sort takes 0.1 s."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.ones(len(ordered), bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first], order[first]


def in_sorted(sorted_keys: NDArray[np.int64], keys: NDArray[np.int64]) -> NDArray[np.bool_]:
    """(len(keys),) which `keys` are among `sorted_keys` (ascending). The keys are sorted first:
    a binary search each in their own order jumps all over memory (6 s for 4 M in 12 M, 0.2 s
    sorted), and np.isin sorts both."""
    order = np.argsort(keys)
    ordered = keys[order]
    at = np.searchsorted(sorted_keys, ordered)
    hit = at < len(sorted_keys)
    hit[hit] = sorted_keys[at[hit]] == ordered[hit]
    out = np.empty(len(keys), bool)
    out[order] = hit
    return out


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
    """Whether a feature's index file can be used as it is (`fresh`) or will be brought up to
    date; what index it is (`kind`: "flat" for exact, else its FAISS description), about how
    much memory it takes, its recall@10 measured when it was built, its `nprobe`, and how many
    entries it held when it was trained (0: exact, never trained)."""

    feature: str
    path: str
    entries: int
    fresh: bool
    exists: bool
    kind: str = ann.EXACT
    memory: int = 0
    recall: float = 1.0
    nprobe: int = 0
    trained_on: int = 0


@dataclass
class _Built:
    """An index and what it was built from: the catalog generation, its sidecar's fields, and
    the ids it holds (sorted) with each one's content."""

    generation: str
    index: object
    meta: dict
    ids: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    contents: NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, np.uint64))

    @property
    def tuning(self) -> ann.Tuning:
        return ann.Tuning(**self.meta["tuning"])

    held: _HeldRows | None = field(default=None, init=False, repr=False)  # its rows by id, once asked
    saved: bool = False  # its file holds it (read from it, or written)


@dataclass(frozen=True)
class _HeldRows:
    """A feature's rows in memory, found by id: `ids` sorted, `rows[positions[i]]` the row of
    `ids[i]`. Those of an exact FAISS index are a view into the index's own memory, not a copy."""

    ids: NDArray[np.int64]
    positions: NDArray[np.int64]
    rows: NDArray

    @classmethod
    def of(cls, index) -> _HeldRows:
        id_map = faiss.vector_to_array(index.id_map).astype(np.int64)
        if isinstance(index, faiss.IndexBinary):
            flat = faiss.downcast_IndexBinary(index.index)
            rows = faiss.vector_to_array(flat.xb).reshape(len(id_map), flat.code_size)
        else:
            flat = faiss.downcast_index(index.index)
            rows = faiss.rev_swig_ptr(flat.get_xb(), len(id_map) * flat.d).reshape(len(id_map), flat.d)
        order = np.argsort(id_map, kind="stable")
        return cls(id_map[order], order, rows)

    @classmethod
    def read(cls, catalog: Catalog, feature: str) -> _HeldRows:
        """Every row of `feature` of the images on disk, from the catalog."""
        chunks = list(catalog.feature_chunks(feature, size=_CHUNK))
        if not chunks:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1), np.uint8))
        ids = np.concatenate([c[0] for c in chunks])
        return cls(ids, np.arange(len(ids)), np.concatenate([c[1] for c in chunks]))

    def get(self, ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray]:
        """The rows of those of the sorted, unique `ids` held: (ids found, their rows)."""
        at = np.minimum(np.searchsorted(self.ids, ids), max(len(self.ids) - 1, 0))
        found = (at < len(self.ids)) & (self.ids[at] == ids) if len(self.ids) else np.zeros(len(ids), bool)
        return ids[found], self.rows[self.positions[at[found]]]


class FeatureIndex:
    """The nearest-neighbour index of one feature's whole-image hashes or vectors."""

    def __init__(self, catalog: Catalog, feature: str, *, binary: bool) -> None:
        self.catalog, self.feature, self.binary = catalog, feature, binary
        self.path = catalog.cache_file(f"{feature}.faiss")
        self._sidecar = self.path.with_name(self.path.name + ".json")
        self._ids_path = self.path.with_name(self.path.name + ".ids.npy")
        self._built: _Built | None = None
        # searches of one server share the index (`neardup serve`): one of them builds or
        # refreshes it while the others wait, then all search the same built index
        self._building = threading.Lock()
        self._held: tuple[str, _HeldRows] | None = None  # every hash, at a generation (`rows`)
        # rows read from the catalog at a generation, and how many images it has
        self._looked_up: tuple[str, int, int] = ("", 0, 0)
        self._reading: str | None = None  # the generation whose hashes one thread is reading

    def __len__(self) -> int:
        return int(self._current().index.ntotal)

    def knn(self, queries: NDArray, k: int) -> list[list[Neighbor]]:
        """The k nearest entries of each query row, nearest first (fewer when the index is small).
        An approximate float index's candidates are re-ranked by their exact cosine."""
        built = self._current()
        if self.binary or built.tuning.exact or k <= 0:
            return knn(built.index, queries, k)
        return self._reranked(knn(built.index, queries, REFINE * k), queries, k)

    def rows(self, ids: Sequence[int]) -> tuple[NDArray[np.int64], NDArray]:
        """The stored rows of `ids` as `Catalog.feature_rows` gives them: the ids that have one,
        in id order, and their packed bits or float32 vectors.

        A search weighs hundreds of candidates by their rows, and reading them from the catalog
        a row at a time was half of a search's time at 100,000 images (docs/RELIABILITY.md).
        An exact index in memory holds every row and hands them over. Hashes (32 bytes a row)
        are otherwise read all at once, the way one rents skis until the rent paid would have
        bought them: once this process has looked up a fifth as many rows as the feature has
        (reading them all costs about that much, `_BULK_READ`), so a one-off search reads only
        its candidates and a server or a folder of queries soon holds every hash. Vectors of
        an approximate index (5 GB a million as float32) always come from the catalog."""
        wanted = np.unique(np.asarray(ids, np.int64))
        held = self._held_rows(len(wanted))
        if held is None:
            return self.catalog.feature_rows(self.feature, wanted.tolist())
        found, rows = held.get(wanted)
        if len(found) == len(wanted):
            return found, rows
        # rows the index does not hold (images not on disk) are the catalog's to give
        rest_ids, rest = self.catalog.feature_rows(self.feature, np.setdiff1d(wanted, found).tolist())
        if not len(rest_ids):
            return found, rows
        order = np.argsort(np.concatenate([found, rest_ids]), kind="stable")
        return np.concatenate([found, rest_ids])[order], np.concatenate([rows, rest.astype(rows.dtype)])[order]

    def _held_rows(self, asked: int) -> _HeldRows | None:
        """Every row in memory, when an exact index holds them or hashes have been looked up
        often enough at this generation (see `rows`); else None."""
        generation = self.catalog.generation()
        built = self._built
        if built is not None and built.generation == generation and built.tuning.exact:
            if built.held is None:
                built.held = _HeldRows.of(built.index)
            return built.held
        if not self.binary:
            return None
        with self._building:
            if self._held is not None and self._held[0] == generation:
                return self._held[1]
            if self._looked_up[0] != generation:
                self._looked_up = (generation, 0, self.catalog.present())
            _, looked_up, images = self._looked_up
            self._looked_up = (generation, looked_up + asked, images)
            if looked_up + asked < _BULK_READ * images or self._reading == generation:
                return None
            self._reading = generation
        # one thread reads them all while the others go on looking rows up: none waits for it
        try:
            held = _HeldRows.read(self.catalog, self.feature)
            with self._building:
                self._held = (generation, held)
        finally:
            with self._building:
                self._reading = None
        return held

    def within(self, queries: NDArray, query_ids: NDArray[np.int64], limit: float, *, batch: int = 4096,
               symmetric: bool = True) -> Edges:
        """Every (query, entry) pair within `limit` (see `within`); an approximate float index
        reaches a margin further and keeps the pairs whose exact cosine is within."""
        built = self._current()
        if self.binary or built.tuning.exact:
            return within(built.index, queries, query_ids, limit, batch=batch, symmetric=symmetric)
        margin = _MARGIN.get(ann.family(built.tuning.description), _PQ_MARGIN)
        found = within(built.index, queries, query_ids, limit - margin, batch=batch, symmetric=symmetric)
        return self._rescored(found, queries, query_ids, limit)

    def nearest(self, queries: NDArray, query_ids: NDArray[np.int64], k: int, *, rank: bool = False) -> Edges:
        """Each query's k nearest entries as pairs (see `nearest`)."""
        return nearest(self._current().index, queries, query_ids, k, rank=rank)

    def neighbourhoods(self, queries: NDArray, query_ids: NDArray[np.int64], k: int) -> Neighbourhoods:
        """Each query's k nearest other entries (see `neighbourhoods`)."""
        return neighbourhoods(self._current().index, queries, query_ids, k)

    def exact(self) -> bool:
        """Whether the index answers exactly: a flat one."""
        return self._current().tuning.exact

    def ordered(self, queries: NDArray, width: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Each query's `width` nearest entries of an exact index, by score then id (see
        `ordered_neighbours`)."""
        built = self._current()
        if not built.tuning.exact:
            raise ValueError(f"{self.feature}: only an exact index gives ordered neighbours")
        return ordered_neighbours(built.index, queries, width)

    def training(self) -> str | None:
        """What an inverted file of vectors answers by besides its entries (its centroids and
        codebooks, its nprobe), as a token that changes when it is trained or tuned again;
        None for an exact index or a binary one. An index trained before tokens were kept
        is given one now."""
        built = self._current()
        if built.tuning.exact or self.binary:
            return None
        if "trained" not in built.meta:
            with self._building:
                if "trained" not in built.meta:
                    built.meta["trained"] = os.urandom(8).hex()
                    self._save(built, index_changed=False)
        return f"{built.meta['trained']}.{built.tuning.nprobe}"

    def probes(self, queries: NDArray) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Each query's `nprobe` nearest inverted lists of an inverted file, as its search
        finds them: (their scores, their numbers), (Q, nprobe) each."""
        ivf = faiss.extract_index_ivf(self._current().index)
        with _threads_for(len(queries)):
            return ivf.quantizer.search(np.ascontiguousarray(queries, np.float32), ivf.nprobe)

    def filed(self, ids: NDArray[np.int64], rows: NDArray):
        """An inverted file of `rows` alone, filed under this one's centroids and scored as it
        scores them (for `preassigned`'s `within`)."""
        built = self._current()
        index = _emptied(built.index, built.tuning.description)
        index.add_with_ids(np.ascontiguousarray(rows, np.float32), ids)
        return index

    def preassigned(self, queries: NDArray, probed: tuple[NDArray[np.float32], NDArray[np.int64]], width: int,
                    within=None) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """(ids, minus scores) (Q, width): each query's `width` nearest entries of an inverted
        file in the lists `probed` (`probes`), by score then id (-1 at `FAR` past the last),
        as its search would rank them; with `within` (`filed`), of the rows it holds alone:
        the part of a search that rows added since would take."""
        index = self._current().index if within is None else within
        return _preassigned(index, np.ascontiguousarray(queries, np.float32), probed, width)

    def state(self) -> IndexState:
        """The index file's state, without building anything: that of the index this process
        holds when the file holds it and it is current (another process may have brought the
        file further since), else what its sidecar says while the files beside it are as they
        were saved (`_described`). A million CNN vectors' index is 1.3 GB: reading it and its
        checksum took seconds of every `stats`; the checksum is checked when it is read for use."""
        generation = self.catalog.generation()
        held = self._built
        if held is not None and held.saved and held.generation == generation:
            meta = _state_fields(held)
        else:
            meta = self._described()
            if meta is None:  # a sidecar of an older neardup, or files changed since: read them
                built = self._read()
                meta = None if built is None else _state_fields(built)
        if meta is None:
            return IndexState(self.feature, str(self.path), 0, False, self.path.exists())
        tuning = ann.Tuning(**meta["tuning"])
        return IndexState(self.feature, str(self.path), int(meta["entries"]), meta["generation"] == generation, True,
                          tuning.description, int(meta["memory"]), tuning.recall, tuning.nprobe, tuning.trained_on)

    # -- keeping the index current ---------------------------------------------------------------
    def _current(self) -> _Built:
        generation = self.catalog.generation()
        built = self._built
        if built is not None and built.generation == generation:
            return built
        with self._building:
            return self._brought_to(generation)

    def _brought_to(self, generation: str) -> _Built:
        if self._built is not None and self._built.generation == generation:
            return self._built  # built by the search this one waited for
        built = self._built or self._read()
        if built is None or built.meta.get("source") != self._source():
            built = self._build(generation)
        elif built.generation != generation:
            built = self._refresh(built, generation)
        self._built = built
        return built

    def _source(self) -> str:
        """What the rows are made by: the hash code's version, or the model's identity."""
        if self.binary:
            return f"hashes v{self.catalog.settings.hash_version}"
        model = self.catalog.model(self.feature)
        return repr(None if model is None else model.identity())

    def _refresh(self, built: _Built, generation: str) -> _Built:
        """`built` brought to `generation`: it loses the images gone or changed and gains the
        new or changed; an exact one is built again instead when that would order its rows
        otherwise, an approximate one is trained again when its kind no longer fits the size
        or its data drifted."""
        chosen_at = built.tuning.trained_on
        ids, contents = self.catalog.feature_ids(self.feature)
        policy = self.catalog.index_policy()
        width = built.index.code_size if self.binary else built.index.d
        if built.tuning.exact:
            # chosen over an inverted file that scanned every list: flat again (no training)
            # until the catalog outgrows that size
            flat_after = chosen_at if chosen_at and len(ids) <= policy.growth * chosen_at else 0
            removed, added = _changes(built, ids, contents)
            kept = np.setdiff1d(built.ids, removed, assume_unique=True)
            # a flat index answers ties in the order of its rows, which a build adds by id: rows
            # appended after every kept one leave it as a build would make it, byte for byte (an
            # index that kept none may have been built empty, of no width yet: built again)
            if (flat_after or ann.describe(len(ids), width, binary=self.binary, policy=policy) == ann.EXACT) and \
                    len(kept) and (not len(added) or added[0] > kept[-1]):
                # on a copy: another thread (`neardup serve`) may be searching this one now
                copied = _Built(built.generation, self._copy(built.index), built.meta, built.ids, built.contents)
                return self._saved(self._updated(copied, generation, ids, contents, removed, added), removed, added)
            return self._build(generation, flat_after=flat_after)
        if ann.family(ann.describe(len(ids), width, binary=self.binary, policy=policy)) != \
                ann.family(built.tuning.description):
            return self._build(generation)
        if ann.scans_everything(built.index, built.tuning.nprobe) and ann.flat_fits(len(ids), width,
                                                                                   binary=self.binary, policy=policy):
            return self._build(generation, flat_after=built.tuning.trained_on)  # tuned before flat ones were kept
        removed, added = _changes(built, ids, contents)
        refreshed = self._updated(built, generation, ids, contents, removed, added)
        if ann.drifted(built.tuning, len(ids), refreshed.meta.get("added_residual", 0.0),
                       refreshed.meta.get("added", 0), policy):
            return self._build(generation)
        return self._saved(refreshed, removed, added)

    def _updated(self, built: _Built, generation: str, ids: NDArray[np.int64], contents: NDArray[np.uint64],
                 removed: NDArray[np.int64], added: NDArray[np.int64]) -> _Built:
        """`built` at `generation` (the catalog's `ids` and `contents`), without the entries
        `removed` and with the rows of `added` (`_changes`), in place; an inverted file also
        keeps how far its added rows lie from its centroids (`ann.drifted`)."""
        meta = {**built.meta, "generation": generation}
        if len(removed):
            built.index.remove_ids(faiss.IDSelectorBatch(removed))
        if len(added):
            added, rows = self.catalog.feature_rows(self.feature, added.tolist())
            built.index.add_with_ids(np.ascontiguousarray(rows), added)
            if not built.tuning.exact:
                count = meta.get("added", 0) + len(added)
                meta["added_residual"] = (meta.get("added_residual", 0.0) * meta.get("added", 0)
                                          + ann.residual(built.index, rows) * len(added)) / count
                meta["added"] = count
        return _Built(generation, built.index, meta, ids, contents)

    def _copy(self, index):
        """A copy of a flat index: cloned (a serialised copy held a buffer up to twice its size
        besides), but FAISS clones no binary one with ids, which is small (32 bytes a row)."""
        if self.binary:
            return faiss.deserialize_index_binary(faiss.serialize_index_binary(index))
        return faiss.clone_index(index)

    def _saved(self, built: _Built, removed: NDArray[np.int64], added: NDArray[np.int64]) -> _Built:
        self._save(built, index_changed=bool(len(removed) or len(added)))
        return built

    def _build(self, generation: str, *, flat_after: int = 0) -> _Built:
        """The index of every row of the feature, of the kind the catalog's size asks for; or,
        with `flat_after`, flat as it was when an approximate one of that many rows would have
        scanned every list (`ann.scans_everything`)."""
        ids, contents = self.catalog.feature_ids(self.feature)
        policy = self.catalog.index_policy()
        width = self._width(ids)
        description = ann.EXACT if flat_after else ann.describe(len(ids), width, binary=self.binary, policy=policy)
        index = ann.new_index(description, width, binary=self.binary)
        tuning = ann.Tuning(description, trained_on=flat_after)
        unseen = ids
        if description != ann.EXACT:
            rng = np.random.default_rng(0)
            lists = ann.nlist(len(ids))
            sample = np.sort(rng.choice(ids, min(len(ids), policy.train_per_list * lists), replace=False))
            _, rows = self.catalog.feature_rows(self.feature, sample.tolist())
            tuning = ann.Tuning(description, trained_on=len(ids), residual=ann.train(index, rows))
            del rows
            # recall is measured on rows the centroids were not cut from, as a new image's are
            # not: the training rows' own lists fit them better than they fit a query
            untrained = np.setdiff1d(ids, sample, assume_unique=True)
            unseen = untrained if len(untrained) >= policy.sample else ids
        queries = np.sort(np.random.default_rng(1).choice(unseen, min(len(unseen), policy.sample), replace=False))
        query_ids, query_rows = self.catalog.feature_rows(self.feature, queries.tolist())
        truth = _ExactNeighbours(query_ids, query_rows, policy.k, binary=self.binary)
        for chunk_ids, rows in self.catalog.feature_chunks(self.feature, size=_CHUNK):
            index.add_with_ids(np.ascontiguousarray(rows), chunk_ids)
            if description != ann.EXACT:
                truth.update(chunk_ids, rows)
        if description != ann.EXACT:
            nprobe, recall = ann.tune(index, truth.scores(),
                                      lambda k: self._answers(index, query_rows, query_ids, k), policy)
            tuning = ann.Tuning(description, nprobe, recall, tuning.trained_on, tuning.residual)
            if ann.scans_everything(index, nprobe) and ann.flat_fits(len(ids), width, binary=self.binary,
                                                                     policy=policy):
                return self._build(generation, flat_after=len(ids))
        meta = {"catalog": self.catalog.identity, "generation": generation, "source": self._source(),
                "tuning": asdict(tuning)}
        if description != ann.EXACT:
            meta["trained"] = os.urandom(8).hex()  # this training's token (`training`)
        built = _Built(generation, index, meta, ids, contents)
        self._save(built, index_changed=True)
        return built

    def _width(self, ids: NDArray[np.int64]) -> int:
        """Bytes of a hash or dimensions of a vector, from one stored row (1 when there is none)."""
        if not len(ids):
            return 1
        _, rows = self.catalog.feature_rows(self.feature, ids[:1].tolist())
        return int(rows.shape[1])

    def _answers(self, index, queries: NDArray, query_ids: NDArray[np.int64], k: int) -> NDArray[np.float64]:
        """(S, k) true scores (minus Hamming distance, or exact cosine) of each query's k
        nearest other entries as `knn` answers them; -inf where it has fewer."""
        if self.binary:
            found = knn(index, queries, k + 1)
        else:
            found = self._reranked(knn(index, queries, REFINE * (k + 1)), queries, k + 1)
        out = np.full((len(queries), k), -np.inf)
        for row, (qid, neighbours) in enumerate(zip(query_ids.tolist(), found)):
            others = [-n.distance if self.binary else n.distance for n in neighbours if n.image_id != qid][:k]
            out[row, : len(others)] = others
        return out

    def _reranked(self, found: list[list[Neighbor]], queries: NDArray, k: int) -> list[list[Neighbor]]:
        """Each query's candidates ordered by exact cosine with its stored vector, the first k."""
        ids = sorted({n.image_id for row in found for n in row})
        stored = self.catalog.vectors_of(ids, self.feature)
        out = []
        for query, row in zip(np.asarray(queries, np.float32), found):
            scored = [Neighbor(n.image_id, float(stored[n.image_id] @ query)) for n in row if n.image_id in stored]
            out.append(sorted(scored, key=lambda n: -n.distance)[:k])
        return out

    def _rescored(self, found: Edges, queries: NDArray, query_ids: NDArray[np.int64], limit: float) -> Edges:
        """The pairs whose exact cosine (queries' rows, entries' stored vectors) is >= limit."""
        if not len(found):
            return found
        order = np.argsort(query_ids)
        position = {int(i): int(p) for i, p in zip(query_ids[order].tolist(), order.tolist())}
        missing = sorted({int(i) for i in np.concatenate([found.src, found.dst]).tolist()} - position.keys())
        stored = self.catalog.vectors_of(missing, self.feature) if missing else {}

        def row(i: int) -> NDArray[np.float32]:
            return queries[position[i]] if i in position else stored[i]

        exact = np.array([float(row(a) @ row(b)) for a, b in zip(found.src.tolist(), found.dst.tolist())], np.float32)
        keep = exact >= np.float32(limit)
        return Edges(found.src[keep], found.dst[keep], exact[keep])

    # -- the file beside the catalog -------------------------------------------------------------
    def _sidecar_meta(self) -> dict | None:
        """The sidecar's fields when it binds the files beside it to this catalog; else None."""
        try:
            meta = json.loads(self._sidecar.read_text())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) and meta.get("catalog") == self.catalog.identity else None

    def _described(self) -> dict | None:
        """The sidecar's fields when it binds the files beside it to this catalog and they are
        as it saw them saved (`_signatures`: sizes and modification times); else None."""
        meta = self._sidecar_meta()
        if meta is None:
            return None
        try:
            signatures = self._signatures()
        except OSError:  # a file gone
            return None
        described = meta.get("files") == signatures and {"generation", "tuning", "entries", "memory"} <= meta.keys()
        return meta if described else None

    def _intact(self, meta: dict) -> bool:
        """Whether the index file and its id list have the checksums `meta` (their sidecar) holds."""
        return _sha256(self.path) == meta.get("sha256") and _sha256(self._ids_path) == meta.get("ids_sha256")

    def _signatures(self) -> list[list[int]]:
        return [[s.st_size, s.st_mtime_ns] for s in (self.path.stat(), self._ids_path.stat())]

    def _read(self) -> _Built | None:
        """The index saved beside the catalog when its sidecar binds it to this catalog and its
        bytes (and those of its id list) are intact; else None."""
        try:
            meta = self._sidecar_meta()
            if meta is None or "tuning" not in meta:
                return None
            as_saved = meta.get("files") == self._signatures()
            if not as_saved and not self._intact(meta):  # checked before FAISS parses a file changed since
                return None
            with ThreadPoolExecutor(1) as pool:
                # files as saved are checked while FAISS reads them (it lets go of the GIL): a
                # million CNN vectors' checksum and read took seconds each, one after the other
                intact = pool.submit(self._intact, meta) if as_saved else None
                with open(self._ids_path, "rb") as f:
                    listed = np.load(f, allow_pickle=False)
                read = faiss.read_index_binary if self.binary else faiss.read_index
                index = read(str(self.path))
                if intact is not None and not intact.result():  # damaged where it lies: not used
                    return None
        except (OSError, ValueError, RuntimeError, KeyError):
            return None
        return _Built(meta["generation"], index, meta, listed[0].astype(np.int64), listed[1].astype(np.uint64),
                      saved=True)

    def _save(self, built: _Built, *, index_changed: bool) -> None:
        """Write the index, its id list and its sidecar atomically (temporary names, then
        renames; the sidecar last); a catalog folder that cannot be written (read-only, full)
        just keeps it in memory."""
        meta = dict(built.meta)
        try:
            if index_changed or not self.path.exists():
                _write_atomic(self.path, lambda target: _write_index(built.index, target, binary=self.binary))
                listed = np.stack([built.ids, built.contents.astype(np.int64)])
                _write_atomic(self._ids_path, lambda target: _save_array(target, listed))
                meta["sha256"], meta["ids_sha256"] = _sha256(self.path), _sha256(self._ids_path)
            meta.update(entries=int(built.index.ntotal), memory=ann.memory(built.index), files=self._signatures())
            _write_atomic(self._sidecar, lambda target: target.write_text(json.dumps(meta)))
            built.saved = True
        except OSError:
            pass  # the index is a cache: without its file it is rebuilt by the next process
        built.meta = meta


class _ExactNeighbours:
    """The exact k nearest other rows of a few query rows, accumulated over the catalog's rows
    chunk by chunk (the ground truth an approximate index's recall is measured against)."""

    def __init__(self, query_ids: NDArray[np.int64], queries: NDArray, k: int, *, binary: bool) -> None:
        self.query_ids, self.queries, self.k, self.binary = query_ids, queries, k, binary
        self.best = np.zeros((len(queries), 0))

    def update(self, ids: NDArray[np.int64], rows: NDArray) -> None:
        # _TRUTH_BLOCK rows at a time: the scores of every query against a whole chunk of a
        # million 1,280-d vectors, and the sort of them, were the peak of building its index
        for start in range(0, len(ids), _TRUTH_BLOCK):
            self._merge(ids[start:start + _TRUTH_BLOCK], rows[start:start + _TRUTH_BLOCK])

    def _merge(self, ids: NDArray[np.int64], rows: NDArray) -> None:
        if self.binary:
            scores = -_hamming_matrix(self.queries, rows).astype(np.float64)
        else:
            scores = (self.queries @ rows.T).astype(np.float64)
        scores[self.query_ids[:, None] == ids[None, :]] = -np.inf  # each query's own row
        both = np.concatenate([self.best, scores], axis=1)
        # only the k best scores count (`ann.recall`), not which rows hold them: a partial
        # sort, not a sort of every row's score for every query
        if both.shape[1] > self.k:
            both = np.take_along_axis(both, np.argpartition(-both, self.k - 1, axis=1)[:, : self.k], 1)
        self.best = -np.sort(-both, axis=1)

    def scores(self) -> NDArray[np.float64]:
        """(S, k) each query's k best scores (minus Hamming distance, or cosine), -inf past the last."""
        out = np.full((len(self.queries), self.k), -np.inf)
        out[:, : self.best.shape[1]] = self.best
        return out


def _hamming_matrix(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> NDArray[np.int32]:
    out = np.empty((len(a), len(b)), np.int32)
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    faiss.hammings(faiss.swig_ptr(a), faiss.swig_ptr(b), len(a), len(b), a.shape[1], faiss.swig_ptr(out))
    return out


def _save_array(path: Path, array: NDArray) -> None:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _changes(built: _Built, ids: NDArray[np.int64], contents: NDArray[np.uint64]
             ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The entries of `built` gone or changed since it was made, and the rows new or changed,
    of the catalog's `ids` and `contents` now (`Catalog.feature_ids`): both ascending."""
    old = dict(zip(built.ids.tolist(), built.contents.tolist()))
    now = dict(zip(ids.tolist(), contents.tolist()))
    removed = np.array(sorted(i for i, c in old.items() if now.get(i) != c), np.int64)
    added = np.array(sorted(i for i, c in now.items() if old.get(i) != c), np.int64)
    return removed, added


def _state_fields(built: _Built) -> dict:
    """The fields `state` reports of an index held in memory, as its sidecar would say them."""
    return dict(built.meta, generation=built.generation, entries=int(built.index.ntotal),
                memory=ann.memory(built.index))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, write) -> None:
    """Call `write(temporary)` then rename the temporary file to `path`, fsynced."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_index(index, target: Path, *, binary: bool) -> None:
    """FAISS writes `index` through Python's file, which raises on a full disk (FAISS's own
    file writer can leave an empty file without an error), a megabyte at a time: serialised
    in memory first, the index was held up to three times over (its copy and the doubling
    buffer), which set the peak of building a large one."""
    with open(target, "wb") as f:
        writer = faiss.PyCallbackIOWriter(f.write)
        (faiss.write_index_binary if binary else faiss.write_index)(index, writer)
        del writer


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


@contextmanager
def _threads_for(queries: int) -> Iterator[None]:
    """One OpenMP thread for a few queries (a search's): in the scale benchmark a single query
    of 1280-d vectors took 44 ms on one thread against 120 ms on two at 100,000 rows, and of
    binary codes 4.6 against 11.3 ms at a million (0.35 against 0.24 ms at 100,000, the one
    loss: well under a millisecond either way); and a server's searches run side by side
    without fighting for the two cores. The setting is the calling thread's own, so other
    threads keep theirs."""
    if queries > _FEW_QUERIES:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def knn(index, queries: NDArray, k: int) -> list[list[Neighbor]]:
    """The k nearest entries of each query row, nearest first; fewer when the index is small."""
    if index.ntotal == 0 or k <= 0:
        return [[] for _ in range(len(queries))]
    with _threads_for(len(queries)):
        distances, ids = index.search(np.ascontiguousarray(queries), min(k, index.ntotal))
    return [
        [Neighbor(int(i), float(d)) for d, i in zip(drow, irow) if i != -1]
        for drow, irow in zip(distances, ids)
    ]


def within(index, queries: NDArray, query_ids: NDArray[np.int64], limit: float, *, batch: int = 4096,
           symmetric: bool = True) -> Edges:
    """Every (query, entry) pair within `limit`, query batch by batch (memory O(pairs)).

    Binary indexes: Hamming distance <= limit (an integer). Float indexes: inner product
    >= limit. Self pairs are dropped; each unordered pair appears once (src < dst). The
    queries are all the index holds (`symmetric`: each pair is found from both ends, and
    kept from its lower id), or some of them (each pair found is kept, oriented, once).
    """
    binary = isinstance(index, faiss.IndexBinary)
    # FAISS keeps d < radius for Hamming and similarity > radius for inner product.
    radius = int(limit) + 1 if binary else float(np.nextafter(np.float32(limit), np.float32(-1)))
    parts: list[Edges] = []
    for lo in range(0, len(queries), batch):
        lims, dist, ids = index.range_search(np.ascontiguousarray(queries[lo : lo + batch]), radius)
        src = np.repeat(query_ids[lo : lo + batch], np.diff(lims).astype(np.int64))
        keep = src < ids if symmetric else src != ids
        parts.append(Edges(src[keep].astype(np.int64), ids[keep].astype(np.int64), dist[keep].astype(np.float32)))
    found = Edges.concat(parts)
    if symmetric or not len(found):
        return found
    keys, first = unique_keys(pair_keys(np.minimum(found.src, found.dst), np.maximum(found.src, found.dst)))
    return Edges(*pair_ids(keys), found.value[first])


@dataclass(frozen=True)
class Neighbourhoods:
    """Each query's nearest other entries, nearest first: `ids` (Q, K) int64, -1 where there is
    none or where the query found itself; `values` (Q, K) (Hamming distances, or inner
    products), for the queries `query_ids` (Q,) int64."""

    query_ids: NDArray[np.int64]
    ids: NDArray[np.int64]
    values: NDArray

    def ranks(self) -> NDArray[np.int64]:
        """(Q, K) each entry's place among its query's other entries (0 = the nearest)."""
        return np.cumsum(self.ids != -1, axis=1) - 1

    def counts(self) -> NDArray[np.int64]:
        """(Q,) how many other entries each query found."""
        return (self.ids != -1).sum(axis=1)

    def edges(self, *, rank: bool = False) -> Edges:
        """The pairs (src < dst, deduplicated) valued by distance, or with ``rank`` by each
        pair's rank in its query's list, the better of the two when each found the other."""
        src = np.repeat(self.query_ids, self.ids.shape[1])
        ids, values = self.ids.ravel(), (self.ranks() if rank else self.values).ravel()
        keep = ids != -1
        src, dst, val = np.minimum(src[keep], ids[keep]), np.maximum(src[keep], ids[keep]), values[keep]
        if not len(src):
            return Edges.empty()
        if rank:  # each pair found twice keeps its better rank: the first after sorting by rank
            order = np.argsort(val, kind="stable")
            src, dst, val = src[order], dst[order], val[order]
        keys, first = unique_keys(pair_keys(src, dst))
        return Edges(*pair_ids(keys), val[first].astype(np.float32))

    def reach(self, rank: int | None = None) -> NDArray[np.float64]:
        """(Q,) each query's value at place `rank` among its others (default: its farthest
        entry); NaN for a query with no entry there."""
        ranks = np.where(self.ids != -1, self.ranks(), -1)
        last = ranks.max(axis=1) if rank is None else np.full(len(ranks), rank)
        hit = (ranks == last[:, None]) & (last[:, None] >= 0)
        out = np.full(len(ranks), np.nan)
        rows, cols = np.nonzero(hit)
        out[rows] = self.values[rows, cols]
        return out


def neighbourhoods(index, queries: NDArray, query_ids: NDArray[np.int64], k: int, *,
                   batch: int = 4096) -> Neighbourhoods:
    """Each query's k nearest other entries (k + 1 searched, the query itself dropped: a query
    that does not find itself keeps k + 1)."""
    width = min(k + 1, max(index.ntotal, 1))
    ids = np.full((len(queries), width), -1, np.int64)
    values = np.zeros((len(queries), width), np.int32 if isinstance(index, faiss.IndexBinary) else np.float32)
    for lo in range(0, len(queries), batch):
        dist, found = index.search(np.ascontiguousarray(queries[lo : lo + batch]), width)
        found[found == query_ids[lo : lo + batch, None]] = -1
        ids[lo : lo + len(found)], values[lo : lo + len(found)] = found, dist
    return Neighbourhoods(np.asarray(query_ids, np.int64), ids, values)


def ordered_neighbours(index, queries: NDArray, width: int, *,
                       batch: int = 4096) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(ids (Q, width) int64, scores (Q, width) float64): each query's `width` nearest entries
    of an exact index (itself included), by score (Hamming distance, or minus the cosine
    summed in float64), ties by id; -1 at `FAR` past the last when the index holds fewer.
    FAISS breaks ties as its scan meets them, and rounds a float cosine as its blocks of
    queries fall; this order depends on the entries alone, so that a list merged with
    entries added since is the list a new search would give (`search.neighbours`)."""
    # identical queries (exact copies' codes) have the same list: each is searched once, or a
    # thousand copies would each range-search all thousand at the distance they tie at
    distinct = _distinct(queries)
    if distinct is not None:
        found = ordered_neighbours(index, queries[distinct[0]], width, batch=batch)
        return found[0][distinct[1]], found[1][distinct[1]]
    ids = np.full((len(queries), width), -1, np.int64)
    values = np.full((len(queries), width), float(FAR))
    total = int(index.ntotal)
    keep = min(width, total)
    if not keep:
        return ids, values
    binary = isinstance(index, faiss.IndexBinary)
    held = None if binary else _HeldRows.of(index)
    # a float score FAISS rounded may be this much off the exact one
    slack, reach = (0.0 if binary else _FLOAT_ERROR), min(width + _TIE_SLACK, total)
    for lo in range(0, len(queries), batch):
        part = np.ascontiguousarray(queries[lo : lo + batch])
        dist, found = index.search(part, reach)
        last = dist[:, -1].astype(np.float64) if binary else -dist[:, -1].astype(np.float64)
        scores = dist.astype(np.float64) if binary else _exact_scores(held, part, found)
        order = np.lexsort((found, scores))
        found, scores = np.take_along_axis(found, order, 1), np.take_along_axis(scores, order, 1)
        # an entry the search did not reach may tie with (or, rounded, beat) its last kept
        # one: every entry within that score is found by a range search and scored again
        cut = (scores[:, keep - 1] >= last - slack) if reach < total else np.zeros(len(part), bool)
        for limit in np.unique(scores[cut, keep - 1]):
            tied = np.flatnonzero(cut & (scores[:, keep - 1] == limit))
            radius = int(limit) + 1 if binary else float(-limit - 2 * slack)
            for rows in np.array_split(tied, -(-len(tied) // _TIED_ROWS)):  # a few at a time: each may find many
                lims, near_scores, near_ids = index.range_search(part[rows], radius)
                for row, a, b in zip(rows, lims[:-1], lims[1:]):
                    near = near_ids[a:b].astype(np.int64)
                    exact = (near_scores[a:b].astype(np.float64) if binary
                             else _exact_scores(held, part[row : row + 1], near[None])[0])
                    first = np.lexsort((near, exact))[:keep]
                    found[row, :keep], scores[row, :keep] = near[first], exact[first]
        ids[lo : lo + len(part), :keep], values[lo : lo + len(part), :keep] = found[:, :keep], scores[:, :keep]
    return ids, values


def _preassigned(index, queries: NDArray[np.float32], probed: tuple[NDArray[np.float32], NDArray[np.int64]],
                 width: int, *, batch: int = 4096) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """See `FeatureIndex.preassigned`: `_TIE_SLACK` more are searched, so that entries tied
    at the width's edge are ranked by id whichever of them the scan met first."""
    ids = np.full((len(queries), width), -1, np.int64)
    values = np.full((len(queries), width), float(FAR))
    reach = min(width + _TIE_SLACK, int(index.ntotal))
    if not reach:
        return ids, values
    keep = min(width, reach)
    coarse, lists = probed
    for lo in range(0, len(queries), batch):
        part = slice(lo, lo + batch)
        with _threads_for(len(queries[part])):
            dist, found = index.search_preassigned(queries[part], reach, np.ascontiguousarray(lists[part], np.int64),
                                                   np.ascontiguousarray(coarse[part], np.float32))
        scores = np.where(found == -1, float(FAR), -dist.astype(np.float64))
        order = np.lexsort((np.where(found == -1, np.iinfo(np.int64).max, found), scores))[:, :keep]
        ids[part, :keep] = np.take_along_axis(found, order, 1)
        values[part, :keep] = np.take_along_axis(scores, order, 1)
    return ids, values


def _emptied(index, description: str):
    """An empty inverted file of `description` trained as `index` is (its centroids, its scalar
    quantizer's ranges or its product quantizer's codebooks, its nprobe), made beside it: the
    index itself may be searched by another thread meanwhile (`neardup serve`)."""
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    copy = ann.new_index(description, ivf.d, binary=False)
    empty = faiss.downcast_index(faiss.extract_index_ivf(copy))
    empty.quantizer.add(ivf.quantizer.reconstruct_n(0, ivf.nlist))
    if isinstance(ivf, faiss.IndexIVFScalarQuantizer):
        empty.sq.trained = ivf.sq.trained
    else:
        empty.pq.centroids = ivf.pq.centroids
    empty.by_residual, empty.nprobe, empty.is_trained = ivf.by_residual, ivf.nprobe, True
    return copy


def _distinct(rows: NDArray) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """(the first of each distinct row, each row's place among those) when some rows repeat;
    None when all differ. Rows are told apart by `row_keys`, and a shared key is checked to be
    a shared row (sorting the rows themselves takes seconds for 50,000 1,280-d vectors)."""
    _, first, inverse = np.unique(row_keys(rows), return_index=True, return_inverse=True)
    if len(first) == len(rows):
        return None
    inverse = inverse.reshape(-1)
    if not (rows == rows[first[inverse]]).all():
        return None  # two rows share a key by chance: every row is searched
    return first, inverse


# odd multipliers, one per 8 bytes of a row (a 1,280-d float32 vector has 640): a row's key
# changes whenever any one of its words does
_MULTIPLIERS = (np.random.default_rng(0).integers(0, 2**63, 1024, dtype=np.int64).astype(np.uint64) << np.uint64(1)) | 1


def row_keys(rows: NDArray) -> NDArray[np.uint64]:
    """(N,) a 64-bit key of each row of (N, ...) codes or vectors: the sum of its 8-byte words,
    each times its own odd number (mod 2^64). Two different rows share a key by chance alone."""
    data = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), -1)
    if data.shape[1] % 8:
        data = np.concatenate([data, np.zeros((len(data), 8 - data.shape[1] % 8), np.uint8)], axis=1)
    words = data.view(np.uint64)
    out = np.zeros(len(words), np.uint64)
    # a few rows at a time: the products of 100,000 1,280-d vectors at once took 512 MB
    for lo in range(0, len(words), _KEYED_ROWS):
        part = words[lo : lo + _KEYED_ROWS]
        out[lo : lo + len(part)] = (part * _MULTIPLIERS[: words.shape[1]]).sum(axis=1, dtype=np.uint64)
    return out


def _exact_scores(held: _HeldRows, queries: NDArray[np.float32], found: NDArray[np.int64]) -> NDArray[np.float64]:
    """(Q, R) minus each query's cosine with its entries `found` (Q, R), summed in float64
    along each pair's own row (the same sum whatever else is scored with it); inf for -1."""
    out = np.full(found.shape, np.inf)
    for lo in range(0, len(found), _SCORED):
        part = found[lo : lo + _SCORED]
        at = held.positions[np.clip(np.searchsorted(held.ids, part), 0, len(held.ids) - 1)]
        rows = held.rows[at].astype(np.float64)
        scores = -(rows * queries[lo : lo + _SCORED, None, :].astype(np.float64)).sum(axis=2)
        out[lo : lo + _SCORED] = np.where(part == -1, np.inf, scores)
    return out


def nearest(index, queries: NDArray, query_ids: NDArray[np.int64], k: int, *, batch: int = 4096,
            rank: bool = False) -> Edges:
    """Each query's k nearest entries as pairs (src < dst, deduplicated; self pairs dropped).

    Values are distances (as `Edges`), or with ``rank`` each pair's rank in its query's list
    (0 = the nearest other entry), the better of the two when each image found the other.
    """
    return neighbourhoods(index, queries, query_ids, k, batch=batch).edges(rank=rank)
