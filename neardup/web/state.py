"""What one server holds between requests: the open collection, the turns its users take,
the cached duplicate groups, the plans made and the jobs started.

Requests run in a pool of threads. Searches only read the catalog, and `Collection.search`
may run in several threads at once, so searches share their turn: on two cores two of them
use both, where taking turns one by one left a core idle during each search's Python parts.
Everything that groups or writes (duplicates store pair evidence, clean-up moves files,
feedback writes rows) takes the collection alone. A waiting writer stops new searches from
starting, so a stream of searches cannot starve a clean-up. Reading a record or a thumbnail
needs no turn (the catalog's connections are pooled). An index job opens its own collection
in its own thread (see `api_jobs`).
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


class Turns:
    """Many readers at once, or one writer; writers that wait go before readers that arrive."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._writing and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._changed:
                self._readers -= 1
                self._changed.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._changed:
            self._writers_waiting += 1
            try:
                self._changed.wait_for(lambda: not self._writing and not self._readers)
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()


@dataclass
class ServerState:
    collection: Collection
    security: Security = field(default_factory=Security)
    workers: int | None = None  # decoding processes of index jobs (None: one per core)
    turns: Turns = field(default_factory=Turns)
    groups: GroupCache = field(default_factory=GroupCache)
    plans: PlanStore = field(default_factory=PlanStore)
    jobs: Jobs = field(default_factory=Jobs)
    # (catalog generation, images present then): kept between requests, not a constructor argument
    _present: tuple[str, int] = field(default=("", 0), init=False, repr=False)

    def present(self) -> tuple[str, int]:
        """(the catalog's generation, how many images it holds): counted once per generation.
        Counting scans every image row, seconds on a million-image catalog read cold, and
        `GET /api/health` is what a monitor polls."""
        catalog = self.collection.catalog
        generation = catalog.generation()
        if self._present[0] != generation:
            self._present = (generation, catalog.present())
        return self._present

    @contextmanager
    def turn(self) -> Iterator[Collection]:
        """The collection, alone, for as long as this thread groups or writes with it."""
        with self.turns.exclusive():
            yield self.collection

    @contextmanager
    def search_turn(self) -> Iterator[Collection]:
        """The collection, shared with other searches, for as long as this thread searches."""
        with self.turns.shared():
            yield self.collection


def state(request: Request) -> ServerState:
    """The server's state (a FastAPI dependency)."""
    return request.app.state.neardup
