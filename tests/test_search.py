"""search(): nearest images by each hash and by auto; queries from files or pixels; a catalog
file and a PostgreSQL catalog alike."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import neardup
from neardup.indexer.hashes import HASHES
from neardup.search.auto import POLICY

from conftest import DATA, scene
from images import jpeg


@pytest.fixture
def indexed(tmp_path, collection, catalog_location):
    cat = neardup.open(catalog_location, create=True, embedder="none")
    cat.index([tmp_path / "photos"], workers=1)
    return cat, collection


@pytest.mark.parametrize("by", ["auto", *HASHES])
def test_edited_copy_outside_the_catalog_finds_its_original_first(indexed, tmp_path, by) -> None:
    cat, files = indexed
    query = tmp_path / "query.jpg"
    im = Image.open(DATA / "astronaut.jpg")
    im.resize((im.width * 2 // 3, im.height * 2 // 3), Image.LANCZOS).save(query, quality=60)
    results = cat.search(query, k=3, by=by)
    assert results[0].path == str(files["astronaut"])
    assert results[0].by == by and 0.0 <= results[0].score <= 1.0
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_identical_image_scores_one_and_hash_distance_is_in_bits(indexed) -> None:
    cat, files = indexed
    top = cat.search(files["hubble"], k=1, by="phash256")[0]
    assert (top.path, top.score, top.distance) == (str(files["hubble"]), 1.0, 0.0)
    top = cat.search(files["hubble"], k=1, by="auto")[0]
    assert top.score == pytest.approx(1.0) and top.distance == pytest.approx(0.0)


def test_query_by_pixels_equals_query_by_file(indexed) -> None:
    cat, files = indexed
    rgb = np.asarray(Image.open(files["chelsea"]).convert("RGB"))
    by_file = cat.search(files["chelsea"], k=5)
    by_array = cat.search(rgb, k=5)
    assert [(m.path, m.score) for m in by_file] == [(m.path, m.score) for m in by_array]


def test_k_larger_than_the_catalog_returns_every_image_once(indexed) -> None:
    cat, files = indexed
    for by in ("pdq", "auto"):
        results = cat.search(scene(500), k=100, by=by)
        assert len(results) == len(files) and len({r.path for r in results}) == len(files)


def test_unknown_feature_and_unreadable_query_are_clear_errors(indexed, tmp_path) -> None:
    cat, _ = indexed
    with pytest.raises(neardup.UnknownFeatureError, match="unknown feature 'sift'"):
        cat.search(DATA / "coffee.jpg", by="sift")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(neardup.UnreadableImageError):
        cat.search(text)


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_turned_query_finds_its_original_first_without_a_vector_feature(tmp_path, turns) -> None:
    """No hash of the original lies near the turned query's, so in a larger collection it
    would not even be verified (here, among 44 others, it is); the hashes of the query's turns
    vouch for it by themselves."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee", "chelsea", "astronaut", "rocket"):
        Image.open(DATA / f"{name}.jpg").save(folder / f"{name}.jpg", quality=95)
    rng = np.random.default_rng(0)
    for i in range(40):  # photo-like images turned as the query is, nearer to it than its original
        rgb = np.asarray(Image.open(DATA / f"{('coffee', 'chelsea', 'rocket', 'hubble')[i % 4]}.jpg").convert("RGB"))
        h, w = rgb.shape[0] // 2, rgb.shape[1] // 2
        y, x = rng.integers(0, h), rng.integers(0, w)
        Image.fromarray(np.ascontiguousarray(np.rot90(rgb[y:y + h, x:x + w], turns))).save(folder / f"part{i:02d}.jpg")
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="none")
    cat.index([folder], workers=1)
    turned = np.ascontiguousarray(np.rot90(np.asarray(Image.open(DATA / "astronaut.jpg").convert("RGB")), turns))
    results = cat.search(jpeg(turned, 80), k=3)
    assert results[0].path == str(folder.resolve() / "astronaut.jpg"), [r.path for r in results]
    assert dict(results[0].evidence)["hashes"] >= POLICY.threshold, results[0].evidence
