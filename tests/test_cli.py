"""The `neardup` command, run for real in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, make_collection

EXE = [sys.executable, "-m", "neardup.cli"]


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert (proc.returncode == 0) == ok, proc.stderr
    return proc


@pytest.fixture(scope="module")
def tmp_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def collection(tmp_path) -> dict[str, Path]:
    return make_collection(tmp_path / "photos")


@pytest.fixture(scope="module")
def db(tmp_path, collection) -> Path:
    """One hashes-only catalog shared by this module's tests (none of them changes it)."""
    db = tmp_path / "cli.db"
    run("index", tmp_path / "photos", "--db", db, "--workers", "2", "--embedder", "none")
    return db


def test_index_prints_a_summary_and_second_run_says_nothing_changed(tmp_path, db, collection) -> None:
    again = run("index", tmp_path / "photos", "--db", db, "-q")
    assert "nothing to decode" in again.stderr
    assert f"{len(collection)} unchanged" in again.stderr and "0 new" in again.stderr


def test_search_json_lines(db, collection, tmp_path) -> None:
    out = run("search", collection["coffee_half"], DATA / "astronaut.jpg", "--db", db, "-k", "3", "--json")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["query"] for line in lines] == [str(collection["coffee_half"]), str(DATA / "astronaut.jpg")]
    first = lines[0]["results"]
    assert len(first) == 3 and first[0]["path"] == str(collection["coffee_half"]) and first[0]["score"] == 1.0
    assert set(first[0]) == {"path", "score", "distance", "by"} and first[0]["by"] == "auto"
    assert [r["score"] for r in first] == sorted((r["score"] for r in first), reverse=True)
    assert lines[1]["results"][0]["path"] == str(collection["astronaut"])


def test_search_a_folder_of_queries_by_one_hash(db, tmp_path) -> None:
    out = run("search", tmp_path / "photos" / "edits", "--db", db, "--by", "pdq", "-k", "1", "--json")
    results = {Path(json.loads(line)["query"]).name: json.loads(line)["results"] for line in out.stdout.splitlines()}
    assert set(results) == {"coffee_half.jpg", "coffee_bright.png", "chelsea_q40.jpg", "rocket_copy.jpg"}
    assert all(r[0]["by"] == "pdq" for r in results.values())


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "html"])
def test_duplicates_in_every_format(db, tmp_path, fmt) -> None:
    out_file = tmp_path / f"dupes.{fmt}"
    run("duplicates", "--db", db, "--format", fmt, "--output", out_file)
    text = out_file.read_text()
    assert "chelsea_q40.jpg" in text and "rocket_copy.jpg" in text
    if fmt == "json":
        groups = json.loads(text)
        assert len(groups) == 3 and all(g["keeper"] == g["members"][0]["path"] for g in groups)
    if fmt == "html":
        assert text.count("<figure") == 7 and text.count("data:image/jpeg;base64,") == 7
        assert text.count("class=keep") == 3


def test_stats_json_reports_counts_and_fresh_indexes(db, collection) -> None:
    run("search", collection["coffee"], "--db", db)  # builds the auto indexes
    stats = json.loads(run("stats", "--db", db, "--json").stdout)
    assert stats["counts"]["ok"] == len(collection)
    assert {ix["feature"]: ix["fresh"] for ix in stats["indexes"]}["pdq"] is True


def test_stats_lists_failed_files(tmp_path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "fake.png").write_bytes(b"not a png")
    (folder / "real.jpg").write_bytes((DATA / "rocket.jpg").read_bytes())
    db = tmp_path / "m.db"
    out = run("index", folder, "--db", db, "--embedder", "none")
    assert "1 failed" in out.stderr and "neardup stats" in out.stderr
    assert "fake.png" in run("stats", "--db", db).stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["index", "/no/such/folder"], "error: no such file or folder: /no/such/folder"),
        (["search", "/no/such.jpg"], "error: no such file or folder: /no/such.jpg"),
        (["search", str(DATA / "README.md")], "error:"),
        (["search", str(DATA / "coffee.jpg"), "--by", "sift"], "error: unknown feature 'sift'"),
        (["duplicates", "--by", "nope"], "error: unknown feature 'nope'"),
    ],
)
def test_bad_input_gives_an_error_line_and_nonzero_exit(db, args, message) -> None:
    proc = run(*args, "--db", db, ok=False)
    assert message in proc.stderr and proc.returncode == 1


def test_missing_catalog_is_an_error_not_a_new_file(tmp_path) -> None:
    missing = tmp_path / "none.db"
    for cmd in (["search", str(DATA / "coffee.jpg")], ["duplicates"], ["stats"]):
        proc = run(*cmd, "--db", missing, ok=False)
        assert "error: no catalog at" in proc.stderr
    assert not missing.exists()


@pytest.mark.parametrize("cmd", ["index", "search", "duplicates", "stats"])
def test_every_subcommand_has_help_with_an_example(cmd) -> None:
    out = run(cmd, "--help").stdout
    assert "Example" in out and f"neardup {cmd}" in out and "--db" in out


def test_a_progress_stage_may_count_in_its_own_unit(capsys) -> None:
    """`duplicates` counts pairs, but its pasted-picture stage counts images."""
    from neardup.cli import _Bar
    from neardup.search.pasted import SEARCHING

    bar = _Bar(quiet=False, unit="pair", units={SEARCHING: "image"})
    for label, total in ((SEARCHING, 4), ("verifying candidate pairs", 3)):
        bar.start(total, label)
        bar.advance(total)
    bar.close()
    lines = capsys.readouterr().err.replace("\r", "\n").split("\n")
    assert any(SEARCHING in line and "image/s" in line for line in lines)
    assert any("verifying" in line and "pair/s" in line for line in lines)
    assert not any(SEARCHING in line and "pair/s" in line for line in lines)
