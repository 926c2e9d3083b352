"""Duplicate groups of a whole catalog, without an N x N matrix.

Candidate pairs come from FAISS range search (one hash or one vector feature) or from auto's
steps (`candidates` -> `evidence`, judged once and stored: `incremental` -> `decide`), query
batch by batch: memory grows with the number of close pairs, never N². Pairs are then grouped
(`linkage`): single linkage by default, complete linkage with `strict`. Exact copies (same SHA-256) are always
grouped, whatever the threshold. Low-quality images (flat, near-blank) never match by a
single hash, except as exact copies. Nothing here deletes or moves a file.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

import neardup.indexer
import neardup.search
import neardup.storage
from neardup.indexer.hashes import HASHES, LOW_QUALITY, dihedral
from neardup.indexer.progress import Progress
from neardup.storage.catalog import Catalog
from neardup.storage.decisions import DecisionStore
from neardup.storage.pairs import Columns
from neardup.storage.records import ImageInfo
from neardup.storage.vectors import Edges

from .auto import GEOMETRY, POLICY, kept_apart, link_costs, verified_links
from .composites import composites, with_held
from .features import AUTO, check_feature, check_threshold, default_threshold, features_of
from .fusion import fused_similarity, hamming_rows
from .incremental import EvidenceReport, JudgedPairs, judged_pairs
from .keeper import DEFAULT_ORDER, TURN_EDITS, Added, Centrality, Turns, choose_keeper
from .linkage import complete_linkage, single_linkage


@dataclass(frozen=True)
class Group:
    """Images that are copies of one another; `keeper` is the suggested one to keep, and
    `reason` why. `members` are absolute paths, keeper first, then by path; `images` follow
    the same order.

    A composite (an image that contains several others: a collage, a picture-in-picture) is
    reported as a `Group` of its one image whose `contains` lists the keepers (or lone
    images) of what it contains; it is no copy of any of them, so nothing in it could go.
    """

    keeper: str
    members: tuple[str, ...]
    images: tuple[ImageInfo, ...]
    reason: str = ""
    contains: tuple[str, ...] = ()


@dataclass(frozen=True)
class AutoPairs:
    """Auto's decision over a catalog: the duplicate pairs, composite image id -> images of
    each group it contains (one or more; its report names each group's keeper once), the
    (K, 2) pairs no group may hold (`auto.kept_apart`: their verification found their content
    differs), and the pairs of which the first image shows all of the second on a blank
    canvas (`canvas`) or holds an overlay the second lacks (`overlay`): the keeper passes such
    a copy over. `costs` (E,) order the duplicate pairs for the linkage (`auto.link_costs`)."""

    edges: Edges
    composites: dict[int, list[int]]
    apart: NDArray[np.int64]
    canvas: NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    overlaid: NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    costs: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class Duplicates:
    """The groups `find_duplicates` found and, for auto, what it did with the stored evidence."""

    groups: list[Group]
    evidence: EvidenceReport | None = None


def find_duplicates(
    *, catalog: Catalog, by: str = AUTO, threshold: float | None = None, strict: bool = False,
    prefer: Sequence[str] = (), workers: int = 1,
) -> list[Group]:
    """All duplicate groups of the catalog, largest first, then the composites (see `duplicates`)."""
    return duplicates(catalog=catalog, by=by, threshold=threshold, strict=strict, prefer=prefer,
                      workers=workers).groups


def duplicates(
    *, catalog: Catalog, by: str = AUTO, threshold: float | None = None, strict: bool = False,
    prefer: Sequence[str] = (), workers: int = 1, progress: Progress | None = None,
) -> Duplicates:
    """All duplicate groups of the catalog, largest first, then the composites.

    For a hash, images at Hamming distance <= `threshold` bits match; for a vector feature,
    cosine >= `threshold`; for auto, pairs whose evidence decides so at `threshold`. Pairs a
    user marked as not duplicates are never in one group. Each group's keeper is chosen by
    `keeper.choose_keeper`, files under `prefer` folders first. Auto verifies candidate pairs
    on `workers` processes, counted on `progress`. The groups are stored (`storage.decisions`)
    and read back while the catalog and the options are unchanged.
    """
    start = time.perf_counter()
    generation = catalog.generation()
    key = decision_key(catalog, by=by, threshold=threshold, strict=strict, prefer=prefer)
    by, threshold, prefer, order = key["by"], key["threshold"], key["prefer"], key["order"]
    store = DecisionStore(catalog, key)
    stored = store.read()
    if stored is not None and stored[0] == generation and (found := _stored(catalog, stored[1], start)) is not None:
        return found
    decided, contained, report = _decided(catalog, by, threshold, strict, prefer, order, workers, progress,
                                          _keepers(stored[1]) if stored is not None else {})
    if report is None or report.complete:
        store.write(generation, _columns(decided, contained, report))
    groups = [g for g, _ in decided]
    return Duplicates(groups + _composite_groups(catalog, contained, groups), report)


def decision_key(catalog: Catalog, *, by: str, threshold: float | None, strict: bool,
                 prefer: Sequence[str]) -> dict:
    """What shapes `duplicates`' decision, checked and made explicit (the default threshold,
    real paths, the keeper's order, this code): the key it is stored under."""
    check_feature(catalog, by)
    threshold = default_threshold(by) if threshold is None else check_threshold(by, threshold)
    return {"by": by, "threshold": threshold, "strict": strict,
            "prefer": [os.path.realpath(os.path.expanduser(p)) for p in prefer],
            "order": list(catalog.keeper_order() or DEFAULT_ORDER), "code": _CODE}


def _decided(catalog: Catalog, by: str, threshold: float, strict: bool, prefer: Sequence[str], order: Sequence[str],
             workers: int, progress: Progress | None, keepers: Mapping[int, tuple[int, str]]
             ) -> tuple[list[tuple[Group, int]], dict[int, list[int]], EvidenceReport | None]:
    """`duplicates` worked out from the catalog: the groups with their `_fingerprint`s,
    composite -> what it contains, and what auto did with the stored pair evidence; the keeper
    of a group whose fingerprint is in `keepers` (`_keepers`) is taken from there."""
    exact = catalog.same_content_groups()
    first = {i: g[0] for g in exact for i in g[1:]}  # an exact copy -> its content's first image
    copies = np.fromiter(first.keys(), np.int64, len(first))
    contained: dict[int, list[int]] = {}
    report = None
    apart = _kept_apart(catalog, first)
    canvas = overlaid = np.zeros((0, 2), np.int64)
    if by == AUTO:
        found, report = auto_edges(catalog, threshold, merge=first, workers=workers, progress=progress)
        edges, contained, canvas, overlaid = found.edges, found.composites, found.canvas, found.overlaid
        cost = found.costs
        # two variants of one template, or a picture and another pasted in, still join one
        # group through a copy each side matches: the links that cover most of both frames,
        # then the strongest, join first instead (`auto.link_costs`)
        apart |= {frozenset(p) for p in found.apart.tolist()}
    elif by in HASHES:
        ids, codes = _without(copies, *catalog.hashes(by))
        edges = _drop_low_quality(catalog, catalog.index(by).within(codes, ids, int(threshold)).merged(first))
        cost = edges.value  # lower cost = stronger match: fewer bits apart
    else:
        ids, vectors = _without(copies, *catalog.vectors(by))
        edges = catalog.index(by).within(vectors, ids, threshold, batch=1024) if len(ids) else Edges.empty()
        edges = edges.merged(first)
        cost = -edges.value
    pairs = list(zip(edges.src.tolist(), edges.dst.tolist(), cost.tolist()))
    clusters = complete_linkage(pairs) if strict else single_linkage(pairs, apart=apart)
    clusters = _with_exact_copies(clusters, exact)
    if apart and strict:
        clusters = [c for cluster in clusters for c in _split_apart(cluster, apart)]
    added = Added(_naming(clusters, canvas, first), _naming(clusters, overlaid, first))
    groups, chosen = _groups(catalog, clusters, prefer, order, added, keepers)
    if report is not None:
        report = replace(report, keepers=chosen, keepers_kept=len(groups) - chosen)
    return groups, contained, report


def _naming(clusters: list[list[int]], pairs: NDArray[np.int64], first: Mapping[int, int]) -> frozenset[int]:
    """The images a relation (`pairs`: (K, 2), the image it names first, of one image per
    content) names beside another member of their cluster; every exact copy of such an image
    too."""
    if not len(pairs):
        return frozenset()
    beside: dict[int, set[int]] = {}
    for image, other in pairs.tolist():
        beside.setdefault(image, set()).add(other)
    out: set[int] = set()
    for cluster in clusters:
        contents = {first.get(i, i) for i in cluster}
        out.update(i for i in cluster if not beside.get(first.get(i, i), set()).isdisjoint(contents))
    return frozenset(out)


def _code_identity() -> str:
    """A digest of the code that decides groups (this package) and of the code that made and
    reads what it decides on (`neardup.indexer`, `neardup.storage`): stored groups decided by
    other code are stale. Unlike the pair evidence's hand-kept version, any change counts:
    deciding again costs minutes, judging again hours. Read once, when this module is
    imported: it must name the code this process runs, not what an upgrade left on disk since."""
    digest = hashlib.sha256()
    for package in (neardup.search, neardup.indexer, neardup.storage):
        for folder in package.__path__:
            for source in sorted(Path(folder).glob("*.py")):
                digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


_CODE = _code_identity()


def _columns(decided: list[tuple[Group, int]], contained: Mapping[int, list[int]],
             report: EvidenceReport | None) -> Columns:
    """A decision as columns, by image id: each group's members in order (keeper first), its
    reason and its `_fingerprint`, and each composite with what it contains."""
    groups = [g for g, _ in decided]
    texts = sorted({g.reason for g in groups})
    code = {text: n for n, text in enumerate(texts)}
    inside = [contained[c] for c in sorted(contained)]
    return {"members": np.array([im.image_id for g in groups for im in g.images], np.int64),
            "sizes": np.array([len(g.images) for g in groups], np.int64),
            "reasons": np.array([code[g.reason] for g in groups], np.int64),
            "reason_texts": np.array(texts, dtype=str),
            "fingerprints": np.array([f for _, f in decided], np.uint64),
            "composites": np.array(sorted(contained), np.int64),
            "inside": np.array([i for parts in inside for i in parts], np.int64),
            "inside_sizes": np.array([len(parts) for parts in inside], np.int64),
            "pairs": np.array(-1 if report is None else report.stored, np.int64)}


def _stored(catalog: Catalog, columns: Columns, start: float) -> Duplicates | None:
    """The `Duplicates` of a stored decision (`_columns`); None when an image it names is gone."""
    members, composites = columns["members"], columns["composites"]
    named = np.sort(np.concatenate([members, composites, columns["inside"]]))
    named = named[np.r_[True, named[1:] != named[:-1]]].tolist()  # distinct (np.unique hashes: slower)
    info = catalog.images(named)  # once, for the composites too
    if len(info) < len(named):
        return None
    # Python lists sliced, not arrays split: a decision may hold hundreds of thousands of groups
    texts = [str(t) for t in columns["reason_texts"].tolist()]
    groups = []
    for ids, reason in zip(_parts(members, columns["sizes"]), columns["reasons"].tolist()):
        images = tuple([info[i] for i in ids])
        groups.append(Group(images[0].path, tuple([im.path for im in images]), images, texts[reason]))
    contained = dict(zip(composites.tolist(), _parts(columns["inside"], columns["inside_sizes"])))
    pairs = int(columns["pairs"])
    report = None if pairs < 0 else EvidenceReport(reused=pairs, stored=pairs, decided=True,
                                                   seconds=time.perf_counter() - start)
    return Duplicates(groups + _composite_groups(catalog, contained, groups, info), report)


def _kept_apart(catalog: Catalog, first: Mapping[int, int]) -> set[frozenset[int]]:
    """The pairs of images (one per content) a user said are not duplicates."""
    said = catalog.not_duplicates()
    if not said:
        return set()
    by_sha: dict[str, int] = {}
    for image_id, state in ((s.image_id, s) for s in catalog.file_states().values() if s.status == "ok"):
        if state.sha256:
            by_sha.setdefault(state.sha256, first.get(image_id, image_id))
    pairs = [tuple(p) for p in said if len(p) == 2]
    return {frozenset((by_sha[a], by_sha[b])) for a, b in pairs if a in by_sha and b in by_sha}


def _split_apart(cluster: list[int], apart: set[frozenset[int]]) -> list[list[int]]:
    """A cluster split greedily so that no part holds a pair kept apart."""
    parts: list[list[int]] = []
    for image in cluster:
        home = next((p for p in parts if not any(frozenset((image, o)) in apart for o in p)), None)
        if home is None:
            parts.append([image])
        else:
            home.append(image)
    return [p for p in parts if len(p) > 1]


def _without(skip: NDArray[np.int64], ids: NDArray[np.int64], rows: NDArray) -> tuple[NDArray[np.int64], NDArray]:
    """The queries of a range search: one image per content (the index still holds them all)."""
    keep = ~np.isin(ids, skip)
    return ids[keep], rows[keep]


def _with_exact_copies(clusters: list[list[int]], exact: list[list[int]]) -> list[list[int]]:
    """Clusters of one image per content (each exact-copy group's first id) with every exact
    copy added back: exact copies are always grouped, in O(N) however many there are (the
    pairwise search never sees more than one of them)."""
    copies_of = {g[0]: g[1:] for g in exact}
    out = [[i for x in cluster for i in (x, *copies_of.pop(x, ()))] for cluster in clusters]
    return out + [[first, *rest] for first, rest in copies_of.items()]


def auto_edges(catalog: Catalog, threshold: float, *, merge: Mapping[int, int] | None = None,
               workers: int = 1, progress: Progress | None = None) -> tuple[AutoPairs, EvidenceReport]:
    """The pairs auto calls duplicates at `threshold`, valued by their strongest evidence; an
    exact copy in `merge` is judged through the image it maps to (same bytes, same evidence).
    The judgements are the stored ones, brought up to date (`incremental`)."""
    judged, report = judged_pairs(catalog, threshold, merge=merge or {}, workers=workers, progress=progress)
    return decide(judged, threshold), report


def decide(judged: JudgedPairs, threshold: float) -> AutoPairs:
    """Auto's decision over judged pairs: `auto.verified_links` (the duplicate pairs, less
    those whose content differs in one region), then, when they were verified geometrically,
    the composites (`composites`), which also read the strip links (`strips`: a container's
    free part showing a picture of another group), the pairs of an image showing another
    beside a second picture (`canvas.beside`) and those of an image holding a picture inset
    where the other shows its own (`inset`). The pairs whose content differs are also
    kept apart (`auto.kept_apart`): no group may hold one through a chain of other links,
    and a chain between two is cut at its weakest link by `auto.link_costs`."""
    pairs = judged.pairs
    if not len(pairs):
        return AutoPairs(Edges.empty(), {}, np.zeros((0, 2), np.int64))
    differs = judged.content_differs()
    keep = verified_links(pairs, judged.evidence, differs, threshold, shown_whole=judged.shown_whole())
    contained: dict[int, list[int]] = {}
    if GEOMETRY in judged.evidence.kinds:
        contained = composites(pairs, keep | judged.beside_pictures() | judged.strip_links(),
                               *judged.regions_in_boxes())
        contained = with_held(contained, np.concatenate([judged.insets(keep), judged.held_beside(), judged.pasted]))
        keep &= ~(np.isin(pairs[:, 0], list(contained)) | np.isin(pairs[:, 1], list(contained)))
    kept, best = pairs[keep], judged.evidence.best()[keep]
    return AutoPairs(Edges(kept[:, 0], kept[:, 1], best.astype(np.float32)), contained,
                     pairs[kept_apart(pairs, keep, differs)], judged.on_canvas(), judged.overlaid(),
                     link_costs(best, judged.covered()[keep]))


def _drop_low_quality(catalog: Catalog, edges: Edges) -> Edges:
    ids = np.unique(np.concatenate([edges.src, edges.dst])).tolist()
    low = {i for i, im in catalog.images(ids).items() if im.quality is not None and im.quality < LOW_QUALITY}
    if not low:
        return edges
    return edges.where(np.array([a not in low and b not in low for a, b in zip(edges.src, edges.dst)], dtype=bool))


def _parts(values: NDArray[np.int64], sizes: NDArray[np.int64]) -> list[list[int]]:
    """`values` cut into consecutive lists of `sizes`."""
    flat, ends = values.tolist(), np.cumsum(sizes).tolist()
    return [flat[start:end] for start, end in zip([0, *ends[:-1]], ends)]


def _composite_groups(catalog: Catalog, contained: Mapping[int, list[int]], groups: list[Group],
                      info: Mapping[int, ImageInfo] | None = None) -> list[Group]:
    """One `Group` per composite, naming the keeper of each group it contains (`info`: the
    images the caller has read, holding the composites and what they contain)."""
    if not contained:
        return []
    if info is None:
        info = catalog.images([*contained, *(i for inside in contained.values() for i in inside)])
    inside_ids = {i for inside in contained.values() for i in inside}
    keeper_of = {im.image_id: g.keeper for g in groups for im in g.images if im.image_id in inside_ids}
    out = []
    for image, inside in sorted(contained.items()):
        names = tuple(sorted({keeper_of.get(i, info[i].path) for i in inside if i in info}))
        out.append(Group(info[image].path, (info[image].path,), (info[image],),
                         f"contains {len(names)} other image{'' if len(names) == 1 else 's'}", names))
    return out


def _groups(catalog: Catalog, clusters: list[list[int]], prefer: Sequence[str], order: Sequence[str],
            added: Added = Added(), keepers: Mapping[int, tuple[int, str]] | None = None
            ) -> tuple[list[tuple[Group, int]], int]:
    """Each cluster of two or more images as a `Group`, keeper first, with its `_fingerprint`,
    and how many keepers were chosen now; `added`: the members found to add canvas or an
    overlay to another (for the keeper); `keepers`: fingerprint -> (keeper id, reason) of
    groups decided before (`_keepers`), whose keeper stands while the fingerprint is the same."""
    info = catalog.images(i for c in clusters for i in c)
    members = [images for images in ([info[i] for i in c if i in info] for c in clusters) if len(images) >= 2]
    context = _keeper_context(catalog)
    prints = [_fingerprint(images, added, context) for images in members]
    keepers = keepers or {}
    in_threes = [im.image_id for images, f in zip(members, prints) if f not in keepers and len(images) > 2
                 for im in images]
    hashes = catalog.hashes_of(in_threes, list(POLICY.weights(catalog.settings.hashes))) if in_threes else {}
    centrality, turns = _centrality(catalog, in_threes, hashes), _turns(hashes)
    groups, chosen = [], 0
    for images, fingerprint in zip(members, prints):
        known = keepers.get(fingerprint)
        keeper = None if known is None else next((im for im in images if im.image_id == known[0]), None)
        if keeper is not None:
            reason = known[1]
        else:
            keeper, reason = choose_keeper(images, prefer=prefer, order=order,
                                           centrality=centrality(images) if centrality else None, added=added,
                                           turns=turns(images) if turns else None)
            chosen += 1
        rest = sorted((im for im in images if im is not keeper), key=lambda im: im.path)
        ordered = (keeper, *rest)
        groups.append((Group(keeper.path, tuple(im.path for im in ordered), ordered, reason), fingerprint))
    return sorted(groups, key=lambda g: (-len(g[0].members), g[0].keeper)), chosen


def _keeper_context(catalog: Catalog) -> bytes:
    """What the keeper compares a group's members by besides their records: the hashes its
    `central` rule fuses, with their weights and version, and the CNN whose cosine it adds."""
    cnn = catalog.model("cnn") if "cnn" in features_of(catalog) else None
    weights = sorted(POLICY.weights(catalog.settings.hashes).items())
    return repr((weights, catalog.settings.hash_version, None if cnn is None else cnn.identity())).encode()


def _fingerprint(images: Sequence[ImageInfo], added: Added, context: bytes) -> int:
    """64 bits of everything a group's keeper is chosen from but the options (which key the
    stored decision): its members' records in the group's order (a changed file is another
    record), what each adds to another member (`Added`), and the `context`. The similarities
    the `central` and `unturned` rules weigh come from the members' stored features, which
    follow from their contents (the records' SHA-256) and the `context`."""
    digest = hashlib.blake2b(context, digest_size=8)
    for im in images:
        digest.update(repr(im).encode())
        digest.update(bytes([im.image_id in added.canvas, im.image_id in added.overlay]))
    return int.from_bytes(digest.digest(), "little")


def _keepers(columns: Columns) -> dict[int, tuple[int, str]]:
    """Fingerprint -> (keeper id, reason) of each group of a stored decision (`_columns`);
    none from a decision stored before fingerprints were."""
    if "fingerprints" not in columns:
        return {}
    starts = np.cumsum(columns["sizes"]) - columns["sizes"]
    texts = [str(t) for t in columns["reason_texts"].tolist()]
    return {f: (k, texts[r]) for f, k, r in zip(columns["fingerprints"].tolist(), columns["members"][starts].tolist(),
                                                columns["reasons"].tolist())}


def _centrality(catalog: Catalog, ids: list[int], hashes: Mapping[str, Mapping[int, NDArray[np.uint8]]]
                ) -> Callable[[Sequence[ImageInfo]], Centrality] | None:
    """For one group's members, each member's mean similarity to the others, for the keeper's
    `central` rule: the fused hash similarity plus, when the catalog has it, the CNN cosine
    (both from stored features). Computed for the whole group the first time the rule asks,
    one vectorised pass per distinct content (a thousand byte-identical files are one
    content, not a million pairs), never as a whole (n, n) matrix; one call per pair cost a
    quarter hour on 100,000 images in groups of 80. `hashes`: the members' stored hashes, by
    name, for every hash `POLICY` weighs."""
    if not ids:
        return None
    weights = POLICY.weights(catalog.settings.hashes)
    vectors = catalog.vectors_of(ids, "cnn") if "cnn" in features_of(catalog) else {}

    def of_group(members: Sequence[ImageInfo]) -> Centrality:
        means: dict[int, float] = {}

        def centrality(im: ImageInfo) -> float:
            if not means:
                found = _mean_similarities(members, hashes, vectors, weights)
                means.update(zip((m.image_id for m in members), found.tolist()))
            return means[im.image_id]

        return centrality

    return of_group


def _turns(hashes: Mapping[str, Mapping[int, NDArray[np.uint8]]]) -> Callable[[Sequence[ImageInfo]], Turns] | None:
    """For one group's members, how many turns and mirrors each is from the others, for the
    keeper's `unturned` rule: between two members, the `keeper.TURN_EDITS` of the turn of one's
    hash (the first of `AutoPolicy.turn_seeds` among the members' `hashes`; `hashes.dihedral`)
    nearest to the other's, when within `AutoPolicy.turn_bits`. A member not so related to
    every other (a crop, padding or a strong edit moves the hash too far to tell its turn) has
    none. Per distinct content, as `_centrality`; None without such a hash."""
    seed = next((name for name in POLICY.turn_seeds if name in hashes), None)
    if seed is None:
        return None
    bits = hashes[seed]

    def of_group(members: Sequence[ImageInfo]) -> Turns:
        found: dict[int, float] | None = None

        def turns(im: ImageInfo) -> float | None:
            nonlocal found
            if found is None:
                found = _turn_edits(members, bits)
            return found.get(im.image_id)

        return turns

    return of_group


def _turn_edits(members: Sequence[ImageInfo], bits: Mapping[int, NDArray[np.uint8]]) -> dict[int, float]:
    """Member id -> the `TURN_EDITS` of the others from it, summed, for the members related by
    a turn to every other (see `_turns`)."""
    if any(im.image_id not in bits for im in members):
        return {}
    contents = [im.sha256 or f"#{im.image_id}" for im in members]
    firsts: dict[str, int] = {}
    for im, content in zip(members, contents):
        firsts.setdefault(content, im.image_id)
    copies = Counter(contents)
    codes = np.stack([bits[i] for i in firsts.values()])
    weight = np.array([copies[c] for c in firsts])
    turned = np.concatenate([codes[:, None], dihedral(codes)], axis=1)
    edits = np.asarray(TURN_EDITS)
    per_content: dict[str, float] = {}
    for k, content in enumerate(firsts):
        far = hamming_rows(turned[k][:, None, :], codes[None])  # (8 turns, contents)
        if far.min(axis=0).max() <= POLICY.turn_bits:
            per_content[content] = float((edits[far.argmin(axis=0)] * weight).sum())
    return {im.image_id: per_content[c] for im, c in zip(members, contents) if c in per_content}


def _mean_similarities(members: Sequence[ImageInfo], hashes: Mapping[str, Mapping[int, NDArray[np.uint8]]],
                       vectors: Mapping[int, NDArray[np.float32]], weights: Mapping[str, float]) -> NDArray[np.float64]:
    """(n,) each member's mean `_centrality` similarity to the n - 1 others: the members of
    one content are compared through its first one, weighted by their number (0 where either
    image lacks a hash)."""
    ids = [im.image_id for im in members]
    contents = [im.sha256 or f"#{im.image_id}" for im in members]
    firsts: dict[str, int] = {}
    for k, content in enumerate(contents):
        firsts.setdefault(content, k)
    copies = Counter(contents)
    hashed = np.flatnonzero([all(i in hashes[name] for name in weights) for i in ids])
    stacked = {name: np.stack([hashes[name][ids[k]] for k in hashed]) for name in weights} if len(hashed) else {}
    embedded = hashed[[ids[k] in vectors for k in hashed]]
    matrix = np.stack([vectors[ids[k]] for k in embedded]) if len(embedded) else None
    of_content = np.array(contents, dtype=object)
    total = np.zeros(len(ids))
    for content, first in firsts.items():
        if not all(ids[first] in hashes[name] for name in weights):
            continue  # no similarity to it: it adds 0 to every mean
        similarity = np.zeros(len(ids))
        similarity[hashed] = fused_similarity(stacked, {name: hashes[name][ids[first]] for name in weights}, weights)
        if ids[first] in vectors and matrix is not None:
            similarity[embedded] += matrix @ vectors[ids[first]]
        total += np.where(of_content == content, copies[content] - 1, copies[content]) * similarity
    return total / (len(ids) - 1)
