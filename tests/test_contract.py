"""One behavioural contract that every feature keeps: each hash, the CNN, the autoencoder.

At its own default threshold, a feature puts mild copies of a photo (JPEG q50, half size, a
little brighter) within the threshold of their original and distinct images outside it; its
search ranks the catalog by its own distance, as a brute force over the stored features does;
and a catalog closed and opened again answers the same. A new feature (a hash, an embedder
in `indexer.embedders`) joins `FEATURES` and must keep the same contract.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import neardup
from neardup.indexer.autoencoder import AutoencoderConfig
from neardup.indexer.decode import decode
from neardup.indexer.hashes import HASHES
from neardup.search.features import default_threshold
from neardup.search.fusion import hamming_rows

from conftest import PHOTOS, photo, save, scene
from images import brightened, jpeg, scaled

pytest.importorskip("tensorflow")

FEATURES = [*HASHES, "cnn", "autoencoder"]
COPIES = {"jpeg": lambda rgb: jpeg(rgb, 50), "half": lambda rgb: scaled(rgb, 0.5), "bright": brightened}
# enough training for the autoencoder to tell these 11 images apart (a 2-epoch model cannot)
AUTOENCODER = AutoencoderConfig(dim=32, image_size=32, epochs=15, seed=3)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    folder = root / "photos"
    for name in PHOTOS:
        save(photo(name), folder / f"{name}.png")
        for kind, edit in COPIES.items():
            save(edit(photo(name)), folder / f"{name}_{kind}.png")
    for seed in range(6):
        save(scene(seed), folder / f"scene{seed}.png")
    cat = neardup.open(root / "c.db", create=True, embedder="cnn")
    cat.index([folder], workers=1)
    cat.train_autoencoder(AUTOENCODER, workers=1)
    cat.index([folder], workers=1)  # embeds with the autoencoder
    yield cat, folder
    cat.close()


def _origin(path: str) -> str:
    return Path(path).stem.split("_")[0]


def _within(feature: str, match: neardup.Match) -> bool:
    """Whether a search result lies within the feature's default threshold (both inclusive)."""
    threshold = default_threshold(feature)
    return match.distance <= threshold if feature in HASHES else match.score >= threshold


def _everything(cat, query: Path, feature: str) -> list[neardup.Match]:
    return cat.search(query, k=1000, by=feature)


@pytest.mark.parametrize("feature", FEATURES)
def test_mild_copies_lie_within_the_threshold_of_their_original(library, feature) -> None:
    cat, folder = library
    for name in PHOTOS:
        found = {Path(m.path).stem: m for m in _everything(cat, folder / f"{name}.png", feature)}
        outside = [kind for kind in COPIES if not _within(feature, found[f"{name}_{kind}"])]
        assert not outside, f"{feature}: copies of {name} outside the threshold: {outside}"


@pytest.mark.parametrize("feature", FEATURES)
def test_distinct_images_lie_outside_the_threshold(library, feature) -> None:
    cat, folder = library
    for query in [*PHOTOS, *(f"scene{s}" for s in range(6))]:
        close = [Path(m.path).stem for m in _everything(cat, folder / f"{query}.png", feature)
                 if _within(feature, m) and _origin(m.path) != query]
        assert not close, f"{feature}: {query} matches distinct images {close}"


@pytest.mark.parametrize("feature", FEATURES)
def test_search_ranks_by_the_features_own_distance(library, feature) -> None:
    cat, folder = library
    results = _everything(cat, folder / "coffee.png", feature)
    if feature in HASHES:
        ids, codes = cat.catalog.hashes(feature)
        query = codes[list(ids).index(next(m.image_id for m in results if m.path.endswith("/coffee.png")))]
        oracle = sorted(hamming_rows(codes, np.broadcast_to(query, codes.shape)).tolist())
        assert [m.distance for m in results] == oracle
    else:
        ids, vectors = cat.catalog.vectors(feature)
        seen = decode(folder / "coffee.png", max_side=cat.catalog.settings.decode_side).pixels  # as indexed
        query = cat.embedder(feature).embed([seen])[0]
        oracle = sorted((vectors @ query).tolist(), reverse=True)
        np.testing.assert_allclose([m.score for m in results], oracle, atol=2e-3)  # float16 storage
    assert len(results) == len(ids)


@pytest.mark.parametrize("feature", FEATURES)
def test_a_reopened_catalog_answers_the_same(library, feature) -> None:
    cat, folder = library
    before = [(m.path, round(m.score, 5)) for m in cat.search(folder / "rocket_half.png", k=5, by=feature)]
    with neardup.open(cat.path) as again:
        after = [(m.path, round(m.score, 5)) for m in again.search(folder / "rocket_half.png", k=5, by=feature)]
    assert after == before and len(before) == 5
