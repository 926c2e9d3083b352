"""Background jobs of the server: long work (indexing a folder) in a thread of the server's
process, its progress readable at any time and streamable as it changes.

A job's work reports to a `JobProgress`, the pipeline's `Progress` sink: each `start(total)`
opens a stage (indexing reports decoding, then what older catalogs or a new embedder lack,
each stage with its `label`), `advance` counts.
Readers take `snapshot()`s, cheap immutable copies; `version` grows with every change, so a
stream sends only what changed. Work runs in a thread, never a forked process: forking a
process that runs threads can deadlock the child on locks another thread held.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from neardup.indexer.progress import Progress
from neardup.storage.errors import NeardupError

from .errors import ConflictError, NotFoundError

log = logging.getLogger("neardup.web")

RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass(frozen=True)
class JobSnapshot:
    """A job as it was at one moment. `percent` is of the current stage; 100 once done."""

    id: str
    kind: str
    state: str
    stage: int
    total: int
    done: int
    started_at: float
    finished_at: float | None
    version: int
    result: dict[str, Any] | None = None
    error: str | None = None
    description: str = ""
    label: str = ""  # what the current stage computes; "" for decoding new and changed files

    @property
    def percent(self) -> float:
        if self.state == DONE:
            return 100.0
        return round(100.0 * self.done / self.total, 1) if self.total else 0.0

    @property
    def finished(self) -> bool:
        return self.state != RUNNING

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "state": self.state, "description": self.description,
            "stage": self.stage, "label": self.label, "total": self.total, "done": self.done, "percent": self.percent,
            "started_at": self.started_at, "finished_at": self.finished_at, "result": self.result, "error": self.error,
        }


@dataclass
class Job(Progress):
    """One job's live state, written by its thread through the `Progress` interface."""

    id: str
    kind: str
    description: str = ""
    state: str = RUNNING
    stage: int = 0
    label: str = ""
    total: int = 0
    done: int = 0
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    version: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self, total: int, label: str = "") -> None:
        with self._lock:
            self.stage, self.label, self.total, self.done = self.stage + 1, label, total, 0
            self.version += 1

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            self.version += 1

    def finish(self, *, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        with self._lock:
            self.state = FAILED if error is not None else DONE
            self.result, self.error, self.finished_at = result, error, time.time()
            self.version += 1

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(self.id, self.kind, self.state, self.stage, self.total, self.done, self.started_at,
                               self.finished_at, self.version, self.result, self.error, self.description, self.label)


class Jobs:
    """The server's jobs by id. One job of a kind runs at a time: two index runs over one
    catalog would only queue on its write lock and report confusing progress."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, work: Callable[[Job], dict[str, Any]], *, description: str = "") -> JobSnapshot:
        """Run `work(job)` in a new thread; its return value becomes the job's result. A
        `NeardupError` fails the job with its message; anything else (a bug) too, logged."""
        with self._lock:
            running = [j for j in self._jobs.values() if j.kind == kind and j.state == RUNNING]
            if running:
                raise ConflictError(f"a {kind} job is already running: {running[0].id}",
                                    hint=f"follow it at /api/jobs/{running[0].id}")
            job = Job(uuid.uuid4().hex[:12], kind, description)
            self._jobs[job.id] = job
        threading.Thread(target=_run, args=(job, work), name=f"neardup-{kind}-{job.id}", daemon=True).start()
        return job.snapshot()

    def get(self, job_id: str) -> JobSnapshot:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job with id {job_id!r} (jobs live as long as the server)")
        return job.snapshot()

    def all(self) -> list[JobSnapshot]:
        """Every job, newest first."""
        return sorted((j.snapshot() for j in list(self._jobs.values())), key=lambda s: -s.started_at)


def _run(job: Job, work: Callable[[Job], dict[str, Any]]) -> None:
    try:
        result = work(job)
    except NeardupError as e:
        job.finish(error=f"{e}; {e.hint}" if e.hint else str(e))
    except Exception as e:  # a bug: the job says so, the log has the traceback
        log.exception("job %s (%s) failed", job.id, job.kind)
        job.finish(error=f"internal error ({type(e).__name__}); the server's log has the details")
    else:
        job.finish(result=result)
