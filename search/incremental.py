"""Auto's pair evidence, judged once, stored, and brought up to date as the catalog changes.

Judging candidate pairs (fused hashes, cosines, geometric verification: `candidates` ->
`evidence`) is nearly all that `duplicates --by auto` costs, and a pair's judgement depends
only on its two images' contents and on the versions of everything that judged them (the
evidence key). So the judgements are stored in the catalog (`storage.pairs`), and a run:

1. compares the images whose pairs are stored (with the content each had) with the images
   the collection holds now, one per content (an exact copy is judged through its content's
   first image);
2. drops the pairs of images gone, changed or now exact copies, judges the candidate pairs
   touching the images new or changed (O(new x k): `pair_candidates(new=...)`), and stores
   them; with nothing stored, or more new images than old, it judges the whole catalog;
3. hands every stored judgement to the decision (`duplicates.decide`), which is as it was.

A catalog whose generation is the one the store was completed at skips steps 1 and 2. Only
pairs that can matter to a decision are stored: those with some kind of evidence at the
threshold (no other is ever kept, nor counted as a weak link by `auto.attachments`).
Deciding over them gives the groups deciding over every candidate gives.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.features import FEATURES_ID
from neardup.storage.catalog import Catalog
from neardup.storage.pairs import FIRST, IMAGE_ID, SECOND, Columns, PairStore
from neardup.storage.schema import CatalogBusyError, CatalogReadOnlyError, DiskFullError

from . import verify
from .auto import GEOMETRY, HASHES, POLICY, AutoPolicy, Evidence
from .candidates import PairCandidates, Reaches, pair_candidates, reach_columns
from .evidence import pair_evidence
from .features import features_of
from .verify import Side, Verification

# Bumped whenever the code that judges pairs changes what it returns: stored judgements of
# another version are dropped and judged again.
EVIDENCE_VERSION = 1
CONTENT, REACH, KINDS, INLIERS = "content", "reach", "kinds", "inliers"
_SIDE_FIELDS = {"coverage": np.float64, "centre": np.float64, "central": np.int32, "share": np.float64,
                "cells": np.uint64, "hole": np.int32}


@dataclass(frozen=True)
class EvidenceReport:
    """What a run did with the stored evidence: pairs `reused` from it, pairs `computed`
    (candidate pairs judged now) with `verified` geometric verifications among them, for
    `images` images whose pairs were judged; `dropped` images whose pairs were dropped;
    `stored` pairs kept after the run; `seconds` it took."""

    reused: int = 0
    computed: int = 0
    verified: int = 0
    images: int = 0
    dropped: int = 0
    stored: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        if not self.computed and not self.dropped:
            return f"reused stored evidence for {self.reused:,} pairs, computed 0"
        return (f"reused stored evidence for {self.reused:,} pairs, computed {self.computed:,} "
                f"({self.verified:,} verified) for {self.images:,} new or changed images"
                + (f", dropped those of {self.dropped:,}" if self.dropped else ""))


@dataclass(frozen=True)
class JudgedPairs:
    """Candidate pairs (M, 2) int64 with their evidence and their geometric verifications
    (`verification(row)`, None where a pair was not verified)."""

    pairs: NDArray[np.int64]
    evidence: Evidence
    columns: Columns  # the verification columns (`_verification_columns`)

    def verification(self, row: int) -> Verification | None:
        if INLIERS not in self.columns or self.columns[INLIERS][row] < 0:
            return None
        c = self.columns
        sides = [Side(**{f: c[f"{side}_{f}"][row].item() for f in _SIDE_FIELDS}) for side in ("query", "candidate")]
        return Verification(int(c[INLIERS][row]), *sides)


def judged_pairs(catalog: Catalog, threshold: float, *, merge: Mapping[int, int],
                 policy: AutoPolicy = POLICY) -> tuple[JudgedPairs, EvidenceReport]:
    """Every stored judgement of the catalog's candidate pairs, brought up to date first."""
    start = time.perf_counter()
    weights = policy.weights(catalog.settings.hashes)
    vector_features = [n for n in policy.vector_features if n in features_of(catalog)]
    verifying = catalog.settings.local_features == FEATURES_ID
    kinds = [HASHES, *vector_features, *([GEOMETRY] if verifying else [])]
    columns = reach_columns(weights, vector_features, policy)
    store = PairStore(catalog, evidence_key(catalog, threshold, vector_features, kinds, columns, policy))
    generation = catalog.generation()
    stored = store.read()
    if stored.generation == generation:
        judged = _judged(stored.pairs, kinds)
        return judged, EvidenceReport(reused=len(judged.pairs), stored=len(judged.pairs),
                                      seconds=time.perf_counter() - start)
    ids, contents = catalog.contents()
    current = {int(i): _content(c) for i, c in zip(ids.tolist(), contents) if int(i) not in merge}
    known = dict(zip(stored.images.get(IMAGE_ID, np.zeros(0, np.int64)).tolist(),
                     stored.images.get(CONTENT, np.zeros(0, np.uint64)).tolist()))
    gone = np.array(sorted(i for i, c in known.items() if current.get(i) != c), np.int64)
    kept = {i for i in known if current.get(i) == known[i]}
    new = np.array(sorted(set(current) - kept), np.int64)
    full = not kept or len(new) > len(kept)
    if full:
        gone = np.array(sorted(known), np.int64)
    reaches = None if full else _reaches(stored.images, kept, columns)
    candidates = pair_candidates(catalog, threshold, weights, vector_features, verifying=verifying, merge=merge,
                                 policy=policy, new=None if full else new, known=reaches)
    computed = _judge(catalog, candidates, threshold, weights, vector_features, verifying, kinds, policy)
    relevant = computed[KINDS].max(axis=1, initial=0.0) >= threshold if len(candidates.pairs) else np.zeros(0, bool)
    fresh = {k: v[relevant] for k, v in computed.items()}
    images = _images(np.array(sorted(current), np.int64) if full else new, current, candidates, len(columns))
    _store(store, drop=gone, images=images, pairs=fresh, generation=generation)
    old = _without(stored.pairs, gone) if not full else {}
    judged = _judged(_concat(old, fresh), kinds)
    report = EvidenceReport(reused=len(old.get(FIRST, ())), computed=len(candidates.pairs),
                            verified=int((computed.get(INLIERS, np.zeros(0)) >= 0).sum()), images=len(candidates.reached),
                            dropped=len(gone), stored=len(judged.pairs), seconds=time.perf_counter() - start)
    return judged, report


def _store(store: PairStore, **update) -> None:
    """Store the judgements; the store is a cache, so a catalog that cannot be written now
    (read-only, busy with another writer, full) is used as it is, and judged again next time."""
    if store.catalog.readonly:
        return
    try:
        store.update(**update)
    except (CatalogReadOnlyError, CatalogBusyError, DiskFullError):
        pass


def evidence_key(catalog: Catalog, threshold: float, vector_features: list[str], kinds: list[str],
                 reach: tuple[str, ...], policy: AutoPolicy) -> dict[str, object]:
    """Everything that shaped stored judgements: the code's version, the hashes and their
    version, the fused models' identities, the local features, the threshold and the policy,
    and the stored columns."""
    models = catalog.models()
    return {
        "version": EVIDENCE_VERSION, "hashes": list(catalog.settings.hashes), "hash_version": catalog.settings.hash_version,
        "decode_side": catalog.settings.decode_side, "local_features": catalog.settings.local_features,
        "models": {n: repr(models[n].identity()) for n in vector_features if n in models},
        "threshold": threshold, "policy": repr(sorted(asdict(policy).items())), "kinds": kinds, "reach": list(reach),
        "verify": [verify.VERIFY_THRESHOLD, verify.VERIFY_FULL, verify.VERIFY_CEILING, verify.MIN_COVERAGE,
                   verify.RELATIVE_CENTRE, verify.MIN_HOLE],
    }


def _judge(catalog: Catalog, candidates: PairCandidates, threshold: float, weights: dict[str, float],
           vector_features: list[str], verifying: bool, kinds: list[str], policy: AutoPolicy) -> Columns:
    """The judgement of every candidate pair as columns: FIRST, SECOND, KINDS (M, K) and the
    verification columns."""
    pairs = candidates.pairs
    if not len(pairs):
        return {FIRST: np.zeros(0, np.int64), SECOND: np.zeros(0, np.int64), KINDS: np.zeros((0, len(kinds))),
                **_verification_columns({}, 0)}
    found = pair_evidence(catalog, candidates, threshold, weights, vector_features, verifying=verifying, policy=policy)
    return {FIRST: pairs[:, 0].copy(), SECOND: pairs[:, 1].copy(),
            KINDS: np.stack([found.evidence.kinds[k] for k in kinds], axis=1),
            **_verification_columns(found.verified, len(pairs))}


def _verification_columns(verified: Mapping[int, Verification], rows: int) -> Columns:
    """Verifications by row as columns: INLIERS (-1: not verified) and each side's fields."""
    out: Columns = {INLIERS: np.full(rows, -1, np.int32)}
    for side in ("query", "candidate"):
        out |= {f"{side}_{f}": np.zeros(rows, dtype) for f, dtype in _SIDE_FIELDS.items()}
    for row, found in verified.items():
        out[INLIERS][row] = found.inliers
        for side in ("query", "candidate"):
            for f in _SIDE_FIELDS:
                out[f"{side}_{f}"][row] = getattr(getattr(found, side), f)
    return out


def _images(ids: NDArray[np.int64], current: Mapping[int, int], candidates: PairCandidates, width: int) -> Columns:
    """The images whose pairs were judged: ids, contents, and the reaches of their lists
    (NaN for an image without one: no hash of a seed, say)."""
    reach = np.full((len(ids), width), np.nan)
    if len(candidates.reached):
        at = np.searchsorted(candidates.reached, ids)
        found = (at < len(candidates.reached)) & (candidates.reached[np.minimum(at, len(candidates.reached) - 1)] == ids)
        reach[found] = candidates.reaches[at[found]]
    return {IMAGE_ID: ids, CONTENT: np.array([current[int(i)] for i in ids.tolist()], np.uint64), REACH: reach}


def _judged(pairs: Columns, kinds: list[str]) -> JudgedPairs:
    """Stored columns as judged pairs, in (a, b) order: the order the candidates of a whole
    catalog come in, so that the decision meets them alike however they were judged."""
    if not pairs or not len(pairs.get(FIRST, ())):
        empty = np.zeros(0)
        return JudgedPairs(np.zeros((0, 2), np.int64), Evidence({k: empty for k in kinds}), {})
    order = np.lexsort((pairs[SECOND], pairs[FIRST]))
    pairs = {k: v[order] for k, v in pairs.items()}
    matrix = pairs[KINDS]
    return JudgedPairs(np.stack([pairs[FIRST], pairs[SECOND]], axis=1),
                       Evidence({k: matrix[:, j] for j, k in enumerate(kinds)}),
                       {k: v for k, v in pairs.items() if k not in (FIRST, SECOND, KINDS)})


def _reaches(images: Columns, kept: set[int], columns: tuple[str, ...]) -> Reaches:
    ids = images[IMAGE_ID]
    mine = np.isin(ids, np.fromiter(kept, np.int64, len(kept)))
    order = np.argsort(ids[mine], kind="stable")
    return Reaches(ids[mine][order], images[REACH][mine][order], columns)


def _without(pairs: Columns, gone: NDArray[np.int64]) -> Columns:
    if not pairs:
        return {}
    keep = ~(np.isin(pairs[FIRST], gone) | np.isin(pairs[SECOND], gone))
    return {k: v[keep] for k, v in pairs.items()}


def _concat(a: Columns, b: Columns) -> Columns:
    if not a:
        return b
    return {k: np.concatenate([a[k], b[k]]) for k in b}


def _content(sha256: str | None) -> int:
    """An image's content as stored beside its judgements: the first 64 bits of its SHA-256."""
    return int(sha256[:16], 16) if sha256 else 0
