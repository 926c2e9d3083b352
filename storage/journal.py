"""The clean-up journal: every run of `neardup clean` and every file action it takes, in the
catalog, written before (intent) and after (done) the action, so that a killed run can be
finished or undone from what the journal says.

An entry moves planned -> done -> undone, or planned -> skipped (with its reason). A crash
leaves at most one entry per run in "planned" whose file may or may not have been acted on;
the clean engine settles it by looking at the file. Marking the catalog's image row (status
"trashed", "moved", …, and "ok" again on undo) happens in the transaction that marks the
entry, so the catalog and the journal never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from .errors import NeardupError
from .models import (
    APPLIED, APPLYING, DONE, ENTRY_UNDONE, IMAGE_STATUS, PARTLY_UNDONE, PLANNED, SKIPPED, UNDONE, UNDOING,
    CleanEntry, CleanRun, Image, utcnow,
)

if TYPE_CHECKING:
    from .catalog import Catalog

__all__ = ["APPLIED", "APPLYING", "DONE", "ENTRY_UNDONE", "IMAGE_STATUS", "PARTLY_UNDONE", "PLANNED", "SKIPPED",
           "UNDONE", "UNDOING", "Entry", "Intent", "Journal", "Run", "UnknownRunError"]


class UnknownRunError(NeardupError, ValueError):
    """No clean-up run with the given id is in the journal."""


@dataclass(frozen=True)
class Intent:
    """What one action is about to do, as the journal records it before doing it."""

    group_no: int
    action: str
    source: str
    keeper: str
    sha256: str
    size: int
    keeper_sha256: str | None
    destination: str | None = None
    recovery: str | None = None
    mtime_ns: int | None = None
    mode: int | None = None


@dataclass(frozen=True)
class Entry(Intent):
    """A journal entry as read back: the intent plus its identity and state."""

    id: int = 0
    run_id: int = 0
    seq: int = 0
    state: str = PLANNED
    reason: str | None = None


@dataclass(frozen=True)
class Run:
    id: int
    action: str
    plan_digest: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    undone_at: datetime | None


_INTENT = [f.name for f in fields(Intent)]
_ENTRY = [f.name for f in fields(Entry)]


class Journal:
    """Data access to the journal tables of one catalog, in the catalog's transactions (a
    write that marks an image row also replaces the catalog's generation)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._read, self._write = catalog.session, catalog.transaction

    @property
    def catalog_id(self) -> str:
        return self.catalog.identity

    @property
    def recovery_dir(self) -> Path:
        """Beside the catalog (photos.db -> photos.recovery/): bytes replaced by near-copy links."""
        return self.catalog.sibling("recovery")

    # -- runs --------------------------------------------------------------------------------
    def resume_or_start(self, action: str, plan_digest: str) -> tuple[Run, bool]:
        """The latest run of this plan that was not undone (to finish it), else a new run;
        and whether it was resumed."""
        q = (select(CleanRun).where(CleanRun.plan_digest == plan_digest, CleanRun.status.in_([APPLYING, APPLIED]))
             .order_by(CleanRun.id.desc()).limit(1))
        with self._write() as s:
            row = s.execute(q).scalar_one_or_none()
            resumed = row is not None
            if row is None:
                row = CleanRun(action=action, plan_digest=plan_digest, status=APPLYING)
                s.add(row)
            else:
                row.status, row.finished_at = APPLYING, None
            s.flush()
            return _run(row), resumed

    def set_status(self, run_id: int, status: str) -> None:
        now = utcnow()
        stamp = {APPLIED: {"finished_at": now}, UNDONE: {"undone_at": now}}.get(status, {})
        with self._write() as s:
            s.execute(update(CleanRun).where(CleanRun.id == run_id).values(status=status, **stamp))

    def run(self, run_id: int) -> Run:
        with self._read() as s:
            row = s.get(CleanRun, run_id)
            if row is None:
                raise UnknownRunError(f"no clean-up run {run_id} in the journal")
            return _run(row)

    def runs(self) -> list[Run]:
        """All runs, newest first."""
        with self._read() as s:
            return [_run(r) for r in s.execute(select(CleanRun).order_by(CleanRun.id.desc())).scalars()]

    # -- entries -----------------------------------------------------------------------------
    def entries(self, run_id: int) -> list[Entry]:
        """A run's entries in plan order."""
        q = select(CleanEntry).where(CleanEntry.run_id == run_id).order_by(CleanEntry.seq)
        with self._read() as s:
            return [_entry(r) for r in s.execute(q).scalars()]

    def intend(self, run_id: int, seq: int, intent: Intent) -> Entry:
        """Record, and commit, that the action is about to happen."""
        values = {k: getattr(intent, k) for k in _INTENT}
        return self._put(run_id, seq, state=PLANNED, reason=None, planned_at=utcnow(), done_at=None, **values)

    def skip(self, run_id: int, seq: int, intent: Intent, reason: str) -> Entry:
        values = {k: getattr(intent, k) for k in _INTENT}
        return self._put(run_id, seq, state=SKIPPED, reason=reason, planned_at=utcnow(), **values)

    def done(self, entry: Entry, *, destination: str | None) -> None:
        """The action happened: mark the entry and its catalog image in one transaction."""
        with self._write() as s:
            s.execute(update(CleanEntry).where(CleanEntry.id == entry.id)
                      .values(state=DONE, destination=destination, reason=None, done_at=utcnow()))
            s.execute(update(Image).where(Image.path == entry.source).values(status=IMAGE_STATUS[entry.action]))

    def undone(self, entry: Entry) -> None:
        """The action was reverted: the entry and its image row ("ok" again) in one transaction."""
        with self._write() as s:
            s.execute(update(CleanEntry).where(CleanEntry.id == entry.id)
                      .values(state=ENTRY_UNDONE, reason=None, undone_at=utcnow()))
            s.execute(update(Image).where(Image.path == entry.source, Image.status == IMAGE_STATUS[entry.action])
                      .values(status="ok"))

    def refuse(self, entry: Entry, reason: str) -> None:
        """An entry could not be settled or undone: it keeps its state, with the reason."""
        with self._write() as s:
            s.execute(update(CleanEntry).where(CleanEntry.id == entry.id).values(reason=reason))

    def _put(self, run_id: int, seq: int, **values: object) -> Entry:
        """Insert or overwrite the entry (run_id, seq): a re-apply re-plans what is not done."""
        with self._write() as s:
            q = select(CleanEntry).where(CleanEntry.run_id == run_id, CleanEntry.seq == seq)
            row = s.execute(q).scalar_one_or_none()
            if row is None:
                row = CleanEntry(run_id=run_id, seq=seq)
                s.add(row)
            for key, value in values.items():
                setattr(row, key, value)
            s.flush()
            return _entry(row)


def _run(row: CleanRun) -> Run:
    return Run(row.id, row.action, row.plan_digest, row.status, row.started_at, row.finished_at, row.undone_at)


def _entry(row: CleanEntry) -> Entry:
    return Entry(**{k: getattr(row, k) for k in _ENTRY})
