"""What is on disk against what the catalog knows: walking folders, classifying files.

The walk is iterative (any depth), sorted, and never follows a symbolic link inside the
folders it is given: a link is not a copy that takes space, and following links can visit a
file twice or loop. The folders given are resolved first, so one folder spelled two ways
(`coll`, `coll/../coll`, a symlink to it) gives the same canonical paths: one file is one
image. A file or folder that cannot be read is reported, never fatal, and the catalogued
images under an unreadable folder are kept: unreadable is not gone.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from neardup.storage.errors import NeardupError
from neardup.storage.models import IMAGE_STATUS
from neardup.storage.records import FileState

from .decode import IMAGE_SUFFIXES, decodes_otherwise


CLEANED = frozenset(IMAGE_STATUS.values())  # statuses of files a clean-up acted on
LINKED = IMAGE_STATUS["hardlink"]


class NoSuchPathError(NeardupError, FileNotFoundError):
    """A folder or file given to index does not exist."""


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int


@dataclass
class Walk:
    """The image files found under some roots, and what could not be looked at."""

    roots: list[str]
    files: dict[str, FileEntry] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of unreadable entries
    unreadable: list[str] = field(default_factory=list)  # folders whose content is unknown
    links: int = 0  # symbolic links not followed


@dataclass(frozen=True)
class Changes:
    """How the files on disk differ from the catalog: what to process, keep and drop."""

    new: list[FileEntry]
    changed: list[FileEntry]
    unchanged: int
    gone: list[FileState]


def canonical_root(raw: str | Path) -> str:
    """An absolute, symlink-free spelling of a folder or file given to index."""
    path = Path(raw).expanduser()
    if not os.path.lexists(path):
        raise NoSuchPathError(f"no such file or folder: {raw}")
    return os.path.realpath(path)


def walk(paths: Iterable[str | Path]) -> Walk:
    """Image files under `paths` (folders recursively, files as given), sorted per folder."""
    result = Walk(roots=[canonical_root(p) for p in paths])
    for root in result.roots:
        if os.path.isdir(root):
            _walk_folder(root, result)
        else:
            _add_file(root, result)
    return result


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _walk_folder(root: str, result: Walk) -> None:
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as error:
            result.problems.append((folder, f"cannot list folder: {error.strerror or error}"))
            result.unreadable.append(folder)
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                _add_link(entry.path, result)
            elif entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.path)
            elif is_image_name(entry.name):
                _add_file(entry.path, result)
        stack.extend(reversed(subfolders))  # depth first, in name order


def _add_link(path: str, result: Walk) -> None:
    """A symbolic link is not followed; one named like an image that leads nowhere (broken,
    or a loop) is reported, so that the user learns of it."""
    result.links += 1
    if not is_image_name(os.path.basename(path)):
        return
    try:
        os.stat(path)
    except OSError as error:
        kind = "symbolic link loop" if error.errno == errno.ELOOP else "broken symbolic link"
        result.problems.append((path, f"{kind}: {error.strerror or error}"))


def _add_file(path: str, result: Walk) -> None:
    try:
        st = os.stat(path)
    except OSError as error:
        result.problems.append((path, f"cannot read: {error.strerror or error}"))
        return
    if stat.S_ISREG(st.st_mode):
        result.files[path] = FileEntry(path, st.st_size, st.st_mtime_ns)
    else:  # reading a pipe or a device named like an image could block the run forever
        result.problems.append((path, "not a regular file (a pipe, socket or device)"))


def classify(found: Walk, known: Mapping[str, FileState]) -> Changes:
    """Compare the walk with the catalog's files: new and changed files are processed,
    unchanged ones (same size and mtime) are not read; catalogued files under the walked
    roots that were not found are gone, unless they lie under a folder that could not be read
    or a clean-up moved them away (its journal keeps them, for undo). A cleaned-up file that
    is back on disk is indexed again; one replaced by a link stays as it is."""
    new, changed, unchanged = [], [], 0
    for path, entry in found.files.items():
        state = known.get(path)
        if state is None:
            new.append(entry)
        elif state.status == LINKED:
            unchanged += 1  # the clean-up replaced it by a link to its keeper: not a new copy
        elif state.status in CLEANED or (state.size, state.mtime_ns) != (entry.size, entry.mtime_ns):
            changed.append(entry)  # changed, or a cleaned-up file that came back
        else:
            unchanged += 1
    problems = {p for p, _ in found.problems}
    gone = [
        s for p, s in known.items()
        if p not in found.files and _under(p, found.roots) and not _under(p, found.unreadable)
        and p not in problems and s.status not in CLEANED
    ]
    return Changes(new, changed, unchanged, gone)


def decoded_otherwise(path: str, since: int) -> FileEntry | bool | None:
    """The file at a catalogued `path` as it is now, when `decode` gives it other pixels than
    the `DECODING` version `since` did (`decode.decodes_otherwise`); False when it gives the
    same; None when that cannot be told now (a drive not mounted: unreadable is not gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    otherwise = decodes_otherwise(path, since)
    return FileEntry(path, st.st_size, st.st_mtime_ns) if otherwise else otherwise


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)
