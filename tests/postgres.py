"""A throwaway PostgreSQL server for the tests: Debian's binaries (`scripts/test.sh` installs
them), a private data folder, a free port; every test that asks gets a fresh database.

`NEARDUP_TEST_POSTGRES` (an admin URL, e.g. postgresql://postgres@db-host/postgres) uses a
running server instead. The server runs as the `postgres` user when we are root (PostgreSQL
refuses to run as root), with durability off (fsync): the tests never crash the machine.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

ADMIN_ENV = "NEARDUP_TEST_POSTGRES"
INSTALL_HINT = "scripts/test.sh installs it (apt-get install -y postgresql)"


class Unavailable(Exception):
    """PostgreSQL is not installed here (and `NEARDUP_TEST_POSTGRES` names no server)."""


class Server:
    """A server the tests may create and drop databases on."""

    def __init__(self, admin_url: str, folder: Path | None = None) -> None:
        self.admin_url, self.folder = admin_url, folder
        self._names = itertools.count()

    def fresh_database(self) -> str:
        """The URL of a new empty database (psycopg 3 driver)."""
        name = f"neardup_test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = self.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        return f"{base}/{name}"

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.folder is not None:
            _as_owner([_binary("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"], check=False)
            shutil.rmtree(self.folder, ignore_errors=True)


def start() -> Server:
    """A running server: the one `NEARDUP_TEST_POSTGRES` names, else a private one."""
    if admin := os.environ.get(ADMIN_ENV):
        return Server(admin)
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")  # Unavailable: not installed
    folder = Path(tempfile.mkdtemp(prefix="neardup-pg-"))
    data, port = folder / "data", _free_port()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    try:
        _as_owner([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        _as_owner([pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60", "-o",
                   f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start"])
    except subprocess.CalledProcessError as error:  # installed but failing: a real problem, not a skip
        log = (folder / "log").read_text(errors="replace")[-2000:] if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL is installed but did not start: {error}\n{error.stderr}\n{log}") from error
    return Server(f"postgresql://postgres@127.0.0.1:{port}/postgres", folder)


def _binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise Unavailable(f"PostgreSQL is not installed ({name} not found); {INSTALL_HINT}")
    return found[-1]


def _as_owner(command: list[str], *, check: bool = True) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=check, capture_output=True, text=True, cwd="/")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
