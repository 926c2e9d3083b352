"""Stored pair evidence: what `duplicates` computed for candidate pairs, kept in the catalog.

Judging a pair (its hashes, its cosines and above all its geometric verification) is most of
what finding duplicates costs, and the result depends only on the two images' contents and on
the versions of the features and settings that judged them. So it is computed once and
stored: a later run computes only the pairs of images added or changed since, drops those of
images gone, and decides again over everything stored (`neardup.search.incremental`).

Evidence lives in *sets*, one per key: the JSON of those versions and settings. Another key (a
re-embedded model, another threshold) starts a new set and drops the old one. A set is a list
of *segments*, one per computation, each holding named columns: "images", the images whose
pairs it computed (their ids, and whatever else the caller records of them), and "pairs", the
pairs it kept (the two ids, and their evidence). Columns rather than rows: a million pairs
are read back as a few arrays in a fraction of a second, where a million SQLite rows take
seconds. Dropping images rewrites only the segments that hold them.

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
IMAGE_ID, FIRST, SECOND = "image_id", "a", "b"  # the columns every segment has
MAX_SEGMENTS = 16  # more are merged into one, so that a read stays a handful of arrays


@dataclass(frozen=True)
class StoredEvidence:
    """Everything a set holds: `images` columns (IMAGE_ID (n,) int64 first) and `pairs`
    columns (FIRST, SECOND (m,) int64, FIRST < SECOND); `generation`, the catalog generation
    at which the set covered every image, or None."""

    generation: str | None
    images: Columns
    pairs: Columns
    segments: int = 0


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
                return StoredEvidence(None, {}, {})
            blobs = list(s.scalars(select(EvidenceSegment.data).where(EvidenceSegment.set_id == found.id)
                                   .order_by(EvidenceSegment.id)))
            generation = found.generation
        segments = [_decode(b) for b in blobs]
        return StoredEvidence(generation, _concat([i for i, _ in segments]), _concat([p for _, p in segments]),
                              len(segments))

    def update(self, *, drop: NDArray[np.int64], images: Columns, pairs: Columns, generation: str | None) -> int:
        """In one transaction: forget the images `drop` and every pair touching them, add a
        segment of `images` and `pairs` (when not empty), and record that the set covers the
        catalog at `generation`. Other sets (older versions) are dropped. Returns the number
        of stored pairs dropped."""
        drop = np.asarray(drop, np.int64)
        with self.catalog.transaction(derived=True) as s:
            found = self._set(s)
            dropped = _drop(s, found.id, drop) if len(drop) else 0
            if len(images.get(IMAGE_ID, ())) or len(pairs.get(FIRST, ())):
                s.add(_segment(found.id, images, pairs))
                s.flush()
            _compact(s, found.id)
            found.generation = generation
        return dropped

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


def _drop(s: Session, set_id: int, drop: NDArray[np.int64]) -> int:
    """Rewrite the set's segments without the images `drop` and their pairs."""
    dropped = 0
    for segment in s.scalars(select(EvidenceSegment).where(EvidenceSegment.set_id == set_id)):
        images, pairs = _decode(segment.data)
        keep_images = ~np.isin(images[IMAGE_ID], drop)
        keep_pairs = ~(np.isin(pairs[FIRST], drop) | np.isin(pairs[SECOND], drop))
        if keep_images.all() and keep_pairs.all():
            continue
        dropped += int((~keep_pairs).sum())
        if not keep_images.any() and not keep_pairs.any():
            s.delete(segment)
            continue
        images = {k: v[keep_images] for k, v in images.items()}
        pairs = {k: v[keep_pairs] for k, v in pairs.items()}
        segment.data, segment.images, segment.pairs = _encode(images, pairs), len(images[IMAGE_ID]), len(pairs[FIRST])
    s.flush()
    return dropped


def _compact(s: Session, set_id: int) -> None:
    """Merge the set's segments into one when there are more than MAX_SEGMENTS."""
    segments = list(s.scalars(select(EvidenceSegment).where(EvidenceSegment.set_id == set_id)
                              .order_by(EvidenceSegment.id)))
    if len(segments) <= MAX_SEGMENTS:
        return
    decoded = [_decode(segment.data) for segment in segments]
    for segment in segments:
        s.delete(segment)
    s.add(_segment(set_id, _concat([i for i, _ in decoded]), _concat([p for _, p in decoded])))
    s.flush()


def _segment(set_id: int, images: Columns, pairs: Columns) -> EvidenceSegment:
    return EvidenceSegment(set_id=set_id, images=len(images.get(IMAGE_ID, ())), pairs=len(pairs.get(FIRST, ())),
                           data=_encode(images, pairs))


def _encode(images: Columns, pairs: Columns) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{f"images/{k}": np.asarray(v) for k, v in images.items()},
             **{f"pairs/{k}": np.asarray(v) for k, v in pairs.items()})
    return buffer.getvalue()


def _decode(data: bytes) -> tuple[Columns, Columns]:
    """A segment's two column sets; plain arrays only (no pickle: a catalog is a file a user
    may be handed)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        images = {k.split("/", 1)[1]: npz[k] for k in npz.files if k.startswith("images/")}
        pairs = {k.split("/", 1)[1]: npz[k] for k in npz.files if k.startswith("pairs/")}
    return images, pairs


def _concat(parts: list[Columns]) -> Columns:
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
