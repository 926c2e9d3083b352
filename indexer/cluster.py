"""Distributed indexing: the pipeline's extraction and embedding on the workers of a Dask cluster.

`neardup index --cluster tcp://scheduler:8786` uses a running cluster; `--cluster local:N`
starts a `LocalCluster` of N worker processes on this machine. The client walks and
classifies as always (`pipeline.index_paths`); the files to process go to the workers in
batches, each task reading, hashing and decoding its files (`extract.extract`) and embedding
them with the catalog's embedders; only the records travel back, and the client writes them
to the catalog in transactions, as a local run does.

- Workers read the files themselves, at the paths the client found: every worker must see
  the collection at the same path (one network mount, mounted at the same place everywhere).
- The embedders travel once per run, in a worker plugin that each worker keeps: the CNN loads
  on a worker's first batch and serves all its later ones.
- The client holds a future per batch until its records are written, so a worker that dies
  mid-batch loses nothing: the scheduler runs the batch again on another worker.
- Results are taken as they complete (the progress bar follows the futures); Ctrl-C cancels
  the batches not yet done, and the pipeline writes what had arrived.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import signal
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

from neardup.storage.errors import NeardupError

from .embed import Embedder
from .extract import Extracted, Moved
from .walk import FileEntry
from .workers import WorkerDiedError

BATCH = 16  # files per task: a few seconds of a worker's time, small enough to retry cheaply
IN_FLIGHT = 3  # batches queued per worker: none idles while the client writes
_LOCAL = re.compile(r"local:(\d+)")


class ClusterError(NeardupError):
    """The cluster asked for cannot be used: a bad --cluster value, or no scheduler there."""


class Cluster:
    """A Dask client, on a scheduler it connected to or on a `LocalCluster` it started."""

    def __init__(self, client, local=None, *, batch: int = BATCH) -> None:
        self.client, self._local, self.batch = client, local, batch

    @classmethod
    def connect(cls, spec: str, *, batch: int = BATCH, timeout: float = 20.0) -> Cluster:
        """"local:N" (N worker processes here) or a scheduler's address ("tcp://host:8786"),
        given `timeout` seconds to answer."""
        if importlib.util.find_spec("distributed") is None:
            raise ClusterError("indexing on a Dask cluster needs dask.distributed, which is not installed",
                               hint="pip install 'neardup[cluster]'")
        from distributed import Client, LocalCluster

        if local := _LOCAL.fullmatch(spec):
            if int(local[1]) < 1:
                raise ClusterError(f"--cluster {spec}: a local cluster needs at least 1 worker")
            # its workers log only CRITICAL: what a run must say reaches the client anyway (a
            # failed batch as WorkerDiedError, a bad file as a failure), while closing the cluster
            # races the workers' heartbeats, which then log tracebacks that mean nothing
            with _sigint_ignored():
                cluster = LocalCluster(n_workers=int(local[1]), threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.CRITICAL)
            return cls(Client(cluster), cluster, batch=batch)
        if "://" not in spec:
            raise ClusterError(f"--cluster {spec!r} is neither local:N nor a scheduler address",
                               hint="e.g. --cluster tcp://scheduler:8786 or --cluster local:4")
        try:
            return cls(Client(spec, timeout=timeout), batch=batch)
        except OSError as error:  # includes timeouts
            raise ClusterError(f"cannot reach the Dask scheduler at {spec} ({error})",
                               hint="start one with: dask scheduler; and workers with: dask worker " + spec) from error

    def workers(self) -> int:
        return len(self.client.scheduler_info()["workers"])

    def extract(self, entries: Sequence[FileEntry], args: tuple, embedders: Sequence[Embedder]) -> Iterator[Extracted | Moved]:
        """`extract.extract(entry, *args)` of every entry, embedded by `embedders`, in the order
        their batches complete (pixels are dropped on the worker once embedded)."""
        if not entries:
            return
        from distributed import as_completed

        from .dask_tasks import Embedders

        plugin = f"neardup-embedders-{uuid.uuid4().hex}"
        self.client.register_plugin(Embedders(list(embedders)), name=plugin)
        batches = iter([list(entries[i : i + self.batch]) for i in range(0, len(entries), self.batch)])
        window = max(1, self.workers()) * IN_FLIGHT
        # args travel with each task, not scattered: scattered data dies with the workers
        # holding it, while a task's own arguments stay with the scheduler until it is done
        running = as_completed([self._submit(b, args, plugin) for b in _take(batches, window)])
        try:
            for future in running:
                results = _result(future)
                future.release()
                for batch in _take(batches, 1):
                    running.add(self._submit(batch, args, plugin))
                yield from results
        except BaseException:
            self.client.cancel(list(running.futures))
            raise
        finally:
            with suppress(OSError):  # the scheduler may be gone: nothing to unregister then
                self.client.unregister_worker_plugin(plugin)

    def _submit(self, batch: list[FileEntry], args: tuple, plugin: str):
        from .dask_tasks import extract_batch

        return self.client.submit(extract_batch, batch, args, plugin, pure=False)

    def close(self) -> None:
        self.client.close()
        if self._local is not None:
            self._local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _result(future) -> list[Extracted | Moved]:
    """A finished batch's records; a cluster that failed it says so as `WorkerDiedError`
    (the pipeline writes what it had, and the next run continues)."""
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    try:
        return future.result()
    except KilledWorker as error:
        raise WorkerDiedError("a batch killed every Dask worker that ran it; what was done is saved",
                              hint="look at the workers' logs (out of memory?), then run again") from error
    except FutureCancelledError as error:
        raise WorkerDiedError("the Dask cluster dropped a batch (its scheduler went away?); what was done is saved",
                              hint="run the same command again when the cluster is back") from error


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Start a local cluster's processes with Ctrl-C ignored (they inherit it, and keep it
    across exec): Ctrl-C is the client's to handle, which cancels the batches and closes the
    cluster, rather than every worker's to die of with a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _take(items: Iterator, n: int) -> list:
    return [batch for _, batch in zip(range(n), items)]
