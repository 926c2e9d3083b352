"""The catalog over both backends (a file, a PostgreSQL database): records round-trip, writes
upsert, and a PostgreSQL catalog is located, created, upgraded and refused as a file is."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
import warnings
from dataclasses import replace

import numpy as np
import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

import neardup
from neardup.storage import database, schema
from neardup.storage.catalog import Catalog
from neardup.storage.models import BOX, IMAGE, Base
from neardup.storage.records import ImageRecord

from conftest import image_rows


def _record(path: str, seed: int) -> ImageRecord:
    rng = np.random.default_rng(seed)
    vector = rng.normal(size=8).astype(np.float32)
    return ImageRecord(
        path=path, size=2**40 + seed, mtime_ns=1_796_000_000_123_456_789 + seed, sha256=f"{seed:064x}",
        width=640, height=480, format="JPEG", quality=90,
        hashes={IMAGE: {"pdq": rng.integers(0, 256, 32, dtype=np.uint8)}, BOX: {"pdq": rng.integers(0, 256, 32, dtype=np.uint8)}},
        vectors={IMAGE: {"cnn": vector / np.linalg.norm(vector)}},
        keypoints=(rng.random((5, 2), dtype=np.float32) * 100, rng.integers(0, 256, (5, 32), dtype=np.uint8)),
    )


def test_records_round_trip_and_a_rewrite_keeps_the_row_and_its_id(catalog_location) -> None:
    cat = neardup.open(catalog_location, create=True, embedder="none").catalog
    first = [_record(f"/p/{name}.jpg", i) for i, name in enumerate(["b", "a", "ünïcode", "c"])]
    cat.write(first)
    states = cat.file_states()
    assert sorted(states) == sorted(r.path for r in first)
    assert states["/p/b.jpg"].mtime_ns == first[0].mtime_ns and states["/p/b.jpg"].size == 2**40  # 64-bit
    ids, codes = cat.hashes("pdq", BOX)
    by_id = {i.image_id: i.path for i in cat.images(ids).values()}
    assert {by_id[i]: c.tobytes() for i, c in zip(ids, codes)} == {r.path: r.hashes[BOX]["pdq"].tobytes() for r in first}
    vectors = cat.vectors_of(list(by_id), "cnn")
    for image_id, path in by_id.items():
        want = next(r for r in first if r.path == path).vectors[IMAGE]["cnn"]
        np.testing.assert_allclose(vectors[image_id], want, atol=1e-3)  # stored as float16
    again = _record("/p/a.jpg", 9)
    cat.write([again])
    after = cat.file_states()
    assert len(after) == 4 and after["/p/a.jpg"].image_id == states["/p/a.jpg"].image_id
    assert after["/p/a.jpg"].sha256 == again.sha256
    # the rewritten row (a server may now hold it last) read in id order, asked in any order,
    # beside an id without a vector; exactly as stored (float16)
    stored = {states[r.path].image_id: r.vectors[IMAGE]["cnn"] for r in [*first[:1], again, *first[2:]]}
    asked = sorted(stored, reverse=True) + [max(stored) + 1]
    found, matrix = cat.feature_rows("cnn", asked)
    assert found.tolist() == sorted(stored) and matrix.dtype == np.float32 and matrix.shape == (4, 8)
    assert all((matrix[row] == stored[i].astype(np.float16)).all() for row, i in enumerate(found.tolist()))
    found, matrix = cat.feature_rows("cnn", asked, BOX)  # no box vectors were written
    assert found.tolist() == [] and matrix.shape[0] == 0
    assert cat.counts()["hashes.pdq"] == 4 and cat.counts()["keypoints"] == 4  # the old features replaced


def test_a_feature_s_rows_of_every_image_are_read_in_id_order_without_a_sort(tmp_path) -> None:
    """Duplicates and the indexes read one feature's rows of every image in id order; SQLite
    sorting them (a large catalog's vectors in a temporary B-tree) took most of that read."""
    path = tmp_path / "cat.db"
    cat = neardup.open(path, create=True, embedder="none").catalog
    cat.write([_record(f"/p/{i}.jpg", i) for i in range(20)])
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        read = [cat.hashes("pdq"), cat.hashes("pdq", BOX), cat.vectors("cnn"), cat.feature_ids("pdq"),
                cat.feature_ids("cnn"), *cat.feature_chunks("cnn", size=8)]
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert [len(r[0]) for r in read] == [20] * 5 + [8, 8, 4]
    db = sqlite3.connect(path)
    plans = [" / ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}", parameters))
             for statement, parameters in statements if "ORDER BY" in statement]
    db.close()
    assert len(plans) == 9  # the feature_chunks' last read finds nothing
    for plan in plans:
        assert "TEMP B-TREE" not in plan and ("ix_hashes_feature" in plan or "ix_vectors_feature" in plan), plan


def test_every_write_replaces_the_generation(catalog_location) -> None:
    cat = neardup.open(catalog_location, create=True, embedder="none").catalog
    seen = {cat.generation()}
    cat.write([_record("/p/a.jpg", 1)])
    seen.add(cat.generation())
    cat.remove([next(iter(cat.file_states().values())).image_id])
    seen.add(cat.generation())
    assert len(seen) == 3


def test_a_second_writer_to_a_catalog_file_waits_briefly_then_is_told_it_is_busy(tmp_path) -> None:
    """SQLite lets one writer at a time: the next one waits out a short transaction (a batch of
    files), then says the catalog is busy instead of hanging or failing at once. Timed in this
    process, so the bounds are the wait alone, not a command's start-up on a busy machine."""
    location = tmp_path / "c.db"
    cat = neardup.open(location, create=True, embedder="none").catalog
    holder = sqlite3.connect(location, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what another neardup writing a batch holds
    try:
        began = time.monotonic()
        with pytest.raises(schema.CatalogBusyError, match="is busy: another neardup process is writing"):
            cat.write([_record("/p/a.jpg", 1)])
        waited = time.monotonic() - began
    finally:
        holder.rollback()
        holder.close()
    assert schema.BUSY_TIMEOUT_MS / 1000 - 0.5 < waited < 8, f"waited {waited:.1f} s"
    cat.write([_record("/p/a.jpg", 1)])  # the other writer is done: the same write goes through
    assert list(cat.file_states()) == ["/p/a.jpg"]


def test_a_url_catalog_keeps_its_files_in_per_machine_folders_keyed_by_its_identity(postgres_url, tmp_path,
                                                                                    monkeypatch) -> None:
    monkeypatch.setenv("NEARDUP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NEARDUP_DATA_DIR", str(tmp_path / "data"))
    cat = neardup.open(postgres_url, create=True, embedder="none").catalog
    assert cat.cache_file("pdq.faiss") == tmp_path / "cache" / "catalogs" / cat.identity / "catalog.pdq.faiss"
    assert cat.sibling("recovery") == tmp_path / "data" / "catalogs" / cat.identity / "catalog.recovery"
    assert cat.index("pdq").path.parent.is_dir()


def test_a_password_never_appears_in_messages(postgres_url) -> None:
    url = postgres_url.replace("postgres@", "postgres:s3cret@")
    cat = neardup.open(url, create=True, embedder="none")
    assert "s3cret" not in str(cat.path) and "***" in str(cat.path)


@pytest.mark.parametrize("url, problem", [
    ("mysql+pymysql://u@h/db", "cannot hold a neardup catalog"),
    ("postgresql+psycopg://u@h", "names no database"),
    ("postgresql+psycopg://u@h:notaport/db", "cannot read catalog URL"),
])
def test_a_url_neardup_cannot_use_is_a_clear_error(url, problem) -> None:
    with pytest.raises(database.UnsupportedDatabaseError, match=problem):
        neardup.open(url, create=True, embedder="none")


def test_an_sqlite_url_is_the_file_it_names(tmp_path) -> None:
    cat = neardup.open(f"sqlite:///{tmp_path / 'c.db'}", create=True, embedder="none")
    assert cat.path == tmp_path / "c.db" and schema.probe(tmp_path / "c.db") == schema.head_revision()


def test_a_server_that_is_not_there_is_a_clear_error(postgres_server) -> None:
    from postgres import _free_port

    url = f"postgresql+psycopg://someone:pw@127.0.0.1:{_free_port()}/photos"
    with pytest.raises(database.CatalogUnreachableError, match="cannot connect") as raised:
        neardup.open(url, create=True, embedder="none")
    assert "pw@" not in str(raised.value)


def test_a_database_that_does_not_exist_says_how_to_create_it(postgres_url) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(neardup.CatalogNotFoundError, match="no database") as raised:
        neardup.open(missing, create=True, embedder="none")
    assert "createdb" in raised.value.hint


def test_an_empty_database_is_no_catalog_until_created(postgres_url) -> None:
    with pytest.raises(neardup.CatalogNotFoundError, match="no catalog in database"):
        neardup.open(postgres_url)


def test_a_database_holding_other_tables_is_refused_and_left_untouched(postgres_url) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (body text)"))
        conn.execute(text("INSERT INTO notes VALUES ('mine')"))
    for create in (False, True):
        with pytest.raises((neardup.NotACatalogError, schema.CatalogExistsError)):
            neardup.open(postgres_url, create=create, embedder="none")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT body FROM notes")).scalars().all() == ["mine"]
        assert conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar() == 1
    engine.dispose()


def test_processes_creating_one_catalog_at_once_make_one(postgres_url) -> None:
    identities, errors = [], []

    def create() -> None:
        try:
            with neardup.open(postgres_url, create=True, embedder="none") as cat:
                identities.append(cat.catalog.identity)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(identities) == 4 and len(set(identities)) == 1


def _catalog_at(url: str, revision: str) -> None:
    """A PostgreSQL catalog as neardup's schema `revision` (0002: views and models, no clean-up
    journal) left it, with one image and its hashes."""
    engine = create_engine(url)
    with engine.begin() as conn:
        config = schema._alembic_config(conn)
        command.upgrade(config, schema.FIRST_REVISION)
        conn.execute(text("INSERT INTO settings VALUES ('settings', :s), ('generation', '7')"),
                     {"s": '{"decode_side": 384, "hash_version": 1, "hashes": ["pdq"], "embedder": "none"}'})
        command.upgrade(config, revision)
        conn.execute(text("UPDATE settings SET value = '\"c0ffee\"' WHERE key = 'catalog_id'"))
        conn.execute(text("INSERT INTO images VALUES (1, '/p/a.png', 10, 1796000000123456789, 'ff', 640, 480, "
                          "'PNG', 90, 'ok', NULL, now(), now())"))
        conn.execute(text("INSERT INTO hashes VALUES (1, 'pdq', 'image', :b)"), {"b": bytes(range(32))})
    engine.dispose()


def test_a_postgresql_catalog_of_an_older_revision_is_upgraded_in_place(postgres_url) -> None:
    _catalog_at(postgres_url, "0002")
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0002"
    cat = neardup.open(postgres_url)
    assert cat.catalog.identity == "c0ffee" and cat.catalog.file_states()["/p/a.png"].mtime_ns == 1796000000123456789
    assert cat.catalog.hashes("pdq")[1][0].tobytes() == bytes(range(32))
    assert cat.history() == []  # the journal tables of 0003 exist
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        assert database.revision(conn, "x") == schema.head_revision()
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_an_old_postgresql_catalog_opened_read_only_says_it_needs_upgrading(postgres_url) -> None:
    _catalog_at(postgres_url, "0002")
    with pytest.raises(schema.CatalogVersionError, match="older neardup"):
        neardup.open(postgres_url, readonly=True)


def test_a_postgresql_catalog_from_a_newer_neardup_is_refused(postgres_url) -> None:
    neardup.open(postgres_url, create=True, embedder="none").close()
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(schema.CatalogVersionError, match="newer neardup"):
        neardup.open(postgres_url)


def test_a_new_postgresql_catalog_has_exactly_the_tables_the_migrations_build(postgres_url, postgres_server) -> None:
    neardup.open(postgres_url, create=True, embedder="none").close()
    migrated = postgres_server.fresh_database()
    try:
        _catalog_at(migrated, "head")
        for url in (postgres_url, migrated):
            engine = create_engine(url)
            with engine.connect() as conn:
                assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            engine.dispose()
    finally:
        postgres_server.drop(migrated)
    assert image_rows(postgres_url) == 0


def test_a_read_only_catalog_refuses_writes(catalog_location) -> None:
    neardup.open(catalog_location, create=True, embedder="none").close()
    cat = Catalog.open(catalog_location, readonly=True)
    with pytest.raises(schema.CatalogReadOnlyError, match="read-only"):
        cat.write([_record("/p/a.jpg", 1)])


def test_a_catalog_nobody_closed_closes_its_connections_when_collected(postgres_url) -> None:
    # A script that opens catalogs and forgets them must not leave server connections open
    # until exit, nor make psycopg warn about each one whenever garbage is collected.
    neardup.open(postgres_url, create=True, embedder="none").close()
    cat = neardup.open(postgres_url)
    assert cat.stats().counts.get("images", 0) == 0  # a pooled connection, checked back in and left open
    del cat
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        gc.collect()
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
        others = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                              "AND pid <> pg_backend_pid()").fetchone()[0]
    assert others == 0


def test_failures_are_listed_by_path(catalog_location) -> None:
    odd = "/q/caf\udce9.jpg"  # stored percent-encoded: "%/q/caf%E9.jpg"
    paths = ["/q/b.jpg", odd, "/p/ok.jpg", "/a/z.jpg", "/q/c.jpg"]
    cat = neardup.open(catalog_location, create=True, embedder="none").catalog
    cat.write([replace(_record(p, seed), error=None if "ok" in p else f"bad {seed}") for seed, p in enumerate(paths)])
    assert cat.failures() == [("/a/z.jpg", "bad 3"), ("/q/b.jpg", "bad 0"), ("/q/c.jpg", "bad 4"), (odd, "bad 1")]
    cat.close()


def test_paths_named_finds_every_folder_s_file_of_that_name_and_no_other(catalog_location) -> None:
    # "_" and "%" are LIKE's wildcards; a name not valid UTF-8 is stored percent-encoded whole
    odd = "/q/caf\udce9.jpg"
    paths = ["/p/a_b.jpg", "/q/a_b.jpg", "/p/axb.jpg", "/p/xa_b.jpg", "/p/%.jpg", "/p/x.jpg", odd]
    cat = neardup.open(catalog_location, create=True, embedder="none").catalog
    cat.write([_record(p, seed) for seed, p in enumerate(paths)])
    assert sorted(cat.paths_named("a_b.jpg")) == ["/p/a_b.jpg", "/q/a_b.jpg"]
    assert cat.paths_named("%.jpg") == ["/p/%.jpg"]
    assert cat.paths_named("caf\udce9.jpg") == [odd]
    assert cat.paths_named("b.jpg") == []
    cat.close()
