"""Worker processes: `fn(item, *args)` over many items, in input order, with flat memory.

The pool starts once per call and keeps at most a few chunks per worker in flight, so memory
stays flat however many items there are. Each worker runs OpenCV single-threaded: there is
already one process per core, and OpenCV's own threads would contend with them. On Linux a
worker is killed when the process that started it dies (by any signal, even SIGKILL), so no
worker outlives a run holding the catalog or the caller's pipe open.

A started (not forked) worker does not run the caller's script again, as multiprocessing
would: everything a worker runs is imported from neardup, so a script calling neardup with
several workers needs no `if __name__ == "__main__":` guard (without one, each worker re-ran
the script, started its own pool and died).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

import cv2

from neardup.storage.errors import NeardupError

CHUNK = 8  # items per task: amortises the inter-process round trip
_PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


class WorkerDiedError(NeardupError):
    """A worker process died mid-task: killed from outside, or by the system (out of memory)."""
IN_FLIGHT = 3  # tasks queued per worker
_POLL = 0.5  # seconds between looks at the workers while a result is awaited
_NOTICE = 5.0  # seconds the pool is given to notice a dead worker itself

def cores() -> int:
    """The cores this process may run on: the default number of workers."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_served: set[int] = set()  # the processes (by pid: not a forked child) whose workers' server is up


def warm(workers: int) -> None:
    """Start the server that starts `parallel_map`'s workers now (when there will be more
    than one), for a caller with work of its own to do before it maps: the server imports
    neardup on another core meanwhile, instead of while the caller waits for its first
    worker. Once per process: the server serves every later pool."""
    if workers > 1:
        _server()
        multiprocessing.forkserver.ensure_running()  # (it runs no script: __main__ is not preloaded)


def _server() -> _ForkServer:
    """The context whose server starts the workers: it imports this module (so neardup) once."""
    context = _ForkServer()
    context.set_forkserver_preload([__name__])
    _served.add(os.getpid())
    return context


def warmed() -> bool:
    """Whether this process started the workers' server (`warm`, or a pool): a pool then
    starts its workers by forking them, without waiting for the server's imports."""
    return os.getpid() in _served


def parallel_map(
    fn: Callable, items: Sequence, args: tuple = (), *, workers: int = 1,
    started: Callable[[], None] | None = None, fork: bool = False, chunk: int = CHUNK,
) -> Iterator:
    """fn(item, *args) for each item, in input order, by `workers` processes (in this process
    when `workers` is 1 or there is one item), `chunk` items a task. `started()` is called
    once the workers exist.

    `fork=True` forks the workers (instant start) and is only for a process that has not run
    FAISS, OpenCV or TensorFlow code yet, such as the CLI: a forked child can deadlock on the
    locks of thread pools (OpenMP, TensorFlow) its parent ran. Otherwise a forkserver that
    imports neardup once starts them.
    """
    if workers <= 1 or len(items) < 2:
        if started:
            started()
        for item in items:
            yield fn(item, *args)
        return
    if fork and "tensorflow" not in sys.modules:
        context = multiprocessing.get_context("fork")
    else:
        context = _server()
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    with ProcessPoolExecutor(workers, context, initializer=_start) as pool:
        pending: deque[Future] = deque()
        try:
            for chunk in chunks:
                with _signals_held():
                    pending.append(pool.submit(_run, fn, chunk, args))
                if started and len(pending) == 1:
                    started()
                if len(pending) >= IN_FLIGHT * workers:
                    yield from _result(pool, pending.popleft())
            while pending:
                yield from _result(pool, pending.popleft())
        except BrokenProcessPool as error:
            pool.shutdown(wait=False, cancel_futures=True)
            raise WorkerDiedError("a worker process died (killed, or out of memory); what was done is saved",
                                  hint="run the same command again to continue") from error
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


_HELD = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP arriving inside are handled as it ends. A submit may start
    the workers and then the pool's thread that will one day send them their stop signal; an
    interrupt raised between the two (the CLI's handlers raise KeyboardInterrupt) left workers
    no one would stop, and the interpreter waited for them at exit forever (seen: `neardup
    index … | cat` hung after SIGTERM in 2 of 31 runs under load; docs/RELIABILITY.md). Python
    runs signal handlers in the main thread only, so elsewhere (a web job) nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[tuple[int, object]] = []
    # a handler set outside Python (None) could not be put back: such a signal is left alone
    saved = {number: signal.signal(number, lambda n, frame: arrived.append((n, frame)))
             for number in _HELD if signal.getsignal(number) is not None}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
        for number, frame in arrived:
            handler = saved[number]
            if callable(handler):
                handler(number, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(number)


def _result(pool: ProcessPoolExecutor, future: Future) -> list:
    """`future.result()`, watching the workers. A worker killed while it wrote a result leaves
    part of a message in the pool's result pipe, which the pool's manager thread then waits on
    forever (and one killed holding the pipe's lock blocks the others): CPython's pool hangs
    instead of breaking (seen here: `neardup index` with a worker killed, about once in ten
    runs under load). A worker dead for _NOTICE seconds while the pool still runs has the
    others killed and the parent's end of the pipe closed: the manager thread reads an end of
    file and breaks the pool, and `result()` raises BrokenProcessPool."""
    dead_since = None
    while True:
        try:
            return future.result(timeout=_POLL)
        except TimeoutError:
            processes = list((pool._processes or {}).values())  # noqa: SLF001 (no public view of the workers)
            if not any(p.exitcode is not None for p in processes):
                continue
            dead_since = dead_since or time.monotonic()
            if time.monotonic() - dead_since >= _NOTICE:
                for process in processes:
                    process.kill()
                pool._result_queue._writer.close()  # noqa: SLF001 (the pipe the manager thread reads)
                dead_since = float("inf")  # once


def _start() -> None:
    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle, once
    for name in ("SIGTERM", "SIGHUP"):  # a forked worker inherits its parent's handlers
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _run(fn: Callable, items: list, args: tuple) -> list:
    return [fn(item, *args) for item in items]


class _Started(multiprocessing.context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj):  # noqa: N802 (multiprocessing's name)
        with _script_hidden():  # what the worker is told to prepare is read as it starts
            return multiprocessing.context.ForkServerProcess._Popen(process_obj)


class _ForkServer(multiprocessing.context.ForkServerContext):
    """multiprocessing's forkserver context, whose workers do not re-run the caller's script."""

    Process = _Started


@contextmanager
def _script_hidden() -> Iterator[None]:
    """The main module without the file or module name multiprocessing would have a started
    worker run again (as `__mp_main__`) before its first task."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)
