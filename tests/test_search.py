"""search(): nearest images by each hash and by auto; queries from files or pixels; a catalog
file and a PostgreSQL catalog alike."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import neardup
from neardup.indexer.hashes import HASHES

from conftest import DATA, scene


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
