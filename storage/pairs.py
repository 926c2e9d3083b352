"""Stored pair evidence: what `duplicates` computed for candidate pairs, kept in the catalog.

Judging a pair (its hashes, its cosines and above all its geometric verification) is most of
what finding duplicates costs, and the result depends only on the two images' contents and on
the versions of the features and settings that judged them. So it is computed once and
stored: a later run computes only the pairs of images added or changed since, drops those of
images gone, and decides again over everything stored (`neardup.search.incremental`).

Evidence lives in *sets*, one per key: the JSON of those versions and settings. Another key (a
re-embedded model, another threshold) starts a new set and drops the old one. A set holds
named columns in four groups: "images", the images whose pairs were judged (their ids, and
whatever else the caller records of them); "candidates", every candidate pair (the two ids
and how it became one, which a judgement depends on); "pairs", the judged pairs kept (the two
ids, and their evidence); "lists", what the candidates were drawn from, kept to find them
again cheaply (`neardup.search.neighbours`). Columns rather than rows: a million pairs are
read back as a few arrays in a fraction of a second, where a million SQLite rows take
seconds. Each run that changed anything replaces the set's columns in one transaction
(O(pairs) bytes written).

The store is derived data, like a FAISS index: writing it leaves the catalog's generation as
it is, and the set records the generation at which it covered the whole catalog.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .catalog import Catalog
from .models import EvidenceSegment, EvidenceSet

Columns = dict[str, NDArray]
IMAGE_ID, FIRST, SECOND = "image_id", "a", "b"  # the columns every group has (images; candidates and pairs)
GROUPS = ("images", "candidates", "pairs", "lists")


@dataclass(frozen=True)
class StoredEvidence:
    """Everything a set holds: `images` columns (IMAGE_ID (n,) int64 first), `candidates` and
    `pairs` columns (FIRST, SECOND (m,) int64, FIRST < SECOND, first), `lists` columns (the
    caller's, of any length); `generation`, the catalog generation at which the set covered
    every image, or None."""

    generation: str | None
    images: Columns
    candidates: Columns
    pairs: Columns
    lists: Columns


class PairStore:
    """The evidence set of one key in one catalog."""

    def __init__(self, catalog: Catalog, key: Mapping[str, object]) -> None:
        self.catalog = catalog
        self.key = json.dumps(key, sort_keys=True)

    def read(self) -> StoredEvidence:
        """The set's columns, every segment concatenated (empty when there is no such set)."""
        with self.catalog.session() as s:
            found = s.scalars(select(EvidenceSet).where(EvidenceSet.key == self.key)).first()
            if found is None:
                return StoredEvidence(None, {}, {}, {}, {})
            blobs = list(s.scalars(select(EvidenceSegment.data).where(EvidenceSegment.set_id == found.id)
                                   .order_by(EvidenceSegment.id)))
            generation = found.generation
        segments = [_decode(b) for b in blobs]
        return StoredEvidence(generation, *(_concat([g[name] for g in segments]) for name in GROUPS))

    def replace(self, *, images: Columns, candidates: Columns, pairs: Columns, generation: str | None,
                lists: Columns | None = None) -> None:
        """In one transaction: make the set hold these columns, covering the catalog at
        `generation`. Other sets (older versions) are dropped."""
        with self.catalog.transaction(derived=True) as s:
            found = self._set(s)
            s.execute(delete(EvidenceSegment).where(EvidenceSegment.set_id == found.id))
            groups = {"images": images, "candidates": candidates, "pairs": pairs, "lists": lists or {}}
            s.add(EvidenceSegment(set_id=found.id, images=len(images.get(IMAGE_ID, ())),
                                  pairs=len(pairs.get(FIRST, ())), data=_encode(groups)))
            found.generation = generation

    def _set(self, s: Session) -> EvidenceSet:
        """This key's set, made if need be; other sets are dropped, and so are segments of no
        set (left by a program that deleted sets without SQLite's foreign keys on)."""
        s.execute(delete(EvidenceSet).where(EvidenceSet.key != self.key))
        s.execute(delete(EvidenceSegment).where(EvidenceSegment.set_id.not_in(select(EvidenceSet.id))))
        found = s.scalars(select(EvidenceSet).where(EvidenceSet.key == self.key)).first()
        if found is None:
            found = EvidenceSet(key=self.key)
            s.add(found)
            s.flush()
        return found


def _encode(groups: Mapping[str, Columns]) -> bytes:
    return columns_to_bytes({f"{group}/{k}": v for group, columns in groups.items() for k, v in columns.items()})


def _decode(data: bytes) -> dict[str, Columns]:
    """A segment's column groups."""
    out: dict[str, Columns] = {name: {} for name in GROUPS}
    for key, column in columns_from_bytes(data).items():
        group, _, name = key.partition("/")
        if group in out:
            out[group][name] = column
    return out


def columns_to_bytes(columns: Columns) -> bytes:
    """Named columns as an .npz of plain arrays, stored compactly (`_compact`): every run
    after a change writes the whole set, and its bytes are most of that run's write."""
    buffer = io.BytesIO()
    np.savez(buffer, **_compact({k: np.asarray(v) for k, v in columns.items()}))
    return buffer.getvalue()


def columns_from_bytes(data: bytes) -> Columns:
    """The columns `columns_to_bytes` wrote, each as it was given; plain arrays only (no
    pickle: a catalog is a file a user may be handed)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return _expanded({key: npz[key] for key in npz.files})


def _concat(parts: list[Columns]) -> Columns:
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


# Image ids, and the -1 that marks no entry, fill most of a set: int64 columns whose values
# all fit in 32 bits are stored as int32 (named in _NARROW); a 64-bit column that is mostly 0
# (a candidate's strip: most candidates are no strip's) as its other entries, their places
# (under _AT + name) and its length (named in _SPARSE, lengths in _LENGTHS). Names starting
# with "~" are the encoding's.
_NARROW, _SPARSE, _LENGTHS, _AT = "~narrow", "~sparse", "~lengths", "~at~"
_MOSTLY = 8  # a column is mostly 0 when at most one entry in this many is not
_INT32 = np.iinfo(np.int32)


def _compact(columns: Columns) -> Columns:
    """The columns to store for `columns` (`_expanded` gives them back)."""
    out: Columns = {}
    narrow, sparse, lengths = [], [], []
    for name, column in columns.items():
        if column.dtype.kind in "iu" and column.dtype.itemsize == 8 and column.ndim == 1 and len(column) and \
                np.count_nonzero(column) * _MOSTLY <= len(column):
            at = np.flatnonzero(column)
            sparse.append(name)
            lengths.append(len(column))
            out[_AT + name] = at.astype(np.int32) if len(column) <= _INT32.max else at.astype(np.int64)
            column = column[at]
        if column.dtype == np.int64 and column.size and _INT32.min <= column.min() and column.max() <= _INT32.max:
            narrow.append(name)
            column = column.astype(np.int32)
        out[name] = column
    if narrow:
        out[_NARROW] = np.array(narrow)
    if sparse:
        out[_SPARSE], out[_LENGTHS] = np.array(sparse), np.array(lengths, np.int64)
    return out


def _expanded(stored: Columns) -> Columns:
    """The columns `_compact` was given (a set stored before it came is read as it is)."""
    narrow = set(stored.pop(_NARROW, np.zeros(0, str)).tolist())
    lengths = dict(zip(stored.pop(_SPARSE, np.zeros(0, str)).tolist(), stored.pop(_LENGTHS, np.zeros(0)).tolist()))
    out: Columns = {}
    for name, column in stored.items():
        if name.startswith(_AT):
            continue
        if name in narrow:
            column = column.astype(np.int64)
        if name in lengths:
            whole = np.zeros(int(lengths[name]), column.dtype)
            whole[stored[_AT + name]] = column
            column = whole
        out[name] = column
    return out
