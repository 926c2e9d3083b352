"""Fuzz targets (issue 18): the three places neardup reads what a user hands it, each driven by
Hypothesis with the one property that matters there: any input gives a result or the
module's own error (a `NeardupError`, printed by the CLI as `error: …`), never another
exception (a traceback) and never a changed file.

- `decoded_or_refused`: bytes of an image file -> the indexer's whole per-file path
  (`extract`: decode, hashes, content box, ORB keypoints), as indexing and search run it.
- `plan_or_refused`: text of a plan file -> `Plan.from_json`, and a plan read is one that
  round-trips.
- `catalog_or_refused`: bytes of a catalog file -> `neardup.open` and `stats`, `duplicates`;
  a file that is refused is left byte for byte as it was.

Inputs are mutations of valid ones (images of every mode in every format we decode, a valid
plan, a small real catalog) as well as raw bytes and arbitrary JSON, since random bytes
alone rarely get past a format's header. tests/test_fuzz.py runs each for a few seconds;
scripts/fuzz.py for as long as asked.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import warnings
from functools import cache
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from neardup.storage.errors import NeardupError

ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{9,}|<[\w.]+ object at")  # a memory address, an object repr

# -- mutations of bytes ------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[bytes]) -> bytes:
    """A seed's bytes, then a few of: flip, overwrite, insert, delete, truncate, repeat a span,
    and "interesting" integers (0, -1, huge) written over a header field."""
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "byte", "insert", "delete", "truncate", "repeat", "int"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "repeat":
            span = bytes(data[at : at + draw(st.integers(1, 256))])
            data[at:at] = span * draw(st.integers(1, 8))
        else:
            value = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            width = draw(st.sampled_from([1, 2, 4]))
            data[at : at + width] = (value & ((1 << 8 * width) - 1)).to_bytes(width, draw(st.sampled_from(["big", "little"])))
    return bytes(data)


# -- images ----------------------------------------------------------------------------------------
FORMATS = {"PNG": {}, "JPEG": {"quality": 80}, "GIF": {}, "TIFF": {}, "WEBP": {"quality": 80}, "BMP": {}}
MODES = ("RGB", "RGBA", "L", "LA", "P", "1", "I;16", "I", "F", "CMYK")


@cache
def image_seeds() -> tuple[bytes, ...]:
    """Small valid files: every mode each format can store, a few sizes (1-pixel sides too),
    an EXIF orientation, an animation, a HEIC."""
    rng = np.random.default_rng(0)
    out = []
    for w, h in ((40, 30), (1, 17), (64, 1), (3, 3)):
        rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for fmt, options in FORMATS.items():
            for mode in MODES:
                try:
                    im = rgb.convert(mode) if mode not in ("I;16", "I", "F") else rgb.convert("L").convert(mode)
                    buf = io.BytesIO()
                    im.save(buf, fmt, **options)
                except (OSError, ValueError, KeyError):
                    continue  # this format cannot store this mode
                out.append(buf.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(buf, "JPEG", exif=exif)
    out.append(buf.getvalue())
    frames = [Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)) for _ in range(3)]
    for fmt in ("GIF", "WEBP"):
        buf = io.BytesIO()
        frames[0].save(buf, fmt, save_all=True, append_images=frames[1:])
        out.append(buf.getvalue())
    try:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        buf = io.BytesIO()
        frames[0].save(buf, "HEIF")
        out.append(buf.getvalue())
    except (ImportError, OSError, KeyError, ValueError):
        pass
    return tuple(out)


def image_bytes() -> st.SearchStrategy[bytes]:
    seeds = st.sampled_from(image_seeds())
    return st.one_of(st.binary(max_size=512), seeds, mutated(seeds))


def decoded_or_refused(data: bytes, folder: Path) -> str:
    """Index one file with these bytes as a worker does (`extract`): it is extracted, with
    pixels of the promised shape, or recorded with a reason a person can read. Returns
    "ok" or the reason."""
    from neardup.api import new_settings
    from neardup.indexer.extract import Extracted, extract
    from neardup.indexer.walk import FileEntry

    path = folder / "fuzz.img"
    path.write_bytes(data)
    settings = new_settings()
    # what earlier code left to the garbage collector (a database connection a test did not
    # close) warns as it is collected: collected here, outside the warnings watched below
    gc.collect()
    with warnings.catch_warnings(record=True) as warned:  # a warning is a line on the user's terminal
        warnings.simplefilter("always")
        found = extract(FileEntry(str(path), len(data), 0), settings, {}, (224,))
    assert not warned, f"warned: {warned[0].category.__name__}: {warned[0].message} ({warned[0].filename})"
    assert isinstance(found, Extracted)
    record = found.record
    if record.error is not None:
        assert record.error and not ADDRESS.search(record.error), f"reason names Python internals: {record.error!r}"
        return record.error
    assert record.width >= 1 and record.height >= 1
    assert set(record.hashes["image"]) == set(settings.hashes)
    for view in found.inputs.values():
        for pixels in view.values():
            assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3, pixels.shape
    return "ok"


# -- plan files ------------------------------------------------------------------------------------
SHA = "ab" * 32
VALID_PLAN = {
    "format": "neardup-clean-plan", "version": 1, "catalog_id": "c0ffee", "action": "move", "to": "/out",
    "include_near": False, "roots": ["/photos"], "protect": ["/photos/originals"],
    "groups": [
        {"keeper": {"path": "/photos/a.jpg", "size": 10, "sha256": SHA, "action": "keep", "destination": None,
                    "reason": "largest"},
         "members": [{"path": "/photos/b.jpg", "size": 10, "sha256": SHA, "action": "move",
                      "destination": "/out/b.jpg", "reason": None},
                     {"path": "/photos/c.jpg", "size": 9, "sha256": "cd" * 32, "action": "keep"}]},
    ],
}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
# values worth trying where a plan has a string, a number or a path
ODD = st.one_of(JSON, st.sampled_from(["", "/", ".", "..", "/a\x00b", "relative/path", "/\udcff.jpg", "x" * 5000,
                                       -1, 2**70, 1e308, float("nan"), True, [], {}]))


@st.composite
def plan_texts(draw: st.DrawFn) -> str | bytes:
    """A plan file's text: raw text or bytes, any JSON, deep nesting, or the valid plan with
    some values replaced, keys dropped or members duplicated."""
    kind = draw(st.sampled_from(["raw", "bytes", "json", "deep", "edit", "edit", "edit"]))
    if kind == "raw":
        return draw(st.text(max_size=200))
    if kind == "bytes":
        return draw(mutated(st.just(json.dumps(VALID_PLAN).encode())))
    if kind == "json":
        return json.dumps(draw(JSON))
    if kind == "deep":
        depth = draw(st.integers(100, 100_000))
        return draw(st.sampled_from(["[", '{"a":'])) * depth
    plan = copy.deepcopy(VALID_PLAN)
    for _ in range(draw(st.integers(1, 4))):
        holder, key = _pick(draw, plan)
        what = draw(st.sampled_from(["replace", "drop", "duplicate"]))
        if what == "drop" and isinstance(holder, dict):
            holder.pop(key, None)
        elif what == "duplicate" and isinstance(holder, list) and holder:
            holder.append(copy.deepcopy(holder[key]))
        elif isinstance(holder, list) and not holder:
            holder.append(copy.deepcopy(draw(ODD)))
        else:
            holder[key] = copy.deepcopy(draw(ODD))  # ODD holds [] and {}: never share them
    return json.dumps(plan)


def _pick(draw: st.DrawFn, node):
    """A random (container, key) inside the plan, any depth."""
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return node, 0 if isinstance(node, list) else "x"
        key = draw(st.sampled_from(keys))
        child = node[key]
        if not isinstance(child, dict | list) or draw(st.booleans()):
            return node, key
        node = child


def plan_or_refused(text: str | bytes) -> str:
    """A plan file is read, and then round-trips exactly, or refused with a `PlanError`."""
    from neardup.clean.plan import Plan, PlanError

    try:
        plan = Plan.from_json(text)
    except PlanError as error:
        assert not ADDRESS.search(str(error)), str(error)
        return "refused"
    again = Plan.from_json(plan.to_json())
    assert again == plan and again.digest == plan.digest
    return "read"


# -- catalogs --------------------------------------------------------------------------------------
@cache
def catalog_seed() -> bytes:
    """A small real catalog (three images indexed, one failure, a clean-up plan journaled),
    checkpointed into one file."""
    import sqlite3

    import neardup

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "p")
        folder.mkdir()
        rng = np.random.default_rng(1)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        shutil.copyfile(folder / "0.png", folder / "copy.png")
        (folder / "bad.jpg").write_bytes(b"not an image")
        db = Path(tmp, "c.db")
        with neardup.open(db, create=True, embedder="none") as cat:
            cat.index([folder], workers=1, fork=False)
            cat.duplicates()
            cat.plan_clean(action="trash")
        con = sqlite3.connect(db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")  # one self-contained file to mutate
        con.close()
        return db.read_bytes()


def catalog_bytes() -> st.SearchStrategy[bytes]:
    seed = st.just(catalog_seed())
    return st.one_of(st.binary(max_size=2048), mutated(seed), _page_damage(seed))


@st.composite
def _page_damage(draw: st.DrawFn, seed: st.SearchStrategy[bytes]) -> bytes:
    """The seed with whole 4 KiB pages zeroed, randomised or swapped, as a disk or a bad copy does."""
    data = bytearray(draw(seed))
    pages = len(data) // 4096
    for _ in range(draw(st.integers(1, 3))):
        page = draw(st.integers(0, pages - 1)) * 4096
        kind = draw(st.sampled_from(["zero", "random", "swap"]))
        if kind == "zero":
            data[page : page + 4096] = bytes(4096)
        elif kind == "random":
            data[page : page + 4096] = draw(st.binary(min_size=4096, max_size=4096))
        else:
            other = draw(st.integers(0, pages - 1)) * 4096
            data[page : page + 4096], data[other : other + 4096] = data[other : other + 4096], data[page : page + 4096]
    return bytes(data)


def catalog_or_refused(data: bytes, folder: Path) -> str:
    """Open a catalog with these bytes and read it as `stats` and `duplicates` do: it works,
    or a `NeardupError` says why, or (damage SQLite notices only in a full check: a byte of a
    value, a row an index misses) any error, as long as SQLite's integrity check, which the
    CLI runs then, finds the damage. A file refused is not changed, nor left with -wal/-shm."""
    import neardup
    from neardup.storage.schema import damage

    db = folder / "fuzz.db"
    for leftover in folder.iterdir():
        leftover.unlink()
    db.write_bytes(data)
    before = hashlib.sha256(data).hexdigest()
    try:
        with neardup.open(db) as cat:
            cat.stats()
            cat.duplicates()
            cat.history()
    except NeardupError as error:
        assert not ADDRESS.search(str(error)), str(error)
        outcome = "refused"
    except Exception:
        if not damage(db):
            raise
        return "damaged, found by the integrity check"
    else:
        return "opened"
    if outcome == "refused" and not _opened_as_catalog(data):
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before, "a file that is not a catalog was changed"
        assert sorted(os.listdir(folder)) == ["fuzz.db"], f"left beside it: {os.listdir(folder)}"
    return outcome


def _opened_as_catalog(data: bytes) -> bool:
    """Whether SQLite sees a catalog's settings table in `data` (then it may upgrade or
    checkpoint it, as for any catalog; only other files must stay untouched)."""
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "probe.db")
        path.write_bytes(data)
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                return con.execute("SELECT 1 FROM settings WHERE key = 'settings'").fetchone() is not None
            finally:
                con.close()
        except sqlite3.Error:
            return False
