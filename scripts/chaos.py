"""The chaos benchmark (issue 18): SIGKILL `neardup` at random moments and check what is left.

    .venv/bin/python scripts/chaos.py [--rounds 21] [--seed 0] [--images 40] [--keep DIR]

Builds a collection in a temporary folder (seeded synthetic photos, each with a byte-for-byte
copy and a resized copy, so every base has a duplicate group) and a reference: an
uninterrupted `neardup index` and `neardup duplicates --format json` of it. Then each round
kills, with SIGKILL sent to the command's own process only (its workers must die with it),
one run of each of:

1. `index PHOTOS` on a fresh catalog (the catalog is deleted first),
2. `duplicates --format json`,
3. `clean --apply PLAN` (a plan made just before, alternately `--action move` and `trash`),
4. `undo` of that clean-up,
5. `serve` while two clients upload searches and one starts an index job of new files.

The moment is drawn uniformly over the command's uninterrupted run time (measured in round
0, which kills nothing). After each kill, and again after re-running the killed command:

- integrity: `PRAGMA integrity_check` and `foreign_key_check` are "ok"; `neardup stats` works;
  no temporary file is left beside the catalog once the re-run is done;
- re-run: the same command completes with exit 0 and no traceback;
- nothing lost or duplicated: the catalog holds every file on disk once, with the reference's
  hashes; the files of the collection, the move folder and the trash together hold exactly
  the collection's bytes (same multiset of SHA-256s: nothing lost, nothing copied twice);
- FAISS equals a rebuild: every index file that its sidecar binds to the catalog's current
  generation holds exactly the catalog's ids and codes;
- files: every file is at its place untouched, or gone from it and named by a journal entry
  whose destination holds its bytes; after the re-run of clean, every planned action is
  journaled done; after the re-run of undo, the collection equals the original byte for byte;
- duplicates after a re-run equals the reference's groups;
- orphans: within 3 s of the kill no process of the killed command's session is left.

Prints one line per kill and a summary table per command. `--embedder none` (the default)
keeps a round under a minute on 2 cores; `--embedder cnn` adds the CNN and its FAISS index.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
NEARDUP = Path(sys.executable).with_name("neardup")
COMMANDS = ("index", "duplicates", "clean", "undo", "serve")
TOKEN = "chaos"
SERVE_SECONDS = 8.0  # half the kills of serve within this long of its answering, while searches run


# -- the collection ---------------------------------------------------------------------------
def scene(seed: int, size: tuple[int, int]) -> np.ndarray:
    """A seeded photo-like RGB image (h, w, 3) uint8: smooth colour fields plus shapes."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = cv2.resize(rng.random((4, 5, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC) * 255
    for _ in range(8):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(10, h // 2)), color, -1)
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.rectangle(img, p1, (p1[0] + int(rng.integers(10, w // 2)), p1[1] + 30), color, -1)
    noise = rng.normal(0, 4, img.shape)  # texture, so that decoding and ORB have work to do
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def make_collection(folder: Path, bases: int, seed: int) -> None:
    """`bases` photos, each with a byte copy in copies/ and a 70 % JPEG in edited/."""
    for i in range(bases):
        name = f"p{i:03d}"
        rgb = scene(seed * 1000 + i, (800, 600))
        (folder / "copies").mkdir(parents=True, exist_ok=True)
        (folder / "edited").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(folder / f"{name}.jpg", quality=92)
        shutil.copyfile(folder / f"{name}.jpg", folder / "copies" / f"{name}.jpg")
        Image.fromarray(rgb).resize((560, 420)).save(folder / "edited" / f"{name}.jpg", quality=80)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder: Path) -> dict[str, str]:
    """Every regular file under `folder`: path relative to it -> SHA-256."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): sha(p) for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


# -- running neardup ----------------------------------------------------------------------------
@dataclass
class World:
    base: Path
    embedder: str
    photos: Path = field(init=False)
    db: Path = field(init=False)

    def __post_init__(self) -> None:
        self.photos = self.base / "photos"
        self.db = self.base / "cat" / "c.db"
        self.moved = self.base / "moved"
        self.extra = self.base / "extra"
        self.xdg = self.base / "xdg"  # the desktop trash lives in here (XDG_DATA_HOME)
        self.trash = self.xdg / "Trash"
        self.env = {**os.environ, "XDG_DATA_HOME": str(self.xdg), "NEARDUP_CACHE_DIR": str(self.base / "cache")}

    def args(self, command: str, plan: Path | None = None, action: str = "move") -> list[str]:
        db = ["--db", str(self.db)]
        return {
            "index": ["index", str(self.photos), *db, "--workers", "2", "-q", "--embedder", self.embedder],
            "duplicates": ["duplicates", *db, "--format", "json"],
            "plan": ["clean", *db, "--action", action, *(["--to", str(self.moved)] if action == "move" else []),
                     "--plan", str(plan), "-q"],
            "clean": ["clean", *db, "--apply", str(plan), "-q", "--json"],
            "undo": ["undo", *db, "--json"],
            "serve": ["serve", *db, "--port", "0", "--token", TOKEN, "--workers", "1"],
        }[command]

    def start(self, args: list[str], **popen) -> subprocess.Popen:
        """`neardup ARGS` in its own session (so its leftovers can be found by session id)."""
        return subprocess.Popen([str(NEARDUP), *args], env=self.env, start_new_session=True, cwd=self.base, **popen)

    def run(self, args: list[str], timeout: float = 600) -> tuple[int, str, str]:
        proc = self.start(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            kill_session(proc.pid)
        return proc.returncode, out, err

    def ok(self, args: list[str]) -> str:
        code, out, err = self.run(args)
        if code != 0 or "Traceback" in err:
            raise Failure(f"`neardup {' '.join(args[:1])}` exit {code}: {err.strip()[-400:]}")
        return out


class Failure(Exception):
    """A check that did not hold."""


def kill_session(sid: int) -> None:
    try:
        os.killpg(sid, 9)
    except (ProcessLookupError, PermissionError):
        pass


def session_members(sid: int) -> list[int]:
    """Live processes (not zombies) of session `sid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, _, _, session = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:4]
            except (OSError, ValueError):
                continue
            if int(session) == sid and state != "Z":
                found.append(int(entry.name))
    return found


def orphans_after(proc: subprocess.Popen, wait: float = 3.0) -> int:
    """How many processes of `proc`'s session outlive it by `wait` seconds (then they are killed)."""
    proc.wait()
    deadline = time.monotonic() + wait
    while (left := session_members(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_session(proc.pid)
    return len(left)


# -- what the catalog holds -----------------------------------------------------------------------
def integrity(db: Path) -> None:
    if not db.exists():
        return  # a kill before the catalog's rename: nothing to check (and nothing half-made)
    con = sqlite3.connect(db, timeout=30)
    try:
        (result,) = con.execute("PRAGMA integrity_check").fetchone()
        fk = con.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        con.close()
    if result != "ok" or fk:
        raise Failure(f"integrity_check: {result}; foreign keys: {fk[:3]}")


def catalog_content(db: Path) -> dict[str, tuple]:
    """path -> (status, sha256, {algo: hash hex}) of every image row; a path stored twice fails."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = con.execute("SELECT id, path, status, sha256 FROM images").fetchall()
        hashes: dict[int, dict[str, str]] = {}
        for image_id, algo, value in con.execute("SELECT image_id, algo, bits FROM hashes WHERE view = 'image'"):
            if algo in hashes.setdefault(image_id, {}):
                raise Failure(f"image {image_id} has two {algo} hashes")
            hashes[image_id][algo] = bytes(value).hex()
    finally:
        con.close()
    paths = Counter(path for _, path, _, _ in rows)
    if twice := [p for p, n in paths.items() if n > 1]:
        raise Failure(f"stored twice: {twice[:3]}")
    return {path: (status, digest, hashes.get(i, {})) for i, path, status, digest in rows}


def check_catalog_matches(world: World, reference: dict[str, tuple], status: dict[str, str] | None = None) -> None:
    """The catalog holds exactly the reference's images with the reference's hashes; images
    a clean-up acted on carry its status (`status`: path -> expected status)."""
    got = catalog_content(world.db)
    if set(got) != set(reference):
        missing, extra = set(reference) - set(got), set(got) - set(reference)
        raise Failure(f"catalog differs: {len(missing)} missing ({sorted(missing)[:2]}), {len(extra)} extra ({sorted(extra)[:2]})")
    for path, (st, digest, hashes) in got.items():
        want = reference[path]
        if (digest, hashes) != (want[1], want[2]):
            raise Failure(f"{path}: hashes differ from an uninterrupted run")
        if st != (status or {}).get(path, want[0]):
            raise Failure(f"{path}: status {st!r}, expected {(status or {}).get(path, want[0])!r}")


def check_faiss(db: Path) -> int:
    """Every index file bound to the catalog's current generation holds exactly the catalog's
    ids and codes (what a rebuild would hold). Returns how many files were checked."""
    import faiss

    from neardup.storage.catalog import Catalog

    checked = 0
    cat = Catalog.open(db, readonly=True)
    try:
        generation = cat.generation()
        for sidecar in db.parent.glob(f"{db.stem}.*.faiss.json"):
            index_file = sidecar.with_suffix("")
            feature = index_file.name[len(db.stem) + 1 : -len(".faiss")]
            meta = json.loads(sidecar.read_text())
            data = index_file.read_bytes() if index_file.exists() else b""
            if meta.get("generation") != generation or meta.get("sha256") != hashlib.sha256(data).hexdigest():
                continue  # stale: the next use rebuilds it (neardup never reads it as it is)
            binary = feature in cat.settings.hashes
            buffer = np.frombuffer(data, np.uint8)
            if binary:
                index = faiss.deserialize_index_binary(buffer)
                inner = faiss.downcast_IndexBinary(index.index)
                stored = faiss.vector_to_array(inner.xb).reshape(index.ntotal, -1)
                ids, expected = cat.hashes(feature)
            else:
                index = faiss.deserialize_index(buffer)
                stored = faiss.downcast_index(index.index).reconstruct_n(0, index.ntotal)
                ids, expected = cat.vectors(feature)
            stored_ids = faiss.vector_to_array(index.id_map)
            a, b = np.argsort(stored_ids), np.argsort(ids)
            same = np.array_equal(stored_ids[a], ids[b]) and (
                np.array_equal(stored[a], expected[b]) if binary else np.allclose(stored[a], expected[b], atol=1e-6))
            if not same:
                raise Failure(f"{index_file.name} differs from a rebuild from the catalog")
            checked += 1
    finally:
        cat.close()
    return checked


def stray_files(world: World) -> list[str]:
    """Temporary files beside the catalog (half-written index files, half-built catalogs)."""
    return sorted(p.name for p in world.db.parent.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def groups_of(out: str) -> set[frozenset[str]]:
    """`duplicates --format json` as comparable values: {(keeper, members)}."""
    return {(g["keeper"], frozenset(m["path"] for m in g["members"])) for g in json.loads(out)}


# -- the files on disk ----------------------------------------------------------------------------
def everywhere(world: World) -> Counter:
    """SHA-256 -> how many copies the collection, the move folder and the trash hold together."""
    found = Counter(tree(world.photos).values())
    found.update(tree(world.moved).values())
    found.update(tree(world.trash / "files").values())
    return found


def journal(world: World) -> list[dict]:
    con = sqlite3.connect(f"file:{world.db}?mode=ro", uri=True, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM clean_entries ORDER BY run_id, seq")]
    except sqlite3.OperationalError:
        return []  # no clean-up yet: the journal's tables do not exist
    finally:
        con.close()


def check_files(world: World, original: dict[str, str]) -> tuple[int, int]:
    """Every original file is at its place with its bytes, or gone from it, named by a journal
    entry (planned or done), and its bytes are elsewhere; nothing lost or duplicated.
    Returns (untouched, acted on)."""
    now = tree(world.photos)
    journaled = {e["source"] for e in journal(world) if e["state"] in ("planned", "done")}
    untouched = acted = 0
    for rel, digest in original.items():
        path = str(world.photos / rel)
        if now.get(rel) == digest:
            untouched += 1
        elif rel in now:
            raise Failure(f"{rel} changed in place")
        elif path not in journaled:
            raise Failure(f"{rel} is gone and no journal entry names it")
        else:
            acted += 1
    if set(now) - set(original):
        raise Failure(f"new files in the collection: {sorted(set(now) - set(original))[:3]}")
    if everywhere(world) != Counter(original.values()):
        diff = (everywhere(world) - Counter(original.values())) + (Counter(original.values()) - everywhere(world))
        raise Failure(f"bytes lost or duplicated across collection, move folder and trash: {len(diff)} digests differ")
    return untouched, acted


# -- one kill -------------------------------------------------------------------------------------
@dataclass
class Outcome:
    command: str
    at: float  # seconds after the start
    landed: str  # what the killed command had committed (`landed`), or that it had exited
    recovered: bool
    orphans: int
    problem: str = ""


class Clients:
    """Two threads uploading searches to a served catalog, and one index job, until stopped."""

    def __init__(self, url: str, queries: list[Path], extra: Path) -> None:
        import httpx

        self.stop_flag = threading.Event()
        self.answered = Counter()
        self.threads = [threading.Thread(target=self._search, args=(url, queries, httpx), daemon=True) for _ in range(2)]
        self.threads.append(threading.Thread(target=self._index, args=(url, extra, httpx), daemon=True))
        for t in self.threads:
            t.start()

    def _client(self, url, httpx):
        return httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"})

    def _search(self, url, queries, httpx) -> None:
        with self._client(url, httpx) as http:
            while not self.stop_flag.is_set():
                q = random.choice(queries)
                try:
                    r = http.post("/api/search?k=5", files={"file": (q.name, q.read_bytes())})
                    self.answered[r.status_code] += 1
                except httpx.HTTPError:
                    self.answered["refused"] += 1
                    time.sleep(0.05)

    def _index(self, url, extra, httpx) -> None:
        with self._client(url, httpx) as http:
            try:
                r = http.post("/api/index", json={"paths": [str(extra)]})
                self.answered[f"index {r.status_code}"] += 1
            except httpx.HTTPError:
                self.answered["refused"] += 1

    def stop(self) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=35)


def serve(world: World) -> tuple[subprocess.Popen, str]:
    proc = world.start(world.args("serve"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if " at http://" not in line:
        kill_session(proc.pid)
        raise Failure(f"neardup serve did not start: {line!r}")
    return proc, line.split(" at ", 1)[1].split("?")[0].rstrip("/")


def progress_of(world: World, command: str) -> int:
    """A count that grows as `command` works: image rows, index files, journal entries done or undone."""
    if command == "duplicates":
        return len(list(world.db.parent.glob("*.faiss")))
    if not world.db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{world.db}?mode=ro", uri=True, timeout=5)
        try:
            q = {"index": "SELECT count(*) FROM images", "serve": "SELECT count(*) FROM images",
                 "clean": "SELECT count(*) FROM clean_entries WHERE state = 'done'",
                 "undo": "SELECT count(*) FROM clean_entries WHERE state = 'undone'"}[command]
            return con.execute(q).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def landed(before: int, after: int, total: int) -> str:
    """Where a kill landed, by what the command had committed: nothing, part or all of it
    (index commits 64 images at a time; clean and undo every file)."""
    if after <= before:
        return "nothing written"
    return "all written" if after >= total else "partly written"


class Chaos:
    def __init__(self, world: World, rng: random.Random, queries: list[Path]) -> None:
        self.world, self.rng, self.queries = world, rng, queries
        self.durations: dict[str, float] = {}
        self.outcomes: list[Outcome] = []
        self.round = 0

    def reference(self) -> None:
        w = self.world
        self.original = tree(w.photos)
        self.calibrate("index", w.args("index"))
        self.catalog = catalog_content(w.db)
        self.calibrate("duplicates", w.args("duplicates"))
        self.groups = groups_of(w.ok(w.args("duplicates")))
        print(f"reference: {len(self.catalog)} images, {len(self.groups)} groups; " + self.timings("index", "duplicates"),
              flush=True)

    def calibrate(self, command: str, args: list[str]) -> None:
        """Run `command` uninterrupted: its run time and when its work shows (`progress_of`)."""
        before = progress_of(self.world, command)
        started = time.perf_counter()
        proc = self.world.start(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first = None
        while proc.poll() is None:
            if first is None and progress_of(self.world, command) > before:
                first = time.perf_counter() - started
            time.sleep(0.01)
        total = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"calibration: `neardup {command}` exit {proc.returncode}: {proc.stderr.read()[-400:]}")
        self.durations[command] = (first if first is not None else 0.0, total)

    def timings(self, *commands: str) -> str:
        return ", ".join(f"{c} {self.durations[c][1]:.1f} s (work from {self.durations[c][0]:.1f} s)" for c in commands)

    def moment(self, command: str, proc: subprocess.Popen, before: int, total: int) -> float:
        """Wait for the moment to kill. `duplicates`: uniformly over its calibrated run time
        (it works most of it, building indexes). The others, a quarter of the time the same
        way; else `index` within a second after the commit holding a random k-th image (it
        commits 64 at a time, so a uniform moment mostly lands before the first commit), and
        `clean` and `undo`, which act on a file in milliseconds and spend most of their run
        starting and exiting, within 20 ms after a random k-th file is journaled."""
        first, run_time = self.durations[command]
        started = time.perf_counter()
        if command == "duplicates" or self.rng.random() < 0.25:
            time.sleep(self.rng.uniform(0, run_time))
        elif command == "index":  # it commits 64 images at a time: after a random image's commit
            target = self.rng.randrange(1, total)
            while proc.poll() is None and progress_of(self.world, command) < target \
                    and time.perf_counter() - started < 3 * run_time:
                time.sleep(0.005)
            time.sleep(self.rng.uniform(0, 1.0))
        else:
            target = before + self.rng.randrange(total - before)
            while proc.poll() is None and progress_of(self.world, command) < target \
                    and time.perf_counter() - started < 3 * run_time:
                time.sleep(0.002)
            time.sleep(self.rng.uniform(0, 0.02))
        return time.perf_counter() - started

    def killed(self, command: str, args: list[str], *, total: int) -> tuple[float, str, int]:
        """Start `neardup ARGS`, SIGKILL its main process at a random moment (`moment`);
        returns (seconds after the start, where it landed, orphans)."""
        w = self.world
        before = progress_of(w, command)
        proc = w.start(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        at = self.moment(command, proc, before, total)
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, 9)  # the main process only: its workers must die with it by themselves
        orphans = orphans_after(proc)
        after = progress_of(w, command)
        where = "after it exited" if finished else landed(before, after, total)
        return at, where, orphans

    def record(self, command: str, at: float, where: str, orphans: int, check) -> None:
        try:
            if orphans:
                raise Failure(f"{orphans} orphan processes")
            check()
            outcome = Outcome(command, at, where, True, orphans)
        except Failure as failure:
            outcome = Outcome(command, at, where, False, orphans, str(failure))
        except Exception as error:  # a crash of a check is reported, not hidden, and the run goes on
            outcome = Outcome(command, at, where, False, orphans, f"{type(error).__name__}: {error}")
        self.outcomes.append(outcome)
        mark = "ok" if outcome.recovered else f"FAILED: {outcome.problem}"
        print(f"  round {self.round:2d} {command:10s} kill at {at:5.2f} s ({where:15s}) {mark}", flush=True)

    def common(self) -> None:
        integrity(self.world.db)

    # -- the five commands --------------------------------------------------------------------
    def index(self) -> None:
        w = self.world
        shutil.rmtree(w.db.parent, ignore_errors=True)
        w.db.parent.mkdir(parents=True)
        at, where, orphans = self.killed("index", w.args("index"), total=len(self.catalog))

        def check() -> None:
            self.common()
            w.ok(w.args("index"))
            integrity(w.db)
            check_catalog_matches(w, self.catalog)
            got = groups_of(w.ok(w.args("duplicates")))
            if got != self.groups:
                raise Failure(f"duplicates after the re-run: {len(got)} groups, reference {len(self.groups)}")
            check_faiss(w.db)
            if stray := stray_files(w):
                raise Failure(f"left beside the catalog: {stray}")

        self.record("index", at, where, orphans, check)

    def duplicates(self) -> None:
        w = self.world
        for f in w.db.parent.glob("*.faiss*"):
            f.unlink()  # so that the killed run has index files to build and write
        at, where, orphans = self.killed("duplicates", w.args("duplicates"), total=1)

        def check() -> None:
            self.common()
            check_faiss(w.db)
            got = groups_of(w.ok(w.args("duplicates")))
            if got != self.groups:
                raise Failure(f"re-run: {len(got)} groups, reference {len(self.groups)}")
            if not check_faiss(w.db):
                raise Failure("no index file bound to the catalog after the re-run")
            if stray := stray_files(w):
                raise Failure(f"left beside the catalog: {stray}")

        self.record("duplicates", at, where, orphans, check)

    def clean(self) -> None:
        w = self.world
        action = ("move", "trash")[self.round % 2]
        plan = w.base / "plan.json"
        w.ok(w.args("plan", plan, action))
        planned = sum(1 for g in json.loads(plan.read_text())["groups"] for m in g["members"] if m["action"] != "keep")
        if not self.round:  # calibration: one uninterrupted apply, undone
            self.calibrate("clean", w.args("clean", plan))
            self.calibrate("undo", w.args("undo"))
            if tree(w.photos) != self.original:
                raise SystemExit("calibration: undo did not restore the collection")
            print(f"calibration ({planned} files): " + self.timings("clean", "undo"), flush=True)
            return
        at, where, orphans = self.killed("clean", w.args("clean", plan), total=planned + self.done_before())
        self.planned = planned

        def check() -> None:
            self.common()
            check_files(w, self.original)
            w.ok(w.args("clean", plan))
            integrity(w.db)
            untouched, acted = check_files(w, self.original)
            run = max(e["run_id"] for e in journal(w))
            states = Counter(e["state"] for e in journal(w) if e["run_id"] == run)
            if states != {"done": planned} or acted != planned:
                raise Failure(f"after the re-run: journal {dict(states)}, {acted} acted on, {planned} planned")
            expected = {str(w.photos / rel): ("trashed" if action == "trash" else "moved")
                        for rel in self.original if not (w.photos / rel).exists()}
            check_catalog_matches(w, self.catalog, {p: s for p, s in expected.items()})

        self.record("clean", at, where, orphans, check)

    def done_before(self) -> int:
        return progress_of(self.world, "clean")

    def undo(self) -> None:
        w = self.world
        if not self.round:
            return
        total = progress_of(w, "undo") + self.planned
        at, where, orphans = self.killed("undo", w.args("undo"), total=total)

        def check() -> None:
            self.common()
            check_files(w, self.original)
            code, out, err = w.run(w.args("undo"))
            if code != 0 and "no clean-up run to undo" not in err and "already undone" not in err:
                raise Failure(f"undo re-run exit {code}: {err.strip()[-300:]}")
            if "Traceback" in err:
                raise Failure("undo re-run printed a traceback")
            integrity(w.db)
            if tree(w.photos) != self.original:
                raise Failure("the collection differs from the original after undo")
            if tree(w.moved) or tree(w.trash / "files"):
                raise Failure("files left in the move folder or the trash after undo")
            check_catalog_matches(w, self.catalog)

        self.record("undo", at, where, orphans, check)

    def serve(self) -> None:
        w = self.world
        shutil.rmtree(w.extra, ignore_errors=True)
        make_collection(w.extra, 30, seed=10_000 + self.round)  # 90 new files: the job commits twice
        extra = tree(w.extra)
        proc, url = serve(w)
        clients = Clients(url, self.queries, w.extra)
        started = time.perf_counter()
        if self.rng.random() < 0.5:
            time.sleep(self.rng.uniform(0, SERVE_SECONDS))
        else:  # within a second after the index job's first commit
            while progress_of(w, "serve") <= len(self.catalog) and time.perf_counter() - started < 60:
                time.sleep(0.005)
            time.sleep(self.rng.uniform(0, 1.0))
        at = time.perf_counter() - started
        os.kill(proc.pid, 9)
        orphans = orphans_after(proc)
        clients.stop()
        where = landed(len(self.catalog), progress_of(w, "serve"), len(self.catalog) + len(extra))

        def check() -> None:
            self.common()
            w.ok(["index", str(w.photos), str(w.extra), "--db", str(w.db), "-q", "--workers", "2"])
            integrity(w.db)
            reference = dict(self.catalog)
            got = catalog_content(w.db)
            for rel in extra:
                path = str(w.extra / rel)
                if path not in got or got[path][0] != "ok":
                    raise Failure(f"{path} not indexed after the re-run")
                reference[path] = got[path]
            check_catalog_matches(w, reference)
            check_faiss(w.db)
            again, url2 = serve(w)
            try:
                import httpx

                q = self.queries[0]
                r = httpx.post(f"{url2}/api/search?k=3", files={"file": (q.name, q.read_bytes())},
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
                if r.status_code != 200 or not r.json()["results"]:
                    raise Failure(f"restarted server: search answered {r.status_code}")
            finally:
                again.terminate()
                if orphans_after(again, wait=10):
                    raise Failure("the restarted server left processes after SIGTERM")
            served = sum(v for k, v in clients.answered.items() if k == 200)
            if any(isinstance(k, int) and k >= 500 for k in clients.answered):
                raise Failure(f"5xx answered before the kill: {dict(clients.answered)}")
            self.served = getattr(self, "served", 0) + served

        self.record("serve", at, where, orphans, check)
        # the next round starts from the collection alone
        shutil.rmtree(w.extra, ignore_errors=True)


def summary(outcomes: list[Outcome]) -> None:
    print("\n| command | kills | recovered | failed | orphans left | killed with nothing written | partly written "
          "| all written | had exited |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for command in COMMANDS + ("all",):
        rows = [o for o in outcomes if command in (o.command, "all")]
        where = Counter(o.landed for o in rows)
        print(f"| {command} | {len(rows)} | {sum(o.recovered for o in rows)} | {sum(not o.recovered for o in rows)} | "
              f"{sum(o.orphans for o in rows)} | {where['nothing written']} | {where['partly written']} | "
              f"{where['all written']} | {where['after it exited']} |")
    for o in outcomes:
        if not o.recovered:
            print(f"- {o.command} killed at {o.at:.2f} s: {o.problem}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=21, help="rounds of 5 kills after the calibration round")
    ap.add_argument("--images", type=int, default=40, help="base photos (each also copied and resized)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedder", default="none", choices=["none", "cnn"])
    ap.add_argument("--commands", default=",".join(COMMANDS), help="which commands to kill (clean and undo go together)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args()
    commands = [c for c in COMMANDS if c in args.commands.split(",")]

    base = args.keep or Path(tempfile.mkdtemp(prefix="neardup-chaos-"))
    shutil.rmtree(base, ignore_errors=True)
    world = World(base, args.embedder)
    make_collection(world.photos, args.images, args.seed)
    queries = []
    for i in range(4):  # re-encoded thumbnails of indexed photos, outside the collection
        q = base / "queries" / f"q{i}.jpg"
        q.parent.mkdir(parents=True, exist_ok=True)
        Image.open(world.photos / f"p{i:03d}.jpg").resize((400, 300)).save(q, quality=70)
        queries.append(q)
    rng = random.Random(args.seed)
    chaos = Chaos(world, rng, queries)
    started = time.perf_counter()
    try:
        chaos.reference()
        chaos.clean()  # round 0: calibrates clean and undo
        for chaos.round in range(1, args.rounds + 1):
            for command in commands:
                getattr(chaos, command)()
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    summary(chaos.outcomes)
    print(f"\n{len(chaos.outcomes)} kills in {time.perf_counter() - started:.0f} s; "
          f"{getattr(chaos, 'served', 0)} searches answered 200 by servers about to be killed")
    sys.exit(0 if all(o.recovered for o in chaos.outcomes) else 1)


if __name__ == "__main__":
    main()
