"""The clean-up journal (`storage.journal`): runs, entries and the catalog rows they mark, in a
catalog file and a PostgreSQL catalog alike."""

from __future__ import annotations

from pathlib import Path

import pytest

import neardup
from neardup.storage.catalog import ImageRecord
from neardup.storage.journal import APPLIED, DONE, PLANNED, SKIPPED, Intent, Journal, UnknownRunError


@pytest.fixture
def cat(tmp_path: Path, catalog_location: str):
    with neardup.open(catalog_location, create=True, embedder="none") as cat:
        cat.catalog.write([ImageRecord(path=str(tmp_path / "a.jpg"), size=3, mtime_ns=0, sha256="a" * 64)])
        yield cat


def journal_of(cat: neardup.Collection) -> Journal:
    """The one place these tests reach the catalog's engine (to become a public property)."""
    return Journal(cat.catalog)


def intent(cat: neardup.Collection, action: str = "trash") -> Intent:
    source = next(iter(cat.catalog.file_states()))
    return Intent(group_no=0, action=action, source=source, keeper="/k.jpg", sha256="a" * 64, size=3,
                  keeper_sha256="a" * 64)


def status(cat: neardup.Collection) -> str:
    return next(iter(cat.catalog.file_states().values())).status


@pytest.mark.parametrize("action, marked", [("trash", "trashed"), ("move", "moved"), ("hardlink", "linked"),
                                            ("symlink", "linked"), ("delete", "deleted")])
def test_an_entry_goes_planned_done_undone_and_marks_its_image(cat, action, marked) -> None:
    journal = journal_of(cat)
    run, resumed = journal.resume_or_start(action, "d" * 64)
    entry = journal.intend(run.id, 0, intent(cat, action))
    assert (resumed, entry.state, status(cat)) == (False, PLANNED, "ok")
    generation = cat.catalog.generation()
    journal.done(entry, destination="/somewhere")
    assert [(e.state, e.destination) for e in journal.entries(run.id)] == [(DONE, "/somewhere")]
    assert status(cat) == marked and cat.catalog.generation() != generation
    journal.undone(journal.entries(run.id)[0])
    assert journal.entries(run.id)[0].state == "undone" and status(cat) == "ok"


def test_a_plan_applied_again_resumes_its_run_until_it_is_undone(cat) -> None:
    journal = journal_of(cat)
    first, _ = journal.resume_or_start("trash", "d" * 64)
    journal.set_status(first.id, APPLIED)
    again, resumed = journal.resume_or_start("trash", "d" * 64)
    assert (again.id, resumed) == (first.id, True)
    journal.set_status(first.id, "undone")
    fresh, resumed = journal.resume_or_start("trash", "d" * 64)
    assert fresh.id != first.id and not resumed
    assert [r.id for r in journal.runs()] == [fresh.id, first.id]


def test_a_skipped_entry_keeps_its_reason_and_a_replan_overwrites_it(cat) -> None:
    journal = journal_of(cat)
    run, _ = journal.resume_or_start("trash", "d" * 64)
    journal.skip(run.id, 0, intent(cat), "content changed since planning")
    assert [(e.state, e.reason) for e in journal.entries(run.id)] == [(SKIPPED, "content changed since planning")]
    journal.intend(run.id, 0, intent(cat))
    assert [(e.state, e.reason) for e in journal.entries(run.id)] == [(PLANNED, None)]
    assert status(cat) == "ok"


def test_the_journal_lives_in_the_catalog_and_its_recovery_folder_beside_it(cat, tmp_path, neardup_data) -> None:
    """Beside a catalog file; in this machine's data folder, keyed by identity, for a server's."""
    journal = journal_of(cat)
    run, _ = journal.resume_or_start("move", "d" * 64)
    cat.close()
    reopened = neardup.open(cat.path if cat.catalog.url is None else cat.catalog.url.render_as_string(False))
    assert journal_of(reopened).run(run.id).action == "move"
    assert journal.recovery_dir == (tmp_path / "cat.recovery" if cat.catalog.url is None else
                                    neardup_data / "catalogs" / cat.catalog.identity / "catalog.recovery")
    with pytest.raises(UnknownRunError):
        journal_of(reopened).run(run.id + 1)
