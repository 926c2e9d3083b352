"""Grouping matched pairs into clusters: single linkage (union-find) or complete linkage.

Single linkage guarantees that every image in a group is linked to another member through a
chain of matched pairs, and, given pairs kept apart, that no group holds one: a chain A~C~B
whose ends are known to differ is cut at its weakest link. Complete linkage guarantees that
every pair inside a group matched: a chain A~B~C with A and C far apart is not merged.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

Pair = tuple[int, int, float]  # (a, b, cost): lower cost = stronger match


def single_linkage(pairs: Iterable[Pair], *, apart: Iterable[frozenset[int]] = ()) -> list[list[int]]:
    """Connected components of the pairs' graph (each component has >= 2 ids). With `apart`
    (pairs that must never share a component), a component holding an apart pair is linked
    again, strongest pairs first, skipping each pair that would bring an apart pair together;
    the other components are as they were."""
    pairs = list(pairs)
    clusters = _components(pairs)
    partners: dict[int, set[int]] = {}
    for a, b in (tuple(p) for p in apart if len(p) == 2):
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    if not partners:
        return clusters
    home = {x: n for n, cluster in enumerate(clusters) for x in cluster}
    torn = {home[a] for a, others in partners.items() if a in home and any(home.get(b) == home[a] for b in others)}
    if not torn:
        return clusters
    inside = sorted((p for p in pairs if home[p[0]] in torn), key=lambda p: (p[2], p[0], p[1]))
    return [c for n, c in enumerate(clusters) if n not in torn] + _components(inside, partners)


def _components(pairs: list[Pair], partners: dict[int, set[int]] | None = None) -> list[list[int]]:
    """Union-find over `pairs` in their order; with `partners` (id -> ids it must never share a
    component with), a pair joining two components that hold such a pair is skipped. Members
    move from the smaller component into the larger, so each id moves O(log n) times."""
    parent: dict[int, int] = {}
    members: dict[int, set[int]] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in pairs:
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        if partners is not None:
            small, big = sorted((members.setdefault(ra, {ra}), members.setdefault(rb, {rb})), key=len)
            if any(p in big for x in small for p in partners.get(x, ())):
                continue
            big |= small
            members[min(ra, rb)] = big
        parent[max(ra, rb)] = min(ra, rb)
    clusters: dict[int, list[int]] = {}
    for x in parent:
        clusters.setdefault(root(x), []).append(x)
    return [c for c in clusters.values() if len(c) > 1]


def complete_linkage(pairs: Iterable[Pair]) -> list[list[int]]:
    """Merge strongest pairs first; two clusters join only if all their cross pairs match."""
    pairs = list(pairs)
    linked = {(min(a, b), max(a, b)) for a, b, _ in pairs}
    cluster_of: dict[int, list[int]] = {}
    for a, b, _ in sorted(pairs, key=lambda p: (p[2], p[0], p[1])):
        ca, cb = cluster_of.setdefault(a, [a]), cluster_of.setdefault(b, [b])
        if ca is cb or not all((min(x, y), max(x, y)) in linked for x in ca for y in cb):
            continue
        ca.extend(cb)
        for y in cb:
            cluster_of[y] = ca
    unique = {id(c): c for c in cluster_of.values()}
    return [c for c in unique.values() if len(c) > 1]


def components(pairs: NDArray[np.int64]) -> dict[int, int]:
    """Image id -> the id naming its connected component (its smallest), for every image in
    (M, 2) `pairs`. In compiled code (scipy): the decision asks this of millions of pairs.
    Imported here, not with the module: every command would pay for it at start."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(pairs):
        return {}
    # ids are catalog ids, dense enough for a lookup table (np.unique with its inverse, which
    # sorts 2M ids, took 3 s at 100,000 images)
    present = np.zeros(int(pairs.max()) + 1, bool)
    present[pairs.ravel()] = True
    ids = np.flatnonzero(present)
    at = (np.cumsum(present) - 1)[pairs]
    graph = coo_matrix((np.ones(len(at), np.float32), (at[:, 0], at[:, 1])), shape=(len(ids), len(ids)))
    _, label = connected_components(graph, directed=False)
    smallest = np.full(label.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(smallest, label, ids)
    return dict(zip(ids.tolist(), smallest[label].tolist()))
