"""The CNN through the whole product: indexing, search, duplicates, stale vectors, re-embed."""

from __future__ import annotations

import subprocess
import sys
import time
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import neardup

from conftest import DATA, make_collection, save, scene


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("cnn")
    files = make_collection(root / "photos")
    cat = neardup.open(root / "cnn.db", create=True, embedder="cnn")
    report = cat.index([root / "photos"], workers=2)
    assert report.embedded == len(files)
    return cat, files, root


def _edits(name: str) -> dict[str, Image.Image]:
    im = Image.open(DATA / f"{name}.jpg").convert("RGB")
    w, h = im.size
    return {
        "mirrored": ImageOps.mirror(im),
        "cropped": im.crop((w // 8, h // 10, w - w // 10, h - h // 8)),
        "bordered": ImageOps.expand(im, border=w // 10, fill=(255, 255, 255)),
    }


@pytest.mark.parametrize("name", ["coffee", "astronaut", "rocket"])
def test_cropped_mirrored_and_bordered_copies_find_their_original_first(indexed, tmp_path, name) -> None:
    cat, files, _ = indexed
    for kind, im in _edits(name).items():
        path = tmp_path / f"{name}_{kind}.jpg"
        im.save(path, quality=85)
        top = cat.search(path, k=3, by="cnn")
        assert top[0].path in {str(files[name]), *(str(p) for k, p in files.items() if k.startswith(name + "_"))}, kind
        assert top[0].by == "cnn" and 0.0 < top[0].score <= 1.0
        assert top[0].distance == pytest.approx(1.0 - top[0].score)


def test_every_image_has_one_vector_and_the_index_matches_the_catalog(indexed) -> None:
    cat, files, _ = indexed
    ids, vectors = cat.catalog.vectors("cnn")
    assert vectors.shape == (len(files), 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=2e-3)  # float16 storage
    assert cat.search(files["hubble"], k=1, by="cnn")[0].score == pytest.approx(1.0, abs=2e-3)


def test_duplicates_by_cnn_group_the_copies_and_nothing_else(indexed) -> None:
    cat, _, _ = indexed
    groups = {frozenset(Path(p).name for p in g.members) for g in cat.duplicates(by="cnn")}
    assert frozenset({"rocket.jpg", "rocket_copy.jpg"}) in groups
    assert frozenset({"chelsea.jpg", "chelsea_q40.jpg"}) in groups
    assert all(not any(n.startswith("scene") for n in g) for g in groups)


def test_changed_or_deleted_file_replaces_or_removes_its_vector(tmp_path) -> None:
    folder = tmp_path / "p"
    a, b = save(scene(1), folder / "a.png"), save(scene(2), folder / "b.png")
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="cnn")
    cat.index([folder], workers=1)
    ids, before = cat.catalog.vectors("cnn")
    save(scene(3), a)
    os.utime(a, ns=(time.time_ns(), time.time_ns() + 10**9))
    b.unlink()
    cat.index([folder], workers=1)
    after_ids, after = cat.catalog.vectors("cnn")
    assert len(after_ids) == 1 and after_ids[0] == ids[0]
    assert float(before[0] @ after[0]) < 0.99
    assert cat.search(scene(3), k=1, by="cnn")[0].path == str(a)


def test_switching_embedder_needs_explicit_reembed(tmp_path) -> None:
    folder = tmp_path / "p"
    save(scene(1), folder / "a.png")
    db = tmp_path / "h.db"
    neardup.open(db, create=True, embedder="none").index([folder], workers=1)
    with pytest.raises(neardup.CatalogMismatchError, match="made with embedder none, asked for cnn") as raised:
        neardup.open(db, embedder="cnn")
    assert "--reembed" in raised.value.hint
    cat = neardup.open(db, embedder="cnn", reembed=True)
    report = cat.index([folder], workers=1)
    assert (report.decoded, report.embedded) == (0, 1)
    assert "cnn" in cat.features() and len(cat.catalog.vectors("cnn")[0]) == 1


def test_hash_search_never_imports_tensorflow(indexed) -> None:
    cat, files, _ = indexed
    code = (
        "import sys, neardup\n"
        f"cat = neardup.open({str(cat.path)!r})\n"
        f"cat.search({str(files['coffee'])!r}, by='phash256')\n"
        "cat.duplicates(by='pdq')\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_search_by_cnn_prints_json(indexed) -> None:
    import json

    cat, files, _ = indexed
    proc = subprocess.run([sys.executable, "-m", "neardup.cli", "search", str(files["coffee_half"]), "--db",
                           str(cat.path), "--by", "cnn", "--json", "-k", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout)
    assert line["results"][0]["path"] == str(files["coffee_half"]) and line["results"][0]["by"] == "cnn"
    assert proc.stderr == ""  # TensorFlow's start-up log noise is silenced


def test_auto_with_cnn_finds_mirrored_and_cropped_copies_that_hashes_miss(indexed, tmp_path) -> None:
    cat, files, _ = indexed
    for kind, im in _edits("astronaut").items():
        path = tmp_path / f"auto_{kind}.jpg"
        im.save(path, quality=85)
        top = cat.search(path, k=2, by="auto")
        assert top[0].path == str(files["astronaut"]) and top[0].by == "auto", kind
    mirrored = tmp_path / "auto_mirrored.jpg"
    by_auto = cat.search(mirrored, k=1, by="auto")[0]
    by_hash = cat.search(mirrored, k=1, by="phash256")[0]
    assert by_auto.path == str(files["astronaut"]) and by_auto.score >= 0.5  # a match by auto's scale
    assert by_hash.path != str(files["astronaut"]) or by_hash.distance > 69  # not a match by the hash


def test_auto_duplicates_with_cnn_group_exactly_the_made_copies(indexed) -> None:
    cat, _, _ = indexed
    groups = {frozenset(Path(p).name for p in g.members) for g in cat.duplicates(by="auto")}
    assert groups == {
        frozenset({"coffee.jpg", "coffee_half.jpg", "coffee_bright.png"}),
        frozenset({"chelsea.jpg", "chelsea_q40.jpg"}),
        frozenset({"rocket.jpg", "rocket_copy.jpg"}),
    }


def test_cli_reembed_of_an_unchanged_folder_in_a_fresh_process(tmp_path) -> None:
    folder = tmp_path / "p"
    save(scene(5), folder / "a.png")
    db = tmp_path / "r.db"
    cli = [sys.executable, "-m", "neardup.cli", "index", str(folder), "--db", str(db), "-q", "--workers", "2"]
    subprocess.run([*cli, "--embedder", "none"], check=True, capture_output=True)
    refused = subprocess.run([*cli, "--embedder", "cnn"], capture_output=True, text=True)
    assert refused.returncode == 1 and "--reembed" in refused.stderr
    done = subprocess.run([*cli, "--embedder", "cnn", "--reembed"], capture_output=True, text=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "nothing to decode" in done.stderr and "1 embedded" in done.stderr
