"""Score predicted duplicate groups against a duplicates-benchmark seed, and tabulate the scores.

A predicted group is a set of image names with a keeper. What is measured, and why:

- pairwise precision / recall / F1 (``metrics.pairwise_scores``): two images are duplicates when
  they share an origin;
- per family: recall of the true pairs with a member of that family, and the false pairs with
  a member of that family (a false pair counts for the families of both its images), so each
  failure class shows where it happens; false pairs also by corpus source (astrophotos…);
- the largest wrong group (holding images of two or more origins): single linkage turns a few
  false pairs into one huge group, which pairwise precision understates;
- groups joining the untouched originals of two origins, and of those how many hold a composite:
  deleting the non-keepers of such a group loses a distinct picture;
- composites placed in any group (a composite is a duplicate of nothing);
- keeper accuracy: over groups holding exactly one untouched original, the fraction whose keeper
  is that original; wrong keepers are counted by the family of the file chosen instead.

Self-check of the pair attribution: ``cd scripts && ../.venv/bin/python -m bench.dupscore``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bench.dupset import ORIGINAL, Item
from bench.metrics import PairScores, pairwise_scores

CLASSES = {"shared_": "shared overlay", "composite_": "composite", "template_": "look-alike",
           "larger_": "keeper trap"}


@dataclass(frozen=True)
class Predicted:
    """One predicted group: image names (as in truth's ``image``), its keeper, and what the
    method says about it when it says anything (neardup's optional ``reason`` / ``contains``)."""

    members: tuple[str, ...]
    keeper: str
    reason: str = ""
    contains: tuple[str, ...] = ()


@dataclass(frozen=True)
class FamilyScore:
    """Pairs touching one family: true ones in the truth, those found, and false ones predicted."""

    images: int
    true_pairs: int
    found_pairs: int
    false_pairs: int

    @property
    def recall(self) -> float | None:
        return self.found_pairs / self.true_pairs if self.true_pairs else None


@dataclass(frozen=True)
class WrongGroup:
    """A predicted group holding images of several origins."""

    size: int
    origins: int
    families: dict[str, int]
    members: tuple[str, ...]


@dataclass(frozen=True)
class DupScores:
    """Every figure of one method on one seed."""

    method: str
    pairs: PairScores
    families: dict[str, FamilyScore]
    false_by_source: dict[str, int]
    groups: int
    wrong_groups: int
    largest_wrong: WrongGroup | None
    joins_two_originals: int
    joins_via_composite: int
    composites_grouped: int
    composites: int
    keeper_correct: int
    keeper_groups: int
    wrong_keepers: dict[str, int]
    contains_reported: int
    contains_composites: int  # of the images reported as containing others, the composites
    index_s: float
    duplicates_s: float
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def keeper_accuracy(self) -> float | None:
        return self.keeper_correct / self.keeper_groups if self.keeper_groups else None


def class_of(family: str) -> str:
    """The failure class a family belongs to ("copy" for the ordinary transform families)."""
    if family == ORIGINAL:
        return ORIGINAL
    return next((name for prefix, name in CLASSES.items() if family.startswith(prefix)), "copy")


def true_groups(items: Sequence[Item]) -> list[list[str]]:
    """Image names grouped by origin (singletons included)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for item in items:
        groups[item.origin].append(item.image)
    return list(groups.values())


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def attributed_pairs(groups: Iterable[Sequence[str]], origin: dict[str, str], label: Callable[[str], str]
                     ) -> tuple[Counter[str], Counter[str]]:
    """(same-origin, different-origin) pair counts per label, over all pairs within ``groups``.

    A pair counts once for each distinct label of its two images. Counted, not enumerated:
    pairs touching label L in a group of n = C(n, 2) - C(n - n_L, 2).
    """
    same: Counter[str] = Counter()
    diff: Counter[str] = Counter()
    for members in groups:
        n, by_label = len(members), Counter(label(m) for m in members)
        by_origin: dict[str, Counter[str]] = defaultdict(Counter)
        for m in members:
            by_origin[origin[m]][label(m)] += 1
        for lab, n_lab in by_label.items():
            touching = _pairs(n) - _pairs(n - n_lab)
            same_lab = sum(_pairs(sum(c.values())) - _pairs(sum(c.values()) - c[lab]) for c in by_origin.values())
            same[lab] += same_lab
            diff[lab] += touching - same_lab
    return same, diff


def _keepers(predicted: Sequence[Predicted], items: dict[str, Item]) -> tuple[int, int, Counter[str]]:
    """(correct, assessed, family of each wrong keeper) over groups with exactly one original."""
    correct = assessed = 0
    wrong: Counter[str] = Counter()
    for group in predicted:
        originals = [m for m in group.members if items[m].is_original]
        if len(originals) != 1:
            continue
        assessed += 1
        if group.keeper == originals[0]:
            correct += 1
        else:
            wrong[items[group.keeper].family if group.keeper in items else "?"] += 1
    return correct, assessed, wrong


def score(method: str, predicted: Sequence[Predicted], truth: Sequence[Item], *, index_s: float,
          duplicates_s: float) -> DupScores:
    """All figures of ``predicted`` (groups of size ≥ 2) against ``truth``."""
    items = {i.image: i for i in truth}
    unknown = {m for g in predicted for m in g.members} - items.keys()
    if unknown:
        raise ValueError(f"{method}: predicted images not in the truth: {sorted(unknown)[:5]}")
    groups = [g.members for g in predicted if len(g.members) > 1]
    origin = {name: i.origin for name, i in items.items()}
    family = {name: i.family for name, i in items.items()}
    true_same, _ = attributed_pairs(true_groups(truth), origin, family.__getitem__)
    found, false = attributed_pairs(groups, origin, family.__getitem__)
    _, false_src = attributed_pairs(groups, origin, lambda m: items[m].source)
    wrong = [g for g in groups if len({origin[m] for m in g}) > 1]
    largest = max(wrong, key=len, default=None)
    joins = [g for g in groups if len({origin[m] for m in g if items[m].is_original}) > 1]
    composites = {n for n, i in items.items() if class_of(i.family) == "composite"}
    correct, assessed, wrong_keepers = _keepers([g for g in predicted if len(g.members) > 1], items)
    return DupScores(
        method=method,
        pairs=pairwise_scores(groups, true_groups(truth)),
        families={f: FamilyScore(n, true_same[f], found[f], false[f])
                  for f, n in sorted(Counter(family.values()).items())},
        false_by_source=dict(sorted((s, c) for s, c in false_src.items() if c)),
        groups=len(groups),
        wrong_groups=len(wrong),
        largest_wrong=None if largest is None else WrongGroup(
            len(largest), len({origin[m] for m in largest}), dict(Counter(family[m] for m in largest)),
            tuple(largest)),
        joins_two_originals=len(joins),
        joins_via_composite=sum(any(m in composites for m in g) for g in joins),
        composites_grouped=len(composites & {m for g in groups for m in g}),
        composites=len(composites),
        keeper_correct=correct,
        keeper_groups=assessed,
        wrong_keepers=dict(wrong_keepers.most_common()),
        contains_reported=sum(bool(g.contains) for g in predicted),
        contains_composites=sum(bool(g.contains) and g.members[0] in composites for g in predicted),
        index_s=index_s,
        duplicates_s=duplicates_s,
    )


# --- tables ----------------------------------------------------------------------------------

def _f(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def overall_table(scores: Sequence[DupScores]) -> str:
    """One row per method: pairwise scores, wrong groups, joins, composites, keeper, times."""
    head = ("| method | precision | recall | F1 | predicted pairs | groups | wrong groups "
            "| largest wrong group (images / origins) | groups joining ≥ 2 originals (via a composite) "
            "| composites grouped | reported as containing others (composites) | keeper accuracy (groups) "
            "| index s | duplicates s |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = []
    for s in scores:
        lw = s.largest_wrong
        rows.append(
            f"| {s.method} | {_f(s.pairs.precision)} | {_f(s.pairs.recall)} | {_f(s.pairs.f1)} "
            f"| {s.pairs.predicted_pairs:,} | {s.groups:,} | {s.wrong_groups} "
            f"| {f'{lw.size} / {lw.origins}' if lw else '—'} | {s.joins_two_originals} ({s.joins_via_composite}) "
            f"| {s.composites_grouped} of {s.composites} | {s.contains_reported} ({s.contains_composites}) "
            f"| {_f(s.keeper_accuracy)} ({s.keeper_groups}) "
            f"| {s.index_s:.1f} | {s.duplicates_s:.1f} |")
    return "\n".join([head, *rows])


def family_table(scores: Sequence[DupScores]) -> str:
    """Per family (grouped by class): images, true pairs, and each method's recall / false pairs."""
    if not scores:
        return ""
    order = [ORIGINAL, "copy", *CLASSES.values()]
    fams = sorted(scores[0].families, key=lambda f: (order.index(class_of(f)), f))
    head = ("| class | family | images | true pairs | " + " | ".join(f"{s.method} recall / false" for s in scores)
            + " |\n| --- | --- | ---: | ---: |" + " ---: |" * len(scores))
    rows = []
    for f in fams:
        base = scores[0].families[f]
        cells = [f"{_f(s.families[f].recall, 2)} / {s.families[f].false_pairs}" for s in scores]
        rows.append(f"| {class_of(f)} | {f} | {base.images} | {base.true_pairs} | " + " | ".join(cells) + " |")
    return "\n".join([head, *rows])


def detail_table(scores: Sequence[DupScores]) -> str:
    """Per method: the largest wrong group's make-up, false pairs by source, wrong keepers."""
    head = ("| method | largest wrong group: families | false pairs by source | wrong keepers by family |\n"
            "| --- | --- | --- | --- |")
    rows = []
    for s in scores:
        lw = ", ".join(f"{f} {n}" for f, n in sorted(s.largest_wrong.families.items(), key=lambda t: -t[1])
                       ) if s.largest_wrong else "—"
        src = ", ".join(f"{k} {v}" for k, v in sorted(s.false_by_source.items(), key=lambda t: -t[1])) or "—"
        keep = ", ".join(f"{k} {v}" for k, v in s.wrong_keepers.items()) or "—"
        rows.append(f"| {s.method} | {lw} | {src} | {keep} |")
    return "\n".join([head, *rows])


# --- self-check ------------------------------------------------------------------------------

def self_check(trials: int = 300, seed: int = 0) -> None:
    """``attributed_pairs`` against enumerating every pair, on random groups and labels."""
    import itertools

    import numpy as np

    rng = np.random.default_rng(seed)
    for _ in range(trials):
        names = [f"i{i}" for i in range(int(rng.integers(2, 25)))]
        origin = {n: f"o{int(rng.integers(0, 6))}" for n in names}
        label = {n: f"f{int(rng.integers(0, 4))}" for n in names}
        groups = [list(g) for g in np.array_split(rng.permutation(names), int(rng.integers(1, 5)))]
        same, diff = attributed_pairs(groups, origin, label.__getitem__)
        want_same: Counter[str] = Counter()
        want_diff: Counter[str] = Counter()
        for g in groups:
            for a, b in itertools.combinations(g, 2):
                for lab in {label[a], label[b]}:
                    (want_same if origin[a] == origin[b] else want_diff)[lab] += 1
        assert +same == +want_same and +diff == +want_diff, (groups, same, want_same, diff, want_diff)
    print(f"dupscore self-check passed ({trials} randomized trials)")


if __name__ == "__main__":
    self_check()
