"""Issue 18, findings 5-7 and 9: inputs that make `duplicates` wrong, which with clean-up
would lose photos. Each test runs the real `neardup` command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import neardup
from conftest import make_collection, save, scene
from faults import (
    assert_error,
    assert_ok,
    catalog_paths,
    digest,
    neardup as run,
    photos,
    slow,
)


def index(folder, db, *extra):
    out = run("index", folder, "--db", db, "--embedder", "none", "-q", "--workers", "2", *extra)
    assert_ok(out)
    return out


def groups(db: Path, *extra) -> list[dict]:
    out = run("duplicates", "--db", db, "--format", "json", *extra)
    assert_ok(out)
    return json.loads(out.stdout)


# -- finding 5: one file is one image, however its folder is spelled ---------------------------
def _dotdot(tmp_path: Path, coll: Path) -> Path:
    return coll / ".." / coll.name


def _symlinked_folder(tmp_path: Path, coll: Path) -> Path:
    link = tmp_path / "link"
    link.symlink_to(coll, target_is_directory=True)
    return link


@pytest.mark.parametrize("spelling", [_dotdot, _symlinked_folder], ids=["coll-dotdot-coll", "symlinked-folder"])
def test_same_folder_under_two_spellings_is_one_image_per_file(tmp_path, spelling) -> None:
    """Three distinct photos indexed as `coll`, then again as `coll/../coll` or through a
    symlink to `coll`: still three images, and no file offered as a duplicate of itself."""
    coll = tmp_path / "coll"
    files = photos(coll, ["coffee", "chelsea", "rocket"])
    db = tmp_path / "c.db"
    index(coll, db)
    index(spelling(tmp_path, coll), db)
    paths = catalog_paths(db)
    assert len(paths) == len(files), f"{len(files)} files stored as {len(paths)} images: {sorted(paths)}"
    assert groups(db) == [], "a file is offered as a duplicate of itself"


def test_symlink_to_a_file_in_the_same_collection_is_not_its_duplicate(tmp_path) -> None:
    """The same rule inside one folder: `alias.jpg -> coffee.jpg` is the same file. If the two
    paths formed a group, a clean-up keeping `alias.jpg` would delete the only copy of the
    photo and leave a dangling link."""
    coll = tmp_path / "coll"
    photos(coll, ["coffee", "chelsea", "rocket"])
    (coll / "alias.jpg").symlink_to(coll / "coffee.jpg")
    db = tmp_path / "c.db"
    index(coll, db)
    assert groups(db) == [], "a file and a symlink to it are offered as duplicates"


# -- finding 6: --threshold is range-checked ---------------------------------------------------
@pytest.fixture(scope="module")
def hash_db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("thresholds")
    make_collection(root / "photos")
    index(root / "photos", root / "c.db")
    return root / "c.db"


BAD_THRESHOLDS = [
    # auto: a score in [0, 1]
    ("auto", "-1"), ("auto", "-inf"), ("auto", "nan"), ("auto", "inf"), ("auto", "1e12"),
    # a hash: whole bits up to half the hash (unrelated images differ in half their bits);
    # pdq has 256
    ("pdq", "300"), ("pdq", "129"), ("pdq", "-1"), ("pdq", "12.7"), ("pdq", "inf"),
]


@pytest.mark.parametrize("by, threshold", BAD_THRESHOLDS, ids=[f"{b}={t}" for b, t in BAD_THRESHOLDS])
def test_threshold_out_of_range_is_an_error(hash_db, by, threshold) -> None:
    """What is right: for a hash the threshold is a Hamming distance, a whole number of bits
    in [0, bits / 2] (pdq: 128, beyond which unrelated images match; 12.7 is not silently cut
    to 12); for auto it is a score in [0, 1].
    NaN and infinities are never thresholds. Anything else is `error: …` naming the range,
    exit 1, and no groups on stdout: a threshold of -1 or 300 must not offer every image as
    a duplicate of one keeper."""
    out = run("duplicates", "--db", hash_db, "--by", by, "--threshold", threshold)
    assert_error(out, "threshold")
    assert out.stdout.strip() == "", f"groups printed for a rejected threshold: {out.stdout[:200]}"


@pytest.mark.parametrize("by, threshold", [("pdq", "0"), ("pdq", "128"), ("auto", "0"), ("auto", "1")])
def test_threshold_at_the_ends_of_its_range_is_accepted(hash_db, by, threshold) -> None:
    """The guard for the test above: the ends of each range are valid thresholds."""
    assert_ok(run("duplicates", "--db", hash_db, "--by", by, "--threshold", threshold))


@pytest.fixture(scope="module")
def cnn_db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cnn-thresholds")
    photos(root / "photos")
    out = run("index", root / "photos", "--db", root / "c.db", "--embedder", "cnn", "-q", "--workers", "2",
              timeout=180)
    assert_ok(out)
    return root / "c.db"


@slow
@pytest.mark.parametrize("threshold", ["-1", "nan", "1.5"])
def test_cnn_threshold_out_of_range_is_an_error(cnn_db, threshold) -> None:
    """What is right for `--by cnn`: a minimum cosine in [0, 1]. MobileNetV2's pooled
    features are non-negative, so every cosine between two images is >= 0 and a threshold at
    or below 0 groups everything (`-1` put all 330 images of the issue's collection in one
    group). NaN and values above 1 are never thresholds. (Slow: builds a CNN catalog, ~20 s
    the first time the network is compiled in a session.)"""
    out = run("duplicates", "--db", cnn_db, "--by", "cnn", "--threshold", threshold)
    assert_error(out, "threshold")
    assert out.stdout.strip() == ""


# -- finding 7: FAISS files belong to their catalog ---------------------------------------------
def results(db: Path, query: Path) -> dict[str, object]:
    """What a user gets from this catalog through the public API, each answer from a freshly
    opened catalog (so from the FAISS files on disk): searches and groups by auto and pdq."""
    seen = {}
    for by in ("auto", "pdq"):
        with neardup.open(db) as cat:
            seen[f"search {by}"] = [(m.path, round(m.score, 6)) for m in cat.search(query, by=by, k=5)]
        with neardup.open(db) as cat:
            seen[f"duplicates {by}"] = [g.members for g in cat.duplicates(by=by)]
    return seen


def faiss_files(db: Path) -> list[Path]:
    return sorted(db.parent.glob(f"{db.stem}.*.faiss"))


def test_catalog_restored_from_a_backup_ignores_newer_faiss_files(tmp_path) -> None:
    """Back up a catalog whose FAISS files are built; index 10 more images and search again
    (the FAISS files are rebuilt with them); restore the backup beside those newer files. The
    restored catalog must answer exactly as it did when it was backed up (today: the newer
    files count as fresh, and auto search fails with `KeyError` on an id the backup lacks)."""
    coll = tmp_path / "photos"
    files = make_collection(coll)
    db = tmp_path / "c.db"
    index(coll, db)
    before = results(db, files["coffee_half"])
    assert faiss_files(db), "searching built no FAISS file beside the catalog"
    backup = tmp_path / "backup.db"
    shutil.copyfile(db, backup)
    for seed in range(100, 110):
        save(scene(seed), coll / "more" / f"more{seed}.png")
    index(coll, db)
    results(db, files["coffee_half"])  # rebuilds the FAISS files with the new images
    shutil.copyfile(backup, db)
    after = results(db, files["coffee_half"])
    assert after == before


def test_another_catalogs_faiss_files_beside_a_catalog_are_not_used(tmp_path) -> None:
    """Catalog B's FAISS files copied over catalog A's (a sync tool, a restore of the wrong
    folder): A must answer as before, from its own data, not from B's indexes."""
    coll = tmp_path / "a"
    files = make_collection(coll)
    a = tmp_path / "a.db"
    index(coll, a)
    before = results(a, files["coffee_half"])
    other = tmp_path / "b"
    for seed in range(200, 204):
        save(scene(seed), other / f"b{seed}.png")
    b = tmp_path / "b.db"
    index(other, b)
    results(b, other / "b200.png")
    copied = 0
    for path in faiss_files(b):
        shutil.copyfile(path, a.with_name(path.name.replace("b.", "a.", 1)))
        copied += 1
    assert copied, "catalog B has no FAISS files to copy"
    assert results(a, files["coffee_half"]) == before


# -- finding 9: -o never overwrites the catalog or an indexed image -----------------------------
@pytest.fixture
def small_db(tmp_path) -> tuple[Path, list[Path]]:
    """A catalog of the five photos and a byte copy of one (a group to write)."""
    files = photos(tmp_path / "photos")
    shutil.copyfile(files[0], tmp_path / "photos" / "coffee_copy.jpg")
    db = tmp_path / "c.db"
    index(tmp_path / "photos", db)
    return db, files


@pytest.fixture(scope="module")
def output_db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("output")
    files = photos(root / "photos")
    shutil.copyfile(files[0], root / "photos" / "coffee_copy.jpg")
    index(root / "photos", root / "c.db")
    return root / "c.db"


@pytest.mark.parametrize("spelling", ["as-given", "dotdot"])
def test_duplicates_output_refuses_to_overwrite_the_catalog(tmp_path, output_db, spelling) -> None:
    """`duplicates -o c.db` (or `-o dir/../dir/c.db`) replaced the catalog with the report."""
    db = tmp_path / "c.db"
    shutil.copyfile(output_db, db)
    target = db if spelling == "as-given" else db.parent / ".." / db.parent.name / db.name
    was = digest(db)
    out = run("duplicates", "--db", db, "-o", target)
    assert_error(out, "catalog")
    assert digest(db) == was, "the catalog was overwritten"
    assert_ok(run("stats", "--db", db))


def test_an_output_path_is_checked_again_when_the_catalog_changed_since(tmp_path) -> None:
    """The path is checked before the work; a write to the catalog since (here: the file it
    names indexed meanwhile) has it checked again before anything is written there."""
    import click

    from neardup import cli

    files = photos(tmp_path / "photos")
    db = tmp_path / "c.db"
    index(tmp_path / "photos", db)
    target = tmp_path / "photos" / "late.jpg"
    with neardup.open(db) as cat:
        checked = cli._checked_output(cat, str(target))
        cli._write_output(cat, str(tmp_path / "report.txt"), "a report", checked=cli._checked_output(
            cat, str(tmp_path / "report.txt")))  # unchanged: written
        shutil.copyfile(files[1], target)
        cat.index([tmp_path / "photos"], workers=1)
        with pytest.raises(click.ClickException, match="indexed image"):
            cli._write_output(cat, str(target), "a report", checked=checked)
    assert (tmp_path / "report.txt").read_text() == "a report" and digest(target) == digest(files[1])


@pytest.mark.parametrize("spelling", ["as-given", "symlink"])
def test_duplicates_output_refuses_to_overwrite_an_indexed_image(tmp_path, small_db, spelling) -> None:
    """`-o photo.jpg` overwrote a photo; so does `-o report.html` when report.html is a symlink
    to an indexed photo."""
    db, files = small_db
    photo = files[2]
    target = photo
    if spelling == "symlink":
        target = tmp_path / "report.html"
        target.symlink_to(photo)
    was = digest(photo)
    out = run("duplicates", "--db", db, "--format", "html", "-o", target)
    assert_error(out, "image", "indexed")
    assert digest(photo) == was, f"{photo.name} was overwritten"
