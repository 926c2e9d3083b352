"""`--by auto`: the policy that fuses every kind of evidence into one decision.

Search and duplicates take the same three steps: candidates (`candidates`: from the hash and
vector indexes, for each view) -> evidence (`evidence`: the fused hashes, each vector
feature's cosine and geometric verification, each on the confidence scale of `fusion`) ->
decision (here). Every constant of the policy is a field of `AutoPolicy`, with its reason;
the figures behind them are in docs/BENCHMARKS.md.

The decisions differ because the questions do. A search ranks a handful of candidates for
one query: a candidate's score is its strongest evidence. Duplicates judge all N²/2 pairs of
a collection, where one vote at the threshold (a false-positive rate of ~1e-4 per pair) is
chained by single linkage into large wrong groups: a pair needs two kinds of evidence at the
threshold, or one halfway from it to certainty, and a group then attaches to the group it
has repeated one-vote geometric links to (`attachments`). A geometric vote alone suffices
where one image shows all of the other inside a mostly flat surround (`verified_links`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from neardup.storage.errors import NeardupError

from .linkage import components

HASHES = "hashes"  # the kind of evidence of the fused hashes
GEOMETRY = "geometry"  # the kind of evidence of geometric verification


class NoAutoFeaturesError(NeardupError, ValueError):
    """The catalog stores none of the hashes auto fuses."""


@dataclass(frozen=True)
class AutoPolicy:
    # structure (pdq, dhash), texture (phash256, whash) and colour hashes, so that no single
    # family decides alone; colour only confirms (alone it cannot tell grey images apart)
    hash_weights: Mapping[str, float] = field(default_factory=lambda: {
        "pdq": 0.25, "dhash": 0.15, "phash256": 0.25, "whash": 0.15, "colorhash": 0.2})
    hash_background: float = 0.5  # hash similarity of unrelated images: random bits agree half the time
    vector_features: tuple[str, ...] = ("cnn",)  # fused vector features (the autoencoder is too weak)
    threshold: float = 0.5  # a kind of evidence exactly at its own measured threshold
    search_seeds: tuple[str, ...] = ("pdq", "phash256", "dhash", "whash")  # hash indexes a search draws from
    search_pool: int = 64  # candidates per index and query variant, re-scored by every kind of evidence
    search_turns: tuple[int, ...] = (1, 2, 3)  # quarter turns of a query hashed too, without a vector feature
    verify_top: int = 5  # best candidates verified per query, and each image's nearest by a vector feature
    pair_seeds: tuple[str, ...] = ("pdq", "phash256")  # hash indexes duplicates draw candidate pairs from
    pair_k: int = 16  # each image's nearest per seed index: candidate pairs
    verify_hash_top: int = 4  # of which each image's nearest few are verified too (finds weak links)
    # ... but beside a vector feature (whose own nearest are verified) only those within this
    # many bits: unrelated images' hashes lie 128 +- 9 bits apart, and an image's nearest few
    # beyond that are mostly strangers (4 in 10 verifications on the development draws, for
    # recall within 0.001 on average); without one, the hashes' nearest are all it has
    verify_hash_bits: int = 88
    # without a vector feature (which finds mirrored and turned copies itself), hash indexes
    # searched with each image's turns and mirrors, and each turn's nearest few within some
    # bits verified: a plateau on both development draws, whose top (90) let one pair of
    # astrophotos bridge two groups on the quality benchmark (docs/BENCHMARKS.md)
    turn_seeds: tuple[str, ...] = ("phash256",)  # whose turns are guessed closer than pdq's
    turn_k: int = 2
    turn_bits: int = 80
    agreement: int = 2  # kinds of evidence at the threshold that make a duplicate pair
    attach_links: int = 2  # one-vote geometric links to one group that attach a group to it
    # duplicates linked to both images of a pair whose content was found to differ that
    # overrule the finding: a copy of a saturated drawing or a star field is now and then
    # taken for a recolour, and most distinct variants meet through one bridge (a thumbnail);
    # the best F1 on the duplicates benchmark's development seed (docs/BENCHMARKS.md)
    overrule_links: int = 2

    def weights(self, available: tuple[str, ...]) -> dict[str, float]:
        """The hash weights restricted to the hashes a catalog stores, renormalised to sum 1."""
        weights = {k: w for k, w in self.hash_weights.items() if k in available}
        if not weights:
            raise NoAutoFeaturesError(f"auto needs one of {sorted(self.hash_weights)}; the catalog has {available}")
        total = sum(weights.values())
        return {k: w / total for k, w in weights.items()}

    def strong(self, threshold: float) -> float:
        """One kind of evidence this far (halfway from the threshold to certainty) is a
        duplicate pair on its own."""
        return (1.0 + threshold) / 2.0


POLICY = AutoPolicy()


@dataclass(frozen=True)
class Evidence:
    """The confidence of each kind of evidence for M candidates: kind -> (M,) float64 in
    [0, 1] (0 where that kind said nothing). Kinds: HASHES, vector feature names, GEOMETRY."""

    kinds: dict[str, NDArray[np.float64]]

    def best(self) -> NDArray[np.float64]:
        return np.max(np.stack(list(self.kinds.values())), axis=0)

    def votes(self, threshold: float) -> NDArray[np.int64]:
        return (np.stack(list(self.kinds.values())) >= threshold).sum(axis=0)


def search_scores(evidence: Evidence) -> NDArray[np.float64]:
    """A search candidate's score: its strongest evidence."""
    return evidence.best()


def duplicate_pairs(
    pairs: NDArray[np.int64], evidence: Evidence, threshold: float, policy: AutoPolicy = POLICY
) -> NDArray[np.bool_]:
    """Which candidate pairs (M, 2) are duplicates: two kinds of evidence at `threshold`, or
    one strong; then each group's attachment (`attachments`)."""
    best = evidence.best()
    keep = (best >= policy.strong(threshold)) | (evidence.votes(threshold) >= policy.agreement)
    if GEOMETRY in evidence.kinds:
        keep |= attachments(pairs, keep, evidence.kinds[GEOMETRY], threshold, policy.attach_links)
    return keep


def attachments(
    pairs: NDArray[np.int64], kept: NDArray[np.bool_], verified: NDArray[np.float64], threshold: float, links: int
) -> NDArray[np.bool_]:
    """One pair for each group (of the `kept` pairs; a lone image is a group of one) that
    attaches it to the group, at least as large, that it has the most *weak links* to, when
    it has `links` or more: a weak link is a pair not kept whose geometric verification alone
    reaches `threshold`. (Ties: the larger summed verification.)

    A hard copy (a crop with an overlay, a perspective screenshot) often verifies with only
    one vote against several members of its own group; a lone false geometric match rarely
    repeats against two members of one group, and when an image verifies against two groups
    only the better one is taken. A group never reaches down to a smaller one, so a group
    cannot pull in an image that belongs elsewhere.
    """
    out = np.zeros(len(pairs), dtype=bool)
    weak = np.flatnonzero(~kept & (verified >= threshold))
    if not len(weak):
        return out
    group = components(pairs[kept])
    size = Counter(group.values())
    between: dict[tuple[int, int], list[int]] = {}
    for i in weak.tolist():
        a, b = (group.get(int(x), int(x)) for x in pairs[i])
        if a != b:
            between.setdefault((min(a, b), max(a, b)), []).append(i)
    best: dict[int, tuple[tuple[int, float], list[int]]] = {}
    for (a, b), rows in between.items():
        strength = (len(rows), float(verified[rows].sum()))
        for g, other in ((a, b), (b, a)):
            if max(size[g], 1) <= max(size[other], 1) and (g not in best or strength > best[g][0]):
                best[g] = (strength, rows)
    for (count, _), rows in best.values():
        if count >= links:
            out[rows[0]] = True
    return out


def kept_apart(pairs: NDArray[np.int64], keep: NDArray[np.bool_], differs: NDArray[np.bool_],
               policy: AutoPolicy = POLICY) -> NDArray[np.bool_]:
    """Which candidate pairs (M, 2) no group may hold: those whose content differs
    (`differs`), unless `policy.overrule_links` or more images are kept duplicates (`keep`) of
    both. Without it, two variants of one template join a group through a copy that matches
    both (a thumbnail too small to show their difference)."""
    out = differs.copy()
    rows = np.flatnonzero(differs)
    if not len(rows) or not keep.any():
        return out
    from scipy.sparse import coo_matrix  # only when a decision needs it, as in `components`

    kept = pairs[keep]
    size = int(pairs.max()) + 1
    ends = (np.r_[kept[:, 0], kept[:, 1]], np.r_[kept[:, 1], kept[:, 0]])
    linked = coo_matrix((np.ones(2 * len(kept), np.int32), ends), shape=(size, size)).tocsr()
    linked.data[:] = 1  # a pair judged twice is still one link
    common = np.asarray(linked[pairs[rows, 0]].multiply(linked[pairs[rows, 1]]).sum(axis=1)).ravel()
    out[rows[common >= policy.overrule_links]] = False
    return out


def link_costs(best: NDArray[np.float64], covered: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each duplicate pair's cost for the linkage (lower = stronger; it matters where a group
    must be cut between two images kept apart): links that cover more of both frames
    (`covered`, the smaller side's share of matched cells; 0 unverified) first, then the
    strongest evidence (`best`). A picture with another pasted in, or a composite, matches a
    copy of its picture over part of its frame, however strongly; the picture itself matches
    it whole, and it is the one that stays with its copies."""
    order = np.lexsort((-best, -covered))
    costs = np.empty(len(best))
    costs[order] = np.arange(len(best))
    return costs


def verified_links(pairs: NDArray[np.int64], evidence: Evidence, differs: NDArray[np.bool_], threshold: float,
                   policy: AutoPolicy = POLICY, *, shown_whole: NDArray[np.bool_] | None = None) -> NDArray[np.bool_]:
    """The duplicate pairs (`duplicate_pairs`), and the pairs of which one image shows all of
    the other inside a mostly flat surround (`shown_whole`, (M,): a screenshot, a photographed
    screen) whose geometric verification alone reaches `threshold`, less those whose
    verification found their content differs in one region (`differs`, (M,): two variants of
    one template, a picture and another pasted into it: `verify.content_differs`). Such a
    copy's hashes and vectors see mostly its surround, and one vote is all it gets."""
    keep = duplicate_pairs(pairs, evidence, threshold, policy)
    if shown_whole is not None and GEOMETRY in evidence.kinds:
        keep |= shown_whole & (evidence.kinds[GEOMETRY] >= threshold)
    return keep & ~differs
