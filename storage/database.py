"""Catalogs on a database server: an SQLAlchemy URL instead of a file.

`--db postgresql+psycopg://user@host/dbname` puts the catalog in a PostgreSQL database that
several machines index into and search at once. The models, the Alembic revisions and the
`Catalog` code are the ones a file catalog uses; what is particular to a server lives here:
reading the URL, connecting (psycopg 3), reading a database's schema revision, the lock under
which a catalog is created or upgraded once however many processes open it at the same
moment, and the server's errors a user can act on.

Concurrent writers stay correct because every write transaction replaces the catalog's
generation first (`Catalog.transaction`), taking that row's lock: writers to one catalog
commit one at a time, as SQLite's write lock makes them on a file, and images are upserted
on their unique path, so two indexers of overlapping folders never store a file twice.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import NeardupError
from .schema import (
    FIRST_REVISION, CatalogBusyError, CatalogNotFoundError, CatalogReadOnlyError, DiskFullError, NotACatalogError,
)

SERVERS = ("postgresql",)
DRIVER = "postgresql+psycopg"  # psycopg 3; "postgresql://" URLs get it too
# How long a writer waits for another one's lock before saying the catalog is busy: writers
# queue for each other's short transactions (one batch of files), never for minutes.
LOCK_TIMEOUT_MS = 60_000
# pg_advisory_xact_lock key under which catalogs are created and upgraded: "neardup" in ASCII.
_SCHEMA_LOCK = 0x6E65617264757000


class UnsupportedDatabaseError(NeardupError, ValueError):
    """A catalog URL names a database neardup cannot keep a catalog in, or is not a URL."""


class CatalogUnreachableError(NeardupError, ConnectionError):
    """The database server cannot be reached, or refuses to let us log in."""


def is_url(location: str | Path) -> bool:
    """Whether `location` names a catalog by URL ("scheme://…") rather than by file path."""
    return isinstance(location, str) and "://" in location


def parse(location: str) -> URL | Path:
    """The server URL a catalog location names (with psycopg 3 as its driver), or, for an
    ``sqlite:///file`` URL, the file."""
    try:
        url = make_url(location)
    except (ArgumentError, ValueError) as error:  # ValueError: a port that is not a number
        raise UnsupportedDatabaseError(f"cannot read catalog URL {location!r} ({error})",
                                       hint="expected postgresql+psycopg://user@host/dbname, or a file path") from error
    if url.get_backend_name() == "sqlite" and url.database:
        return Path(url.database)
    if url.get_backend_name() not in SERVERS:
        raise UnsupportedDatabaseError(
            f"catalog URL {display(url)}: a {url.get_backend_name()} database cannot hold a neardup catalog",
            hint="use postgresql+psycopg://user@host/dbname, or a file path for SQLite")
    if not url.database:
        raise UnsupportedDatabaseError(f"catalog URL {display(url)} names no database",
                                       hint="end it with /dbname")
    return url.set(drivername=DRIVER)


def display(url: URL) -> str:
    """The URL as messages show it: without its password."""
    return url.render_as_string(hide_password=True)


def connect(url: URL) -> Engine:
    """An engine on the catalog's database. Connections are checked before use (a server
    restart between two searches is not an error) and wait at most `LOCK_TIMEOUT_MS` for a lock."""
    if importlib.util.find_spec("psycopg") is None:
        raise UnsupportedDatabaseError("a catalog on PostgreSQL needs psycopg 3, which is not installed",
                                       hint="pip install 'neardup[postgres]'")
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _session_settings(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
        dbapi_connection.commit()

    return engine


def probe(engine: Engine, name: str) -> str:
    """The schema revision of the catalog in the database, read without changing it.

    Raises `CatalogNotFoundError` when the database holds no tables (create one by indexing),
    `NotACatalogError` when it holds tables that are not a neardup catalog's."""
    with engine.connect() as conn:
        return revision(conn, name)


def revision(conn: Connection, name: str) -> str:
    tables = set(inspect(conn).get_table_names())
    if not tables:
        raise CatalogNotFoundError(f"no catalog in database {name}", hint="create one by indexing a folder")
    if "settings" not in tables or conn.execute(text("SELECT 1 FROM settings WHERE key = 'settings'")).first() is None:
        raise NotACatalogError(f"database {name} is not a neardup catalog (it holds other tables)",
                               hint="give neardup a database of its own: createdb neardup")
    if "alembic_version" not in tables:
        return FIRST_REVISION
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return row[0] if row else FIRST_REVISION


def is_empty(conn: Connection) -> bool:
    """Whether the database holds no table (in the schema a catalog would go to)."""
    return not inspect(conn).get_table_names()


@contextmanager
def exclusive(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the catalog-schema lock: processes that create or upgrade the
    catalog at the same moment do it one after the other, and each re-reads what the previous
    one left (the lock is released when the transaction ends)."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        yield conn


# SQLSTATE classes (PostgreSQL manual, appendix A) of the errors a user can act on.
_BUSY = {"55P03", "40P01", "40001"}  # lock timeout, deadlock, serialization failure
_READ_ONLY = {"42501", "25006"}  # insufficient privilege, read-only transaction
_FULL = {"53100"}  # disk full
_NO_DATABASE = {"3D000"}  # invalid catalog name: the database does not exist
_LOGIN = {"28000", "28P01"}  # invalid authorisation, invalid password


def translate(error: BaseException, name: str) -> NeardupError | None:
    """The `NeardupError` a database server error means for the user, or None for a bug."""
    state = getattr(error, "sqlstate", None)
    if state is None and "database" in str(error) and "does not exist" in str(error):
        state = "3D000"  # said by the server while connecting, before any SQLSTATE is set
    if state in _BUSY:
        return CatalogBusyError(f"catalog {name} is busy: another neardup process holds a lock on it ({state})",
                                hint="try again when it has finished")
    if state in _READ_ONLY:
        return CatalogReadOnlyError(f"catalog {name} is read-only for this user ({_first_line(error)})",
                                    hint="search, duplicates and stats still work")
    if state in _FULL:
        return DiskFullError(f"the server of catalog {name} is out of disk space; nothing was half-written",
                             hint="free some space there and run the same command again")
    if state in _NO_DATABASE:
        return CatalogNotFoundError(f"no database for catalog {name} ({_first_line(error)})",
                                    hint="create it on the server: createdb <dbname>")
    if state in _LOGIN or (state is None and type(error).__name__ == "OperationalError"):
        return CatalogUnreachableError(f"cannot connect to catalog {name}: {_first_line(error)}",
                                       hint="check the host, port, user and password (PGPASSWORD or ~/.pgpass)")
    return None


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
