"""Stored duplicate groups (storage.decisions): `duplicates` over an unchanged catalog reads the
groups an earlier run decided; a change to the catalog, to the options or to the deciding code
decides again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

import neardup
from neardup.search import duplicates as deciding

from conftest import make_collection
from test_cli import run


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    make_collection(tmp_path / "photos")
    return tmp_path / "photos"


@pytest.fixture
def cat(tmp_path: Path, photos: Path):
    collection = neardup.open(tmp_path / "cat.db", create=True, embedder="none")
    collection.index([photos], workers=1)
    yield collection
    collection.close()


def _sql(cat: neardup.Collection, *statements: str) -> list[tuple]:
    """Run statements on the catalog file as another program would (the generation unchanged);
    the last one's rows."""
    db = sqlite3.connect(cat.catalog.path)
    with db:
        rows = [db.execute(s).fetchall() for s in statements][-1]
    db.close()
    return rows


def _together(found, *names: str) -> bool:
    return any(set(names) <= {Path(m).name for m in g.members} for g in found.groups)


def test_an_unchanged_catalog_reads_the_groups_without_its_evidence(cat) -> None:
    first = cat.duplicate_report()
    assert not first.evidence.decided and first.evidence.computed > 0
    assert _together(first, "coffee.jpg", "coffee_half.jpg", "coffee_bright.png")
    # without the pair evidence, only stored groups can give the groups with nothing computed
    _sql(cat, "DELETE FROM evidence_segments", "DELETE FROM evidence_sets")
    second = cat.duplicate_report()
    assert second.evidence.decided and second.evidence.computed == 0
    assert second.evidence.reused == first.evidence.stored > 0
    assert second.groups == first.groups  # members, keepers, reasons, image records


def test_a_change_to_the_catalog_decides_again(cat, photos) -> None:
    cat.duplicate_report()
    cat.not_duplicate(photos / "coffee.jpg", photos / "edits" / "coffee_half.jpg")
    after = cat.duplicate_report()
    assert not after.evidence.decided and after.evidence.computed == 0  # the evidence still stands
    assert not _together(after, "coffee.jpg", "coffee_half.jpg")
    assert cat.duplicate_report().evidence.decided


@pytest.mark.parametrize("options", [{"strict": True}, {"threshold": 0.6}, {"prefer": ["photos/edits"]}],
                         ids=["strict", "threshold", "prefer"])
def test_other_options_decide_again_and_keep_both_decisions(cat, tmp_path, options) -> None:
    if "prefer" in options:
        options = {"prefer": [str(tmp_path / p) for p in options["prefer"]]}
    plain = cat.duplicate_report()
    other = cat.duplicate_report(**options)
    assert not other.evidence.decided
    assert _sql(cat, "SELECT count(*) FROM decisions") == [(2,)]
    assert cat.duplicate_report().evidence.decided and cat.duplicate_report(**options).evidence.decided
    if "prefer" in options:  # the stored groups of the plain run did not answer this one
        keepers = [{g.keeper for g in found.groups if any(m.endswith("/coffee.jpg") for m in g.members)}
                   for found in (plain, other)]
        assert [Path(k).parent.name for (k,) in keepers] == ["photos", "edits"]


def test_a_hash_feature_stores_its_groups_too(cat) -> None:
    first = cat.duplicate_report(by="pdq")
    assert first.evidence is None and _together(first, "coffee.jpg", "coffee_half.jpg")
    assert _sql(cat, "SELECT count(*) FROM decisions") == [(1,)]
    _sql(cat, "DELETE FROM hashes WHERE algo = 'pdq'")  # only stored groups can still give them
    assert cat.duplicate_report(by="pdq").groups == first.groups


def test_other_deciding_code_decides_again(cat, monkeypatch) -> None:
    cat.duplicate_report()
    monkeypatch.setattr(deciding, "_CODE", "a changed keeper rule")
    assert not cat.duplicate_report().evidence.decided
    assert _sql(cat, "SELECT count(*) FROM decisions") == [(2,)]  # same generation: both kept


def test_a_readonly_catalog_reads_stored_groups(cat) -> None:
    first = cat.duplicate_report()
    path = cat.catalog.path
    cat.close()
    with neardup.open(path, readonly=True) as readonly:
        again = readonly.duplicate_report()
    assert again.evidence.decided and again.groups == first.groups


def test_the_cli_says_it_read_the_stored_groups(cat) -> None:
    path = str(cat.catalog.path)
    cat.close()
    first, second = (run("duplicates", "--db", path, "--format", "json") for _ in range(2))
    assert "reused the stored groups" not in first.stderr and "reused the stored groups" in second.stderr
    assert first.stdout == second.stdout


def test_a_decision_of_a_generation_gone_by_is_not_stored(cat, photos) -> None:
    """A run that began before another process changed the catalog stores nothing, and the
    decisions of the current generation stay."""
    from neardup.storage.decisions import DecisionStore

    before = cat.catalog.generation()
    cat.not_duplicate(photos / "coffee.jpg", photos / "edits" / "coffee_half.jpg")
    cat.duplicate_report()
    current = _sql(cat, "SELECT key, generation FROM decisions")
    DecisionStore(cat.catalog, {"a run": "that began earlier"}).write(before, {"members": np.zeros(0, np.int64)})
    assert _sql(cat, "SELECT key, generation FROM decisions") == current != []
