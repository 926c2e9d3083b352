"""The clean-up engine (`neardup.clean`): plans, apply, undo and the journal, on real files in
temporary folders, a real catalog, and a trash folder of the tests' own."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neardup
from neardup.clean import (
    DeleteNotConfirmedError,
    DestinationInsideRootError,
    InvalidPlanError,
    NothingToUndoError,
    Plan,
    PlanCatalogMismatchError,
    PlanFileError,
    PlanVersionError,
    apply,
    history,
    plan_clean,
    undo,
)
from neardup.clean.fileops import move_file
from neardup.storage.journal import Journal

from conftest import make_collection

CATALOG_ID = "catalog-under-test"


@pytest.fixture(scope="module", autouse=True)
def trash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """HOME and XDG_DATA_HOME of the tests' own, so nothing reaches the user's trash. They are
    set before send2trash is first imported: its freedesktop implementation reads
    XDG_DATA_HOME on import (and stats HOME when it trashes)."""
    home = tmp_path_factory.mktemp("home")
    data = home / ".local" / "share"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("XDG_DATA_HOME", str(data))
        import send2trash
        from send2trash import plat_other

        if send2trash.send2trash is not plat_other.send2trash or plat_other.HOMETRASH != str(data / "Trash"):
            pytest.exit("send2trash would not use the tests' trash folder; refusing to run", returncode=1)
        yield data / "Trash"


# -- helpers ----------------------------------------------------------------------------------
def journal_of(cat: neardup.Collection) -> Journal:
    """The one place the tests reach the catalog's engine (to become a public property)."""
    return Journal(cat.catalog)


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(base: Path) -> dict[str, tuple[str, str]]:
    """Everything under `base`, by path relative to it: folders, files by SHA-256, symbolic
    links by target (relative to `base` when inside it), so trees in two places compare."""
    out: dict[str, tuple[str, str]] = {}
    for folder, dirs, files in os.walk(base):
        for name in dirs + files:
            path = Path(folder, name)
            key = str(path.relative_to(base))
            if path.is_symlink():
                target = os.readlink(path)
                inside = target.startswith(str(base) + os.sep)
                out[key] = ("link", os.path.relpath(target, base) if inside else target)
            elif path.is_dir():
                out[key] = ("dir", "")
            else:
                out[key] = ("file", sha(path))
    return out


def trash_contents(trash: Path) -> list[str]:
    return sorted(str(p.relative_to(trash)) for p in trash.rglob("*") if p.is_file())


def statuses(cat: neardup.Collection) -> dict[str, str]:
    return {Path(p).name: s.status for p, s in cat.catalog.file_states().items()}


@dataclass(frozen=True)
class Img:
    """What planning reads of an image (`storage.catalog.ImageInfo`)."""

    path: str
    size: int
    sha256: str
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class Grp:
    """A duplicate group as `search.duplicates.Group` gives it: keeper first."""

    keeper: str
    members: tuple[str, ...]
    images: tuple[Img, ...]


def group(images: list[Img]) -> Grp:
    return Grp(images[0].path, tuple(im.path for im in images), tuple(images))


def put(path: Path, data: bytes) -> Img:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Img(str(path), len(data), hashlib.sha256(data).hexdigest())


def alias(path: Path, keeper: Img, *, kind: str) -> Img:
    """A symbolic or hard link to the keeper: it reads as an exact copy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    (os.symlink if kind == "symlink" else os.link)(keeper.path, path)
    return Img(str(path), keeper.size, keeper.sha256)


def copies(root: Path, n_groups: int, members: int) -> list[Grp]:
    """`n_groups` groups of a keeper and `members - 1` exact copies, plus an unrelated file."""
    put(root / "other" / "unrelated.bin", b"not a duplicate of anything")
    groups = []
    for g in range(n_groups):
        keeper = put(root / f"g{g}" / "keeper.bin", f"group {g} ".encode() * 500)
        groups.append(group([keeper] + [put(root / f"g{g}" / f"sub{i}" / "copy.bin", Path(keeper.path).read_bytes())
                                        for i in range(1, members)]))
    return groups


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[neardup.Collection]:
    with neardup.open(tmp_path / "c.db", create=True, embedder="none") as cat:
        yield cat


@pytest.fixture
def indexed(tmp_path: Path, catalog: neardup.Collection) -> tuple[neardup.Collection, Path]:
    """The shared test collection indexed: groups {coffee, coffee_half, coffee_bright},
    {chelsea, chelsea_q40} (near copies) and {rocket, rocket_copy} (an exact copy)."""
    make_collection(tmp_path / "photos")
    catalog.index([tmp_path / "photos"], workers=1)
    return catalog, tmp_path / "photos"


def plan_for(cat: neardup.Collection, root: Path, **kw) -> Plan:
    return plan_clean(cat.duplicates(), roots=[str(root)], catalog_id=CATALOG_ID, **kw)


# -- planning -----------------------------------------------------------------------------------
def test_planning_and_writing_the_plan_touch_nothing(indexed, tmp_path) -> None:
    cat, root = indexed
    before, rows = snapshot(tmp_path / "photos"), statuses(cat)
    plan = plan_for(cat, root, action="move", to=tmp_path / "moved")
    (tmp_path / "plan.json").write_text(plan.to_json())
    assert snapshot(tmp_path / "photos") == before and statuses(cat) == rows
    assert not (tmp_path / "moved").exists() and history(journal_of(cat)) == []
    assert {Path(m.path).name for _, _, m in plan.actions()} == {
        "coffee_bright.png", "coffee_half.jpg", "chelsea_q40.jpg", "rocket_copy.jpg"}
    assert plan.bytes_to_reclaim() == sum(os.path.getsize(m.path) for _, _, m in plan.actions())


def test_a_plan_round_trips_through_json_unchanged(indexed) -> None:
    cat, root = indexed
    plan = plan_for(cat, root, action="symlink", include_near=True, protect=[root / "edits"])
    again = Plan.from_json(plan.to_json(), catalog_id=CATALOG_ID)
    assert again == plan and again.digest == plan.digest


def test_protected_files_win_the_keeper_and_are_never_acted_on(indexed) -> None:
    cat, root = indexed
    plan = plan_for(cat, root, protect=[root / "edits"])
    keepers = {Path(g.keeper.path).name for g in plan.groups}
    assert keepers == {"coffee_bright.png", "chelsea_q40.jpg", "rocket_copy.jpg"}
    acted = {Path(m.path).name for _, _, m in plan.actions()}
    assert acted == {"coffee.jpg", "chelsea.jpg", "rocket.jpg"}
    coffee = next(g for g in plan.groups if g.keeper.path.endswith("coffee_bright.png"))
    assert {m.reason for m in coffee.members if m.action == "keep"} == {"in a protected folder"}


def test_links_replace_exact_copies_only_unless_near_copies_are_asked_for(indexed) -> None:
    cat, root = indexed
    exact = {Path(m.path).name for _, _, m in plan_for(cat, root, action="hardlink").actions()}
    near = {Path(m.path).name for _, _, m in plan_for(cat, root, action="hardlink", include_near=True).actions()}
    assert exact == {"rocket_copy.jpg"}
    assert near == {"coffee_bright.png", "coffee_half.jpg", "chelsea_q40.jpg", "rocket_copy.jpg"}


def test_move_keeps_the_path_relative_to_the_deepest_indexed_root(tmp_path) -> None:
    a = put(tmp_path / "p" / "x" / "k.bin", b"k")
    b = put(tmp_path / "p" / "x" / "y" / "c.bin", b"k")
    plan = plan_clean([group([a, b])], action="move", to=tmp_path / "out",
                      roots=[str(tmp_path / "p"), str(tmp_path / "p" / "x")])
    assert [m.destination for _, _, m in plan.actions()] == [str(tmp_path / "out" / "y" / "c.bin")]


# -- bad input: a clear error and nothing touched --------------------------------------------------
@pytest.mark.parametrize("text, error", [
    ("this is not json {", PlanFileError),
    ("[1, 2]", PlanFileError),
    ('{"format": "something-else", "version": 1}', PlanFileError),
    ('{"format": "neardup-clean-plan", "version": 99, "groups": []}', PlanVersionError),
    ('{"format": "neardup-clean-plan", "version": 1, "catalog_id": "x", "action": "trash"}', PlanFileError),
])
def test_a_file_that_is_not_a_plan_is_refused(text: str, error: type) -> None:
    with pytest.raises(error):
        Plan.from_json(text)


def test_a_plan_edited_into_something_unsafe_is_refused(tmp_path) -> None:
    groups = copies(tmp_path / "p", 2, 2)
    data = json.loads(plan_clean(groups, catalog_id=CATALOG_ID).to_json())
    data["groups"][1]["members"][0]["path"] = data["groups"][0]["keeper"]["path"]  # acts on a keeper
    with pytest.raises(InvalidPlanError, match="keeper"):
        Plan.from_json(json.dumps(data))
    data["groups"][1]["members"][0]["sha256"] = "not a hash"
    with pytest.raises(PlanFileError, match="sha256"):
        Plan.from_json(json.dumps(data))


def test_a_plan_for_another_catalog_is_refused_and_nothing_is_touched(tmp_path, catalog) -> None:
    groups = copies(tmp_path / "p", 2, 3)
    before = snapshot(tmp_path / "p")
    text = plan_clean(groups, catalog_id="another catalog").to_json()
    with pytest.raises(PlanCatalogMismatchError, match="another catalog"):
        Plan.from_json(text, catalog_id=CATALOG_ID)
    with pytest.raises(PlanCatalogMismatchError):
        apply(Plan.from_json(text), journal=journal_of(catalog), catalog_id=CATALOG_ID)
    assert snapshot(tmp_path / "p") == before and history(journal_of(catalog)) == []


def test_move_into_an_indexed_folder_is_refused(tmp_path) -> None:
    groups = copies(tmp_path / "p", 1, 2)
    before = snapshot(tmp_path / "p")
    with pytest.raises(DestinationInsideRootError, match="inside the indexed folder"):
        plan_clean(groups, action="move", to=tmp_path / "p" / "dups", roots=[str(tmp_path / "p")])
    with pytest.raises(InvalidPlanError, match="--to"):
        plan_clean(groups, action="move")
    assert snapshot(tmp_path / "p") == before


def test_delete_without_yes_is_refused_and_nothing_is_touched(tmp_path, catalog) -> None:
    groups = copies(tmp_path / "p", 2, 3)
    before = snapshot(tmp_path / "p")
    plan = plan_clean(groups, action="delete", catalog_id=CATALOG_ID)
    with pytest.raises(DeleteNotConfirmedError, match="yes"):
        apply(plan, journal=journal_of(catalog))
    assert snapshot(tmp_path / "p") == before and history(journal_of(catalog)) == []


# -- apply and undo on the real catalog ---------------------------------------------------------------
def test_move_leaves_one_member_per_group_and_undo_restores_the_tree(indexed, tmp_path) -> None:
    cat, root = indexed
    journal, before, rows = journal_of(cat), snapshot(tmp_path / "photos"), statuses(cat)
    plan = plan_for(cat, root, action="move", to=tmp_path / "moved")
    report = apply(plan, journal=journal)
    assert (report.acted, report.skipped) == (4, ())
    for g in plan.groups:
        assert [m for m in (g.keeper, *g.members) if os.path.exists(m.path)] == [g.keeper]
    assert sorted(str(p.relative_to(tmp_path / "moved")) for p in (tmp_path / "moved").rglob("*.*")) == [
        "edits/chelsea_q40.jpg", "edits/coffee_bright.png", "edits/coffee_half.jpg", "edits/rocket_copy.jpg"]
    assert report.bytes_reclaimed == sum(os.path.getsize(p) for p in (tmp_path / "moved").rglob("*.*"))
    assert {n for n, s in statuses(cat).items() if s != "ok"} == {
        "coffee_bright.png", "coffee_half.jpg", "chelsea_q40.jpg", "rocket_copy.jpg"}
    assert set(statuses(cat).values()) == {"ok", "moved"}
    assert undo(journal=journal).complete
    assert snapshot(tmp_path / "photos") == before and statuses(cat) == rows
    json.dumps(report.to_dict())


def test_trash_goes_to_the_desktop_trash_and_undo_brings_it_back(indexed, tmp_path, trash) -> None:
    cat, root = indexed
    journal, before, in_trash = journal_of(cat), snapshot(tmp_path / "photos"), trash_contents(trash)
    report = apply(plan_for(cat, root), journal=journal)
    assert report.acted == 4 and not (root / "edits" / "rocket_copy.jpg").exists()
    assert (trash / "files" / "rocket_copy.jpg").read_bytes() == (root / "rocket.jpg").read_bytes()
    info = (trash / "info" / "rocket_copy.jpg.trashinfo").read_text()
    assert f"Path={root / 'edits' / 'rocket_copy.jpg'}" in info
    assert {s for s in statuses(cat).values()} == {"ok", "trashed"}
    assert undo(journal=journal).restored == 4
    assert snapshot(tmp_path / "photos") == before and trash_contents(trash) == in_trash
    assert set(statuses(cat).values()) == {"ok"}


def test_trash_keeps_files_of_one_name_apart_and_restores_each_to_its_place(tmp_path, catalog, trash) -> None:
    (trash / "files").mkdir(parents=True, exist_ok=True)
    (trash / "files" / "copy.bin").write_bytes(b"someone else's trashed file")
    groups = copies(tmp_path / "p", 1, 4)  # three copies, all named copy.bin
    before, in_trash = snapshot(tmp_path / "p"), trash_contents(trash)
    report = apply(plan_clean(groups, catalog_id=CATALOG_ID), journal=journal_of(catalog))
    assert report.acted == 3 and len(trash_contents(trash)) == len(in_trash) + 6  # a file and its info each
    assert undo(journal=journal_of(catalog)).restored == 3
    assert snapshot(tmp_path / "p") == before and trash_contents(trash) == in_trash
    assert (trash / "files" / "copy.bin").read_bytes() == b"someone else's trashed file"


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
def test_links_replace_exact_copies_and_undo_makes_them_independent_files_again(indexed, tmp_path, kind) -> None:
    cat, root = indexed
    copy, keeper = root / "edits" / "rocket_copy.jpg", root / "rocket.jpg"
    os.utime(copy, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before, journal = snapshot(tmp_path / "photos"), journal_of(cat)
    report = apply(plan_for(cat, root, action=kind), journal=journal)
    assert report.acted == 1 and report.bytes_reclaimed == keeper.stat().st_size
    assert os.path.samefile(copy, keeper) and copy.is_symlink() == (kind == "symlink")
    assert statuses(cat)["rocket_copy.jpg"] == "linked"
    assert undo(journal=journal).complete
    assert snapshot(tmp_path / "photos") == before and not os.path.samefile(copy, keeper)
    assert copy.stat().st_mtime_ns == 1_000_000_000_000_000_000


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
def test_linking_near_copies_keeps_the_originals_for_undo(indexed, tmp_path, kind) -> None:
    cat, root = indexed
    before, journal = snapshot(tmp_path / "photos"), journal_of(cat)
    report = apply(plan_for(cat, root, action=kind, include_near=True), journal=journal)
    assert report.acted == 4 and report.bytes_reclaimed == (root / "rocket.jpg").stat().st_size
    assert os.path.samefile(root / "edits" / "chelsea_q40.jpg", root / "chelsea.jpg")
    assert undo(journal=journal).complete
    assert snapshot(tmp_path / "photos") == before


def test_delete_with_yes_deletes_and_undo_refuses_clearly(tmp_path, catalog) -> None:
    groups = copies(tmp_path / "p", 2, 2)
    report = apply(plan_clean(groups, action="delete", catalog_id=CATALOG_ID), journal=journal_of(catalog), yes=True)
    assert report.acted == 2 and all(os.path.exists(g.keeper) and not os.path.exists(g.members[1]) for g in groups)
    result = undo(journal=journal_of(catalog))
    assert not result.complete and {s.reason for s in result.skipped} == {"deleted permanently; cannot be undone"}


def test_move_file_never_replaces_an_existing_file(tmp_path) -> None:
    src, dst = put(tmp_path / "a.bin", b"moving"), put(tmp_path / "b.bin", b"already here")
    with pytest.raises(FileExistsError):
        move_file(src.path, dst.path)
    assert (sha(src.path), sha(dst.path)) == (src.sha256, dst.sha256)


# -- safety at apply time -----------------------------------------------------------------------------
def test_a_file_changed_after_planning_is_skipped_and_left_alone(tmp_path, catalog) -> None:
    groups = copies(tmp_path / "p", 1, 3)
    plan = plan_clean(groups, catalog_id=CATALOG_ID)
    same_size = Path(groups[0].members[1])
    same_size.write_bytes(same_size.read_bytes()[:-1] + b"!")
    grown = Path(groups[0].members[2])
    grown.write_bytes(grown.read_bytes() + b"more")
    before = snapshot(tmp_path / "p")
    report = apply(plan, journal=journal_of(catalog))
    assert report.acted == 0 and snapshot(tmp_path / "p") == before
    assert {(Path(s.path).parent.name, s.reason.split(" (")[0]) for s in report.skipped} == {
        ("sub1", "content changed since planning"), ("sub2", "size changed since planning")}


@pytest.mark.parametrize("change", ["edit", "remove"])
def test_a_changed_or_missing_keeper_skips_its_whole_group(tmp_path, catalog, change) -> None:
    groups = copies(tmp_path / "p", 2, 3)
    plan = plan_clean(groups, action="hardlink", catalog_id=CATALOG_ID)
    keeper = Path(groups[0].keeper)
    keeper.unlink() if change == "remove" else keeper.write_bytes(b"edited")
    before = snapshot(tmp_path / "p")
    report = apply(plan, journal=journal_of(catalog))
    assert report.acted == 2 and len(report.skipped) == 2  # group 1 done, group 0 untouched
    assert all("the keeper" in s.reason for s in report.skipped)
    assert {k: v for k, v in snapshot(tmp_path / "p").items() if k.startswith("g0")} == {
        k: v for k, v in before.items() if k.startswith("g0")}


def test_a_link_to_the_keeper_is_never_acted_on_as_a_copy(tmp_path, catalog) -> None:
    keeper = put(tmp_path / "p" / "k.bin", b"keeper bytes" * 100)
    members = [keeper, alias(tmp_path / "p" / "s.bin", keeper, kind="symlink"),
               alias(tmp_path / "p" / "h.bin", keeper, kind="hardlink")]
    before = snapshot(tmp_path / "p")
    for action in ("trash", "delete"):
        report = apply(plan_clean([group(members)], action=action), journal=journal_of(catalog), yes=True)
        assert report.acted == 0 and len(report.skipped) == 2
    assert snapshot(tmp_path / "p") == before


def test_an_existing_destination_is_never_overwritten(tmp_path, catalog) -> None:
    groups = copies(tmp_path / "p", 1, 2)
    plan = plan_clean(groups, action="move", to=tmp_path / "out", roots=[str(tmp_path / "p")])
    occupied = put(tmp_path / "out" / "g0" / "sub1" / "copy.bin", b"already here")
    report = apply(plan, journal=journal_of(catalog))
    assert report.acted == 0 and report.skipped[0].reason.startswith("the destination exists")
    assert sha(occupied.path) == occupied.sha256 and os.path.exists(groups[0].members[1])


def test_an_edited_plan_is_carried_out_exactly(indexed, tmp_path) -> None:
    cat, root = indexed
    data = json.loads(plan_for(cat, root).to_json())
    data["groups"] = [g for g in data["groups"] if not g["keeper"]["path"].endswith("rocket.jpg")]  # drop one
    chelsea = next(g for g in data["groups"] if g["keeper"]["path"].endswith("chelsea.jpg"))
    old, new = chelsea["keeper"], chelsea["members"][0]  # make the q40 copy the keeper
    chelsea["keeper"], chelsea["members"] = {**new, "action": "keep"}, [{**old, "action": "trash"}]
    report = apply(Plan.from_json(json.dumps(data), catalog_id=CATALOG_ID), journal=journal_of(cat))
    assert report.acted == 3
    gone = {p.name for p in [root / "chelsea.jpg", root / "edits" / "chelsea_q40.jpg", root / "rocket.jpg",
                             root / "edits" / "rocket_copy.jpg", root / "coffee.jpg",
                             root / "edits" / "coffee_bright.png"] if not p.exists()}
    assert gone == {"chelsea.jpg", "coffee_bright.png"}


def test_applying_a_finished_plan_again_does_nothing_more(tmp_path, catalog) -> None:
    plan = plan_clean(copies(tmp_path / "p", 2, 2), catalog_id=CATALOG_ID)
    first = apply(plan, journal=journal_of(catalog))
    after = snapshot(tmp_path / "p")
    again = apply(plan, journal=journal_of(catalog))
    assert (again.run_id, again.resumed, again.acted, again.already_done) == (first.run_id, True, 0, 2)
    assert snapshot(tmp_path / "p") == after


def test_undo_refuses_an_occupied_path_and_finishes_once_it_is_free(tmp_path, catalog) -> None:
    groups = copies(tmp_path / "p", 1, 3)
    before = snapshot(tmp_path / "p")
    apply(plan_clean(groups, catalog_id=CATALOG_ID), journal=journal_of(catalog))
    squatter = put(Path(groups[0].members[1]), b"a new file at the old path")
    first = undo(journal=journal_of(catalog))
    assert (first.restored, [s.reason for s in first.skipped]) == (1, ["the original path is occupied"])
    assert sha(squatter.path) == squatter.sha256
    os.unlink(squatter.path)
    assert undo(journal=journal_of(catalog)).restored == 1
    assert snapshot(tmp_path / "p") == before
    with pytest.raises(NothingToUndoError):
        undo(journal=journal_of(catalog))


def test_history_lists_runs_newest_first(tmp_path, catalog) -> None:
    journal = journal_of(catalog)
    apply(plan_clean(copies(tmp_path / "p", 2, 2), catalog_id=CATALOG_ID), journal=journal)
    apply(plan_clean(copies(tmp_path / "q", 1, 3), action="move", to=tmp_path / "out"), journal=journal)
    undo(journal=journal)
    runs = history(journal)
    assert [(r.action, r.status, r.done, r.undone) for r in runs] == [
        ("move", "undone", 2, 2), ("trash", "applied", 2, 0)]
    json.dumps([r.to_dict() for r in runs])


# -- properties over random groups ------------------------------------------------------------------
KINDS = ("exact", "near", "symlink", "hardlink")
member = st.tuples(st.sampled_from(KINDS), st.sampled_from(["", "a", "a/b"]), st.booleans())  # kind, folder, protected
groups_spec = st.lists(st.tuples(st.booleans(), st.lists(member, min_size=1, max_size=3)), min_size=1, max_size=4)


def build(root: Path, spec: list) -> list[Grp]:
    """Files for random groups: each a keeper (maybe protected) and members that are exact
    copies, near copies, or symbolic or hard links to the keeper; plus an unrelated file.
    Member names repeat across groups, so the trash sees name collisions."""
    put(root / "other" / "unrelated.bin", b"unrelated")
    groups = []
    for g, (keeper_protected, members) in enumerate(spec):
        folder = root / ("keep" if keeper_protected else "") / f"g{g}"
        keeper = put(folder / "k.bin", f"group {g}".encode() * 64)
        images = [keeper]
        for i, (kind, sub, protected) in enumerate(members):
            path = root / ("keep" if protected else "") / sub / f"g{g}" / f"m{i}.bin"
            if kind in ("symlink", "hardlink"):
                images.append(alias(path, keeper, kind=kind))
            else:
                tail = f" near {i}".encode() if kind == "near" else b""
                images.append(put(path, Path(keeper.path).read_bytes() + tail))
        groups.append(group(images))
    return groups


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=groups_spec, action=st.sampled_from(["trash", "move", "hardlink", "symlink", "delete"]),
       include_near=st.booleans(), tamper=st.booleans())
def test_apply_keeps_every_group_touches_only_the_plan_and_undo_restores_the_tree(
    tmp_path, catalog, trash, spec, action, include_near, tamper
) -> None:
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    root = base / "photos"
    groups = build(root, spec)
    plan = plan_clean(groups, action=action, to=base / "moved", protect=[root / "keep"], include_near=include_near,
                      roots=[str(root)], catalog_id=CATALOG_ID)
    planned = {m.path for _, _, m in plan.actions()}
    originals = {im.path: im.sha256 for g in groups for im in g.images}
    real = [os.path.realpath(p) for p in originals]
    alone = [p for p in sorted(planned) if os.stat(p).st_nlink == 1 and real.count(p) == 1]  # no link reads it
    changed = alone[0] if tamper and alone else None
    if changed:
        Path(changed).write_bytes(b"changed after planning")
    before, snapshot_before_root, in_trash = snapshot(base), snapshot(root), trash_contents(trash)
    report = apply(plan, journal=journal_of(catalog), yes=True)
    after = snapshot(base)
    for g in groups:  # no group loses its last member: one stays, with its own bytes
        assert any(os.path.isfile(m) and not os.path.islink(m) and sha(m) == originals[m] for m in g.members)
    touched = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    acted = {str(Path(p).relative_to(base)) for p in planned}
    assert touched <= acted | {k for k in touched if k.startswith("moved")}
    if changed:
        assert str(Path(changed).relative_to(base)) not in touched
        assert any(s.path == changed for s in report.skipped)
    if action != "delete":
        assert undo(journal=journal_of(catalog)).complete
        # folders a move made under `to` stay, empty
        assert snapshot(root) == snapshot_before_root and trash_contents(trash) == in_trash
        assert not [p for p in (base / "moved").rglob("*") if not p.is_dir()]


# -- kill -9 -----------------------------------------------------------------------------------------
MUTATIONS = ("rename", "replace", "link", "unlink", "symlink")


@contextmanager
def faults(kill_at: int | None = None, *, after: bool = False) -> Iterator[Callable[[], int]]:
    """Count the file-system changes made through `os` (and, with `kill_at`, SIGKILL this
    process just before or just after the kill_at-th); yields a function giving the count."""
    calls = 0
    originals = {name: getattr(os, name) for name in MUTATIONS}

    def counted(fn: Callable) -> Callable:
        def call(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == kill_at and not after:
                os.kill(os.getpid(), signal.SIGKILL)
            try:
                return fn(*args, **kwargs)
            finally:  # also after a call that raised (an unlink of a missing file)
                if calls == kill_at and after:
                    os.kill(os.getpid(), signal.SIGKILL)
        return call

    for name, fn in originals.items():
        setattr(os, name, counted(fn))
    try:
        yield lambda: calls
    finally:
        for name, fn in originals.items():
            setattr(os, name, fn)


def apply_killed(db: Path, plan: Plan, kill_at: int, *, after: bool) -> int:
    """Apply `plan` in a forked child that kills itself with SIGKILL around its kill_at-th
    file-system change; returns the child's wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            with faults(kill_at, after=after), neardup.open(db) as cat:
                apply(plan, journal=journal_of(cat))
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            os._exit(3)
    return os.waitpid(pid, 0)[1]


def crash_tree(base: Path, near: bool) -> list[Grp]:
    """Two groups: a keeper with two exact copies, and a keeper with one exact or near copy."""
    keeper = put(base / "photos" / "k1.bin", b"first" * 300)
    first = group([keeper, put(base / "photos" / "a" / "c.bin", b"first" * 300),
                   put(base / "photos" / "b" / "c.bin", b"first" * 300)])
    keeper2 = put(base / "photos" / "k2.bin", b"second" * 300)
    second = group([keeper2, put(base / "photos" / "a" / "d.bin", b"second" * 300 + (b"~" if near else b""))])
    return [first, second]


def crash_plan(base: Path, action: str, near: bool) -> Plan:
    return plan_clean(crash_tree(base, near), action=action, to=base / "moved", include_near=near,
                      roots=[str(base / "photos")], catalog_id=CATALOG_ID)


@pytest.mark.parametrize("action, near", [("trash", False), ("move", False), ("hardlink", False), ("symlink", True)])
def test_a_kill_at_any_step_then_reapply_then_undo_ends_as_an_uninterrupted_run(
    tmp_path, catalog, trash, action, near
) -> None:
    in_trash = trash_contents(trash)
    reference = tmp_path / "reference"
    with faults() as count:
        apply(crash_plan(reference, action, near), journal=journal_of(catalog))
    steps, finished = count(), snapshot(reference)
    undo(journal=journal_of(catalog))
    for kill_at in range(1, steps + 1):
        for after in (False, True):
            base = tmp_path / f"{kill_at}-{after}"
            plan = crash_plan(base, action, near)
            original = snapshot(base / "photos")
            status = apply_killed(catalog.path, plan, kill_at, after=after)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (kill_at, after, steps, status)
            report = apply(plan, journal=journal_of(catalog))
            assert report.resumed and report.acted + report.already_done == 3 and report.skipped == ()
            assert snapshot(base) == finished
            assert undo(journal=journal_of(catalog)).complete
            assert snapshot(base / "photos") == original  # (folders a move made under `to` stay, empty)
            assert not [p for p in base.rglob("*") if p.is_file() and "photos" not in p.parts]
    assert trash_contents(trash) == in_trash


# apply in another Python process, with a progress sink that takes its time so that the run
# lasts long enough to be killed midway
APPLY_IN_A_PROCESS = """
import sys, time
from pathlib import Path
import neardup
from neardup.clean import Plan, apply
from neardup.clean.fileops import move_file
from neardup.storage.journal import Journal

class Slow:
    def start(self, total, label=""): pass
    def advance(self, n=1): time.sleep(0.05)
    def close(self): pass

with neardup.open(sys.argv[1]) as cat:
    apply(Plan.from_json(Path(sys.argv[2]).read_text()), journal=Journal(cat.catalog), progress=Slow())
"""


def test_kill_9_from_outside_then_reapply_and_undo(tmp_path, catalog) -> None:
    groups = copies(tmp_path / "p", 20, 2)
    plan = plan_clean(groups, action="move", to=tmp_path / "out", roots=[str(tmp_path / "p")],
                      catalog_id=CATALOG_ID)
    (tmp_path / "plan.json").write_text(plan.to_json())
    original = snapshot(tmp_path / "p")
    proc = subprocess.Popen([sys.executable, "-c", APPLY_IN_A_PROCESS, str(catalog.path), str(tmp_path / "plan.json")])
    db = sqlite3.connect(catalog.path, timeout=10)
    journal_of(catalog)  # the journal's tables exist before the other process writes to them
    while proc.poll() is None and db.execute("select count(*) from clean_entries where state='done'").fetchone()[0] < 1:
        time.sleep(0.01)
    db.close()
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    report = apply(plan, journal=journal_of(catalog))
    assert report.resumed and report.already_done >= 1 and report.acted + report.already_done == 20
    for g in groups:
        moved = tmp_path / "out" / Path(g.members[1]).relative_to(tmp_path / "p")
        assert not os.path.exists(g.members[1]) and sha(moved) == g.images[1].sha256
    assert undo(journal=journal_of(catalog)).complete
    assert snapshot(tmp_path / "p") == original
