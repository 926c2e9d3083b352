"""Fuzzing, short and deterministic (issue 18): each target of `fuzz_targets` for a few
seconds with a fixed seed, so that a crash found once stays found. `scripts/fuzz.py --minutes
60` runs the same targets for long; what it finds becomes a case below."""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

from conftest import scene
from faults import assert_error, assert_ok, failures, neardup, photos

from fuzz_targets import (
    catalog_bytes, catalog_or_refused, decoded_or_refused, image_bytes, plan_or_refused, plan_texts,
)

def quick(examples: int) -> settings:
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@quick(120)
@given(data=image_bytes())
def test_any_file_is_indexed_or_recorded_with_a_human_reason(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        decoded_or_refused(data, Path(tmp))


@quick(300)
@given(text=plan_texts())
def test_any_plan_file_is_read_and_round_trips_or_is_refused(text: str | bytes) -> None:
    plan_or_refused(text)


@quick(40)
@given(data=catalog_bytes())
def test_any_catalog_file_opens_or_is_refused_untouched(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        catalog_or_refused(data, Path(tmp))


# -- what fuzzing found, each through the real command ----------------------------------------
def tiff_with_rational_strip_offsets(path: Path) -> Path:
    """A 4x4 grey TIFF whose StripOffsets (tag 273) is typed RATIONAL: Pillow raised TypeError
    ('IFDRational' object cannot be interpreted as an integer) while loading it."""
    entries = [(256, 3, 1, 4), (257, 3, 1, 4), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 5, 1, 0), (277, 3, 1, 1), (278, 3, 1, 4), (279, 4, 1, 16)]
    ifd_at, rational_at = 8, 8 + 2 + 12 * len(entries) + 4
    body = b"".join(struct.pack("<HHII", tag, kind, count, rational_at if tag == 273 else value)
                    for tag, kind, count, value in entries)
    data = b"II*\0" + struct.pack("<I", ifd_at) + struct.pack("<H", len(entries)) + body + b"\0" * 4
    data += struct.pack("<II", rational_at + 8, 1) + bytes(range(16))
    path.write_bytes(data)
    return path


def test_a_tiff_with_a_rational_offset_is_recorded_not_a_crash(tmp_path) -> None:
    photos(tmp_path / "p", ["coffee"])
    bad = tiff_with_rational_strip_offsets(tmp_path / "p" / "bad.tif")
    run = neardup("index", tmp_path / "p", "--db", tmp_path / "c.db", "--embedder", "none", "-q")
    assert_ok(run)
    assert "damaged image data" in failures(tmp_path / "c.db")[str(bad)]
    assert_error(neardup("search", bad, "--db", tmp_path / "c.db"), "damaged image data")


def test_damaged_exif_prints_no_warning(tmp_path) -> None:
    """Pillow warned "Corrupt EXIF data" (lines that name no file) for an EXIF block cut short."""
    folder = tmp_path / "p"
    folder.mkdir()
    exif = b"II*\0\x08\0\0\0\x05\0" + b"\x0f\x01\x02\0\x40\0\0\0"  # says 5 entries, holds less than one
    Image.fromarray(scene(1)).save(folder / "cut.jpg", exif=b"Exif\0\0" + exif)
    run = neardup("index", folder, "--db", tmp_path / "c.db", "--embedder", "none", "-q", "--workers", "1")
    assert_ok(run)
    assert "Warning" not in run.stderr, run.stderr


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> Path:
    """A catalog of two photos, checkpointed into one file; tests that change it copy it."""
    folder = tmp_path_factory.mktemp("indexed")
    photos(folder / "p", ["coffee", "chelsea"])
    assert_ok(neardup("index", folder / "p", "--db", folder / "c.db", "--embedder", "none", "-q"))
    con = sqlite3.connect(folder / "c.db")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return folder / "c.db"


@pytest.fixture
def small_catalog(indexed, tmp_path) -> Path:
    shutil.copyfile(indexed, tmp_path / "c.db")
    return tmp_path / "c.db"


def test_a_plan_file_nested_too_deeply_is_an_error(small_catalog, tmp_path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000)
    assert_error(neardup("clean", "--db", small_catalog, "--apply", tmp_path / "deep.json"), "nested too deeply")


def test_a_plan_path_with_a_nul_character_is_an_error(small_catalog, tmp_path) -> None:
    plan = {"format": "neardup-clean-plan", "version": 1, "catalog_id": "x", "action": "move",
            "to": "/out\0side", "groups": []}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert_error(neardup("clean", "--db", small_catalog, "--apply", tmp_path / "plan.json"), "NUL")


def test_a_catalog_with_a_damaged_page_is_an_error(small_catalog) -> None:
    """A page SQLite cannot read ("database disk image is malformed") while reading a table."""
    con = sqlite3.connect(small_catalog)
    (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'images'").fetchone()
    (size,) = con.execute("PRAGMA page_size").fetchone()
    con.close()
    with open(small_catalog, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(b"\xff" * size)
    assert_error(neardup("stats", "--db", small_catalog), "damaged")


def test_a_catalog_with_a_damaged_value_is_an_error(small_catalog) -> None:
    """A NULL where neardup always writes a value (a flipped byte in a record header reads as
    one): SQLite serves it, so the error surfaces anywhere; its integrity check finds it."""
    con = sqlite3.connect(small_catalog)
    con.execute("PRAGMA writable_schema = ON")  # drop NOT NULL for a moment, as damage would
    con.execute("UPDATE sqlite_master SET sql = replace(sql, 'value VARCHAR NOT NULL', 'value VARCHAR') "
                "WHERE name = 'settings'")
    con.commit()
    con.close()
    con = sqlite3.connect(small_catalog)
    con.execute("UPDATE settings SET value = NULL WHERE key = 'generation'")
    con.execute("PRAGMA writable_schema = ON")
    con.execute("UPDATE sqlite_master SET sql = replace(sql, 'value VARCHAR,', 'value VARCHAR NOT NULL,') "
                "WHERE name = 'settings'")
    con.commit()
    con.close()
    assert_error(neardup("duplicates", "--db", small_catalog), "damaged")


def test_a_run_number_out_of_range_is_a_usage_error(small_catalog) -> None:
    """`undo --run 2**70` overflowed SQLite's INTEGER in the driver (a traceback)."""
    run = neardup("undo", "--db", small_catalog, "--run", str(2**70))
    assert run.code == 2 and "Traceback" not in run.stderr and "--run" in run.stderr, run
