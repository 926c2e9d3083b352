"""REST routes over the collection and its background jobs: what the catalog holds, start
indexing folders, follow a job (one read, or a server-sent-events stream of its progress)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

import neardup
from neardup.indexer.walk import canonical_root

from .jobs import Job, JobSnapshot
from .schemas import ERRORS, CollectionOut, FailureOut, IndexIn, JobOut
from .state import ServerState, state

router = APIRouter(prefix="/api", responses=ERRORS)

FAILURES_SHOWN = 100  # failed files listed in a finished job's result (the catalog keeps them all)
POLL = 0.25  # seconds between looks at a streamed job: progress reads as live, costs nothing
HEARTBEAT = 15.0  # seconds of silence after which a stream sends a comment (keeps proxies open)


@router.get("/collection", response_model=CollectionOut, tags=["collection"])
def collection(offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000),
               st: ServerState = Depends(state)) -> CollectionOut:
    """Counts, indexed folders, index freshness and a page of the files that failed, with why."""
    with st.turn() as c:
        s = c.stats()
        features = list(c.features())
    failures = [FailureOut(path=p, reason=r) for p, r in s.failures[offset : offset + limit]]
    return CollectionOut(path=s.path, counts=s.counts, roots=list(s.roots), features=features,
                         indexes=[asdict(ix) for ix in s.indexes], failures_total=len(s.failures),
                         failures=failures, offset=offset, limit=limit)


@router.post("/index", response_model=JobOut, status_code=202, tags=["collection"])
def index(body: IndexIn, st: ServerState = Depends(state)) -> JobOut:
    """Start indexing folders (or files) on the server's disk as a background job: new and
    changed images are added, vanished ones dropped, as `neardup index` does. Follow it at
    /api/jobs/{id} or its /events stream."""
    roots = [canonical_root(p) for p in body.paths]  # a missing path is a 422 now, not a failed job
    path = st.collection.path

    def work(job: Job) -> dict[str, Any]:
        # its own collection (own connections, indexes, embedders) in the job's thread;
        # workers start through a forkserver (fork=False): never fork a threaded server
        with neardup.open(path) as own:
            report = own.index(roots, workers=st.workers, progress=job, fork=False)
        result = asdict(report)
        result["failures"] = [{"path": p, "reason": r} for p, r in report.failures[:FAILURES_SHOWN]]
        return result

    return JobOut(**st.jobs.start("index", work, description=f"index {', '.join(roots)}").to_dict())


@router.get("/jobs", response_model=list[JobOut], tags=["collection"])
def jobs(st: ServerState = Depends(state)) -> list[JobOut]:
    """Every job of this server, newest first."""
    return [JobOut(**j.to_dict()) for j in st.jobs.all()]


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["collection"])
def job(job_id: str, st: ServerState = Depends(state)) -> JobOut:
    """A job's state and progress; its result (the index report) once done."""
    return JobOut(**st.jobs.get(job_id).to_dict())


@router.get("/jobs/{job_id}/events", tags=["collection"],
            responses={200: {"content": {"text/event-stream": {}}, "description": "progress events"}})
def job_events(job_id: str, request: Request, st: ServerState = Depends(state)) -> StreamingResponse:
    """Server-sent events: a `progress` event with the job (as GET /api/jobs/{id}) whenever it
    changes, then one `end` event when it is done or failed."""
    first = st.jobs.get(job_id)  # an unknown id is a 404 before the stream starts
    return StreamingResponse(_events(first, st, request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(first: JobSnapshot, st: ServerState, request: Request) -> AsyncIterator[str]:
    seen, quiet = -1, 0.0
    snapshot = first
    while True:
        if snapshot.version != seen:
            seen, quiet = snapshot.version, 0.0
            yield _event("end" if snapshot.finished else "progress", snapshot)
            if snapshot.finished:
                return
        elif quiet >= HEARTBEAT:
            quiet = 0.0
            yield ": still running\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL)
        quiet += POLL
        snapshot = st.jobs.get(first.id)


def _event(name: str, snapshot: JobSnapshot) -> str:
    return f"event: {name}\ndata: {json.dumps(snapshot.to_dict())}\n\n"
