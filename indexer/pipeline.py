"""The indexing pipeline: the one loop that walks, decodes, hashes, embeds and stores.

walk -> classify against the catalog (unchanged / changed / new / gone) -> decode + hash in
worker processes -> embed in batches (optional) -> write to the catalog in small transactions.
Each transaction is complete, so an interrupted run leaves a valid catalog and the next run
finishes the job: files already written count as unchanged.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from neardup.storage.catalog import Catalog, ImageRecord
from neardup.storage.settings import CatalogSettings

from .decode import IMAGE_SUFFIXES, UnreadableImageError, decode
from .embed import Embedder, resize_square
from .features import FEATURES_ID, mirrored, orb_features
from .hashes import compute_hashes, pdq
from .regions import box_view, content_box

WRITE_BATCH = 64  # files per catalog transaction
CHUNK = 8  # files per worker task


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int


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
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def decoded(self) -> int:
        return self.new + self.changed


@dataclass(frozen=True)
class Moved:
    """A new path whose bytes equal those of a catalogued file that disappeared."""

    entry: FileEntry
    image_id: int


class Progress:
    """Progress sink: `total` is set once, `advance` after each file. Silent by default."""

    def start(self, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


def walk(paths: Iterable[str | Path]) -> Iterator[FileEntry]:
    """Image files under `paths` (folders recursively, files as given), sorted per folder.

    Raises FileNotFoundError for a path that does not exist.
    """
    for raw in paths:
        root = Path(raw).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"no such file or folder: {raw}")
        if root.is_file():
            yield _entry(root.absolute())
            continue
        for folder, dirs, files in os.walk(root.absolute()):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith("."):
                    yield _entry(Path(folder, name))


def _entry(path: Path) -> FileEntry:
    st = path.stat()
    return FileEntry(str(path), st.st_size, st.st_mtime_ns)


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def process_file(
    entry: FileEntry, settings: CatalogSettings, orphans: dict[str, int], embed_size: int | None
) -> ImageRecord | Moved:
    """Read one file once: sha256, then (unless it is a moved file) decode and hash it, and
    its content box if it has one (a picture inside a screenshot or frame: `regions`).

    With `embed_size`, the record carries the image resized to (embed_size, embed_size, 3)
    uint8 RGB, the embedder's input, as `pixels`, and its content box as `box_pixels` (both
    transient, never stored).
    """
    record = ImageRecord(path=entry.path, size=entry.size, mtime_ns=entry.mtime_ns)
    try:
        data = Path(entry.path).read_bytes()
    except OSError as e:
        record.error = f"cannot read: {e.strerror or e}"
        return record
    record.sha256 = hashlib.sha256(data).hexdigest()
    if record.sha256 in orphans:
        return Moved(entry, orphans[record.sha256])
    try:
        image = decode(data, max_side=settings.decode_side)
    except UnreadableImageError as e:
        record.error = str(e)
        return record
    record.width, record.height, record.format = image.width, image.height, image.format
    record.hashes, record.quality = _hashes(image.pixels, settings.hashes)
    box = content_box(image.pixels)
    if box is not None:
        record.hashes.update({box_view(name): bits for name, bits in _hashes(box, settings.hashes)[0].items()})
    if settings.local_features == FEATURES_ID:
        record.keypoints = tuple(orb_features(image.pixels))
        record.mirrored_keypoints = tuple(orb_features(mirrored(image.pixels)))
    if embed_size:
        record.pixels = resize_square(image.pixels, embed_size)  # type: ignore[attr-defined]
        record.box_pixels = None if box is None else resize_square(box, embed_size)  # type: ignore[attr-defined]
    return record


def _hashes(pixels: NDArray[np.uint8], names: Sequence[str]) -> tuple[dict[str, NDArray[np.uint8]], int]:
    """The hashes `names` of an image, and its PDQ quality score."""
    hashes = compute_hashes(pixels, [n for n in names if n != "pdq"])
    pdq_bits, quality = pdq(pixels)  # PDQ gives the image's quality score too
    if "pdq" in names:
        hashes["pdq"] = pdq_bits
    return hashes, quality


def embedding_input(path: str, decode_side: int, embed_size: int) -> NDArray[np.uint8] | None:
    """A catalogued file's embedder input, (embed_size, embed_size, 3) uint8; None if unreadable now."""
    try:
        return resize_square(decode(path, max_side=decode_side).pixels, embed_size)
    except UnreadableImageError:
        return None


def embedding_views(
    path: str, decode_side: int, embed_size: int
) -> tuple[NDArray[np.uint8], NDArray[np.uint8] | None] | None:
    """A catalogued file's embedder inputs, (embed_size, embed_size, 3) uint8: the whole image
    and its content box (None without one); None if the file is unreadable now."""
    try:
        pixels = decode(path, max_side=decode_side).pixels
    except UnreadableImageError:
        return None
    box = content_box(pixels)
    return resize_square(pixels, embed_size), None if box is None else resize_square(box, embed_size)


_worker: tuple = ()


def _init_worker(fn: Callable, args: tuple) -> None:
    global _worker
    _worker = (fn, args)
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would contend


def _work(items: list) -> list:
    fn, args = _worker
    return [fn(item, *args) for item in items]


def index_paths(
    paths: Sequence[str | Path],
    *,
    catalog: Catalog,
    workers: int = 1,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    fork: bool = False,
) -> IndexReport:
    """Bring the catalog up to date with the image files under `paths`.

    `fork=True` forks the workers (instant start) and is only for a process that has not run
    FAISS, OpenCV or TensorFlow code yet, such as the CLI; otherwise a forkserver starts them.

    Unchanged files (same size and mtime) are not read; changed and new files are decoded
    and hashed by `workers` processes; files that vanished from under `paths` are removed,
    unless their bytes reappear at a new path (a move: the row is kept, nothing recomputed).
    """
    started = time.perf_counter()
    progress = progress or Progress()
    report = IndexReport()
    roots = [str(Path(p).expanduser().absolute()) for p in paths]
    entries = {e.path: e for e in walk(paths)}
    known = catalog.file_states()
    todo: list[FileEntry] = []
    for path, entry in entries.items():
        state = known.get(path)
        if state is None:
            report.new += 1
            todo.append(entry)
        elif (state.size, state.mtime_ns) != (entry.size, entry.mtime_ns):
            report.changed += 1
            todo.append(entry)
        else:
            report.unchanged += 1
    gone = [s for p, s in known.items() if p not in entries and _under(p, roots)]
    orphans = {s.sha256: s.image_id for s in gone if s.sha256}
    moved: set[int] = set()
    writer = _Writer(catalog, embedder, report)
    progress.start(len(todo))
    try:
        embed_size = embedder.input_size if embedder is not None else None
        started_pool = writer.warm_up if embedder is not None and todo else None
        work = (catalog.settings, orphans, embed_size)
        for result in _run(process_file, todo, work, workers, started_pool, fork):
            if isinstance(result, Moved):
                catalog.move(result.image_id, result.entry.path, result.entry.size, result.entry.mtime_ns)
                moved.add(result.image_id)
                report.moved += 1
                report.new -= 1
            else:
                writer.add(result)
            progress.advance()
        writer.flush()
    except KeyboardInterrupt:
        report.interrupted = True
        writer.flush()
    finally:
        progress.close()
    if not report.interrupted:
        stale = [s.image_id for s in gone if s.image_id not in moved]
        catalog.remove(stale)
        report.removed = len(stale)
    if embedder is not None and not report.interrupted:
        report.embedded += embed_missing(catalog=catalog, embedder=embedder, workers=workers, progress=progress)
    report.seconds = time.perf_counter() - started
    return report


def embed_missing(*, catalog: Catalog, embedder: Embedder, workers: int = 1, progress: Progress | None = None) -> int:
    """Embed every indexed image that has no vector of `embedder` yet (after enabling or
    changing an embedder, or an interrupted run). Returns how many were embedded."""
    missing = catalog.missing_vectors(embedder.name)
    if not missing:
        return 0
    progress = progress or Progress()
    progress.start(len(missing))
    done = 0
    paths = [p for _, p in missing]
    args = (catalog.settings.decode_side, embedder.input_size)
    batch: list[tuple[int, NDArray[np.uint8], NDArray[np.uint8] | None]] = []
    try:
        for (image_id, _), inputs in zip(missing, _run(embedding_views, paths, args, workers)):
            progress.advance()
            if inputs is not None:
                batch.append((image_id, *inputs))
            if len(batch) >= WRITE_BATCH:
                done, batch = done + _embed_views(catalog, embedder, batch), []
        done += _embed_views(catalog, embedder, batch)
    finally:
        progress.close()
    return done


def _embed_views(
    catalog: Catalog, embedder: Embedder, batch: list[tuple[int, NDArray[np.uint8], NDArray[np.uint8] | None]]
) -> int:
    """Embed and store (id, image, content box or None) triples, images and boxes in one
    transaction (`embed_missing` looks for images without a vector: one stored without its
    box's would never get it); returns how many images."""
    if not batch:
        return 0
    sets = {embedder.name: ([i for i, _, _ in batch], embedder.embed([p for _, p, _ in batch]))}
    boxed = [(i, b) for i, _, b in batch if b is not None]
    if boxed and embedder.name == catalog.settings.embedder:  # the views duplicates compares
        sets[box_view(embedder.name)] = ([i for i, _ in boxed], embedder.embed([b for _, b in boxed]))
    catalog.put_vector_sets(sets)
    return len(batch)


def _run(
    fn: Callable, items: list, args: tuple, workers: int, started: Callable | None = None, fork: bool = False
) -> Iterator:
    """fn(item, *args) for each item, in input order, by `workers` processes; at most a few
    chunks per worker in flight, so memory stays flat however many items there are.
    `started()` is called once the workers exist (or at once, without workers)."""
    if workers <= 1 or len(items) < 2:
        if started:
            started()
        for item in items:
            yield fn(item, *args)
        return
    chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    # fork is cheapest (workers inherit the imports) but only safe in a process whose thread
    # pools (OpenMP in FAISS, OpenCV, TensorFlow) never ran: a forked child can deadlock on
    # their locks. Elsewhere workers come from a clean forkserver that imports neardup once.
    if fork and "tensorflow" not in sys.modules:
        ctx = multiprocessing.get_context("fork")
    else:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(workers, ctx, _init_worker, (fn, args)) as pool:
        pending: deque[Future] = deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(_work, chunk))
                if started and len(pending) == 1:
                    started()  # with fork, every worker now exists
                if len(pending) >= 3 * workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


class _Writer:
    """Buffers records, embeds them in batches, and writes each batch in one transaction."""

    def __init__(self, catalog: Catalog, embedder: Embedder | None, report: IndexReport) -> None:
        self.catalog, self.embedder, self.report = catalog, embedder, report
        self.buffer: list[ImageRecord] = []
        self._warming: threading.Thread | None = None

    def warm_up(self) -> None:
        """Load the model in a thread while the workers decode the first files."""
        blank = np.zeros((self.embedder.input_size, self.embedder.input_size, 3), np.uint8)
        self._warming = threading.Thread(target=self.embedder.embed, args=([blank],), daemon=True)
        self._warming.start()

    def add(self, record: ImageRecord) -> None:
        if record.error:
            self.report.failed += 1
            self.report.failures.append((record.path, record.error))
        self.buffer.append(record)
        if len(self.buffer) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._warming is not None:  # never let two threads import TensorFlow at once
            self._warming.join()
            self._warming = None
        if not self.buffer:
            return
        if self.embedder is not None:
            ok = [r for r in self.buffer if not r.error]
            boxed = [r for r in ok if r.box_pixels is not None]  # type: ignore[attr-defined]
            if ok:
                name = self.embedder.name
                vectors = self.embedder.embed([r.pixels for r in ok] + [r.box_pixels for r in boxed])  # type: ignore[attr-defined]
                for r, v in zip(ok, vectors[: len(ok)]):
                    r.vectors[name] = v
                for r, v in zip(boxed, vectors[len(ok) :]):
                    r.vectors[box_view(name)] = v
                self.report.embedded += len(ok)
        for r in self.buffer:
            r.__dict__.pop("pixels", None)
            r.__dict__.pop("box_pixels", None)
        self.catalog.write(self.buffer)
        self.buffer = []
