"""Stored reports (storage.rendered): `duplicates` on an unchanged catalog gives the text it
wrote last time as it is; a change to the catalog or to the options, a damaged file, or an HTML
page (its thumbnails come from the files) writes it again."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

import neardup
from neardup.search import report as reporting

from conftest import make_collection
from test_cli import EXE, run

STORED = "reused the stored groups and their report"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    make_collection(tmp_path / "photos")
    return tmp_path / "photos"


@pytest.fixture
def db(tmp_path: Path, photos: Path) -> Path:
    with neardup.open(tmp_path / "cat.db", create=True, embedder="none") as collection:
        collection.index([photos], workers=1)
    return tmp_path / "cat.db"


def _stored(db: Path) -> list[str]:
    folder = db.with_name(f"{db.stem}.reports")
    return sorted(p.suffix for p in folder.iterdir()) if folder.exists() else []


def _forget_decisions(db: Path) -> None:
    """Drop the stored groups as another program would (the generation unchanged): only a
    stored report can then answer without deciding again."""
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM decisions")


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_an_unchanged_catalog_gives_the_stored_text(db, fmt) -> None:
    first = run("duplicates", "--db", db, "--format", fmt)
    assert STORED not in first.stderr and "coffee_half.jpg" in first.stdout
    assert _stored(db) == [f".{fmt}"]
    _forget_decisions(db)
    second = run("duplicates", "--db", db, "--format", fmt)
    assert STORED in second.stderr and second.stdout == first.stdout


def test_an_output_file_gets_the_same_bytes_and_says_how_many_groups(db, tmp_path) -> None:
    first = run("duplicates", "--db", db, "--format", "json", "-o", tmp_path / "a.json")
    _forget_decisions(db)
    second = run("duplicates", "--db", db, "--format", "json", "-o", tmp_path / "b.json")
    assert STORED in second.stderr
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    groups = len(json.loads((tmp_path / "a.json").read_text()))
    assert f"{groups} groups written" in first.stderr and f"{groups} groups written" in second.stderr


def test_an_html_page_is_made_again_each_time(db) -> None:
    run("duplicates", "--db", db, "--format", "html")
    assert _stored(db) == []
    assert STORED not in run("duplicates", "--db", db, "--format", "html").stderr


def test_a_change_to_the_catalog_writes_it_again_and_drops_the_stale_text(db, photos) -> None:
    with neardup.open(db) as cat:
        first = cat.duplicate_text("csv")
        cat.duplicate_text("json")
        assert _stored(db) == [".csv", ".json"]
        cat.not_duplicate(photos / "coffee.jpg", photos / "edits" / "coffee_half.jpg")
        after = cat.duplicate_text("csv")
        assert not after.evidence.written and after.text != first.text
        assert _stored(db) == [".csv"]  # the JSON of the generation gone by is dropped
        assert cat.duplicate_text("csv").evidence.written


def test_other_options_have_their_own_text(db, photos) -> None:
    with neardup.open(db) as cat:
        plain = cat.duplicate_text("json")
        edits = cat.duplicate_text("json", prefer=[photos / "edits"])  # their keepers differ
        assert not edits.evidence.written and edits.text != plain.text
        assert cat.duplicate_text("json").text == plain.text and cat.duplicate_text("json").evidence.written
        again = cat.duplicate_text("json", prefer=[photos / "edits"])
        assert again.evidence.written and again.text == edits.text


@pytest.mark.parametrize("where", ["text", "count"])
def test_a_damaged_stored_text_is_written_again(db, where) -> None:
    with neardup.open(db) as cat:
        first = cat.duplicate_text("json")
    (stored,) = db.with_name(f"{db.stem}.reports").iterdir()
    data = bytearray(stored.read_bytes())
    if where == "text":
        data[-10] ^= 0x01  # a byte of the text, past its first line
    else:  # the number of groups on the first line, still valid JSON
        data = data.replace(f'"groups": {first.groups}'.encode(), f'"groups": {first.groups + 1}'.encode(), 1)
    stored.write_bytes(bytes(data))
    _forget_decisions(db)
    with neardup.open(db) as cat:
        again = cat.duplicate_text("json")
        assert not again.evidence.written and again.text == first.text
        assert cat.duplicate_text("json").evidence.written  # stored whole again


def test_a_text_decided_while_the_catalog_changed_is_not_stored(db, photos, monkeypatch) -> None:
    """A run that another write overtook gives its text, but does not store it under the
    generation it began at."""
    deciding = reporting.duplicates

    def overtaken(*, catalog, **options):
        found = deciding(catalog=catalog, **options)
        with neardup.open(db) as other:
            other.not_duplicate(photos / "coffee.jpg", photos / "edits" / "coffee_half.jpg")
        return found

    with neardup.open(db) as cat:
        monkeypatch.setattr(reporting, "duplicates", overtaken)
        cat.duplicate_text("json")
        assert _stored(db) == []


def test_a_folder_that_cannot_be_made_still_gives_the_text(db) -> None:
    db.with_name(f"{db.stem}.reports").write_text("a file where the folder goes")
    first = run("duplicates", "--db", db, "--format", "json")
    second = run("duplicates", "--db", db, "--format", "json")
    assert "coffee_half.jpg" in first.stdout and second.stdout == first.stdout and STORED not in second.stderr


def test_a_file_name_that_is_not_utf8_is_written_as_its_own_bytes(tmp_path, photos) -> None:
    latin = os.fsencode(photos) + b"/caf\xe9.jpg"
    shutil.copyfile(photos / "coffee.jpg", latin)
    db = tmp_path / "latin.db"
    run("index", photos, "--db", db, "--embedder", "none", "-q")
    for fmt in ("csv", "table"):
        out = tmp_path / f"groups.{fmt}"
        run("duplicates", "--db", db, "--by", "pdq", "--format", fmt, "-o", out)
        assert latin in out.read_bytes()
        printed = subprocess.run([*EXE, "duplicates", "--db", str(db), "--by", "pdq", "--format", fmt],
                                 capture_output=True, timeout=300)
        assert printed.returncode == 0 and printed.stdout == out.read_bytes()


def test_a_catalog_on_a_server_keeps_its_text_in_this_machines_cache(catalog_location, photos) -> None:
    with neardup.open(catalog_location, create=True, embedder="none") as cat:
        cat.index([photos], workers=1)
        first = cat.duplicate_text("json")
        again = cat.duplicate_text("json")
        folder = cat.catalog.cache_file("reports")
    assert not first.evidence.written and again.evidence.written and again.text == first.text
    assert [p.suffix for p in folder.iterdir()] == [".json"]
