"""Undo a clean-up run from its journal, and list the runs.

Undo walks a run's entries last to first and puts each acted-on file back (see `actions` for
what each action guarantees). It also settles entries a killed apply left half-recorded, so
undo after an interrupted apply restores everything that was done. It never overwrites: an
occupied original path is refused with its reason, the entry stays "done", and undoing the
run again retries it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from neardup.storage.errors import NeardupError
from neardup.storage.journal import (
    APPLIED, APPLYING, DONE, ENTRY_UNDONE, PARTLY_UNDONE, PLANNED, SKIPPED, UNDOING, UNDONE, Entry, Journal, Run,
)

from .actions import ACTIONS, Refused
from .apply import Skipped


class NothingToUndoError(NeardupError, ValueError):
    """No run is left to undo, or the run asked for is already undone."""


@dataclass(frozen=True)
class UndoReport:
    run_id: int
    restored: int
    bytes_restored: int
    skipped: tuple[Skipped, ...]
    complete: bool  # every action of the run is undone (or was never carried out)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    action: str
    status: str
    started_at: str
    finished_at: str | None
    undone_at: str | None
    done: int
    skipped: int
    undone: int
    bytes_done: int

    def to_dict(self) -> dict:
        return asdict(self)


def undo(*, journal: Journal, run_id: int | None = None) -> UndoReport:
    """Undo run `run_id`, by default the latest run not yet undone."""
    run = journal.run(run_id) if run_id is not None else _latest_undoable(journal)
    if run.status == UNDONE:
        raise NothingToUndoError(f"run {run.id} is already undone")
    journal.set_status(run.id, UNDOING)
    restored, restored_bytes, skipped = 0, 0, []
    for entry in reversed(journal.entries(run.id)):
        outcome = _undo_one(journal, entry)
        if isinstance(outcome, Skipped):
            skipped.append(outcome)
        elif outcome:
            restored, restored_bytes = restored + 1, restored_bytes + entry.size
    journal.set_status(run.id, PARTLY_UNDONE if skipped else UNDONE)
    return UndoReport(run.id, restored, restored_bytes, tuple(skipped), not skipped)


def history(journal: Journal) -> list[RunSummary]:
    """Every run, newest first, with how many files it acted on, skipped and undid."""
    return [_summary(run, journal.entries(run.id)) for run in journal.runs()]


def _latest_undoable(journal: Journal) -> Run:
    for run in journal.runs():
        if run.status in (APPLYING, APPLIED, UNDOING, PARTLY_UNDONE):
            return run
    raise NothingToUndoError("no clean-up run to undo")


def _undo_one(journal: Journal, entry: Entry) -> bool | Skipped:
    """Put one file back: True if restored, False if there was nothing to undo."""
    action = ACTIONS[entry.action]
    if entry.state == PLANNED:  # a killed apply: was this done or not?
        try:
            done = action.settled(entry)
        except Refused as refused:
            return _refuse(journal, entry, refused.reason)
        if done is None:
            journal.skip(entry.run_id, entry.seq, entry, "interrupted before it was carried out")
            return False
        journal.done(entry, destination=done.destination)
        entry = _with(entry, state=DONE, destination=done.destination)
    if entry.state != DONE:
        return False
    try:
        if not action.reverted(entry):
            action.revert(entry)
    except Refused as refused:
        return _refuse(journal, entry, refused.reason)
    except OSError as error:
        return _refuse(journal, entry, f"cannot restore: {error.strerror or error}")
    journal.undone(entry)
    return True


def _refuse(journal: Journal, entry: Entry, reason: str) -> Skipped:
    journal.refuse(entry, reason)
    return Skipped(entry.source, reason)


def _with(entry: Entry, **changes: object) -> Entry:
    return Entry(**{**asdict(entry), **changes})


def _summary(run: Run, entries: list[Entry]) -> RunSummary:
    def when(t: datetime | None) -> str | None:
        # SQLite gives back naive datetimes; the journal writes UTC
        return None if t is None else t.replace(tzinfo=t.tzinfo or timezone.utc).isoformat()

    states = [e.state for e in entries]
    return RunSummary(
        run.id, run.action, run.status, when(run.started_at) or "", when(run.finished_at), when(run.undone_at),
        done=states.count(DONE) + states.count(ENTRY_UNDONE), skipped=states.count(SKIPPED),
        undone=states.count(ENTRY_UNDONE), bytes_done=sum(e.size for e in entries if e.state in (DONE, ENTRY_UNDONE)),
    )
