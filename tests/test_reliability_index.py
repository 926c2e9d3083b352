"""Issue 18, findings 1-4 and 8: no file or folder blocks an indexing run.

Each test runs the real `neardup index` on a folder of normal photos plus one hostile entry,
and demands what the issue demands: the run goes on (exit 0, no traceback), every normal
photo is in the catalog, and the hostile entry is either indexed or recorded with a reason.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PIL import Image, features

import neardup
from conftest import DATA
from faults import (
    as_ordinary_user,
    assert_no_traceback,
    assert_ok,
    catalog_paths,
    failures,
    neardup as run,
    photos,
    require_permissions_enforced,
)


def index(folder: Path, db: Path, *extra, **kw):
    return run("index", folder, "--db", db, "--embedder", "none", "-q", "--workers", "2", *extra, **kw)


def assert_indexed_or_recorded(db: Path, normal: list[Path], hostile: str) -> None:
    """Every normal photo is indexed ("ok"); the catalog has a row for a path containing
    `hostile`, indexed or failed, and a failed one has a reason."""
    paths = catalog_paths(db)
    missing = [str(p) for p in normal if paths.get(str(p)) != "ok"]
    assert not missing, f"normal photos not indexed: {missing}"
    rows = {p: s for p, s in paths.items() if hostile in p}
    assert rows, f"{hostile} is neither indexed nor recorded as failed; catalog has {sorted(paths)}"
    reasons = failures(db)
    for path, status in rows.items():
        assert status == "ok" or reasons.get(path), f"{path} failed without a reason"


# -- finding 1: images 1 px wide or tall after fitting crash ORB ---------------------------------
@pytest.mark.parametrize(
    "name, size",
    [("a_spacer.gif", (1, 1)), ("a_sliver.png", (1, 20000)), ("a_wide_sliver.png", (20000, 1))],
    ids=["1x1-spacer-gif", "1x20000-sliver", "20000x1-sliver"],
)
def test_thin_image_is_recorded_and_run_continues(tmp_path, name, size) -> None:
    """A 1x1 spacer GIF or a 1-px sliver (1 px wide after fitting to the decode size) sorts
    first in a folder of photos; the run must index or record it and index the photos."""
    folder = tmp_path / "photos"
    normal = photos(folder)
    mode = "P" if name.endswith(".gif") else "RGB"
    Image.new(mode, size, 7 if mode == "P" else (200, 30, 30)).save(folder / name)
    db = tmp_path / "c.db"
    assert_ok(index(folder, db))
    assert_indexed_or_recorded(db, normal, name)


# -- finding 2: file names that are not valid UTF-8 ------------------------------------------------
def test_file_name_not_valid_utf8_is_indexed_or_recorded_and_run_continues(tmp_path) -> None:
    """`café.jpg` written in Latin-1 (byte 0xE9) is a legal POSIX file name. The run goes on,
    the file is indexed or recorded, and `duplicates` (it is a byte copy of coffee.jpg) still
    works and shows it."""
    folder = tmp_path / "photos"
    normal = photos(folder)
    with open(os.fsencode(folder) + b"/caf\xe9.jpg", "wb") as f:
        f.write((folder / "coffee.jpg").read_bytes())
    db = tmp_path / "c.db"
    assert_ok(index(folder, db))
    assert_indexed_or_recorded(db, normal, "caf")
    dupes = run("duplicates", "--db", db)
    assert_ok(dupes)
    assert "caf" in dupes.stdout and "coffee.jpg" in dupes.stdout, dupes.stdout


# -- finding 3: broken symlinks, symlink loops, files vanishing mid-run -------------------------
def test_broken_symlink_is_recorded_and_run_continues(tmp_path) -> None:
    folder = tmp_path / "photos"
    normal = photos(folder)
    (folder / "broken.jpg").symlink_to(folder / "nowhere.jpg")
    db = tmp_path / "c.db"
    assert_ok(index(folder, db))
    assert_indexed_or_recorded(db, normal, "broken.jpg")


def test_symlink_loop_is_recorded_and_run_continues(tmp_path) -> None:
    folder = tmp_path / "photos"
    normal = photos(folder)
    (folder / "loop_a.jpg").symlink_to(folder / "loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to(folder / "loop_a.jpg")
    db = tmp_path / "c.db"
    assert_ok(index(folder, db))
    assert_indexed_or_recorded(db, normal, "loop_a.jpg")


def test_a_pipe_named_like_an_image_is_recorded_not_read(tmp_path) -> None:
    """Reading a FIFO blocks until someone writes to it: indexing one named .jpg hung for
    good (found by scripts/zoo.py). It is recorded as not a regular file, and the run ends."""
    folder = tmp_path / "photos"
    normal = photos(folder)
    os.mkfifo(folder / "pipe.jpg")
    db = tmp_path / "c.db"
    assert_ok(index(folder, db, timeout=60))
    assert_indexed_or_recorded(db, normal, "pipe.jpg")


def test_files_vanishing_during_indexing_do_not_abort_the_run(tmp_path) -> None:
    """Files that appear and disappear while `neardup index` runs (a camera import, a sync
    client) must not abort it. A thread keeps creating and deleting 20 copies of a photo,
    named to sort last so that the walk lists them and stats them a moment later; three runs
    (each aborted today with `error: [Errno 2] No such file or directory` more often than
    not). Every run exits 0 and the stable photos are all indexed."""
    folder = tmp_path / "photos"
    normal = photos(folder)
    data = normal[0].read_bytes()
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            path = folder / f"zz_churn_{i % 20:02d}.jpg"
            path.write_bytes(data)
            path.unlink()
            i += 1

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        outcomes = [index(folder, tmp_path / f"c{n}.db") for n in range(3)]
    finally:
        stop.set()
        thread.join()
    for outcome in outcomes:
        assert_ok(outcome)
    for n in range(3):
        paths = catalog_paths(tmp_path / f"c{n}.db")
        assert all(paths.get(str(p)) == "ok" for p in normal), paths


def test_file_deleted_between_walk_and_decode_is_not_indexed_and_run_continues(tmp_path) -> None:
    """Deterministic form of the race, through the public API: the Progress sink's `start`
    runs after the walk and before any file is read, and deletes one listed file there."""
    folder = tmp_path / "photos"
    normal = photos(folder)
    doomed = normal.pop()

    class DeleteOnStart:
        def start(self, total: int, label: str = "") -> None:
            doomed.unlink()

        def advance(self, n: int = 1) -> None: ...

        def close(self) -> None: ...

    with neardup.open(tmp_path / "c.db", create=True, embedder="none") as cat:
        report = cat.index([folder], workers=1, progress=DeleteOnStart())
    assert not report.interrupted
    paths = catalog_paths(tmp_path / "c.db")
    assert all(paths.get(str(p)) == "ok" for p in normal), paths
    assert paths.get(str(doomed)) in (None, "failed")


# -- finding 4: deep folder trees -------------------------------------------------------------
def test_1100_nested_folders_are_indexed_without_recursion_error(tmp_path) -> None:
    """1,100 nested folders (a path of ~2,300 characters, under PATH_MAX) with a photo at the
    top and one at the bottom: both indexed."""
    folder = tmp_path / "photos"
    top = photos(folder, ["coffee"])
    deep = str(folder)
    for _ in range(1100):  # one level at a time: Path.mkdir(parents=True) itself recurses
        deep = os.path.join(deep, "d")
        os.mkdir(deep)
    try:
        bottom = photos(Path(deep), ["rocket"])
        db = tmp_path / "c.db"
        assert_ok(index(folder, db))
        paths = catalog_paths(db)
        assert paths.get(str(top[0])) == "ok" and paths.get(str(bottom[0])) == "ok", sorted(paths)
    finally:  # bottom up, one level at a time: shutil.rmtree (and so pytest's cleanup) recurses too
        for name in os.listdir(deep):
            os.unlink(os.path.join(deep, name))
        while deep != str(folder):
            os.rmdir(deep)
            deep = os.path.dirname(deep)


# -- finding 8: an unreadable subfolder is not a deleted one ------------------------------------
def test_unreadable_subfolder_keeps_its_images_and_records_the_failure(tmp_path) -> None:
    """Index a folder, then make one subfolder unreadable (chmod 000; the run is started
    without the capabilities that let root ignore that) and index again. Unreadable is not
    gone: the subfolder's photos stay in the catalog, nothing is removed, and the folder's
    failure is recorded (`stats` lists it, or a path under it, with a reason)."""
    require_permissions_enforced(tmp_path)
    folder = tmp_path / "photos"
    top = photos(folder, ["coffee", "chelsea"])
    sub = folder / "locked"
    inside = photos(sub, ["rocket", "hubble"])
    db = tmp_path / "c.db"
    assert_ok(index(folder, db))
    sub.chmod(0)
    try:
        again = index(folder, db, preexec=as_ordinary_user)
    finally:
        sub.chmod(0o755)
    assert_no_traceback(again)
    paths = catalog_paths(db)
    dropped = [p.name for p in top + inside if paths.get(str(p)) != "ok"]
    assert not dropped, f"dropped from the catalog: {dropped}; {again}"
    recorded = {p: r for p, r in failures(db).items() if p == str(sub) or p.startswith(str(sub) + os.sep)}
    assert recorded and all(recorded.values()), f"the unreadable folder's failure is not recorded: {failures(db)}"


# -- image files under the other names people's collections give them ---------------------------
def test_images_named_jfif_mpo_apng_or_avif_are_indexed_not_passed_over(tmp_path) -> None:
    """A JPEG a browser saved as .jfif, a stereo camera's .mpo, an animated .apng and an .avif
    (where Pillow reads AVIF) are indexed beside the photos; before, the walk passed over them
    without a word."""
    folder = tmp_path / "photos"
    normal = photos(folder, ["coffee", "chelsea"])
    rocket, hubble = (Image.open(DATA / f"{n}.jpg").convert("RGB") for n in ("rocket", "hubble"))
    rocket.save(folder / "rocket.jfif", "JPEG", quality=90)
    hubble.save(folder / "hubble.mpo", "MPO", save_all=True, append_images=[rocket])
    rocket.save(folder / "rocket.apng", "PNG", save_all=True, append_images=[hubble])
    named = ["rocket.jfif", "hubble.mpo", "rocket.apng"]
    if features.check("avif"):
        hubble.save(folder / "hubble.avif", "AVIF", quality=80)
        named.append("hubble.avif")
    db = tmp_path / "c.db"
    assert_ok(index(folder, db))
    paths = catalog_paths(db)
    assert {p: paths.get(str(folder / p)) for p in named} == dict.fromkeys(named, "ok")
    assert all(paths.get(str(p)) == "ok" for p in normal)
