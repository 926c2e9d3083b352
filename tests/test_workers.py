"""Worker processes (indexer.workers) and the pair verification spread over them
(search.evidence.verify_pairs): the same answers as one process, from a catalog file or a
PostgreSQL catalog, and from a script that has no `if __name__ == "__main__":` guard."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import neardup
from neardup.indexer.progress import Progress
from neardup.indexer.workers import warm
from neardup.indexer.colours import LAYOUT_SIDE
from neardup.search import evidence
from neardup.search.strips import packed
from neardup.search.verify import VERIFY_THRESHOLD

from conftest import make_collection


class _Counted(Progress):
    def __init__(self) -> None:
        self.stages, self.steps, self.done = [], [], 0

    def start(self, total: int, label: str = "") -> None:
        self.stages.append((total, label))

    def advance(self, n: int = 1) -> None:
        self.steps.append(n)
        self.done += n


def _indexed(tmp_path: Path, location: str) -> tuple[neardup.Collection, list[int]]:
    """The test collection indexed into a new catalog at `location`, and its image ids."""
    make_collection(tmp_path / "photos")
    cat = neardup.open(location, create=True, embedder="none")
    cat.index([tmp_path / "photos"], workers=1)
    return cat, sorted(int(i) for i in cat.catalog.hashes("pdq")[0])


def test_pairs_verified_on_workers_are_the_ones_verified_here(tmp_path: Path, catalog_location: str,
                                                               monkeypatch) -> None:
    cat, ids = _indexed(tmp_path, catalog_location)
    pairs = np.array(list(itertools.combinations(ids, 2)), np.int64)
    rows = np.arange(len(pairs))
    counted = [_Counted(), _Counted()]
    here = evidence.verify_pairs(cat.catalog, pairs, rows, workers=1, progress=counted[0])
    monkeypatch.setattr(evidence, "SPREAD_FROM", 0)  # spread even these few pairs
    monkeypatch.setattr(evidence, "TASK_PAIRS", 7)  # over several tasks
    spread = evidence.verify_pairs(cat.catalog, pairs, rows, workers=2, progress=counted[1])
    assert np.array_equal(spread.rows, here.rows) and np.array_equal(spread.counts, here.counts)
    assert all(np.array_equal(spread.columns[k], here.columns[k]) for k in here.columns)
    for bar in counted:  # every pair counted once, as it is verified: by batch here, by task on workers
        assert bar.stages == [(len(pairs), evidence.VERIFYING)] and bar.done == len(pairs)
    assert counted[1].steps == [7] * (len(pairs) // 7)
    assert len(here) == len(pairs)  # every image has keypoints
    assert (here.counts >= VERIFY_THRESHOLD).sum() >= 3  # the copies of coffee and chelsea
    assert [g.members for g in cat.duplicates(workers=2)] == [g.members for g in cat.duplicates(workers=1)]
    cat.close()


def test_strip_links_verified_on_workers_are_the_ones_verified_here(tmp_path: Path, catalog_location: str,
                                                                    monkeypatch) -> None:
    cat, ids = _indexed(tmp_path, catalog_location)
    left_half = packed((0, 0, LAYOUT_SIDE // 2, LAYOUT_SIDE))
    wanted = [(a, b, left_half) for a, b in itertools.permutations(ids, 2)]
    colours_only = [i % 3 == 0 for i in range(len(wanted))]  # some links by their colours only
    here = evidence.verify_strips(cat.catalog, wanted, colours_only=colours_only, workers=1)
    monkeypatch.setattr(evidence, "STRIPS_SPREAD_FROM", 0)
    monkeypatch.setattr(evidence, "TASK_PAIRS", 7)
    warm(2)  # strip links are spread only once the workers' server is up
    spread = evidence.verify_strips(cat.catalog, wanted, colours_only=colours_only, workers=2)
    assert spread == here and len(here) >= 6  # the copies of coffee and chelsea, both ways
    cat.close()


SCRIPT = """
import sys
import neardup
from neardup.search import evidence

evidence.SPREAD_FROM = 0  # spread even a few pairs over the workers
cat = neardup.open(sys.argv[1], create=True, embedder="none")
print(cat.index([sys.argv[2]], workers=2).new)
print(sorted(len(g.members) for g in cat.duplicates(workers=2)))
"""


def test_a_script_without_a_main_guard_runs_workers(tmp_path: Path) -> None:
    """multiprocessing would start each worker by running the caller's script again (which
    then starts workers of its own and dies): the README's Python lines, saved as a script."""
    make_collection(tmp_path / "photos")
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "cat.db"), str(tmp_path / "photos")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["15", "[2, 2, 3]"]


WARMED = """
import glob, os
from neardup.indexer.workers import parallel_map, warm, warmed


def children():
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == os.getpid():
            found.append(int(stat.split("/")[2]))
    return sorted(found)


print("run")  # printed again by any process that ran this script a second time
print(warmed(), children())
warm(2)
started = children()
print(warmed(), len(started) > 0)
print(list(parallel_map(abs, [-1, -2, -3], workers=2, chunk=1)))
print(children() == started)  # the pool's workers came from the server started ahead
"""


def test_the_server_started_ahead_serves_the_next_pool(tmp_path: Path) -> None:
    """`warm` starts the server that forks the workers before any pool exists (`pair_evidence`
    does, so that verification's workers start sooner), from a script without a main guard;
    the next pool's workers are its children, not this process's."""
    script = tmp_path / "warmed.py"
    script.write_text(WARMED)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n") == ["run", "False []", "True True", "[1, 2, 3]", "True", ""]


INTERRUPTED = """
import os, signal, sys
from concurrent.futures import process
from neardup.indexer.workers import parallel_map

def interrupt(signum, frame):  # what `neardup index` does on SIGTERM
    raise KeyboardInterrupt

signal.signal(signal.SIGTERM, interrupt)
start_thread = process.ProcessPoolExecutor._start_executor_manager_thread

def start_then_signal(self):
    # the workers are started; the thread that will send them their stop signal is not yet
    if not self._processes:
        for _ in range(self._max_workers):
            self._spawn_process()
    os.kill(os.getpid(), signal.SIGTERM)
    start_thread(self)

process.ProcessPoolExecutor._start_executor_manager_thread = start_then_signal
try:
    list(parallel_map(abs, list(range(-40, 0)), workers=2, fork=sys.argv[1] == "fork"))
except KeyboardInterrupt:
    print("interrupted")
"""


def test_an_interrupt_as_the_workers_start_ends_the_run(tmp_path: Path) -> None:
    """SIGTERM (or Ctrl-C) landing just after the pool forked its workers (as the CLI starts
    them) and before the thread that stops them exists: the run stops and the process exits,
    instead of waiting at exit for workers no one would stop (`neardup index … | cat` hung so
    in 2 of 31 runs under load, and tests/test_cli_errors.py's pipe test now and then)."""
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    try:
        done = subprocess.run([sys.executable, str(script), "fork"], capture_output=True, text=True, timeout=30,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        pytest.fail("the interrupted run did not exit within 30 s")
    assert done.stdout.strip() == "interrupted", done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
