"""The indexing pipeline: the one loop that walks, extracts, embeds and stores.

walk -> classify against the catalog (`walk`) -> extract features in worker processes
(`extract`, `workers`) -> embed in batches with every embedder of the catalog -> write to the
catalog in small transactions. Given a Dask `cluster`, its workers extract and embed instead
(`cluster`); the rest of the run is the same. Each transaction is complete, so an interrupted run leaves a
valid catalog and the next run finishes the job: files already written count as unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neardup.storage.catalog import Catalog
from neardup.storage.records import ImageRecord

from .colours import STORED_BYTES
from .decode import DECODING
from .embed import Embedder, worker_copy
from .embedders import embed_views, vector_feature
from .enlargement import STORED_BYTES as ENLARGEMENT_BYTES
from .extract import (EmbedInputs, Extracted, Moved, embed_inputs, extract_embedded, keeper_traits_of, layout_of,
                      local_features_of)
from .features import EARLIER_FEATURES, FEATURES_ID
from .progress import Progress
from .walk import classify, decoded_otherwise, walk
from .workers import WorkerDiedError, parallel_map

if TYPE_CHECKING:
    from .cluster import Cluster

WRITE_BATCH = 64  # files per catalog transaction


@dataclass
class IndexReport:
    """What one indexing run did. `failures` lists (path, reason) of files that failed now."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    failed: int = 0
    embedded: int = 0
    links: int = 0  # symbolic links not followed
    redecoded: int = 0  # unchanged files read again: an older neardup decoded them otherwise
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def decoded(self) -> int:
        return self.new + self.changed


def index_paths(
    paths: Sequence[str | Path],
    *,
    catalog: Catalog,
    workers: int = 1,
    embedders: Sequence[Embedder] = (),
    progress: Progress | None = None,
    fork: bool = False,
    cluster: Cluster | None = None,
) -> IndexReport:
    """Bring the catalog up to date with the image files under `paths`.

    Unchanged files (same size and mtime) are not read; changed and new files are extracted
    by `workers` processes (`fork`: see `workers.parallel_map`), or by the workers of a Dask
    `cluster`, and embedded by `embedders`;
    catalogued files that vanished from under `paths` are removed, unless their bytes
    reappear at a new path (a move: the row is kept, nothing recomputed).
    """
    started = time.perf_counter()
    progress = progress or Progress()
    upgrade_features(catalog)
    found = walk(paths)
    known = catalog.file_states()
    if not known and catalog.decoding()[0] < DECODING:
        catalog.set_decoding(DECODING)  # a new catalog: every file will be decoded as this neardup does
    changes = classify(found, known)
    report = IndexReport(new=len(changes.new), changed=len(changes.changed), unchanged=changes.unchanged,
                         links=found.links, failures=list(found.problems), failed=len(found.problems))
    catalog.add_roots(found.roots)
    # what could not be looked at is recorded, so `stats` says why; a catalogued image whose
    # file is unreadable right now keeps its row and features (unreadable is not gone)
    catalog.write([ImageRecord(path=p, size=0, mtime_ns=0, error=why) for p, why in found.problems
                   if p not in known or known[p].status == "failed"])
    orphans = {s.sha256: s.image_id for s in changes.gone if s.sha256}
    todo = changes.new + changes.changed
    here, in_workers = _placement(embedders, todo, cluster)
    writer = _Writer(catalog, here, report, embedding=bool(embedders))
    moved: set[int] = set()
    fresh: set[str] = set()  # the files read in this run
    replacing = {e.path for e in changes.changed}  # a move onto one of these replaces its picture
    progress.start(len(todo))
    try:
        if cluster is not None:
            results = cluster.extract(todo, (catalog.settings, orphans, sorted({e.input_size for e in embedders})),
                                      embedders)
        else:
            args = (catalog.settings, orphans, sorted({e.input_size for e in here}), in_workers)
            results = parallel_map(extract_embedded, todo, args, workers=workers, started=writer.warm_up_for(todo),
                                   fork=fork)
        for result in results:
            _take(result, catalog, writer, report, moved, fresh, replacing)
            progress.advance()
        writer.flush()
    except KeyboardInterrupt:
        report.interrupted = True
        writer.flush()
    except WorkerDiedError:
        writer.flush()  # keep what was extracted before the worker died
        raise
    finally:
        progress.close()
    if not report.interrupted:
        _finish(catalog, changes, moved, embedders, report, workers=workers, progress=progress)
        redecode(catalog, embedders, report, fresh=fresh, workers=workers, progress=progress)
    report.seconds = time.perf_counter() - started
    return report


def _placement(embedders: Sequence[Embedder], todo: Sequence, cluster: Cluster | None) -> tuple[list[Embedder], list[Embedder]]:
    """(embedders run here, copies run in the decoding workers): those that can run in the
    workers do, so vectors travel back instead of pixels. A cluster's workers embed everything
    themselves (`dask_tasks`), so then neither list has any."""
    copies = [worker_copy(e) for e in embedders] if todo and cluster is None else []
    return [e for e, copy in zip(embedders, copies) if copy is None], [copy for copy in copies if copy is not None]


def _take(result: Extracted | Moved, catalog: Catalog, writer: _Writer, report: IndexReport, moved: set[int],
          fresh: set[str], replacing: Set[str]) -> None:
    """One file's outcome: a move is recorded at once (its row as it was), anything else goes
    to the writer (and is `fresh`). A move onto a catalogued path (`mv a.jpg b.jpg` over b,
    one of `replacing`) is no change of b: b's picture left the collection, and its row goes."""
    if isinstance(result, Moved):
        catalog.move(result.image_id, result.entry.path, result.entry.size, result.entry.mtime_ns)
        moved.add(result.image_id)
        report.moved += 1
        if result.entry.path in replacing:
            report.changed -= 1
            report.removed += 1
        else:
            report.new -= 1
    else:
        fresh.add(result.record.path)
        writer.add(result)


def _finish(catalog: Catalog, changes, moved: set[int], embedders: Sequence[Embedder], report: IndexReport, *,
            workers: int, progress: Progress) -> None:
    """After a complete run: drop the images whose files are gone (and did not move), and
    embed whatever still has no vector (an earlier interrupted run, a new embedder)."""
    stale = [s.image_id for s in changes.gone if s.image_id not in moved]
    catalog.remove(stale)
    report.removed += len(stale)
    fill_colour_layouts(catalog=catalog, workers=workers, progress=progress)
    fill_keypoints(catalog=catalog, workers=workers, progress=progress)
    fill_keeper_traits(catalog=catalog, workers=workers, progress=progress)
    for embedder in embedders:
        report.embedded += embed_missing(catalog=catalog, embedder=embedder, workers=workers, progress=progress)


def redecode(catalog: Catalog, embedders: Sequence[Embedder], report: IndexReport, *, fresh: Set[str] = frozenset(),
             workers: int = 1, progress: Progress | None = None) -> None:
    """Read again every catalogued file an older neardup decoded otherwise than this one
    (`decode.DECODING`; the headers of the catalog's files tell which, `fresh` paths were just
    read), as if it had changed: every feature and trait, and each of `embedders`' vectors.
    The images keep their ids; `Image.redecoded` marks them, so that indexes and stored pair
    evidence treat them as changed, and an interrupted run leaves them done. The catalog then
    records this decoding, and the images whose files could not be read, to be looked at on
    the next run. Counted in `report` (`redecoded`, and any file that no longer decodes as
    failed)."""
    version, unread = catalog.decoding()
    if version >= DECODING and not unread:
        return
    rows = catalog.decoded_before(DECODING)
    since = {i: version for i, _ in rows} if version < DECODING else {}
    since.update((i, min(v, since.get(i, v))) for i, v in unread.items())
    rows = [(i, p) for i, p in rows if i in since and p not in fresh]
    progress = progress or Progress()
    stale, unread = [], {}
    if rows:
        progress.start(len(rows), "files an older neardup decoded otherwise")
        try:
            for old in sorted({since[i] for i, _ in rows}):
                these = [(i, p) for i, p in rows if since[i] == old]
                for (image_id, _), found in zip(these, parallel_map(decoded_otherwise, [p for _, p in these], (old,),
                                                                    workers=workers)):
                    progress.advance()
                    if found is None:
                        unread[image_id] = old
                    elif found:
                        stale.append(found)
        finally:
            progress.close()
    if stale:
        here, in_workers = _placement(embedders, stale, None)
        writer = _Writer(catalog, here, report, embedding=bool(embedders))
        progress.start(len(stale), "reading them again")
        try:
            args = (catalog.settings, {}, sorted({e.input_size for e in here}), in_workers)
            for result in parallel_map(extract_embedded, stale, args, workers=workers,
                                       started=writer.warm_up_for(stale)):
                result.record.redecoded = DECODING
                writer.add(result)
                report.redecoded += 1
                progress.advance()
        finally:
            writer.flush()  # what was read again is kept, even when interrupted
            progress.close()
    catalog.set_decoding(DECODING, unread)


def upgrade_features(catalog: Catalog) -> None:
    """A catalog whose keypoints an earlier neardup found (`features.EARLIER_FEATURES`) is
    switched to this one's before anything is extracted, so new files get this one's; the
    images it finds differently are marked to be found again (`fill_keypoints`, at the end of
    this run, or of the next one if this one is interrupted)."""
    if catalog.settings.local_features in EARLIER_FEATURES:
        catalog.upgrade_local_features(FEATURES_ID, smaller_than=catalog.settings.decode_side)


def fill_colour_layouts(*, catalog: Catalog, workers: int = 1, progress: Progress | None = None) -> int:
    """Compute the colour layout of every image that has keypoints but none, or one without
    its flat cells (a catalog indexed before they were stored), from its file. A file that
    can no longer be decoded is recorded as failed, with the reason. Returns how many layouts
    were stored."""

    def store(batch: list[tuple[int, tuple[int, int, bytes]]]) -> int:
        catalog.put_colour_layouts(dict(batch))
        return len(batch)

    return _from_files(catalog, catalog.missing_colour_layouts(STORED_BYTES), layout_of,
                       (catalog.settings.decode_side,), lambda found: found if isinstance(found, str) else None, store,
                       workers=workers, progress=progress, label="colour layouts (catalog from an older neardup)")


def fill_keypoints(*, catalog: Catalog, workers: int = 1, progress: Progress | None = None) -> int:
    """Compute the local features again, from its file, for every image whose stored ones are
    stale (`Catalog.stale_keypoints`): without their keypoints' colours (a catalog indexed
    before they were stored: ORB finds the same keypoints in the same decoded pixels, with
    their colours), or found by an earlier neardup (`upgrade_features`). A file that can no
    longer be decoded is recorded as failed, with the reason. Returns how many images were
    updated."""

    def store(batch: list[tuple[int, tuple[tuple, tuple]]]) -> int:
        catalog.put_keypoints(dict(batch))
        return len(batch)

    return _from_files(catalog, catalog.stale_keypoints(), local_features_of, (catalog.settings.decode_side,),
                       lambda found: found if isinstance(found, str) else None, store,
                       workers=workers, progress=progress, label="keypoints (catalog from an older neardup)")


def fill_keeper_traits(*, catalog: Catalog, workers: int = 1, progress: Progress | None = None) -> int:
    """Measure again, from its file, the noise and enlargement record of every image whose
    record is of an older neardup (without the losses of each side; its noise measured on the
    decoded, not the native, pixels): compared with traits measured now, they would mislead the
    keeper. A file that cannot be decoded now (a drive not mounted) keeps its image, features
    and older traits, and is tried again on the next `index`: a trait is not worth an image.
    (Images without an enlargement record, flat or tiny, or indexed before records were kept,
    keep the noise they have.) Returns how many images were updated."""

    def store(batch: list[tuple[int, tuple[float, bytes | None] | str]]) -> int:
        measured = {i: found for i, found in batch if not isinstance(found, str)}
        catalog.put_keeper_traits(measured)
        return len(measured)

    return _from_files(catalog, catalog.stale_keeper_traits(ENLARGEMENT_BYTES), keeper_traits_of,
                       (catalog.settings.decode_side,), lambda found: None, store,
                       workers=workers, progress=progress, label="keeper traits (catalog from an older neardup)")


def embed_missing(*, catalog: Catalog, embedder: Embedder, workers: int = 1, progress: Progress | None = None) -> int:
    """Embed every indexed image that has no vector of `embedder` yet (after enabling or
    retraining an embedder, or an interrupted run). A file that can no longer be decoded is
    recorded as failed, with the reason. Returns how many images were embedded."""
    args = (catalog.settings.decode_side, (embedder.input_size,), vector_feature(embedder.name).views)
    return _from_files(catalog, catalog.missing_vectors(embedder.name), embed_inputs, args,
                       lambda found: found.error, lambda batch: _store_vectors(catalog, embedder, batch),
                       workers=workers, progress=progress, label=f"{embedder.name} vectors")


def _from_files(catalog: Catalog, missing: list[tuple[int, str]], compute: Callable, args: tuple,
                error: Callable[[Any], str | None], store: Callable[[list[tuple[int, Any]]], int], *,
                workers: int, progress: Progress | None, label: str) -> int:
    """What catalogued images lack, computed again from their files: `compute(path, *args)`
    for each (id, path) of `missing`, in the workers; `store` writes WRITE_BATCH results at a
    time and returns how many it stored. A result whose `error` is not None marks its image
    failed, with that reason. `label` names the stage on the progress bar. Returns how many
    were stored."""
    if not missing:
        return 0
    progress = progress or Progress()
    progress.start(len(missing), label)
    done, batch, failed = 0, [], {}
    try:
        for (image_id, _), found in zip(missing, parallel_map(compute, [p for _, p in missing], args, workers=workers)):
            progress.advance()
            if (why := error(found)) is not None:
                failed[image_id] = why
            else:
                batch.append((image_id, found))
            if len(batch) >= WRITE_BATCH:
                done, batch = done + store(batch), []
        done += store(batch) if batch else 0
    finally:
        progress.close()
        if failed:
            catalog.mark_failed(failed)
    return done


def _store_vectors(catalog: Catalog, embedder: Embedder, batch: list[tuple[int, EmbedInputs]]) -> int:
    """Embed and store each image's views in one transaction (`embed_missing` looks for images
    without a whole-image vector: one stored without its box's would never get it)."""
    if not batch:
        return 0
    vectors = embed_views(embedder, [found.inputs for _, found in batch])
    ids = [image_id for image_id, _ in batch]
    catalog.put_vectors({
        (embedder.name, view): ([ids[i] for i in rows], matrix) for view, (rows, matrix) in vectors.items()
    })
    return len(batch)


def attach_vectors(embedders: Sequence[Embedder], extracted: Sequence[Extracted]) -> None:
    """Embed extracted files (none failed) with each embedder, in one call per embedder, and
    put the vectors in their records (here, and on a cluster's workers)."""
    for embedder in embedders if extracted else ():
        for view, (rows, vectors) in embed_views(embedder, [x.inputs for x in extracted]).items():
            for row, vector in zip(rows, vectors):
                extracted[row].record.vectors.setdefault(view, {})[embedder.name] = vector


class _Writer:
    """Buffers extracted files, embeds them in batches with `embedders` (those that do not run
    in the workers), writes each batch in one transaction. `embedding`: whether the files are
    embedded at all (here or in the workers), for the report."""

    def __init__(self, catalog: Catalog, embedders: Sequence[Embedder], report: IndexReport, *,
                 embedding: bool) -> None:
        self.catalog, self.embedders, self.report, self.embedding = catalog, embedders, report, embedding
        self.buffer: list[Extracted] = []
        self._warming: threading.Thread | None = None

    def warm_up_for(self, todo: Sequence) -> Callable[[], None] | None:
        """`warm_up`, to run as the workers start, when there are files and models to load."""
        return self.warm_up if self.embedders and todo else None

    def warm_up(self) -> None:
        """Load the models in a thread while the workers decode the first files."""
        def load() -> None:
            for e in self.embedders:
                e.embed([np.zeros((e.input_size, e.input_size, 3), np.uint8)])

        self._warming = threading.Thread(target=load, daemon=True)
        self._warming.start()

    def add(self, extracted: Extracted) -> None:
        if extracted.record.error:
            self.report.failed += 1
            self.report.failures.append((extracted.record.path, extracted.record.error))
        self.buffer.append(extracted)
        if len(self.buffer) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._warming is not None:  # never let two threads import TensorFlow at once
            self._warming.join()
            self._warming = None
        if not self.buffer:
            return
        ok = [x for x in self.buffer if not x.record.error]
        attach_vectors(self.embedders, ok)
        self.report.embedded += len(ok) if self.embedding else 0
        self.catalog.write([x.record for x in self.buffer])
        self.buffer = []
