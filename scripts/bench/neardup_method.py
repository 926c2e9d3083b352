"""neardup itself, driven through its public Python API only, as benchmark methods.

Contract used (``neardup/api.py``)::

    cat = neardup.open(db_path, create=True, embedder="none" | "cnn")
    cat.index([folder, …], workers=2)
    cat.search(path, k=10, by=…)          -> [Match(image_id, path, score, distance, by)]
    cat.duplicates(by=…, threshold=None)  -> [Group(members, keeper)]

Every feature (each hash, "cnn", "autoencoder", "auto") is its own method row. Rows with the same embedder
share one catalog per indexed collection, built once per run in ``<work>/neardup/``.
"""

from __future__ import annotations

import importlib.util
import inspect
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HASHES = ("ahash", "dhash", "phash", "phash256", "whash", "colorhash", "pdq")
WORKERS = 2


class NeardupUnsupportedError(RuntimeError):
    """The installed neardup API cannot do what a method row asks (yet)."""


class _Catalogs:
    """One neardup catalog per (embedder, indexed folders), created fresh on first use in a run."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, tuple[Path, ...]], Any] = {}
        self._broken: dict[tuple[str, tuple[Path, ...]], str] = {}   # key -> why building it failed
        self.seconds: dict[str, float] = {}   # catalog label -> time spent indexing it

    def get(self, work: Path, embedder: str, folders: Sequence[Path]) -> Any:
        """The catalog of ``folders`` indexed with ``embedder``, indexing it on first request."""
        key = (embedder, tuple(sorted(folders)))
        if key in self._broken:
            raise NeardupUnsupportedError(f"neardup catalog {key} already failed: {self._broken[key]}")
        if key not in self._open:
            try:
                self._open[key] = self._build(work, embedder, key[1])
            except Exception as exc:   # neardup is under development: fail its other rows fast
                self._broken[key] = f"{type(exc).__name__}: {exc}"
                raise
        return self._open[key]

    def _build(self, work: Path, embedder: str, folders: tuple[Path, ...]) -> Any:
        """Create a fresh catalog for ``folders`` in ``work/neardup/<label>/`` and index it."""
        label = f"{embedder}-" + "+".join(f.name for f in folders)
        home = work / "neardup" / label
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        start = time.perf_counter()
        cat = open_catalog(home / "catalog.db", "none" if embedder == "autoencoder" else embedder)
        report = cat.index([str(f) for f in folders], workers=WORKERS)
        if embedder == "autoencoder":   # trained on the indexed collection itself, as a user would
            trained = cat.train_autoencoder(workers=WORKERS)
            print(f"[bench] neardup autoencoder {label}: {len(trained.result.history)} epochs in "
                  f"{trained.result.seconds:.0f}s on {trained.images} images", file=sys.stderr)
            cat.index([str(f) for f in folders], workers=WORKERS, autoencoder=True)
        self.seconds[label] = time.perf_counter() - start
        print(f"[bench] neardup catalog {label}: indexed in {self.seconds[label]:.1f}s "
              f"(new {getattr(report, 'new', '?')}, failed {getattr(report, 'failed', '?')})",
              file=sys.stderr)
        return cat


CATALOGS = _Catalogs()


def open_accepts_embedder() -> bool:
    """Whether ``neardup.open`` takes ``embedder=`` (the contract; early versions took ``settings=``)."""
    import neardup

    return "embedder" in inspect.signature(neardup.open).parameters


def open_catalog(db: Path, embedder: str) -> Any:
    """A new neardup catalog at ``db`` storing every hash, plus CNN vectors when ``embedder="cnn"``."""
    import neardup

    if open_accepts_embedder():
        return neardup.open(db, create=True, embedder=embedder)
    if embedder == "none":
        return neardup.open(db, create=True)   # default settings: all hashes, no embedder
    raise NeardupUnsupportedError(f"neardup.open() takes no embedder= yet; cannot build a {embedder!r} catalog")


def check_feature(cat: Any, by: str) -> None:
    """Fail early, with the catalog's own list, when ``by`` is not one of its features."""
    features = cat.features() if hasattr(cat, "features") else None
    if features is not None and by not in features:
        raise NeardupUnsupportedError(f"neardup catalog has no feature {by!r}; it offers {features}")


def _folders(paths: Sequence[Path]) -> list[Path]:
    """The distinct folders holding ``paths`` (neardup indexes folders, not file lists)."""
    return sorted({p.resolve().parent for p in paths})


class NeardupMethod:
    """One neardup feature (``by``) over a catalog built with ``embedder``."""

    def __init__(self, name: str, by: str, embedder: str, work: Path) -> None:
        self.name, self.by, self.embedder, self.work = name, by, embedder, work
        self._cat: Any = None

    def index(self, refs: Sequence[Path]) -> None:
        """Index the folders holding ``refs`` (they must hold nothing else)."""
        self._cat = CATALOGS.get(self.work, self.embedder, _folders(refs))
        check_feature(self._cat, self.by)

    def search(self, queries: Sequence[Path], k: int) -> list[list[tuple[Path, float]]]:
        """Top-``k`` (reference path, score) of each query, one ``cat.search`` call per query."""
        if self._cat is None:
            raise RuntimeError(f"{self.name}: search() before index()")
        return [[(Path(m.path), float(m.score)) for m in self._cat.search(str(q), k=k, by=self.by)]
                for q in queries]

    def duplicates(self, paths: Sequence[Path]) -> list[tuple[Path, ...]]:
        """neardup's duplicate groups over a catalog of the folders holding ``paths``."""
        cat = CATALOGS.get(self.work, self.embedder, _folders(paths))
        return [tuple(Path(m) for m in g.members) for g in cat.duplicates(by=self.by, threshold=None)]


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def neardup_factories(work: Path) -> dict[str, tuple[Callable[[], NeardupMethod], bool]]:
    """Method name -> (factory, available). Hash rows use a hash-only catalog (embedder "none");
    "neardup-cnn" and "neardup-auto" a CNN catalog; "neardup-auto-hashes" is auto without a CNN;
    "neardup-autoencoder" a hash-only catalog whose autoencoder is trained on the collection.
    """
    api = _installed("neardup.api")
    cnn = api and _installed("neardup.indexer.embed") and open_accepts_embedder()
    rows: dict[str, tuple[str, str, bool]] = {f"neardup-{h}": (h, "none", api) for h in HASHES}
    rows |= {"neardup-cnn": ("cnn", "cnn", cnn), "neardup-auto": ("auto", "cnn", cnn),
             "neardup-auto-hashes": ("auto", "none", api),
             "neardup-autoencoder": ("autoencoder", "autoencoder", cnn and _installed("neardup.indexer.training"))}
    return {name: ((lambda n=name, b=by, e=emb: NeardupMethod(n, b, e, work)), ok)
            for name, (by, emb, ok) in rows.items()}
