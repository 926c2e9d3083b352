"""Incremental indexing: unchanged, changed, new, removed, moved, failed, interrupted; into a
catalog file and a PostgreSQL catalog alike."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import neardup
from neardup.indexer.decode import decode
from neardup.indexer.hashes import compute_hashes

from conftest import image_rows, save, scene


def _open(location: str) -> neardup.Collection:
    return neardup.open(location, create=True, embedder="none")


def test_first_run_indexes_everything_and_second_run_decodes_nothing(tmp_path, collection, catalog_location) -> None:
    cat = _open(catalog_location)
    first = cat.index([tmp_path / "photos"], workers=2)
    assert (first.new, first.failed, first.unchanged) == (len(collection), 0, 0)
    assert cat.stats().counts["ok"] == len(collection)
    second = cat.index([tmp_path / "photos"], workers=2)
    assert (second.decoded, second.unchanged, second.removed) == (0, len(collection), 0)


def test_stored_hashes_equal_hashing_the_decoded_file(tmp_path, collection, catalog_location) -> None:
    cat = _open(catalog_location)
    cat.index([tmp_path / "photos"], workers=1)
    ids, codes = cat.catalog.hashes("pdq")
    paths = {i.image_id: i.path for i in cat.catalog.images(ids).values()}
    for image_id, code in zip(ids, codes):
        expected = compute_hashes(decode(paths[image_id]).pixels, ["pdq"])["pdq"]
        assert np.array_equal(code, expected)


def test_changed_file_is_reindexed_and_removed_file_is_dropped(tmp_path, collection, catalog_location) -> None:
    cat = _open(catalog_location)
    cat.index([tmp_path / "photos"], workers=1)
    before = cat.catalog.file_states()[str(collection["scene0"])]
    save(scene(99), collection["scene0"])
    os.utime(collection["scene0"], ns=(time.time_ns(), time.time_ns() + 10**9))
    collection["scene1"].unlink()
    report = cat.index([tmp_path / "photos"], workers=1)
    assert (report.changed, report.removed, report.new) == (1, 1, 0)
    states = cat.catalog.file_states()
    assert str(collection["scene1"]) not in states
    after = states[str(collection["scene0"])]
    assert after.image_id == before.image_id and after.sha256 != before.sha256
    ids, _ = cat.catalog.hashes("dhash")
    assert len(ids) == len(collection) - 1  # no stale hash rows left behind


def test_moved_file_is_recognised_by_content_and_not_recomputed(tmp_path, collection, catalog_location) -> None:
    cat = _open(catalog_location)
    cat.index([tmp_path / "photos"], workers=1)
    old = cat.catalog.file_states()[str(collection["astronaut"])]
    target = tmp_path / "photos" / "moved" / "renamed.jpg"
    target.parent.mkdir()
    shutil.move(collection["astronaut"], target)
    report = cat.index([tmp_path / "photos"], workers=1)
    assert (report.moved, report.new, report.removed) == (1, 0, 0)
    states = cat.catalog.file_states()
    assert states[str(target)].image_id == old.image_id
    assert str(collection["astronaut"]) not in states


def test_a_file_moved_over_another_is_one_move_and_one_removal(tmp_path, collection, catalog_location) -> None:
    # `mv a.jpg b.jpg` over a catalogued b.jpg: b's path is a changed file whose bytes are a's,
    # which vanished; a's row moves to b's path and b's old picture is gone from the collection
    cat = _open(catalog_location)
    cat.index([tmp_path / "photos"], workers=1)
    states = cat.catalog.file_states()
    moved, replaced = states[str(collection["scene0"])], states[str(collection["scene1"])]
    os.replace(collection["scene0"], collection["scene1"])
    os.utime(collection["scene1"], ns=(time.time_ns(), time.time_ns() + 10**9))
    report = cat.index([tmp_path / "photos"], workers=1)
    assert (report.new, report.changed, report.moved, report.removed) == (0, 0, 1, 1)
    after = cat.catalog.file_states()
    assert str(collection["scene0"]) not in after
    assert after[str(collection["scene1"])].image_id == moved.image_id
    assert replaced.image_id not in {s.image_id for s in after.values()}
    assert cat.stats().counts["ok"] == len(collection) - 1
    ids, _ = cat.catalog.hashes("dhash")
    assert sorted(ids) == sorted(s.image_id for s in after.values())  # no rows of the replaced picture left


def test_only_files_under_the_given_paths_are_removed(tmp_path, collection, catalog_location) -> None:
    cat = _open(catalog_location)
    cat.index([tmp_path / "photos"], workers=1)
    report = cat.index([tmp_path / "photos" / "scenes"], workers=1)
    assert report.removed == 0 and cat.stats().counts["ok"] == len(collection)


def test_unreadable_file_is_recorded_and_the_run_goes_on(tmp_path, collection, catalog_location) -> None:
    bad = tmp_path / "photos" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    cat = _open(catalog_location)
    report = cat.index([tmp_path / "photos"], workers=2)
    assert report.failed == 1 and report.new == len(collection) + 1
    assert report.failures[0][0] == str(bad)
    stats = cat.stats()
    assert stats.counts["ok"] == len(collection) and stats.counts["failed"] == 1
    assert stats.failures[0][0] == str(bad) and stats.failures[0][1]
    assert cat.index([tmp_path / "photos"], workers=2).decoded == 0


def test_missing_path_is_an_error(tmp_path, catalog_location) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        _open(catalog_location).index([tmp_path / "nope"])


def test_killed_run_leaves_a_catalog_that_the_next_run_completes(tmp_path, catalog_location) -> None:
    folder = tmp_path / "many"
    for i in range(400):
        save(scene(i, (640, 480)), folder / f"{i:03d}.png")
    cmd = [sys.executable, "-m", "neardup.cli", "index", str(folder), "--db", catalog_location, "--workers", "1", "-q",
           "--embedder", "none"]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and image_rows(catalog_location) < 64:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = image_rows(catalog_location)
    assert 0 < done < 400, "the kill should land mid-run"
    cat = neardup.open(catalog_location)
    report = cat.index([folder], workers=2)
    assert report.unchanged == done and report.new == 400 - done
    counts = cat.stats().counts
    assert counts["ok"] == 400 and counts["hashes.pdq"] == 400
