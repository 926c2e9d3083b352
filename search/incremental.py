"""Auto's pair evidence, judged once, stored, and brought up to date as the catalog changes.

Judging candidate pairs (fused hashes, cosines, geometric verification: `candidates` ->
`evidence`) is nearly all that `duplicates --by auto` costs, and a pair's judgement depends
only on its two images' contents and on the versions of everything that judged them (the
evidence key). So the judgements are stored in the catalog (`storage.pairs`), and a run:

1. compares the images whose pairs are stored (with the content each had) with the images
   the collection holds now, one per content (an exact copy is judged through its content's
   first image);
2. finds the candidate pairs again (`pair_candidates`: the stored neighbour lists brought
   up to date, `neighbours`; range pairs only from the images new or changed), and judges
   only the pairs that touch an image new or changed, or that were not candidates before,
   or became candidates in another way (marked for verification or not, in range or not:
   what a judgement depends on); every other pair keeps its stored judgement, and those of
   images gone or changed are dropped. With nothing stored, or more new images than old,
   it judges all;
3. searches the containers' strips (`strips`: the part of an image its match leaves free)
   again from the judged pairs, cheaply (a container's strip, a homography with its
   partner, kept from before while both images are as they were; its list of the images
   most alike it by colour thumbnails kept and merged with the images added), and verifies
   only the strip candidates not verified before with the same strip;
4. searches the region where an image holding an overlay differs from its copy for a picture
   pasted there (`pasted`), again only for a holder or copy that changed, or where an image
   added comes as close to the region's stored vector as the candidates verified then;
5. hands every stored judgement to the decision (`duplicates.decide`), which is as it was.

The candidates are thus exactly those a run from nothing finds, each judged as it would be,
so the groups are the same. A catalog whose generation is the one the store was completed at
skips steps 1 and 2. Only judgements that can matter to a decision are stored: those with
some kind of evidence at the threshold (no other is ever kept, nor counted as a weak link by
`auto.attachments`); every candidate is stored as a pair of ids and its two flags.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from neardup.indexer.embedders import vector_feature
from neardup.indexer.features import verifiable
from neardup.indexer.progress import Progress
from neardup.storage.catalog import Catalog
from neardup.storage.pairs import FIRST, IMAGE_ID, SECOND, Columns, PairStore
from neardup.storage.schema import CatalogBusyError, CatalogReadOnlyError, DiskFullError
from neardup.storage.vectors import in_sorted, pair_keys

from . import canvas, cutout, inset, overlay, pasted, recolour, strips, verify
from .auto import GEOMETRY, HASHES, POLICY, AutoPolicy, Evidence, verified_links
from .candidates import PairCandidates, pair_candidates
from .canvas import MIN_BESIDE, beside, on_canvas, shown_whole
from .composites import link_regions, placed_links
from .evidence import (BLOCK, BOX_FIRST, BOX_SECOND, BOXED, INLIERS, RECOLOURED, SIDE_FIELDS, Verified, pair_evidence,
                       layout_cells_of, strips_of, verify_strips)
from .features import features_of
from .linkage import components
from .neighbours import lists_from_columns, lists_to_columns
from .overlay import has_overlay
from .pasted import Box, Searched, search_regions, still_valid, strip_box
from .strips import Strip, StripLists, containers, packed, strip_candidates, unpacked
from .verify import VERIFY_THRESHOLD, Side, Verification, content_differs, either_beside, on_content

# Bumped whenever the code that judges pairs changes what it returns: stored judgements of
# another version are dropped and judged again.
EVIDENCE_VERSION = 18
CONTENT, KINDS, VERIFY, IN_RANGE = "content", "kinds", "verify", "in_range"
STRIP = "strip"  # a strip candidate's or strip link's strip (`strips`); 0: an ordinary candidate or pair


@dataclass(frozen=True)
class EvidenceReport:
    """What a run did with the stored evidence: judged pairs `reused` from it, pairs
    `computed` (candidate pairs judged now) with `verified` geometric verifications among
    them; `images` new or changed images whose pairs were judged; `dropped` images whose
    pairs were dropped; `stored` judged pairs kept after the run; `seconds` it took;
    `decided`: the groups themselves were stored ones (`storage.decisions`), decided on the
    `reused` pairs, and nothing was decided again; `keepers` groups whose keeper was chosen
    now, and `keepers_kept` whose keeper was kept from the decision before (the group and
    its members as they were); `written`: the text of the stored groups was stored too
    (`storage.rendered`), and given as it was; `unread`: images whose region was to be
    searched for a pasted picture but whose file could not be read now (tried again next run)."""

    reused: int = 0
    computed: int = 0
    verified: int = 0
    images: int = 0
    dropped: int = 0
    stored: int = 0
    seconds: float = 0.0
    decided: bool = False
    keepers: int = 0
    keepers_kept: int = 0
    written: bool = False
    unread: int = 0

    @property
    def complete(self) -> bool:
        """Whether the run read every file it had to: only then are its groups and their text
        stored for the next run to reuse (else it tries those files again)."""
        return not self.unread

    def summary(self) -> str:
        if self.decided:
            text = " and their report" if self.written else ""
            return f"reused the stored groups{text}, decided on stored evidence for {self.reused:,} pairs, computed 0"
        tail = f"; chose the keepers of {self.keepers:,} groups, kept {self.keepers_kept:,}"
        if self.unread:
            one = self.unread == 1
            tail += (f"; {self.unread:,} image{'' if one else 's'} could not be read now, so "
                     f"{'it was' if one else 'they were'} not searched for a picture pasted in (tried again next run)")
        if not self.computed and not self.dropped:
            return f"reused stored evidence for {self.reused:,} pairs, computed 0" + tail
        return (f"reused stored evidence for {self.reused:,} pairs, computed {self.computed:,} "
                f"({self.verified:,} verified) for {self.images:,} new or changed images"
                + (f", dropped those of {self.dropped:,}" if self.dropped else "") + tail)


@dataclass(frozen=True)
class JudgedPairs:
    """Candidate pairs (M, 2) int64 with their evidence and their geometric verifications as
    columns, which the decision reads whole (`content_differs`, `regions`); one pair's
    `Verification` (`verification(row)`, None where it was not verified) is for inspection."""

    pairs: NDArray[np.int64]
    evidence: Evidence
    columns: Columns  # the verification columns (`evidence.Verified.scattered`)
    # (K, 2) an image and a picture it holds, found by searching the region its copy lacks
    # (`pasted`): the picture pasted there, and that copy (the picture it was pasted on)
    pasted: NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 2), np.int64))

    def verification(self, row: int) -> Verification | None:
        if INLIERS not in self.columns or self.columns[INLIERS][row] < 0:
            return None
        c = self.columns
        sides = [Side(**{f: c[f"{side}_{f}"][row].item() for f in SIDE_FIELDS}) for side in ("query", "candidate")]
        return Verification(int(c[INLIERS][row]), *sides, bool(c[RECOLOURED][row]), bool(c[BLOCK][row]))

    def content_differs(self) -> NDArray[np.bool_]:
        """(M,) which pairs' verification found their content differs in one region
        (`verify.content_differs`), or one image showing the other beside a second picture
        (`beside_pictures`); False where a pair was not verified."""
        c = self.columns
        if INLIERS not in c:
            return np.zeros(len(self.pairs), bool)
        return (c[INLIERS] >= 0) & content_differs(c[INLIERS], self._both("coverage"), self._both("hole"),
                                                   (c[RECOLOURED] != 0) | (c[BLOCK] != 0), *self._besides(),
                                                   centres=tuple(self._both(f) for f in ("central", "centre", "share")))

    def covered(self) -> NDArray[np.float64]:
        """(M,) the share of its keypoint-bearing cells each pair's inliers cover in the image
        they cover less of (`Side.coverage`); 0 where a pair was not verified (`scattered`)."""
        if INLIERS not in self.columns:
            return np.zeros(len(self.pairs))
        return np.minimum(*self._both("coverage"))

    def shown_whole(self) -> NDArray[np.bool_]:
        """(M,) the verified pairs of which one image shows all of the other inside a mostly
        flat surround of its own (`canvas.shown_whole`): a screenshot, a photographed screen."""
        query, candidate = self._surrounds()
        return query | candidate

    def _surrounds(self) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """(M,) each, whether the query, and whether the candidate, shows the other whole
        inside a mostly flat surround (all False where no pair was verified: none is beyond)."""
        if INLIERS not in self.columns or "query_beyond" not in self.columns:
            return np.zeros(len(self.pairs), bool), np.zeros(len(self.pairs), bool)
        (beyond_q, beyond_c), (blank_q, blank_c) = self._both("beyond"), self._both("blank")
        return shown_whole(beyond_q, blank_q, beyond_c), shown_whole(beyond_c, blank_c, beyond_q)

    def beside_pictures(self) -> NDArray[np.bool_]:
        """(M,) the verified pairs of which one image shows the other whole beside a second
        picture (`canvas.beside`), with enough inliers on the content: no copies, but links
        for `composites` and the strips (that image contains the other)."""
        if INLIERS not in self.columns or "query_seam" not in self.columns:
            return np.zeros(len(self.pairs), bool)
        return self._matched() & either_beside(*self._besides())

    def held_beside(self) -> NDArray[np.int64]:
        """(K, 2) the verified pairs of which the first image shows the second whole beside a
        second picture (`canvas.beside`), where no verified pair covers the first whole (each
        leaves MIN_BESIDE of it or more beyond its partner's frame): a composite, even where
        its other links reach only that picture's copies. A picture that shows a crop of
        itself with a sharp edge beside it is covered whole by its other copies."""
        if INLIERS not in self.columns or "query_seam" not in self.columns:
            return np.zeros((0, 2), np.int64)
        (beyond_q, beyond_c), (blank_q, blank_c), (seam_q, seam_c) = self._besides()
        matched = self._matched()
        held = self._ordered_where(matched & beside(beyond_q, blank_q, beyond_c, seam_q),
                                   matched & beside(beyond_c, blank_c, beyond_q, seam_c))
        whole = np.union1d(self.pairs[matched & (beyond_q < MIN_BESIDE), 0],
                           self.pairs[matched & (beyond_c < MIN_BESIDE), 1])
        return held[~np.isin(held[:, 0], whole)]

    def _ordered_where(self, query: NDArray[np.bool_], candidate: NDArray[np.bool_]) -> NDArray[np.int64]:
        """The pairs where the query (`query`) or else the candidate (`candidate`) is the one
        a relation names, that one first."""
        return np.concatenate([self.pairs[query], self.pairs[candidate & ~query][:, ::-1]])

    def _matched(self) -> NDArray[np.bool_]:
        """(M,) the pairs verified with VERIFY_THRESHOLD inliers or more on the content."""
        sides = [self._both(f) for f in ("coverage", "central", "centre", "share")]
        return (self.columns[INLIERS] >= VERIFY_THRESHOLD) & on_content(*sides)

    def _besides(self) -> tuple[tuple[NDArray, NDArray], ...]:
        """Both sides' beyond, blank and seam columns (`verify.either_beside`); none without seams."""
        return tuple(self._both(f) for f in ("beyond", "blank", "seam")) if "query_seam" in self.columns else ()

    def _both(self, field: str) -> tuple[NDArray, NDArray]:
        """The query's and the candidate's column of one `Side` field."""
        return self.columns[f"query_{field}"], self.columns[f"candidate_{field}"]

    def on_canvas(self) -> NDArray[np.int64]:
        """(K, 2) the verified pairs of which one image shows all of the other on a blank
        canvas (`Verification.canvas_side`) or inside a mostly flat surround of its own
        (`canvas.shown_whole`: a window, a photographed screen): that image first, the one it
        shows second. The keeper passes such a copy over."""
        c = self.columns
        if INLIERS not in c or "query_beyond" not in c:
            return np.zeros((0, 2), np.int64)
        (beyond_q, beyond_c), (blank_q, blank_c) = self._both("beyond"), self._both("blank")
        surround_q, surround_c = self._surrounds()
        return self._ordered(on_canvas(beyond_q, blank_q, beyond_c) | surround_q,
                             on_canvas(beyond_c, blank_c, beyond_q) | surround_c)

    def overlaid(self) -> NDArray[np.int64]:
        """(K, 2) the verified pairs of which one image holds an overlay the other lacks
        (`Verification.overlay_side`): that image first."""
        if INLIERS not in self.columns or "query_standout" not in self.columns:
            return np.zeros((0, 2), np.int64)
        return self._ordered(*self._overlay_sides())

    def overlay_holders(self, among: NDArray[np.bool_]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """(M,) the pairs `among` (M,) of copies of which one image holds an overlay the other
        lacks (`overlaid`), and (M,) whether that image is the query."""
        if INLIERS not in self.columns or "query_standout" not in self.columns:
            return np.zeros(len(self.pairs), bool), np.zeros(len(self.pairs), bool)
        query, candidate = self._overlay_sides()
        return among & self._copies() & (query | candidate), query

    def _overlay_sides(self) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """(M,) each, whether the query, and whether the candidate, holds an overlay the other
        lacks (`overlay.has_overlay`)."""
        standouts = self._both("standout")
        return has_overlay(*standouts), has_overlay(*standouts[::-1])

    def insets(self, among: NDArray[np.bool_]) -> NDArray[np.int64]:
        """(K, 2) the pairs `among` (M,) of which one image holds a picture inset where the
        other shows its own picture (`Side.inset`): that image first."""
        c = self.columns
        if INLIERS not in c or "query_inset" not in c:
            return np.zeros((0, 2), np.int64)
        query, candidate = among & (c["query_inset"] != 0), among & (c["candidate_inset"] != 0)
        return np.concatenate([self.pairs[query], self.pairs[candidate][:, ::-1]])

    def _ordered(self, query: NDArray[np.bool_], candidate: NDArray[np.bool_]) -> NDArray[np.int64]:
        """The pairs of copies (enough inliers on the content, no region that differs) where
        the query (`query`) or else the candidate (`candidate`) is the one a relation names,
        that one first."""
        copy = self._copies()
        return self._ordered_where(copy & query, copy & candidate)

    def _copies(self) -> NDArray[np.bool_]:
        """(M,) the pairs of copies: enough inliers on the content, no region that differs."""
        return self._matched() & ~self.content_differs()

    def regions(self) -> NDArray[np.uint64]:
        """(M, 2) where each pair's link lies in its two images (`composites.link_regions`)."""
        c = self.columns
        if INLIERS not in c:
            return link_regions(np.full(len(self.pairs), -1), *np.zeros((2, len(self.pairs)), np.uint64))
        return link_regions(c[INLIERS], c["query_cells"], c["candidate_cells"])

    def regions_in_boxes(self) -> tuple[NDArray[np.uint64], NDArray[np.bool_]]:
        """`regions`, and (M, 2) whether each link has a place in each image
        (`composites.placed_links`); but a link without geometry that one image's content box
        alone gave (`evidence.PairEvidence.boxed`) lies in that image's box, which holds none
        of its cells (0): the box is one picture of a composite, unlike the part its verified
        links cover. The box's place is not stored, so a screenshot whose picture's group is
        split in two (a thumbnail found through its box, a crop verified inside it) is taken
        for one too."""
        out = self.regions()
        c = self.columns
        if INLIERS not in c:
            return out, np.zeros(out.shape, bool)
        placed = placed_links(c[INLIERS])
        if BOXED not in c:
            return out, placed
        unplaced = c[INLIERS] < VERIFY_THRESHOLD
        for side, column in ((BOX_FIRST, 0), (BOX_SECOND, 1)):
            boxed = unplaced & (c[BOXED] == side)
            out[boxed, column] = 0
            placed[boxed, column] = True
        return out, placed

    def strip_links(self) -> NDArray[np.bool_]:
        """(M,) which pairs are strip links (`strips`), not candidates judged as duplicates."""
        return self.columns[STRIP] != 0 if STRIP in self.columns else np.zeros(len(self.pairs), bool)


def judged_pairs(catalog: Catalog, threshold: float, *, merge: Mapping[int, int],
                 policy: AutoPolicy = POLICY, workers: int = 1,
                 progress: Progress | None = None) -> tuple[JudgedPairs, EvidenceReport]:
    """Every stored judgement of the catalog's candidate pairs, brought up to date first
    (pairs verified on `workers` processes, counted on `progress`)."""
    start = time.perf_counter()
    weights = policy.weights(catalog.settings.hashes)
    vector_features = [n for n in policy.vector_features if n in features_of(catalog)]
    verifying = verifiable(catalog.settings.local_features)
    kinds = [HASHES, *vector_features, *([GEOMETRY] if verifying else [])]
    store = PairStore(catalog, evidence_key(catalog, threshold, vector_features, kinds, policy))
    generation = catalog.generation()
    stored = store.read()
    if stored.generation == generation:
        judged = replace(_judged(stored.pairs, kinds), pasted=_held(_stored_searches(stored.lists, [], [])))
        return judged, EvidenceReport(reused=len(judged.pairs), stored=len(judged.pairs),
                                      seconds=time.perf_counter() - start)
    current, new, gone, full = _image_changes(catalog, stored.images, merge)
    old_candidates = {} if full else _without(stored.candidates, new, gone)
    old_strips = _rows_where(old_candidates, lambda c: c[STRIP] != 0)
    old_candidates = _rows_where(old_candidates, lambda c: c[STRIP] == 0)
    known_range = None if full else np.zeros((0, 2), np.int64)
    if old_candidates:
        known_range = np.stack([old_candidates[FIRST], old_candidates[SECOND]], axis=1)[old_candidates[IN_RANGE]]
    candidates = pair_candidates(catalog, threshold, weights, vector_features, verifying=verifying, merge=merge,
                                 policy=policy, new=None if full else new, known_range=known_range,
                                 known_lists=None if full else lists_from_columns(stored.lists))
    judge = np.arange(len(candidates.pairs)) if full else _changed(candidates, old_candidates, new)
    computed = _judge(catalog, candidates.subset(judge), threshold, weights, vector_features, verifying, kinds, policy,
                      workers, progress)
    relevant = computed[KINDS].max(axis=1, initial=0.0) >= threshold if len(judge) else np.zeros(0, bool)
    fresh = {k: v[relevant] for k, v in computed.items()}
    stored_pairs = {} if full else _without(stored.pairs, new, gone)
    old = _still(_rows_where(stored_pairs, lambda c: c[STRIP] == 0), candidates, judge)
    pairs = _concat(old, fresh)
    known_strips = {} if full else _stored_strips(stored.lists, new, gone)
    known_lists = None if full else _stored_strip_lists(stored.lists)
    strip_candidates_, strip_pairs, strips_verified, found_strips, strip_lists = (
        _strip_links(catalog, pairs, kinds, threshold, candidates, sorted(current), old_strips,
                     _rows_where(stored_pairs, lambda c: c[STRIP] != 0), policy, workers, known_strips,
                     known_lists, new)
        if verifying else ({}, {}, 0, {}, None))
    pairs = _concat(pairs, strip_pairs)
    searching = verifying and PASTED_FEATURE in vector_features and vector_feature(PASTED_FEATURE).installed()
    judged = _judged(pairs, kinds)
    searched, unread = (_pasted(catalog, judged, threshold, policy, found_strips,
                                {} if full else _stored_searches(stored.lists, new, gone), new, workers, progress)
                        if searching else ({}, 0))
    ordinary = {FIRST: candidates.pairs[:, 0].copy(), SECOND: candidates.pairs[:, 1].copy(),
                VERIFY: candidates.verify, IN_RANGE: candidates.in_range,
                STRIP: np.zeros(len(candidates.pairs), np.uint64)}
    _store(store, images={IMAGE_ID: np.array(sorted(current), np.int64),
                          CONTENT: np.array([current[i] for i in sorted(current)], np.uint64)},
           # with a holder unread, the set covers no generation: the next run, even on an
           # unchanged catalog, reuses these pairs and tries that holder's file again
           candidates=_concat(ordinary, strip_candidates_), pairs=pairs, generation=None if unread else generation,
           lists={**lists_to_columns(candidates.lists), **_strips_to_columns(found_strips),
                  **_strip_lists_to_columns(strip_lists), **_searches_to_columns(searched)})
    judged = replace(judged, pasted=_held(searched))
    report = EvidenceReport(reused=len(old.get(FIRST, ())), computed=len(judge),
                            verified=int((computed.get(INLIERS, np.zeros(0)) >= 0).sum()) + strips_verified,
                            images=len(new), dropped=len(gone), stored=len(judged.pairs),
                            seconds=time.perf_counter() - start, unread=unread)
    return judged, report


def _image_changes(catalog: Catalog, stored: Columns, merge: Mapping[int, int]):
    """(each image's current content, images new or changed since `stored`, images gone,
    whether to judge everything again: nothing kept, or more new than kept)."""
    ids, contents = catalog.contents()
    current = {int(i): int(c) for i, c in zip(ids.tolist(), contents.tolist()) if int(i) not in merge}
    known = dict(zip(stored.get(IMAGE_ID, np.zeros(0, np.int64)).tolist(),
                     stored.get(CONTENT, np.zeros(0, np.uint64)).tolist()))
    kept = {i for i, c in known.items() if current.get(i) == c}
    new = np.array(sorted(set(current) - kept), np.int64)
    return current, new, sorted(set(known) - kept), not kept or len(new) > len(kept)


def _changed(candidates: PairCandidates, old: Columns, new: NDArray[np.int64]) -> NDArray[np.int64]:
    """Rows of `candidates` to judge now: pairs touching a `new` image, pairs that were no
    candidates before, and pairs whose flags (verify, in range) changed."""
    pairs = candidates.pairs
    keys = pair_keys(pairs[:, 0], pairs[:, 1])
    before = pair_keys(old.get(FIRST, np.zeros(0, np.int64)), old.get(SECOND, np.zeros(0, np.int64)))
    same = np.zeros(len(keys), bool)
    if len(before):
        order = np.argsort(before)
        at = order[np.minimum(np.searchsorted(before, keys, sorter=order), len(before) - 1)]
        same = ((before[at] == keys) & (old[VERIFY][at] == candidates.verify)
                & (old[IN_RANGE][at] == candidates.in_range))
    touching = np.isin(pairs[:, 0], new) | np.isin(pairs[:, 1], new)
    return np.flatnonzero(touching | ~same)


def _still(pairs: Columns, candidates: PairCandidates, judged: NDArray[np.int64]) -> Columns:
    """The stored judgements of pairs that are still candidates and were not judged again now."""
    if not pairs or not len(pairs.get(FIRST, ())):
        return {}
    keep_rows = np.ones(len(candidates.pairs), bool)
    keep_rows[judged] = False
    valid = candidates.pairs[keep_rows]
    keep = in_sorted(pair_keys(valid[:, 0], valid[:, 1]), pair_keys(pairs[FIRST], pairs[SECOND]))
    return {k: v[keep] for k, v in pairs.items()}


def _strip_links(catalog: Catalog, pairs: Columns, kinds: list[str], threshold: float, candidates: PairCandidates,
                 ids: list[int], old_candidates: Columns, old_links: Columns, policy: AutoPolicy, workers: int,
                 known_strips: Mapping[tuple[int, int], Strip | None], known_lists: StripLists | None,
                 new: NDArray[np.int64]
                 ) -> tuple[Columns, Columns, int, dict[tuple[int, int], Strip | None], StripLists]:
    """(strip candidates, strip links, verifications done, each container's strip by
    (container, partner), the lists its strip candidates were drawn from) of the judged
    `pairs` (`strips`): the containers' strips are found again where `known_strips` lacks
    them (a homography each), their strip candidates drawn from `known_lists` brought up to
    date with the images `new` or changed (colour thumbnails), and only those not verified
    before with the same strip are verified now (on `workers` processes)."""
    judged = _judged(pairs, kinds)
    keep = verified_links(judged.pairs, judged.evidence, judged.content_differs(), threshold, policy,
                          shown_whole=judged.shown_whole())
    wanted: dict[tuple[int, int], tuple[int, int, int]] = {}
    partners = containers(judged.pairs, keep | judged.beside_pictures(), judged.regions())
    strips_found = strips_of(catalog, partners, known_strips)
    found_strips = {container: strip for (container, _), strip in strips_found.items() if strip is not None}
    with_layouts = np.intersect1d(np.asarray(ids, np.int64), catalog.colour_layout_ids())
    drawn, lists = strip_candidates(found_strips, judged.pairs[keep], lambda some: layout_cells_of(catalog, some),
                                    with_layouts, known_lists, new)
    for container, other, strip in drawn:
        wanted.setdefault((min(container, other), max(container, other)),
                          (container, other, packed(strip, in_place=other not in partners)))
    before = set(zip(old_candidates.get(FIRST, np.zeros(0, np.int64)).tolist(),
                     old_candidates.get(SECOND, np.zeros(0, np.int64)).tolist(),
                     old_candidates.get(STRIP, np.zeros(0, np.uint64)).tolist()))
    key_of = {key: (*key, strip) for key, (_, _, strip) in wanted.items()}
    todo = [wanted[key] for key in wanted if key_of[key] not in before]
    # a candidate pair was judged already (its keypoints did not make it a duplicate): only
    # its colours are compared, lest a looser strip link pass what verification refused
    ordinary = in_sorted(pair_keys(candidates.pairs[:, 0], candidates.pairs[:, 1]),
                         pair_keys([min(c, o) for c, o, _ in todo], [max(c, o) for c, o, _ in todo]))
    found = verify_strips(catalog, todo, colours_only=ordinary.tolist(), workers=workers)
    still = set(key_of.values())
    links = _rows_where(old_links, lambda c: np.array(
        [k in still for k in zip(c[FIRST].tolist(), c[SECOND].tolist(), c[STRIP].tolist())], dtype=bool))
    rows = sorted(found)
    new_links = {FIRST: np.array([min(todo[i][:2]) for i in rows], np.int64),
                 SECOND: np.array([max(todo[i][:2]) for i in rows], np.int64),
                 KINDS: np.zeros((len(rows), len(kinds))),
                 **Verified.of({j: found[i] for j, i in enumerate(rows)}).scattered(len(rows)),
                 BOXED: np.zeros(len(rows), np.uint8), STRIP: np.array([todo[i][2] for i in rows], np.uint64)}
    keys = sorted(key_of)
    strip_columns = {FIRST: np.array([a for a, _ in keys], np.int64), SECOND: np.array([b for _, b in keys], np.int64),
                     VERIFY: np.zeros(len(keys), bool), IN_RANGE: np.zeros(len(keys), bool),
                     STRIP: np.array([key_of[k][2] for k in keys], np.uint64)}
    return strip_columns, _concat(links, new_links), len(todo), strips_found, lists


PASTED_FEATURE = "cnn"  # the vector a region's pasted picture is searched by (`pasted`)


def _pasted(catalog: Catalog, judged: JudgedPairs, threshold: float, policy: AutoPolicy,
            strips_found: Mapping[tuple[int, int], Strip | None], known: Mapping[int, Searched],
            new: NDArray[np.int64], workers: int, progress: Progress | None) -> tuple[dict[int, Searched], int]:
    """Holder -> what searching its region found (`pasted`), for every image that holds an
    overlay its linked copy lacks among the `judged` pairs, and every container whose strip
    (`strips_found`, by container and partner) found no strip link, searched in its strip:
    searches kept in `known` (same holder and partner, both unchanged) stand unless an image
    `new` comes as close to the region as the candidates verified then; the others are
    searched now (on `workers` processes); and how many holders' files could not be read now
    (left out)."""
    if not len(judged.pairs) or INLIERS not in judged.columns:
        return {}, 0
    keep = verified_links(judged.pairs, judged.evidence, judged.content_differs(), threshold, policy,
                          shown_whole=judged.shown_whole())
    overlaid, holder_first = judged.overlay_holders(keep)
    wanted: dict[int, tuple[int, Box | None]] = {
        h: (p, None) for h, p in pasted.suspects(judged.pairs, overlaid, holder_first, judged.columns[INLIERS]).items()}
    linked = set(judged.pairs[keep].ravel().tolist())
    striped = set(judged.pairs[judged.strip_links()].ravel().tolist())
    for (container, partner), strip in sorted(strips_found.items()):
        if strip is not None and container in linked and container not in striped and container not in wanted:
            wanted[container] = (partner, strip_box(strip))
    if not wanted:
        return {}, 0
    # a pasted picture is one the holder or its copy is not linked to; a match that was not
    # kept may be the pasted picture's own (a background under an inset matches the inset's
    # holder over part of itself)
    kept = judged.pairs[keep]
    around: dict[int, set[int]] = {}
    for a, b in kept.tolist():
        around.setdefault(a, set()).add(b)
        around.setdefault(b, set()).add(a)
    excluded = {h: {h, p} | around.get(h, set()) | around.get(p, set()) for h, (p, _) in wanted.items()}
    added = catalog.vectors_of(new.tolist(), PASTED_FEATURE) if len(new) and known else {}
    standing = still_valid({h: known[h] for h, (p, _) in wanted.items() if h in known and known[h].partner == p},
                           added, excluded)
    out = {h: known[h] for h in standing}
    searching = {h: w for h, w in wanted.items() if h not in out}
    found = search_regions(catalog, searching, excluded, components(kept), progress, workers)
    return {**out, **found}, len(searching) - len(found)


def _held(searched: Mapping[int, Searched]) -> NDArray[np.int64]:
    """(K, 2) the holders that a picture was found pasted in, each with that picture, then with
    its partner (`JudgedPairs.pasted`)."""
    rows = [(h, other) for h, s in sorted(searched.items()) if s.pasted >= 0 for other in (s.pasted, s.partner)]
    return np.array(rows, np.int64).reshape(-1, 2)


# each searched region (`pasted`) beside the neighbour lists, by holder
_SEARCHES = ("pasted|holder", "pasted|partner", "pasted|found", "pasted|floor", "pasted|vector")


def _searches_to_columns(searched: Mapping[int, Searched]) -> Columns:
    """The searches, so that the next run searches again only the regions that changed; a
    search that found no region keeps no vector (a row of zeros)."""
    keys = sorted(searched)
    dim = max((len(s.vector) for s in searched.values()), default=0)
    vectors = np.zeros((len(keys), dim), np.float16)
    for row, key in enumerate(keys):
        if len(searched[key].vector):
            vectors[row] = searched[key].vector
    return dict(zip(_SEARCHES, (np.array(keys, np.int64), np.array([searched[k].partner for k in keys], np.int64),
                                np.array([searched[k].pasted for k in keys], np.int64),
                                np.array([searched[k].floor for k in keys], np.float64), vectors)))


def _stored_searches(columns: Columns, new: NDArray[np.int64] | list[int], gone: list[int]) -> dict[int, Searched]:
    """The searches `_searches_to_columns` stored, but those touching an image new (changed) or gone."""
    if not all(k in columns for k in _SEARCHES):
        return {}
    holder, partner, found, floor, vectors = (columns[k] for k in _SEARCHES)
    drop = np.concatenate([np.asarray(new, np.int64), np.array(gone, np.int64)])
    keep = ~(np.isin(holder, drop) | np.isin(partner, drop) | np.isin(found, drop))
    return {int(h): Searched(int(p), int(f), float(fl), v.astype(np.float32) if fl <= 1.0 else v[:0].astype(np.float32))
            for h, p, f, fl, v in zip(holder[keep], partner[keep], found[keep], floor[keep], vectors[keep])}


# each container's strip beside the neighbour lists (`neighbours`), by container and partner
_STRIPS = ("strips|container", "strips|partner", "strips|strip")


def _strips_to_columns(strips: Mapping[tuple[int, int], Strip | None]) -> Columns:
    """Each container's strip (`packed`; -1 for none) with its partner, kept so that the next
    run need not find it again (a homography) while both images are as they were."""
    keys = sorted(strips)
    strip = [-1 if strips[k] is None else packed(strips[k]) for k in keys]
    return dict(zip(_STRIPS, (np.array([c for c, _ in keys], np.int64), np.array([p for _, p in keys], np.int64),
                              np.array(strip, np.int64))))


# the lists the containers' strip candidates were drawn from (`StripLists`)
_STRIP_LISTS = ("striplists|containers", "striplists|strips", "striplists|ids", "striplists|values",
                "striplists|entries")


def _strip_lists_to_columns(lists: StripLists | None) -> Columns:
    if lists is None:
        return {}
    return dict(zip(_STRIP_LISTS, (lists.containers, lists.strips, lists.ids, lists.values, lists.entries)))


def _stored_strip_lists(columns: Columns) -> StripLists | None:
    """The lists `_strip_lists_to_columns` stored, if any."""
    if not all(k in columns for k in _STRIP_LISTS):
        return None
    return StripLists(*(columns[k] for k in _STRIP_LISTS))


def _stored_strips(columns: Columns, new: NDArray[np.int64], gone: list[int]) -> dict[tuple[int, int], Strip | None]:
    """The strips `_strips_to_columns` stored, but those of an image new (changed) or gone."""
    if not all(k in columns for k in _STRIPS):
        return {}
    container, partner, strip = (columns[k] for k in _STRIPS)
    drop = np.concatenate([new, np.array(gone, np.int64)])
    keep = ~(np.isin(container, drop) | np.isin(partner, drop))
    return {(c, p): None if s < 0 else unpacked(s)[0]
            for c, p, s in zip(container[keep].tolist(), partner[keep].tolist(), strip[keep].tolist())}


def _rows_where(columns: Columns, test: Callable[[Columns], NDArray[np.bool_]]) -> Columns:
    """The rows of `columns` passing `test`."""
    if not columns or not len(columns.get(FIRST, ())):
        return {}
    keep = test(columns)
    return {k: v[keep] for k, v in columns.items()}


def _store(store: PairStore, **update) -> None:
    """Store the judgements; the store is a cache, so a catalog that cannot be written now
    (read-only, busy with another writer, full) is used as it is, and judged again next time."""
    if store.catalog.readonly:
        return
    try:
        store.replace(**update)
    except (CatalogReadOnlyError, CatalogBusyError, DiskFullError):
        pass


# Policy fields that only decide over stored judgements, added since evidence was first stored:
# left out of its key, so that a catalog's judgements survive them (the stored groups, keyed by
# the code, are decided again). `agreement` and `attach_links` decide only too, but were in the
# key from the start; leaving them out now would change every stored key and judge every pair again.
_DECIDES = ("overrule_links",)


def evidence_key(catalog: Catalog, threshold: float, vector_features: list[str], kinds: list[str],
                 policy: AutoPolicy) -> dict[str, object]:
    """Everything that shaped stored judgements: the code's version, the hashes and their
    version, the fused models' identities, the local features, the threshold and the policy,
    and the stored columns."""
    models = catalog.models()
    return {
        "version": EVIDENCE_VERSION, "hashes": list(catalog.settings.hashes), "hash_version": catalog.settings.hash_version,
        "decode_side": catalog.settings.decode_side, "local_features": catalog.settings.local_features,
        "models": {n: repr(models[n].identity()) for n in vector_features if n in models},
        "threshold": threshold, "policy": repr(sorted((k, v) for k, v in asdict(policy).items() if k not in _DECIDES)),
        "kinds": kinds,
        "verify": [verify.VERIFY_THRESHOLD, verify.VERIFY_FULL, verify.VERIFY_CEILING, verify.MIN_COVERAGE,
                   verify.RELATIVE_CENTRE, verify.MIN_HOLE, verify.MAX_SHARED],
        "recolour": [recolour.CHROMA, recolour.HUE_SHIFT, recolour.MIN_SHIFTED,
                     recolour.KEPT_CELLS, recolour.KEPT_SHARE, recolour.KEPT_TURN, recolour.MARGIN,
                     recolour.NEAR_SHIFT, recolour.COHERENT, recolour.TINT, recolour.BAND_SPAN,
                     recolour.BAND_DEPTH],
        # measured while verifying and stored: the inset's block, whose holder the overlay's
        # edge says, and the seam; and the surround whose links the strips are sought from
        "inset": [inset.MIN_BLOCK, inset.MIN_FILL, inset.MIN_OTHER_FILL, inset.MAX_SPAN, inset.MIN_SPAN,
                  overlay.STANDS_OUT, overlay.MARGIN],
        "canvas": [canvas.SEAM_FLOOR, canvas.SEAM_BEYOND, canvas.MIN_SURROUND, canvas.MIN_SURROUND_BLANK,
                   canvas.MAX_OTHER_BEYOND],
        "pasted": [pasted.TOP, pasted.MARGIN, pasted.CROP_SCALE, pasted.MIN_SHOWN, pasted.MAX_STRIP_FLAT,
                   PASTED_FEATURE],
        "cutout": [cutout.TOP, cutout.MIN_INSIDE, cutout.FEATURES],
        "strips": [strips.MIN_STRIP, strips.MIN_FREE, strips.THUMB, strips.TOP, strips.STRIP_COVERAGE,
                   strips.COLOUR_MAD, strips.COLOUR_NCC, strips.MIN_COLOUR_STRIP, strips.MIN_SPREAD],
    }


def _judge(catalog: Catalog, candidates: PairCandidates, threshold: float, weights: dict[str, float],
           vector_features: list[str], verifying: bool, kinds: list[str], policy: AutoPolicy, workers: int,
           progress: Progress | None) -> Columns:
    """The judgement of every candidate pair as columns: FIRST, SECOND, KINDS (M, K) and the
    verification columns."""
    pairs = candidates.pairs
    if not len(pairs):
        return {FIRST: np.zeros(0, np.int64), SECOND: np.zeros(0, np.int64), KINDS: np.zeros((0, len(kinds))),
                **Verified.of({}).scattered(0), BOXED: np.zeros(0, np.uint8), STRIP: np.zeros(0, np.uint64)}
    found = pair_evidence(catalog, candidates, threshold, weights, vector_features, verifying=verifying, policy=policy,
                          workers=workers, progress=progress)
    return {FIRST: pairs[:, 0].copy(), SECOND: pairs[:, 1].copy(),
            KINDS: np.stack([found.evidence.kinds[k] for k in kinds], axis=1),
            **found.verified.scattered(len(pairs)), BOXED: found.boxed, STRIP: np.zeros(len(pairs), np.uint64)}


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


def _without(columns: Columns, new: NDArray[np.int64], gone: list[int]) -> Columns:
    """Stored pair columns without the pairs touching an image new (changed) or gone."""
    if not columns or not len(columns.get(FIRST, ())):
        return {}
    drop = np.concatenate([new, np.array(gone, np.int64)])
    keep = ~(np.isin(columns[FIRST], drop) | np.isin(columns[SECOND], drop))
    return {k: v[keep] for k, v in columns.items()}


def _concat(a: Columns, b: Columns) -> Columns:
    if not a:
        return b
    if not b:
        return a
    return {k: np.concatenate([a[k], b[k]]) for k in b}
