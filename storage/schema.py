"""Catalog files: checking that a file is a neardup catalog before touching it, the SQLite
connection every catalog uses, and upgrading catalogs made by older neardup in place.

The schema is versioned with Alembic (`storage/migrations`): a new catalog is created at the
newest revision; an older one is upgraded in one transaction when it is opened for writing, so
a kill leaves it as it was. A file that is not a neardup catalog is never modified: it is
first read through a read-only connection, and only then opened for writing.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import QueuePool

from .errors import NeardupError

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST_REVISION = "0001"  # catalogs made before revisions were recorded have this schema
BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for another one before giving up


class CatalogNotFoundError(NeardupError, FileNotFoundError):
    """No catalog exists at the given path."""


class NotACatalogError(NeardupError, ValueError):
    """The file exists but is not a neardup catalog (another SQLite database, or not SQLite)."""


class CatalogVersionError(NeardupError):
    """The catalog's schema is not the one this neardup writes, and cannot be upgraded now."""


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def probe(path: Path) -> str:
    """The schema revision of the catalog at `path`, read without changing the file.

    Raises `CatalogNotFoundError` when there is no file, `NotACatalogError` when it is not a
    neardup catalog (not SQLite, or no catalog settings in it).
    """
    if not path.is_file():
        raise CatalogNotFoundError(f"no catalog at {path}", hint="create one by indexing a folder")
    try:
        with _closing(sqlite3.connect(_uri(path, "ro"), uri=True)) as con:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "settings" not in tables or not con.execute("SELECT 1 FROM settings WHERE key = 'settings'").fetchone():
                raise NotACatalogError(f"{path} is not a neardup catalog (an SQLite file without catalog settings)")
            if "alembic_version" not in tables:
                return FIRST_REVISION
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            return row[0] if row else FIRST_REVISION
    except sqlite3.DatabaseError as error:
        raise NotACatalogError(f"{path} is not a neardup catalog ({error})") from error


def connect(path: Path, *, readonly: bool = False) -> Engine:
    """An engine on the catalog file at `path` (which must exist).

    Every transaction is an explicit BEGIN (pysqlite would run DDL outside one), and a
    connection given ``execution_options(immediate=True)`` begins with BEGIN IMMEDIATE: a
    writer takes the write lock before it reads, so two writers queue instead of failing when
    one tries to turn its read into a write. WAL lets readers go on while one process writes.
    """
    mode = "ro" if readonly else "rw"

    def open_connection() -> sqlite3.Connection:
        return sqlite3.connect(_uri(path, mode), uri=True, check_same_thread=False, isolation_level=None)

    engine = create_engine("sqlite://", creator=open_connection, poolclass=QueuePool)
    event.listen(engine, "connect", _pragmas(readonly))
    event.listen(engine, "begin", _begin)
    return engine


def create_schema(engine: Engine) -> None:
    """Create every table of a new catalog at the newest revision."""
    from .models import Base

    with engine.begin() as conn:
        Base.metadata.create_all(conn)
        config = _alembic_config(conn)
        command.stamp(config, "head")


def upgrade(engine: Engine) -> None:
    """Bring the catalog to the newest revision in one transaction (under the write lock, so
    two processes opening one old catalog upgrade it once)."""
    with engine.connect().execution_options(immediate=True) as conn, conn.begin():
        config = _alembic_config(conn)
        tables = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars())
        if "alembic_version" not in tables:
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")


def check_revision(path: Path, revision: str, *, readonly: bool) -> bool:
    """Whether the catalog needs upgrading; raises `CatalogVersionError` when it cannot be."""
    head = head_revision()
    if revision == head:
        return False
    known = {script.revision for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
    if revision not in known:
        raise CatalogVersionError(f"catalog {path} was made by a newer neardup (schema {revision})",
                                  hint="upgrade neardup")
    if readonly:
        raise CatalogVersionError(f"catalog {path} was made by an older neardup (schema {revision}) and must be "
                                  "upgraded, which needs write access", hint="index into it once to upgrade it")
    return True


def _alembic_config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _uri(path: Path, mode: str) -> str:
    return f"file:{quote(os.fsencode(path))}?mode={mode}"


def _pragmas(readonly: bool):
    def apply(dbapi_connection: sqlite3.Connection, _record) -> None:
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    return apply


def _begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")


@contextmanager
def _closing(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        yield con
    finally:
        con.close()
