"""What one server holds between requests: the open collection, the lock its users take turns
under, the cached duplicate groups, the plans made and the jobs started.

Requests run in a pool of threads. The collection's FAISS indexes and embedders are built
and cached on first use and are not safe to share between threads, so every use of the
collection that searches, groups or writes holds `lock`; a search takes ~0.2 s, so turns
are short. Reading a record or a thumbnail needs no turn (the catalog's connections are
pooled). An index job opens its own collection in its own thread (see `api_jobs`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fastapi import Request

from neardup.api import Collection

from .groups import GroupCache
from .jobs import Jobs
from .plans import PlanStore
from .security import Security


@dataclass
class ServerState:
    collection: Collection
    security: Security = field(default_factory=Security)
    workers: int | None = None  # decoding processes of index jobs (None: one per core)
    lock: threading.Lock = field(default_factory=threading.Lock)
    groups: GroupCache = field(default_factory=GroupCache)
    plans: PlanStore = field(default_factory=PlanStore)
    jobs: Jobs = field(default_factory=Jobs)

    @contextmanager
    def turn(self) -> Iterator[Collection]:
        """The collection, for as long as this thread may search, group or write with it."""
        with self.lock:
            yield self.collection


def state(request: Request) -> ServerState:
    """The server's state (a FastAPI dependency)."""
    return request.app.state.neardup
