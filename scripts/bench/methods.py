"""The methods compared, behind one small interface, and how one is run over the data set.

A method indexes a list of reference images, returns for each query its top-k
(reference, score) with higher = more similar, and groups a collection into duplicate sets:

- peers (``bench.peers``): imagehash pHash/pHash-256/dHash, PDQ, an imagededup-style CNN;
- neardup (``bench.neardup_method``): one row per feature, through ``neardup``'s public API.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.neardup_method import neardup_factories
from bench.peers import peer_factories

PEERS = ("ih-phash", "ih-phash256", "ih-dhash", "pdqhash", "mobilenet-cnn")


class Method(Protocol):
    """What the benchmark needs from a method."""

    name: str

    def index(self, refs: Sequence[Path]) -> None:
        """Build whatever the method searches from the reference images."""

    def search(self, queries: Sequence[Path], k: int) -> list[list[tuple[Path, float]]]:
        """Per query, up to ``k`` (reference path, score) best first; higher score = more similar."""

    def duplicates(self, paths: Sequence[Path]) -> list[tuple[Path, ...]]:
        """Disjoint groups (size ≥ 2) of near-duplicate images among ``paths``."""


@dataclass(frozen=True)
class Run:
    """A method's raw output on the data set, with ids relative to the work dir."""

    method: str
    hits: dict[str, list[tuple[str, float]]]   # query id -> [(reference id, score)], best first
    groups: list[tuple[str, ...]]              # duplicate groups over references + queries
    index_s: float
    search_s: float
    duplicates_s: float


class UnknownMethodError(ValueError):
    """A requested method name is not known, or its library / neardup part is not installed."""


def registry(work: Path) -> dict[str, tuple[Callable[[], Method], bool]]:
    """Every known method name -> (factory, available on this machine)."""
    return {**peer_factories(), **neardup_factories(work)}


def resolve(names: str, work: Path) -> list[Callable[[], Method]]:
    """Factories for a comma list of method names; "all", "peers", "neardup" expand to the
    available methods of that kind. An explicitly named method must be available."""
    known = registry(work)
    chosen: list[str] = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name in ("all", "peers", "neardup"):
            members = [n for n in known if name == "all" or (name == "peers") == (n in PEERS)]
            skipped = [n for n in members if not known[n][1]]
            if skipped:
                print(f"[bench] not available, skipped: {', '.join(skipped)}", file=sys.stderr)
            chosen += [n for n in members if known[n][1]]
        elif name not in known:
            raise UnknownMethodError(f"unknown method {name!r}; known: {', '.join(known)}")
        elif not known[name][1]:
            raise UnknownMethodError(f"method {name!r} is not available here (library or neardup "
                                     "module missing; run scripts/bench_setup.sh)")
        else:
            chosen.append(name)
    return [known[n][0] for n in dict.fromkeys(chosen)]


def _rel(path: Path, work: Path) -> str:
    """``path`` as an id relative to ``work`` ("refs/x.jpg")."""
    return path.resolve().relative_to(work.resolve()).as_posix()


def run(method: Method, work: Path, refs: Sequence[str], queries: Sequence[str], *, k: int = 10) -> Run:
    """Index ``refs``, search every query, group refs + queries; ids are relative to ``work``."""
    ref_paths = [work / r for r in refs]
    query_paths = [work / q for q in queries]
    t0 = time.perf_counter()
    method.index(ref_paths)
    t1 = time.perf_counter()
    found = method.search(query_paths, k)
    t2 = time.perf_counter()
    groups = method.duplicates(ref_paths + query_paths)
    t3 = time.perf_counter()
    hits = {q: [(_rel(p, work), s) for p, s in row] for q, row in zip(queries, found, strict=True)}
    return Run(method.name, hits, [tuple(_rel(p, work) for p in g) for g in groups],
               index_s=t1 - t0, search_s=t2 - t1, duplicates_s=t3 - t2)
