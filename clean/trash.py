"""The desktop trash (freedesktop.org Trash spec on Linux): send files there through
send2trash, find where each went, and restore them from there.

send2trash returns nothing, renames a file whose name is taken in the trash ("a.jpg" ->
"a 1.jpg") and records the original path in info/<name>.trashinfo. So `send` lists the
trash folders before and after and takes the new entry whose trashinfo names our file;
`find` reads the trashinfo files when a killed run never learned where a file went.

send2trash reads XDG_DATA_HOME when it is imported; this module reads it when called, so
the two agree unless the variable changes inside one process after the first trashing.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

from neardup.storage.errors import NeardupError

from .fileops import move_file, sha256_of


class TrashLookupError(NeardupError, OSError):
    """A file was sent to the trash but could not be found there afterwards."""


def send(path: str) -> str:
    """Move `path` to the trash; return where it is now (the trashed file)."""
    from send2trash import send2trash  # imported on use: it reads the environment on import

    # send2trash picks the home trash only when the data folder exists (it compares devices);
    # on a fresh account or server ~/.local/share may not exist yet, as desktops create it
    _data_home().mkdir(parents=True, exist_ok=True)
    folders = trash_folders(path)
    before = {folder: _names(folder) for folder in folders}
    size = os.lstat(path).st_size
    send2trash(path)
    for folder in folders:
        for name in sorted(_names(folder) - before[folder]):
            trashed = folder / "files" / name
            if _original(folder, name) == os.path.abspath(path) and os.lstat(trashed).st_size == size:
                return str(trashed)
    found = find(path, None)
    if found is None:
        raise TrashLookupError(f"{path} was sent to the trash but is not in {', '.join(map(str, folders))}")
    return found


def find(path: str, sha256: str | None) -> str | None:
    """The newest trashed file whose trashinfo names `path` (and whose bytes have `sha256`,
    when given), or None."""
    best: tuple[float, str] | None = None
    for folder in trash_folders(path):
        for name in _names(folder):
            trashed = folder / "files" / name
            if _original(folder, name) != os.path.abspath(path):
                continue
            if sha256 is not None and sha256_of(trashed) != sha256:
                continue
            when = _info(folder, name).stat().st_mtime
            if best is None or when > best[0]:
                best = (when, str(trashed))
    return None if best is None else best[1]


def restore(trashed: str, path: str) -> None:
    """Put a trashed file back at `path` (never over an existing file) and drop its trashinfo."""
    move_file(trashed, path)
    forget(trashed)


def forget(trashed: str) -> None:
    """Remove the trashinfo of a trashed file that is no longer in the trash."""
    trashed_path = Path(trashed)
    _info(trashed_path.parent.parent, trashed_path.name).unlink(missing_ok=True)


def drop_orphan_info(path: str) -> None:
    """Remove trashinfo files naming `path` that have no trashed file: what a kill between
    send2trash writing the info and moving the file leaves."""
    for folder in trash_folders(path):
        info = folder / "info"
        if not info.is_dir():
            continue
        for entry in info.glob("*.trashinfo"):
            name = entry.name[: -len(".trashinfo")]
            if not (folder / "files" / name).exists() and _original(folder, name) == os.path.abspath(path):
                entry.unlink(missing_ok=True)


def trash_folders(path: str) -> list[Path]:
    """The trash folders a file may go to: the home trash, then those of its volume."""
    data_home = _data_home()
    top = _mount_point(os.path.realpath(os.path.dirname(os.path.abspath(path))))
    uid = str(os.getuid())
    return [data_home / "Trash", top / ".Trash" / uid, top / f".Trash-{uid}"]


def _data_home() -> Path:
    return Path(os.path.expanduser(os.environ.get("XDG_DATA_HOME") or "~/.local/share"))


def _names(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder / "files"))
    except FileNotFoundError:
        return set()


def _info(folder: Path, name: str) -> Path:
    return folder / "info" / f"{name}.trashinfo"


def _original(folder: Path, name: str) -> str | None:
    """The original absolute path a trashinfo records, or None if there is no readable one.
    Relative paths are relative to the folder the trash belongs to (spec)."""
    try:
        lines = _info(folder, name).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        if line.startswith("Path="):
            original = unquote(line[len("Path="):])
            top = folder.parent.parent if folder.parent.name == ".Trash" else folder.parent
            return os.path.normpath(os.path.join(top, original))
    return None


def _mount_point(path: str) -> Path:
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return Path(path)
