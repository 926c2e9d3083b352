"""A catalog's autoencoder end to end: train, embed on index, search, duplicates, the stale rule."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("tensorflow")

import neardup  # noqa: E402
from neardup.cli import main  # noqa: E402
from neardup.indexer.autoencoder import AutoencoderConfig, ModelFileError  # noqa: E402
from neardup.indexer.training import NotTrainedError, load_autoencoder  # noqa: E402
from neardup.search.features import UnknownFeatureError  # noqa: E402
from neardup.search.query import MissingVectorsError  # noqa: E402

from conftest import save, scene  # noqa: E402

TINY = AutoencoderConfig(dim=16, image_size=32, epochs=2, seed=3)


@pytest.fixture
def folder(tmp_path):
    for seed in range(12):
        save(scene(seed), tmp_path / "photos" / f"scene{seed:02d}.png")
    return tmp_path / "photos"


@pytest.fixture
def cat(tmp_path, folder):
    with neardup.open(tmp_path / "cat.db", create=True, embedder="none") as c:
        c.index([folder], workers=1)
        yield c


def test_before_training_autoencoder_is_a_clear_error(cat, folder) -> None:
    with pytest.raises(UnknownFeatureError, match="no autoencoder yet") as raised:
        cat.embed_missing("autoencoder", workers=1)
    assert "neardup train autoencoder" in raised.value.hint
    with pytest.raises(UnknownFeatureError, match="no autoencoder yet"):
        cat.search(folder / "scene00.png", by="autoencoder")
    with pytest.raises(NotTrainedError, match="no autoencoder yet"):
        load_autoencoder(cat.catalog)
    assert "autoencoder" not in cat.features()


def test_train_writes_model_and_plots_and_records_them(cat) -> None:
    report = cat.train_autoencoder(TINY, workers=1)
    assert (report.version, report.images, report.unreadable, report.stale) == (1, 12, 0, 0)
    assert len(report.result.history) == 2
    for path in (report.model, report.loss_plot, report.reconstructions):
        assert path.is_file() and path.parent == cat.path.parent
    assert cv2.imread(str(report.loss_plot)) is not None and cv2.imread(str(report.reconstructions)) is not None
    record = cat.stats().models["autoencoder"]
    assert record.version == 1 and record.dim == 16 and record.training["config"]["dim"] == 16
    assert record.training["images"] == 12 and record.file == report.model.name
    assert "autoencoder" in cat.features()


def test_index_embeds_then_search_and_duplicates_work(cat, folder) -> None:
    cat.train_autoencoder(TINY, workers=1)
    report = cat.index([folder], workers=1)
    assert report.embedded == 12 and cat.catalog.counts()["vectors.autoencoder"] == 12
    top = cat.search(folder / "scene05.png", k=3, by="autoencoder")
    assert top[0].path == str(folder / "scene05.png") and top[0].score == pytest.approx(1.0, abs=1e-3)
    assert top[0].by == "autoencoder" and top[1].score < top[0].score
    assert cat.duplicates(by="autoencoder", threshold=1.0) == []  # distinct scenes are never identical
    groups = cat.duplicates(by="autoencoder", threshold=0.0)  # the autoencoder's vectors crowd together
    assert len(groups) == 1 and len(groups[0].members) == 12


def test_new_files_get_autoencoder_vectors_on_a_plain_index(cat, folder) -> None:
    cat.train_autoencoder(TINY, workers=1)
    cat.index([folder], workers=1)
    save(scene(99), folder / "new.png")
    report = cat.index([folder], workers=1)
    assert report.new == 1 and report.embedded == 1
    assert cat.catalog.counts()["vectors.autoencoder"] == 13


def test_retraining_drops_the_stale_vectors_until_the_next_index(cat, folder) -> None:
    cat.train_autoencoder(TINY, workers=1)
    cat.index([folder], workers=1)
    first = cat.embedder("autoencoder").embed([scene(0)])
    again = cat.train_autoencoder(AutoencoderConfig(dim=16, image_size=32, epochs=2, seed=4), workers=1)
    assert (again.version, again.stale) == (2, 12)
    assert "vectors.autoencoder" not in cat.catalog.counts()
    with pytest.raises(MissingVectorsError, match="no autoencoder vectors yet") as raised:
        cat.search(folder / "scene00.png", by="autoencoder")
    assert "neardup index" in raised.value.hint
    assert not np.allclose(cat.embedder("autoencoder").embed([scene(0)]), first)  # the new model is used
    assert cat.index([folder], workers=1).embedded == 12
    assert cat.search(folder / "scene00.png", k=1, by="autoencoder")[0].path == str(folder / "scene00.png")


def test_a_changed_model_file_is_refused(cat) -> None:
    report = cat.train_autoencoder(TINY, workers=1)
    report.model.write_bytes(report.model.read_bytes() + b"x")
    with pytest.raises(ModelFileError, match="changed since training"):
        neardup.open(cat.path).embedder("autoencoder")


def test_cli_train_index_search(tmp_path, folder) -> None:
    db = str(tmp_path / "cli.db")
    runner = CliRunner()
    assert runner.invoke(main, ["index", str(folder), "--db", db, "--embedder", "none", "-q"]).exit_code == 0
    early = runner.invoke(main, ["index", str(folder), "--db", db, "--embedder", "autoencoder", "-q"])
    assert early.exit_code == 1 and "no autoencoder yet; train one: neardup train autoencoder" in early.output
    trained = runner.invoke(main, ["train", "autoencoder", "--db", db, "--epochs", "2", "--dim", "16",
                                   "--image-size", "32", "-q"])
    assert trained.exit_code == 0, trained.output
    assert "trained autoencoder v1 on 12 images" in trained.output and "--embedder autoencoder" in trained.output
    assert runner.invoke(main, ["index", str(folder), "--db", db, "--embedder", "autoencoder", "-q"]).exit_code == 0
    found = runner.invoke(main, ["search", str(folder / "scene03.png"), "--db", db, "--by", "autoencoder", "--json"])
    assert found.exit_code == 0
    assert json.loads(found.output.splitlines()[-1])["results"][0]["path"] == str(folder / "scene03.png")
    bad = runner.invoke(main, ["train", "autoencoder", "--db", db, "--image-size", "40", "-q"])
    assert bad.exit_code == 1 and "image_size" in bad.output
