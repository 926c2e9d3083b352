"""Issue 18: faults that print a traceback instead of `error: …`, and runs that take more
memory or processes than they should or leave some behind. Every test runs the real `neardup`
command in a subprocess (tests/faults.py) and asserts what the user sees and what is left on
disk and in the process table."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neardup.storage import schema

from conftest import save, scene
from faults import (
    ADDRESS,
    NEARDUP,
    SmallDisk,
    as_ordinary_user,
    assert_error,
    assert_no_traceback,
    assert_ok,
    catalog_paths,
    digest,
    failures,
    in_session,
    index_killing_a_worker,
    kill_group,
    mount,
    neardup as run,
    peak_rss,
    photos,
    png_bomb,
    processes_mentioning,
    require_permissions_enforced,
    slow,
    small_disk,
    start,
    stats,
    umount,
    wait_for,
    workers,
)

NONE = ("--embedder", "none")


def index(folder, db, *extra, **kw):
    return run("index", folder, "--db", db, *NONE, "-q", *extra, **kw)


def scenes(folder: Path, count: int, size: tuple[int, int] = (160, 120), first: int = 0) -> list[Path]:
    return [save(scene(first + i, size), folder / f"s{first + i:04d}.png") for i in range(count)]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    """A hashes-only catalog of the five test photos, with its FAISS files built; tests that
    use it do not change it."""
    root = tmp_path_factory.mktemp("errors")
    photos(root / "photos")
    assert_ok(index(root / "photos", root / "c.db", "--workers", "2"))
    assert_ok(run("search", root / "photos" / "coffee.jpg", "--db", root / "c.db"))
    return root / "c.db"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A hashes-only catalog of the five test photos (in `photos/` beside it) whose FAISS
    files have not been built: copied by the tests that change their catalog."""
    root = tmp_path_factory.mktemp("template")
    photos(root / "photos")
    assert_ok(index(root / "photos", root / "c.db", "--workers", "2"))
    return root / "c.db"


@pytest.fixture
def fresh_db(tmp_path, template) -> Path:
    """A copy of `template` in this test's folder; its images are in `template`'s `photos/`."""
    shutil.copyfile(template, tmp_path / "c.db")
    return tmp_path / "c.db"


@pytest.fixture(scope="module")
def many_scenes(tmp_path_factory) -> list[Path]:
    """200 photo-sized scenes: several seconds of indexing on 2 cores, time enough to kill a
    worker or the indexer mid-run."""
    return scenes(tmp_path_factory.mktemp("scenes") / "photos", 200, (320, 240))


# == Tracebacks instead of `error: …` ==========================================================

# -- a second writer -------------------------------------------------------------------------
def _hold_write_lock(db: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what another neardup writing a batch holds
    return holder


def test_second_writer_gets_a_catalog_busy_error(tmp_path, fresh_db) -> None:
    """While another process writes the catalog, `neardup index` says the catalog is busy
    (exit 1, one `error:` line) instead of waiting out SQLite's 10 s busy timeout and then
    printing `database is locked` in a traceback. A moment's wait for a short transaction is
    fine: the wait beyond what the same run takes on a free catalog (start-up dominates, and
    it varies with the machine's load) stays within one busy timeout."""
    more = photos(tmp_path / "more", ["rocket"])
    free = tmp_path / "free.db"
    shutil.copyfile(fresh_db, free)
    baseline = index(more[0].parent, free, timeout=60)
    assert_ok(baseline)
    holder = _hold_write_lock(fresh_db)
    try:
        out = index(more[0].parent, fresh_db, timeout=60)
    finally:
        holder.rollback()
        holder.close()
    assert_error(out, "busy", "locked", "another")
    waited = out.seconds - baseline.seconds
    assert waited < schema.BUSY_TIMEOUT_MS / 1000 + 3, f"waited {waited:.1f} s more than a free run before giving up"


def test_search_reads_while_another_process_writes(fresh_db, template) -> None:
    """`search` only reads the catalog: it must answer while another process holds the write
    lock (today it waits 10 s and fails with `database is locked`, because it records the
    generation of the FAISS file it has just built)."""
    query = template.parent / "photos" / "chelsea.jpg"
    holder = _hold_write_lock(fresh_db)
    try:
        out = run("search", query, "--db", fresh_db, "--by", "pdq", "-k", "1", "--json", timeout=30)
    finally:
        holder.rollback()
        holder.close()
    assert_ok(out)
    assert json.loads(out.stdout)["results"][0]["path"] == str(query)
    assert out.seconds < 8, f"search waited {out.seconds:.1f} s for the writer"


def _cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_two_indexers_adding_the_same_new_files_do_not_crash(tmp_path) -> None:
    """Two `neardup index` runs add the same five new files at once. Made deterministic: the
    test holds the write lock until both have decoded their files and wait to write, then
    lets go; today the second to write fails with `IntegrityError: UNIQUE constraint failed`
    (it looked for the paths before taking the lock). Each run must succeed or stop with a
    clean `error:` (e.g. busy); afterwards one more run completes and every file is in the
    catalog once."""
    db = tmp_path / "c.db"
    assert_ok(index(photos(tmp_path / "seed", ["coffee"])[0].parent, db))
    new = photos(tmp_path / "new", ["chelsea", "astronaut", "rocket", "hubble"])
    holder = _hold_write_lock(db)
    procs = []
    try:
        procs = [start("index", new[0].parent, "--db", db, "-q", "--workers", "1",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]

        def settled() -> bool:  # both blocked on the lock (no CPU used for 0.5 s), or one done
            if any(p.poll() is not None for p in procs):
                return True
            before = [_cpu_ticks(p.pid) for p in procs]
            time.sleep(0.5)
            return all(b is not None and b == _cpu_ticks(p.pid) for b, p in zip(before, procs))

        wait_for(settled, timeout=8, interval=0)
    finally:
        holder.rollback()
        holder.close()
    outcomes = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            kill_group(proc.pid)
        outcomes.append((proc.returncode, err.decode(errors="replace")))
    for code, err in outcomes:
        assert "Traceback" not in err, f"a concurrent indexer crashed: {err.strip().splitlines()[-1]}"
        lines = err.strip().splitlines()
        assert code == 0 or (code == 1 and lines[-1].startswith("error: ")), err
    assert_ok(index(new[0].parent, db))
    paths = catalog_paths(db)
    assert all(paths.get(str(p)) == "ok" for p in new), paths
    assert len(paths) == 5


# -- disk full ---------------------------------------------------------------------------------
@pytest.fixture
def disk(tmp_path) -> Iterator[SmallDisk]:
    """An 8 MB tmpfs (root only; skipped where mounting is not allowed)."""
    yield from small_disk(tmp_path / "disk", "8m")


def test_index_on_a_full_disk_is_an_error_and_keeps_the_catalog(tmp_path, disk) -> None:
    """The disk fills up while indexing: `error: …` (saying the disk is full), exit 1, and
    the catalog keeps what it had: once there is space again `stats` works and the photo
    indexed before is still there."""
    db = disk.path / "c.db"
    first = photos(tmp_path / "first", ["coffee"])
    assert_ok(index(first[0].parent, db))
    more = photos(tmp_path / "more", ["chelsea", "astronaut", "rocket", "hubble"])
    disk.fill()
    out = index(more[0].parent, db)
    disk.free()
    assert_error(out, "disk", "space", "full")
    assert catalog_paths(db).get(str(first[0])) == "ok"


@pytest.mark.parametrize("command", ["search", "duplicates"])
def test_full_disk_while_saving_faiss_files_leaves_no_empty_faiss_file(tmp_path, disk, command) -> None:
    """`search` and `duplicates` build FAISS files and save them beside the catalog. On a disk
    with 40, 48 or 64 KB left (so that it fills up at different steps: the catalog's WAL,
    one FAISS file or another, recording its generation; 48 KB left a 0-byte
    `c.phash256.faiss` on today's code) they either answer from the index in memory (it is a
    cache) or stop with `error: …` saying the disk is full; never a traceback, and no empty
    `.faiss` file is left behind."""
    template = tmp_path / "template.db"
    photo = photos(tmp_path / "photos")[0]
    assert_ok(index(photo.parent, template))
    for free_kb in (40, 48, 64):
        disk.clear()
        shutil.copyfile(template, disk.path / "c.db")
        disk.fill(leave=free_kb * 1024)
        out = run(command, *([photo] if command == "search" else []), "--db", disk.path / "c.db")
        disk.free()
        assert "Traceback" not in out.stderr, f"{free_kb} KB free: {out}"
        if out.code != 0:
            assert_error(out, "disk", "space", "full")
        empty = [p.name for p in disk.path.glob("*.faiss") if p.stat().st_size == 0]
        assert not empty, f"{free_kb} KB free: empty FAISS files left: {empty}"


# -- read-only catalogs --------------------------------------------------------------------------
@pytest.fixture(params=["chmod", "read-only-mount", "immutable"])
def read_only_db(request, tmp_path, template) -> Iterator[tuple[Path, object]]:
    """A built catalog (FAISS files not yet saved) in a folder the next run cannot write:
    chmod 555/444 (the run started without root's permission override), a read-only bind
    mount, or `chattr +i` on the folder and the catalog. Yields (catalog, preexec_fn)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "c.db"
    shutil.copyfile(template, db)
    preexec = None
    if request.param == "chmod":
        require_permissions_enforced(tmp_path)
        db.chmod(0o444)
        folder.chmod(0o555)
        try:
            yield db, as_ordinary_user
        finally:
            folder.chmod(0o755)
            db.chmod(0o644)
    elif request.param == "read-only-mount":
        mount("--bind", str(folder), str(folder))
        try:
            mount("-o", "remount,bind,ro", str(folder))
            yield db, preexec
        finally:
            umount(folder)
    else:
        made = subprocess.run(["chattr", "+i", str(db), str(folder)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"chattr +i does not work here: {made.stderr.strip()}")
        try:
            yield db, preexec
        finally:
            subprocess.run(["chattr", "-i", str(db), str(folder)], capture_output=True)


def test_stats_and_search_work_on_a_read_only_catalog(read_only_db, template) -> None:
    """Reading needs no write access: `stats` and `search` open a catalog they cannot write
    read-only and answer (search builds its FAISS index in memory and does not save it)."""
    db, preexec = read_only_db
    out = run("stats", "--db", db, preexec=preexec)
    assert_ok(out)
    assert "images" in out.stdout
    query = template.parent / "photos" / "rocket.jpg"
    out = run("search", query, "--db", db, "--by", "pdq", "-k", "1", "--json", preexec=preexec)
    assert_ok(out)
    assert json.loads(out.stdout)["results"][0]["path"] == str(query)


def test_index_into_a_read_only_catalog_is_an_error(read_only_db, tmp_path) -> None:
    db, preexec = read_only_db
    more = photos(tmp_path / "more", ["rocket"])
    assert_error(index(more[0].parent, db, preexec=preexec), "read-only", "read only", "permission", "cannot write")


# -- files that are not neardup catalogs ---------------------------------------------------------
def _foreign_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.execute("INSERT INTO notes (body) VALUES ('my grocery list')")
    con.commit()
    con.close()


def _not_a_catalog(kind: str, path: Path, catalog: bytes) -> None:
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(catalog[:8192])
    elif kind == "corrupt":  # the header intact, every page after the first overwritten
        path.write_bytes(catalog[:4096] + random.Random(1).randbytes(len(catalog) - 4096))
    elif kind == "random-bytes":
        path.write_bytes(random.Random(0).randbytes(65536))
    else:
        _foreign_sqlite(path)


NOT_CATALOGS = [(kind, "stats") for kind in ("zero-byte", "truncated", "corrupt", "random-bytes", "foreign-sqlite")]
NOT_CATALOGS += [("zero-byte", "index"), ("foreign-sqlite", "index")]


@pytest.mark.parametrize("kind, command", NOT_CATALOGS, ids=[f"{k}-{c}" for k, c in NOT_CATALOGS])
def test_file_that_is_not_a_catalog_is_an_error_and_left_untouched(tmp_path, template, kind, command) -> None:
    """`--db` naming a zero-byte, truncated, corrupt or random file, or another program's
    SQLite database: `error: …` saying it is not a (readable) neardup catalog, exit 1, and
    the file's bytes unchanged (today the foreign database is switched to WAL mode for good)
    with no -wal/-shm files left beside it."""
    db = tmp_path / "x.db"
    _not_a_catalog(kind, db, template.read_bytes())
    was = digest(db)
    args = ("stats",) if command == "stats" else ("index", photos(tmp_path / "photos", ["rocket"])[0].parent, *NONE)
    out = run(*args, "--db", db)
    assert_error(out, "catalog", "database")
    assert digest(db) == was, f"neardup modified a file that is not its catalog ({kind})"
    assert not [p.name for p in tmp_path.glob("x.db-*")], "left -wal/-shm files beside it"


# -- a killed worker ----------------------------------------------------------------------------
@slow
def test_killed_worker_is_an_error_or_recovered_not_a_traceback(tmp_path, many_scenes) -> None:
    """A decoding worker killed mid-run (the OOM killer, a user's kill -9): the run stops
    with `error: …` (what was indexed is kept) or finishes the work itself; never a
    `BrokenProcessPool` traceback. Either way the next run completes the catalog."""
    folder, files = many_scenes[0].parent, many_scenes
    db = tmp_path / "c.db"
    code, err = index_killing_a_worker(folder, "--db", db, *NONE, "-q", "--workers", "2", started_within=30, settle=0.3)
    assert "Traceback" not in err, err.strip().splitlines()[-1]
    if code != 0:
        assert err.strip().splitlines()[-1].startswith("error: "), err
    assert_ok(index(folder, db, "--workers", "2"))
    assert sum(s == "ok" for s in catalog_paths(db).values()) == len(files)


# -- a thin query among others --------------------------------------------------------------------
def test_thin_query_image_does_not_stop_the_remaining_queries(tmp_path, db) -> None:
    """A folder of queries whose first file is a 1 x 20000 sliver (1 px wide after fitting):
    every other query is answered; the thin one is answered too or reported as
    `error: <path>: …`; no traceback."""
    queries = tmp_path / "queries"
    queries.mkdir()
    Image.new("RGB", (1, 20000), (200, 30, 30)).save(queries / "a_sliver.png")
    wanted = photos(queries, ["chelsea", "rocket"])
    out = run("search", queries, "--db", db, "-k", "1", "--json")
    assert_no_traceback(out)
    answered = {json.loads(line)["query"] for line in out.stdout.splitlines() if line.strip()}
    assert {str(p) for p in wanted} <= answered, f"answered only {sorted(answered)}; {out}"


# -- an empty query folder --------------------------------------------------------------------------
def test_empty_query_folder_is_an_error(tmp_path, db) -> None:
    """`neardup search empty/` has nothing to search: say so and exit non-zero, instead of
    printing nothing and exiting 0 (which a script reads as "no matches")."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert_error(run("search", empty, "--db", db), "no image", "empty", "nothing")


# -- failure reasons a person can act on ----------------------------------------------------------
def test_failure_reasons_are_stable_and_free_of_python_internals(tmp_path) -> None:
    """Random bytes, a text file named .png, a zero-byte and a truncated JPEG, indexed into
    two catalogs: each file's reason is the same in both, and names no memory address
    (`<_io.BytesIO object at 0x7f…>`), no object repr and no Python exception class
    (`OSError: …`): it says what is wrong with the file."""
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "random.png").write_bytes(random.Random(0).randbytes(5000))
    (folder / "text.png").write_text("hello, I am not a PNG\n")
    (folder / "zero.jpg").write_bytes(b"")
    coffee = photos(tmp_path / "src", ["coffee"])[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(coffee[: len(coffee) // 3])
    photos(folder, ["rocket"])
    reasons = []
    for n in range(2):
        index(folder, tmp_path / f"c{n}.db", "--workers", "2")
        reasons.append({Path(p).name: r for p, r in failures(tmp_path / f"c{n}.db").items()})
    assert set(reasons[0]) == {"random.png", "text.png", "zero.jpg", "truncated.jpg"}, reasons[0]
    assert reasons[0] == reasons[1], "reasons differ between two runs"
    internals = {name: r for name, r in reasons[0].items()
                 if ADDRESS.search(r) or " object at " in r or "<_io" in r or re.search(r"\b[A-Z]\w*(Error|Exception):", r)}
    assert not internals, f"reasons with Python internals: {internals}"


def test_megapixel_limit_reason_names_neardups_150_mp_limit(tmp_path) -> None:
    """A 15000 x 15000 PNG (225 MP) is over neardup's documented 150 MP limit; its reason
    says so ("… 225 MP, over the 150 MP limit"), not Pillow's 178,956,970-pixel bomb check."""
    folder = tmp_path / "big"
    folder.mkdir()
    Image.new("1", (15000, 15000)).save(folder / "huge.png")
    photos(folder, ["rocket"])
    db = tmp_path / "c.db"
    assert_ok(index(folder, db, "--workers", "2"))
    reason = failures(db)[str(folder / "huge.png")]
    assert "150 MP" in reason and "178956970" not in reason, reason


def test_nan_float_tiff_prints_no_numpy_warning(tmp_path) -> None:
    """A 32-bit float TIFF with NaN pixels is indexed or recorded without a NumPy
    `RuntimeWarning: invalid value encountered in cast` leaking to stderr."""
    folder = tmp_path / "tiff"
    folder.mkdir()
    pixels = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    pixels[10:30, 10:30] = np.nan
    Image.fromarray(pixels, mode="F").save(folder / "nan.tif")
    photos(folder, ["rocket"])
    db = tmp_path / "c.db"
    out = index(folder, db, "--workers", "2")
    assert_ok(out)
    assert "Warning" not in out.stderr, out.stderr
    assert str(folder / "nan.tif") in catalog_paths(db)


# == Resources and processes =====================================================================
@slow
def test_duplicates_of_identical_images_grow_linearly_in_memory(tmp_path) -> None:
    """`duplicates` on N byte-identical images must group them by content hash in O(N), not
    through N^2/2 pairs (4,000 copies took 3.7 GB, 20,000 were killed at 15.6 GB). Peak memory
    for 1,000 copies may exceed that for 250 by at most 40 MB, about 53 KB per extra image
    (linear work needs a few hundred bytes each); today auto adds ~60 MB and --by pdq ~145 MB
    (all pairs through FAISS range search). Each run is capped at 3 GB of address space.
    (Slow: indexes 1,250 small files, ~15 s.)"""
    src = save(scene(5, (32, 32)), tmp_path / "src.png")
    for i in range(1000):
        folder = tmp_path / "copies" / ("first" if i < 250 else "rest")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, folder / f"{i:04d}.png")
    small, large = tmp_path / "c250.db", tmp_path / "c1000.db"
    assert_ok(index(tmp_path / "copies" / "first", small, "--workers", "2", timeout=120))
    assert_ok(index(tmp_path / "copies", large, "--workers", "2", timeout=120))
    growth = {}
    for by in ("auto", "pdq"):
        peaks = []
        for db, n in ((small, 250), (large, 1000)):
            out, peak = peak_rss(tmp_path, "duplicates", "--db", db, "--by", by, "--format", "json",
                                 address_space=3 << 30, timeout=120)
            assert_ok(out)
            assert [len(g["members"]) for g in json.loads(out.stdout)] == [n]
            peaks.append(peak)
        growth[by] = (peaks[1] - peaks[0]) / 2**20
    assert all(mb <= 40 for mb in growth.values()), f"peak memory growth from 250 to 1,000 copies, MB: {growth}"


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bomb")
    png_bomb(folder / "bomb.png")
    return folder / "bomb.png"


@slow
def test_png_bomb_is_indexed_within_a_memory_budget(tmp_path, bomb) -> None:
    """A 0.6 MB 12000 x 12000 RGBA PNG (144 MP: under the 150 MP limit) took 7.6 GB in a
    worker. It must be decoded at reduced size or refused by a memory budget: no process of
    the run may pass 1 GiB resident (the whole RGBA image alone is 576 MB), and the file is
    indexed or recorded. Each process is capped at 3 GB of address space so that today's code
    fails fast (MemoryError) instead of taking the machine's memory."""
    folder = tmp_path / "photos"
    photos(folder, ["rocket"])
    shutil.copyfile(bomb, folder / "bomb.png")
    db = tmp_path / "c.db"
    out, peak = peak_rss(tmp_path, "index", folder, "--db", db, *NONE, "-q", "--workers", "2",
                         address_space=3 << 30, timeout=120)
    assert_ok(out)
    assert peak < 1 << 30, f"peak resident memory {peak / 2**30:.2f} GiB"
    assert str(folder / "bomb.png") in catalog_paths(db)


def test_more_workers_than_cores_are_capped_or_warned_about(tmp_path) -> None:
    """`--workers 64` on a 2-core machine started 65 processes (5.2 GB) without a word. The
    run must either start no more than one worker per core, or say on stderr that it was
    asked for more workers than there are cores."""
    cores = os.cpu_count() or 1
    asked = 32 * cores
    folder = tmp_path / "photos"
    scenes(folder, 8 * asked // 4, (32, 24))
    db = tmp_path / "c.db"
    proc = start("index", folder, "--db", db, *NONE, "-q", "--workers", str(asked),
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    most = 0
    try:
        while proc.poll() is None:
            most = max(most, len(workers(proc.pid)))
            time.sleep(0.02)
        _, err = proc.communicate(timeout=60)
    finally:
        kill_group(proc.pid)
    err = err.decode(errors="replace")
    assert proc.returncode == 0 and "Traceback" not in err, err
    warned = str(asked) in err and re.search(r"core|cpu", err, re.IGNORECASE)
    assert most <= cores or warned, f"{most} worker processes on {cores} cores, and no warning: {err!r}"


def _unique_db(tmp_path: Path) -> Path:
    """A catalog path no other process names: this test's processes are found by it."""
    return tmp_path / f"orphans-{os.getpid()}-{time.monotonic_ns()}.db"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_killing_the_indexer_leaves_no_orphan_workers(tmp_path, many_scenes, sig) -> None:
    """Killing the main `neardup index` process (SIGTERM from a service manager, SIGHUP from
    a closed terminal, SIGKILL) must take its decoding workers with it: within 2 s no process
    of its session (workers, a forkserver) and none whose command line names this test's
    catalog is alive, and the output pipes are closed."""
    folder, db = many_scenes[0].parent, _unique_db(tmp_path)
    proc = start("index", folder, "--db", db, *NONE, "-q", "--workers", "2",
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: len(workers(proc.pid)) >= 2, timeout=30), "no workers started"
        time.sleep(0.3)
        proc.send_signal(sig)
        proc.wait(timeout=30)

        def left() -> dict[int, str]:
            return in_session(proc.pid) | processes_mentioning(str(db))

        wait_for(lambda: not left(), timeout=2, interval=0.1)
        orphans = left()
        try:
            proc.communicate(timeout=3)
            closed = True
        except subprocess.TimeoutExpired:
            closed = False
    finally:
        kill_group(proc.pid)
    assert not orphans, f"orphaned after {sig.name}: {len(orphans)} processes, e.g. {next(iter(orphans.values()), '')[:120]}"
    assert closed, f"stdout/stderr still open after {sig.name}: a reader (`| cat`) would never finish"


def test_index_piped_into_cat_ends_when_the_indexer_is_terminated(tmp_path, many_scenes) -> None:
    """`neardup index … | cat`, then SIGTERM to neardup: the pipeline ends (cat reads EOF)
    within 5 s instead of waiting forever on the pipe the orphaned workers still hold."""
    folder, db = many_scenes[0].parent, _unique_db(tmp_path)
    shell = subprocess.Popen(
        ["bash", "-c", '"$0" index "$1" --db "$2" --embedder none --workers 2 2>&1 | cat >/dev/null',
         str(NEARDUP), str(folder), str(db)],
        start_new_session=True,
    )
    try:
        def main_pid() -> int | None:
            found = [pid for pid in processes_mentioning(str(db)) if pid != shell.pid and len(workers(pid)) >= 2]
            return found[0] if found else None

        pid = wait_for(main_pid, timeout=30)
        assert pid, "the indexer did not start its workers"
        os.kill(pid, signal.SIGTERM)
        try:
            shell.wait(timeout=5)
            ended = True
        except subprocess.TimeoutExpired:
            ended = False
    finally:
        kill_group(shell.pid)
    assert ended, "`neardup index … | cat` did not end after neardup was terminated"


def test_kill_during_catalog_creation_leaves_no_temporary_file(tmp_path) -> None:
    """A catalog is built aside as `.NAME.PID.new` and renamed when complete. Kill the run
    while that file exists (SIGKILL the moment it appears), run again: the run completes and
    no `.c.db.*.new` file (or its journal) is left in the folder."""
    folder = tmp_path / "photos"
    photos(folder, ["coffee", "rocket"])
    db = tmp_path / "c.db"
    proc = start("index", folder, "--db", db, *NONE, "-q", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    caught = False
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if any(n.startswith(".c.db.") and n.endswith(".new") for n in os.listdir(tmp_path)):
                proc.kill()
                caught = True
                break
        proc.wait(timeout=10)
    finally:
        kill_group(proc.pid)
    if not caught:
        pytest.skip("catalog creation finished before the kill could land (no .new file seen)")
    assert_ok(index(folder, db))
    left = [n for n in os.listdir(tmp_path) if n.startswith(".c.db.")]
    assert not left, f"left behind: {left}"
    assert stats(db)["counts"]["ok"] == 2
