"""The CNN run inside the indexer's worker processes: the same vectors as in this process, an
embedder without a worker copy still runs here, and a killed worker is an error, not a hang."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from neardup.indexer.decode import decode
from neardup.indexer.embed import CnnEmbedder, worker_copy
from neardup.indexer.pipeline import index_paths
from neardup.indexer.regions import content_box
from neardup.storage.models import BOX, IMAGE

import neardup
from conftest import photo, save, scene
from faults import assert_ok, catalog_paths, index_killing_a_worker, neardup as run
from test_verify import screenshot


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two photos and a screenshot of a third (whose content box gets a vector too)."""
    root = tmp_path_factory.mktemp("worker-embed") / "photos"
    save(photo("coffee"), root / "coffee.png")
    save(photo("rocket"), root / "rocket.jpg")
    save(screenshot(photo("chelsea")), root / "shot.png")
    return root


def _vectors(catalog, view: str) -> dict[str, np.ndarray]:
    ids, vectors = catalog.vectors("cnn", view)
    paths = {i.image_id: Path(i.path).name for i in catalog.images(ids).values()}
    return {paths[i]: v for i, v in zip(ids, vectors)}


class _HereOnly:
    """The CNN behind the plain `Embedder` protocol, without a worker copy: it runs in the
    indexing process, as an embedder that offers none (the autoencoder) does."""

    def __init__(self) -> None:
        self._cnn = CnnEmbedder()
        for name in ("name", "model_id", "version", "dim", "input_size"):
            setattr(self, name, getattr(self._cnn, name))

    def embed(self, images):
        return self._cnn.embed(images)


def test_worker_copy_is_one_thread_litert_and_pickles_without_its_network() -> None:
    cnn = CnnEmbedder()
    cnn.embed([photo("coffee")])  # loads the network in this process
    copy = worker_copy(cnn)
    assert isinstance(copy, CnnEmbedder) and (copy.runtime, copy.threads) == ("litert", 1)
    assert pickle.loads(pickle.dumps(cnn))._forward is None
    assert worker_copy(CnnEmbedder(runtime="keras")) is None and worker_copy(_HereOnly()) is None


def test_vectors_made_in_the_workers_equal_embedding_here(tmp_path, folder) -> None:
    collection = neardup.open(tmp_path / "w.db", create=True, embedder="cnn")
    report = collection.index([folder], workers=2)
    assert report.embedded == 3
    stored, boxes = _vectors(collection.catalog, IMAGE), _vectors(collection.catalog, BOX)
    assert sorted(stored) == ["coffee.png", "rocket.jpg", "shot.png"] and sorted(boxes) == ["shot.png"]
    cnn = CnnEmbedder()
    for name, vector in stored.items():
        pixels = decode(folder / name).pixels
        np.testing.assert_allclose(vector, cnn.embed([pixels])[0], rtol=0, atol=2e-3)  # float16 storage
    np.testing.assert_allclose(boxes["shot.png"], cnn.embed([content_box(decode(folder / "shot.png").pixels)])[0],
                               rtol=0, atol=2e-3)


def test_an_embedder_without_a_worker_copy_runs_here_with_the_same_vectors(tmp_path, folder) -> None:
    in_workers = neardup.open(tmp_path / "w.db", create=True, embedder="cnn")
    in_workers.index([folder], workers=2)
    here = neardup.open(tmp_path / "h.db", create=True, embedder="cnn")
    report = index_paths([folder], catalog=here.catalog, workers=2, embedders=[_HereOnly()])
    assert report.embedded == 3
    for view in (IMAGE, BOX):
        expected, found = _vectors(in_workers.catalog, view), _vectors(here.catalog, view)
        assert sorted(found) == sorted(expected)
        for name in expected:
            np.testing.assert_allclose(found[name], expected[name], rtol=0, atol=2e-3)


def test_a_killed_worker_running_the_cnn_is_an_error_line_not_a_hang(tmp_path) -> None:
    """kill -9 of a worker while it decodes and embeds: `neardup index` (default, CNN) ends
    within a minute with `error: …` (or finishes the work itself), what was written stays, and
    the next run completes every image with its vector."""
    folder = tmp_path / "photos"
    for i in range(160):
        save(scene(i, (320, 240)), folder / f"s{i:03d}.png")
    db = tmp_path / "c.db"
    code, err = index_killing_a_worker(folder, "--db", db, "-q", "--workers", "2", started_within=60, settle=0.5)
    assert "Traceback" not in err, err
    if code != 0:
        assert err.strip().splitlines()[-1].startswith("error: "), err
    assert_ok(run("index", folder, "--db", db, "-q", "--workers", "2"))
    assert sum(s == "ok" for s in catalog_paths(db).values()) == 160
    assert len(neardup.open(db).catalog.vectors("cnn")[0]) == 160
