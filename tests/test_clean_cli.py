"""`neardup clean`, `undo` and `history` run for real on a collection on disk: a dry run
changes nothing, a move leaves one member per group in place and undo restores the tree
exactly, an edited plan is carried out as edited, and bad input changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_collection

EXE = [sys.executable, "-m", "neardup.cli"]


@pytest.fixture
def home(tmp_path) -> dict[str, str]:
    """An environment whose desktop trash is inside the test's folder, never the user's."""
    return {**os.environ, "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "home" / "data")}


def run(env, *args, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)
    assert (proc.returncode == 0) == ok, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture
def indexed(tmp_path, home) -> tuple[Path, Path]:
    make_collection(tmp_path / "photos")
    db = tmp_path / "c.db"
    run(home, "index", tmp_path / "photos", "--db", db, "--embedder", "none", "-q")
    return tmp_path / "photos", db


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> SHA-256), and every symlink's target."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(folder))] = "-> " + os.readlink(path)
        elif path.is_file():
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def groups(env, db) -> list[list[str]]:
    return [[m["path"] for m in g["members"]] for g in json.loads(run(env, "duplicates", "--db", db, "--format", "json").stdout)]


def test_a_dry_run_changes_nothing_and_says_what_would_go(indexed, home) -> None:
    photos, db = indexed
    before, catalog_before = tree(photos), groups(home, db)
    out = run(home, "clean", "--db", db)
    assert tree(photos) == before and groups(home, db) == catalog_before
    assert "group 1: keep" in out.stdout and "to reclaim" in out.stdout and "nothing was changed" in out.stderr


def test_move_leaves_one_member_per_group_and_undo_restores_the_tree(indexed, home, tmp_path) -> None:
    photos, db = indexed
    before, found = tree(photos), groups(home, db)
    dupes = tmp_path / "dupes"
    out = run(home, "clean", "--db", db, "--action", "move", "--to", dupes, "--apply", "-q")
    assert "files moved" in out.stdout and "neardup undo" in out.stderr
    for members in found:
        assert sum(Path(m).exists() for m in members) == 1  # exactly one member of each group left
        for m in members:
            moved = dupes / Path(m).relative_to(photos)
            assert Path(m).exists() != moved.exists()  # each other member now lies under dupes/
    assert groups(home, db) == []
    run(home, "undo", "--db", db)
    assert tree(photos) == before and not any(p.is_file() for p in dupes.rglob("*"))
    assert json.loads(run(home, "history", "--db", db, "--json").stdout)[0]["status"] == "undone"
    assert sorted(map(sorted, groups(home, db))) == sorted(map(sorted, found))


def test_trash_goes_to_the_desktop_trash_and_comes_back(indexed, home, tmp_path) -> None:
    photos, db = indexed
    before = tree(photos)
    run(home, "clean", "--db", db, "--apply", "-q")
    trashed = list((tmp_path / "home" / "data" / "Trash" / "files").iterdir())
    assert trashed and len(tree(photos)) == len(before) - len(trashed)
    run(home, "undo", "--db", db)
    assert tree(photos) == before and not any((tmp_path / "home" / "data" / "Trash" / "files").iterdir())


def test_an_edited_plan_is_carried_out_exactly(indexed, home, tmp_path) -> None:
    photos, db = indexed
    plan_file = tmp_path / "plan.json"
    run(home, "clean", "--db", db, "--action", "move", "--to", tmp_path / "dupes", "--plan", plan_file)
    plan = json.loads(plan_file.read_text())
    dropped, kept = plan["groups"][0], plan["groups"][1:]
    plan["groups"] = kept
    plan_file.write_text(json.dumps(plan))
    run(home, "clean", "--db", db, "--apply", plan_file, "-q")
    assert all(Path(m["path"]).exists() for m in dropped["members"])
    acted = [m["path"] for g in kept for m in g["members"] if m["action"] == "move"]
    assert acted and not any(Path(p).exists() for p in acted)


@pytest.mark.parametrize("case", ["not json", "another catalog", "to inside", "delete without yes", "no plan file"])
def test_bad_input_is_one_error_line_and_touches_nothing(indexed, home, tmp_path, case) -> None:
    photos, db = indexed
    before = tree(photos)
    plan_file = tmp_path / "plan.json"
    if case == "not json":
        plan_file.write_text("{ this is not json")
        args = ["--apply", plan_file]
    elif case == "another catalog":
        other = tmp_path / "other.db"
        run(home, "index", photos, "--db", other, "--embedder", "none", "-q")
        run(home, "clean", "--db", other, "--plan", plan_file)
        args = ["--apply", plan_file]
    elif case == "to inside":
        args = ["--action", "move", "--to", photos / "dupes", "--apply"]
    elif case == "delete without yes":
        args = ["--action", "delete", "--apply"]
    else:
        args = ["--apply", tmp_path / "missing.json"]
    out = run(home, "clean", "--db", db, *args, ok=False)
    assert out.returncode == 1 and out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
    assert tree(photos) == before


def test_an_output_file_never_overwrites_the_plan_target_catalog_or_an_image(indexed, home) -> None:
    photos, db = indexed
    image = next(photos.glob("*.jpg"))
    for target in (db, image):
        before = target.read_bytes()
        out = run(home, "clean", "--db", db, "--plan", target, ok=False)
        assert "refusing to overwrite" in out.stderr and target.read_bytes() == before
