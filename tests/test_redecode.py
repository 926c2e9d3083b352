"""A catalog an older neardup decoded otherwise (`decode.DECODING`): `index` reads again the
unchanged files the newer decoding gives other pixels, and only those, and everything derived
from their old features (indexes, stored pair evidence) is brought up to date."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageCms
from sqlalchemy import delete, select

import neardup
from neardup.indexer.decode import DECODING, decodes_otherwise
from neardup.indexer.extract import extract
from neardup.indexer.walk import FileEntry
from neardup.storage.models import Image as ImageRow
from neardup.storage.models import Setting

from conftest import photo
from test_cli import run
from test_profiles import _WIDE, _in, grainy_adobe_rgb_pair

_ADOBE = _WIDE["Adobe RGB"]


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _write(kind: str, path: Path) -> Path:
    im = Image.fromarray(photo("coffee")[:96, :128])
    if kind == "TIFF turned":
        im.save(path, "TIFF", exif=_exif(6))
    elif kind == "TIFF upright":
        im.save(path, "TIFF", exif=_exif(1))
    elif kind == "JPEG turned":
        im.save(path, "JPEG", exif=_exif(6))
    elif kind == "multi-picture JPEG":
        im.save(path, "MPO", save_all=True, append_images=[im.resize((64, 48))])
    elif kind == "Adobe RGB profile":
        _in(_ADOBE, im).save(path, "JPEG", icc_profile=_ADOBE)
    elif kind == "sRGB profile":
        im.save(path, "PNG", icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    elif kind == "plain PNG":
        im.save(path, "PNG")
    else:
        path.write_bytes(b"not an image")
    return path


@pytest.mark.parametrize("kind, otherwise", [
    ("TIFF turned", True), ("multi-picture JPEG", True), ("Adobe RGB profile", True),
    ("TIFF upright", False), ("JPEG turned", False), ("sRGB profile", False), ("plain PNG", False),
    ("not an image", None),
])
def test_the_header_says_which_files_version_1_decoded_otherwise(tmp_path: Path, kind: str,
                                                                  otherwise: bool | None) -> None:
    path = _write(kind, tmp_path / "f")
    assert decodes_otherwise(path, 1) is otherwise
    assert decodes_otherwise(path, DECODING) is False
    assert decodes_otherwise(tmp_path / "missing.jpg", 1) is None


def _without_icc(jpeg: bytes) -> bytes:
    """A JPEG's bytes without its ICC profile segments (APP2), its image data as it was."""
    out, at = [jpeg[:2]], 2
    while jpeg[at + 1] != 0xDA:  # up to the start of scan, segment by segment
        size = int.from_bytes(jpeg[at + 2:at + 4], "big")
        if not (jpeg[at + 1] == 0xE2 and jpeg[at + 4:at + 16] == b"ICC_PROFILE\0"):
            out.append(jpeg[at:at + 2 + size])
        at += 2 + size
    return b"".join(out) + jpeg[at:]


def _as_version_1_left_it(cat: neardup.Collection, path: Path, tmp_path: Path) -> None:
    """Make the catalog hold the JPEG at `path` as neardup before version 2 did: what it
    extracted from the pixels as stored, its profile ignored (the file without it), and no
    decoding recorded."""
    plain = tmp_path / "as-stored.jpg"
    plain.write_bytes(_without_icc(path.read_bytes()))
    entry = FileEntry(str(plain), plain.stat().st_size, plain.stat().st_mtime_ns)
    old = extract(entry, cat.catalog.settings, {}, []).record
    st = path.stat()
    [now] = [r for r in cat.catalog.file_states().values() if r.path == str(path)]
    cat.catalog.write([replace(old, path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=now.sha256)])
    with cat.catalog.transaction() as s:
        s.execute(delete(Setting).where(Setting.key == "decoding"))
    plain.unlink()


def _rows(cat: neardup.Collection) -> dict[str, tuple]:
    with cat.catalog.session() as s:
        return {Path(r.path).name: (r.id, r.redecoded, r.updated_at) for r in s.scalars(select(ImageRow))}


def test_an_unchanged_file_an_older_neardup_decoded_otherwise_is_read_again(tmp_path: Path, catalog_location) -> None:
    folder = tmp_path / "photos"
    grainy_adobe_rgb_pair(folder)  # the case of `test_profiles`
    Image.fromarray(photo("rocket")).save(folder / "other.png")
    cat = neardup.open(catalog_location, create=True, embedder="none")
    cat.index([folder], workers=1)
    assert cat.catalog.decoding() == (DECODING, {})  # a new catalog: nothing to look at again
    _as_version_1_left_it(cat, folder / "original.jpg", tmp_path)
    assert cat.duplicate_report().groups == []  # read as stored, the pair was missed
    before = _rows(cat)

    report = cat.index([folder], workers=1)

    assert (report.redecoded, report.unchanged, report.new, report.changed) == (1, 3, 0, 0)
    after = _rows(cat)
    assert after["original.jpg"][:2] == (before["original.jpg"][0], DECODING)  # same id, marked
    assert after["export.jpg"] == before["export.jpg"] and after["other.png"] == before["other.png"]
    assert cat.catalog.decoding() == (DECODING, {})
    found = cat.duplicate_report()
    [group] = found.groups
    assert Path(group.keeper).name == "original.jpg", group.reason
    assert found.evidence.images == 1  # its pairs judged again, as an edited file's
    fresh = neardup.open(tmp_path / "fresh.db", create=True, embedder="none")
    fresh.index([folder], workers=1)
    assert _features(fresh, folder / "original.jpg") == _features(cat, folder / "original.jpg")
    assert cat.index([folder], workers=1).redecoded == 0
    fresh.close()
    cat.close()


def _features(cat: neardup.Collection, path: Path) -> bytes:
    """The PDQ hash the catalog holds of the file at `path`."""
    [state] = [r for r in cat.catalog.file_states().values() if r.path == str(path)]
    _, bits = cat.catalog.feature_rows("pdq", [state.image_id])
    return bits[0].tobytes()


def test_files_outside_the_folder_indexed_are_read_again_too_and_the_cli_says_so(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _write("TIFF turned", two / "turned.tif")
    _write("plain PNG", one / "plain.png")
    db = tmp_path / "c.db"
    run("index", str(one), str(two), "--db", str(db), "--embedder", "none")
    cat = neardup.open(db)
    with cat.catalog.transaction() as s:
        s.execute(delete(Setting).where(Setting.key == "decoding"))
    cat.close()
    result = run("index", str(one), "--db", str(db), "--embedder", "none")
    assert "1 unchanged file read again, which an older neardup decoded otherwise" in result.stderr
    cat = neardup.open(db)
    assert _rows(cat)["turned.tif"][1] == DECODING and _rows(cat)["plain.png"][1] is None
    assert cat.catalog.decoding() == (DECODING, {})
    cat.close()


def test_a_file_unreadable_while_the_catalog_is_looked_over_keeps_its_row(tmp_path: Path, catalog_location) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    away = tmp_path / "away"
    away.mkdir()
    _write("TIFF turned", away / "turned.tif")
    _write("plain PNG", folder / "plain.png")
    cat = neardup.open(catalog_location, create=True, embedder="none")
    cat.index([folder, away], workers=1)
    with cat.catalog.transaction() as s:
        s.execute(delete(Setting).where(Setting.key == "decoding"))
    shutil.move(away, tmp_path / "unmounted")  # a drive not mounted now
    before = _rows(cat)
    report = cat.index([folder], workers=1)
    assert report.redecoded == 0 and _rows(cat) == before
    turned = before["turned.tif"][0]
    assert cat.catalog.decoding() == (DECODING, {turned: 1})  # to be looked at again
    shutil.move(tmp_path / "unmounted", away)
    assert cat.index([folder], workers=1).redecoded == 1
    assert _rows(cat)["turned.tif"][:2] == (turned, DECODING) and _rows(cat)["plain.png"] == before["plain.png"]
    assert cat.catalog.decoding() == (DECODING, {})
    assert cat.index([folder], workers=1).redecoded == 0
    cat.close()
