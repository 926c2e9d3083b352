"""Catalog files: checking that a file is a neardup catalog before touching it, the SQLite
connection every catalog file uses, and upgrading catalogs made by older neardup in place.

The schema is versioned with Alembic (`storage/migrations`): a new catalog is created at the
newest revision; an older one is upgraded in one transaction when it is opened for writing, so
a kill leaves it as it was. Creating the tables and migrating (`create_schema`, `migrate`) work
on any connection: a catalog on a database server (`database`) is versioned the same way. A file that is not a neardup catalog is never modified: it is
first read through a read-only connection, and only then opened for writing.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.pool import QueuePool

from .errors import NeardupError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST_REVISION = "0001"  # catalogs made before revisions were recorded have this schema
# The newest migration's revision, so that opening a current catalog needs no Alembic (importing
# it and reading the migration scripts is ~0.15 s of every command's start); a test checks it.
HEAD_REVISION = "0012"
# How long a writer waits for another one before saying the catalog is busy: every neardup
# transaction is short (a batch of 64 files), so a longer wait means another long job.
BUSY_TIMEOUT_MS = 5_000


class CatalogNotFoundError(NeardupError, FileNotFoundError):
    """No catalog exists at the given path."""


class NotACatalogError(NeardupError, ValueError):
    """The file exists but is not a neardup catalog (another SQLite database, or not SQLite)."""


class CatalogExistsError(NeardupError, FileExistsError):
    """A catalog was to be created where one already exists."""


class CatalogVersionError(NeardupError):
    """The catalog's schema is not the one this neardup writes, and cannot be upgraded now."""


class CatalogBusyError(NeardupError):
    """Another process holds the catalog's write lock longer than a writer waits."""


class CatalogReadOnlyError(NeardupError, PermissionError):
    """The catalog (or its folder) cannot be written: read-only mount, permissions, immutable."""


class CatalogDamagedError(NeardupError):
    """SQLite found the catalog file damaged (a bad disk, a bad copy, a file edited by hand)."""


class DiskFullError(NeardupError, OSError):
    """The disk holding the catalog is full; the write was rolled back."""


def translate(error: sqlite3.Error | OSError, path: Path) -> NeardupError | None:
    """The `NeardupError` an SQLite (or file) error means for the user, or None for a bug."""
    text = str(error).lower()
    if "locked" in text or "busy" in text:
        return CatalogBusyError(f"catalog {path} is busy: another neardup process is writing to it",
                                hint="try again when it has finished")
    if "readonly" in text or "read-only" in text or "unable to open database file" in text:
        return CatalogReadOnlyError(f"catalog {path} is read-only here ({error}); this needs write access",
                                    hint="search, duplicates and stats still work")
    if "disk is full" in text or "disk i/o error" in text or getattr(error, "errno", None) == errno.ENOSPC:
        return DiskFullError(f"no space left for catalog {path} ({error}); nothing was half-written",
                             hint="free some space and run the same command again")
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return CatalogDamagedError(f"catalog {path} is damaged ({error})",
                                   hint="restore it from a backup, or move it aside and index again")
    return None


def damage(path: Path) -> str | None:
    """What SQLite's full integrity check finds wrong with the file at `path`, or None when
    it is sound (or absent). O(catalog size): for when something already went wrong, where a
    damaged catalog would otherwise surface as any error at all (a value that does not parse,
    a row an index misses)."""
    if not path.is_file():
        return None
    try:
        with _closing(_read_only(path)) as con:
            found = [row[0] for row in con.execute("PRAGMA integrity_check(3)")]
    except sqlite3.DatabaseError as error:
        return str(error)
    return None if found == ["ok"] else "; ".join(found)


def head_revision() -> str:
    """The newest revision, as Alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def probe(path: Path) -> str:
    """The schema revision of the catalog at `path`, read without changing the file (the
    -wal and -shm files SQLite makes to read a WAL database are removed again when the file
    turns out not to be a catalog).

    Raises `CatalogNotFoundError` when there is no file, `NotACatalogError` when it is not a
    neardup catalog (not SQLite, or no catalog settings in it).
    """
    if not path.is_file():
        raise CatalogNotFoundError(f"no catalog at {path}", hint="create one by indexing a folder")
    leftovers = [p for p in (_sibling(path, "-wal"), _sibling(path, "-shm")) if not p.exists()]
    try:
        with _closing(_read_only(path)) as con:
            return _revision(con, path)
    except (sqlite3.DatabaseError, NotACatalogError) as error:
        for created in leftovers:
            created.unlink(missing_ok=True)
        if isinstance(error, NotACatalogError):
            raise
        raise NotACatalogError(f"{path} is not a neardup catalog ({error})") from error


def _revision(con: sqlite3.Connection, path: Path) -> str:
    tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "settings" not in tables or not con.execute("SELECT 1 FROM settings WHERE key = 'settings'").fetchone():
        raise NotACatalogError(f"{path} is not a neardup catalog (an SQLite file without catalog settings)")
    if "alembic_version" not in tables:
        return FIRST_REVISION
    row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else FIRST_REVISION


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection; where SQLite cannot make or write the -shm file a WAL database
    needs (a read-only mount, folder or file), an immutable one: nobody can change it there."""
    try:
        con = sqlite3.connect(_uri(path, "ro"), uri=True, check_same_thread=False, isolation_level=None)
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        return con
    except sqlite3.OperationalError as error:
        if "unable to open" not in str(error) and "readonly" not in str(error):
            raise
        return sqlite3.connect(_uri(path, "ro") + "&immutable=1", uri=True, check_same_thread=False,
                               isolation_level=None)


def connect(path: Path, *, readonly: bool = False) -> Engine:
    """An engine on the catalog file at `path` (which must exist).

    Every transaction is an explicit BEGIN (pysqlite would run DDL outside one), and a
    connection given ``execution_options(immediate=True)`` begins with BEGIN IMMEDIATE: a
    writer takes the write lock before it reads, so two writers queue instead of failing when
    one tries to turn its read into a write. WAL lets readers go on while one process writes.
    """
    def open_connection() -> sqlite3.Connection:
        if readonly:
            return _read_only(path)
        return sqlite3.connect(_uri(path, "rw"), uri=True, check_same_thread=False, isolation_level=None)

    engine = create_engine("sqlite://", creator=open_connection, poolclass=QueuePool)
    event.listen(engine, "connect", _pragmas(readonly))
    event.listen(engine, "begin", _begin)
    return engine


def create_schema(conn: Connection) -> None:
    """Create every table of a new catalog at the newest revision, in `conn`'s transaction."""
    from alembic import command

    from .models import Base

    Base.metadata.create_all(conn)
    command.stamp(_alembic_config(conn), "head")


def upgrade(engine: Engine) -> None:
    """Bring the catalog file to the newest revision in one transaction (under the write lock,
    so two processes opening one old catalog upgrade it once)."""
    with engine.connect().execution_options(immediate=True) as conn, conn.begin():
        migrate(conn)


def migrate(conn: Connection) -> None:
    """Run the migrations from the catalog's revision to the newest, in `conn`'s transaction
    (a catalog of the first release, which recorded no revision, is stamped 0001 first)."""
    from alembic import command

    config = _alembic_config(conn)
    if "alembic_version" not in inspect(conn).get_table_names():
        command.stamp(config, FIRST_REVISION)
    command.upgrade(config, "head")


def check_revision(path: Path | str, revision: str, *, readonly: bool) -> bool:
    """Whether the catalog needs upgrading; raises `CatalogVersionError` when it cannot be."""
    if revision == HEAD_REVISION:
        return False
    from alembic.script import ScriptDirectory

    known = {script.revision for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
    if revision not in known:
        raise CatalogVersionError(f"catalog {path} was made by a newer neardup (schema {revision})",
                                  hint="upgrade neardup")
    if readonly:
        raise CatalogVersionError(f"catalog {path} was made by an older neardup (schema {revision}) and must be "
                                  "upgraded, which needs write access", hint="index into it once to upgrade it")
    return True


def _alembic_config(conn: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


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
