"""Catalog files: old catalogs are upgraded in place, foreign files are never touched, and a
new catalog's tables equal those the migrations build."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import neardup
from neardup.indexer.hashes import HASHES, pdq
from neardup.storage import schema
from neardup.storage.models import BOX, IMAGE, Base

from conftest import photo


def _first_release_catalog(path: Path) -> None:
    """A catalog as the first release wrote it: schema revision 0001, "pdq@box" names, the
    CNN's identity in the settings JSON, the autoencoder's record and index generations as
    loose settings rows, an integer generation."""
    path.touch()
    engine = schema.connect(path)
    with engine.begin() as conn:
        config = schema._alembic_config(conn)
        command.upgrade(config, schema.FIRST_REVISION)
        conn.exec_driver_sql("DROP TABLE alembic_version")  # the first release recorded no revision
    engine.dispose()
    settings = {
        "schema_version": 1, "hashes": list(HASHES), "hash_version": 1, "decode_side": 384,
        "local_features": "orb-500-v1", "embedder": "cnn", "model_id": "mobilenet_v2-torchvision-imagenet1k_v1",
        "model_version": 1, "model_dim": 1280, "model_input": 224, "model_pooling": "gem",
        "binary_index": "IndexBinaryIDMap(IndexBinaryFlat)", "float_index": "IndexIDMap(IndexFlatIP)",
    }
    autoencoder = {"file": "c.autoencoder.npz", "sha256": "ab" * 32, "version": 3, "model_id": "conv-autoencoder",
                   "config": {"dim": 16, "image_size": 32}, "images": 12, "trained_at": "2026-11-01T00:00:00+00:00"}
    db = sqlite3.connect(path)
    with db:
        db.execute("INSERT INTO images VALUES (1, '/p/a.png', 10, 5, 'ff', 640, 480, 'PNG', 90, 'ok', NULL, "
                   "'2026-11-01 00:00:00', '2026-11-01 00:00:00')")
        code = pdq(photo("coffee"))[0].tobytes()
        db.executemany("INSERT INTO hashes VALUES (1, ?, ?)", [("pdq", code), ("pdq@box", code[::-1])])
        vector = np.full(1280, 0.25, "<f2").tobytes()
        db.executemany("INSERT INTO vectors VALUES (1, ?, ?)", [("cnn", vector), ("cnn@box", vector)])
        db.executemany("INSERT INTO settings VALUES (?, ?)", [
            ("settings", json.dumps(settings)), ("generation", "7"), ("index.pdq", "7"),
            ("model.autoencoder", json.dumps(autoencoder)),
        ])
    db.close()


def test_a_first_release_catalog_is_upgraded_in_place(tmp_path) -> None:
    path = tmp_path / "c.db"
    _first_release_catalog(path)
    assert schema.probe(path) == schema.FIRST_REVISION
    cat = neardup.open(path)
    assert schema.probe(path) == schema.head_revision()
    catalog = cat.catalog
    assert catalog.settings.hashes == tuple(HASHES) and catalog.settings.local_features == "orb-500-v1"
    assert catalog.hashes("pdq", IMAGE)[1][0].tobytes() == pdq(photo("coffee"))[0].tobytes()
    assert catalog.hashes("pdq", BOX)[1][0].tobytes() == pdq(photo("coffee"))[0].tobytes()[::-1]
    assert len(catalog.vectors("cnn", IMAGE)[0]) == len(catalog.vectors("cnn", BOX)[0]) == 1
    models = catalog.models()
    assert (models["cnn"].model_id, models["cnn"].dim, models["cnn"].options) == (
        "mobilenet_v2-torchvision-imagenet1k_v1", 1280, {"pooling": "gem"})
    ae = models["autoencoder"]
    assert (ae.version, ae.dim, ae.input_size, ae.file, ae.training["images"]) == (3, 16, 32, "c.autoencoder.npz", 12)
    assert isinstance(catalog.generation(), str) and len(catalog.identity) == 32
    keys = {row[0] for row in sqlite3.connect(path).execute("SELECT key FROM settings")}
    assert keys == {"settings", "generation", "catalog_id"}
    assert neardup.open(path).features() == ("auto", *HASHES, "cnn", "autoencoder")  # opened again: no-op


def test_an_old_catalog_opened_read_only_says_it_needs_upgrading(tmp_path) -> None:
    path = tmp_path / "c.db"
    _first_release_catalog(path)
    before = path.read_bytes()
    with pytest.raises(schema.CatalogVersionError, match="older neardup") as raised:
        neardup.open(path, readonly=True)
    assert "index into it" in raised.value.hint and path.read_bytes() == before


def test_a_catalog_from_a_newer_neardup_is_refused(tmp_path) -> None:
    path = tmp_path / "c.db"
    neardup.open(path, create=True, embedder="none").close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    db.close()
    with pytest.raises(schema.CatalogVersionError, match="newer neardup"):
        neardup.open(path)


def test_new_catalogs_have_exactly_the_tables_the_migrations_build(tmp_path) -> None:
    path = tmp_path / "migrated.db"
    _first_release_catalog(path)
    neardup.open(path).close()
    engine = schema.connect(path)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


@pytest.mark.parametrize("content", ["sqlite", "text", "empty"])
def test_a_file_that_is_not_a_catalog_is_refused_and_left_untouched(tmp_path, content) -> None:
    path = tmp_path / "other.db"
    if content == "sqlite":
        db = sqlite3.connect(path)
        with db:
            db.execute("CREATE TABLE notes (body TEXT)")
            db.execute("INSERT INTO notes VALUES ('mine')")
        db.close()
    else:
        path.write_bytes(b"" if content == "empty" else b"hello, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(neardup.NotACatalogError, match="not a neardup catalog"):
        neardup.open(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal, no -shm


def test_the_head_revision_constant_is_alembics_head() -> None:
    """Opening a current catalog compares with `HEAD_REVISION` instead of asking Alembic: a new
    migration must move it, or catalogs at the old head would never be upgraded."""
    assert schema.HEAD_REVISION == schema.head_revision()
