"""File operations of the clean-up, each built so that a kill at any instant leaves a state
`apply` and `undo` can recognise, and none overwrites a file the clean-up did not make.

Moves are link-then-unlink (a hard link fails when the destination exists, where a rename
would silently replace it); links and restored copies are made beside the target under a
temporary name and renamed over it (`os.replace`), so the path always holds a whole file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

# Errors of os.link meaning "no hard link possible here" (another filesystem, or one without
# hard links, or too many links): fall back to copying.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}
_PARTIAL = ".neardup-partial"


def sha256_of(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (following symbolic links), lowercase hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def temp_beside(path: str | os.PathLike[str]) -> Path:
    """The temporary name used while building `path`: hidden (the indexer skips dot files)
    and fixed, so that what a killed run left behind is found and removed."""
    path = Path(path)
    return path.with_name(f".{path.name}{_PARTIAL}")


def clear_temp(path: str | os.PathLike[str]) -> None:
    """Remove a partial file a killed run may have left beside `path`."""
    Path(temp_beside(path)).unlink(missing_ok=True)


def move_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Move `src` to `dst`, creating folders; `FileExistsError` if `dst` exists.

    A kill leaves src alone, or src and dst as one file (hard link), or dst alone.
    """
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
        _copy_no_clobber(src, dst)
    os.unlink(src)


def keep_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Keep `src`'s bytes at `dst` (a hard link when possible, else a synced copy), replacing
    whatever an earlier attempt left at `dst`."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
        tmp = temp_beside(dst)
        _synced_copy(src, tmp)
        os.replace(tmp, dst)


def replace_with_link(path: str, keeper: str, kind: str) -> None:
    """Replace `path` by a hard link to `keeper` or a symbolic link to it, at once; both name
    the keeper's real path (on Linux, os.link of a symbolic link links the link itself)."""
    tmp = temp_beside(path)
    tmp.unlink(missing_ok=True)
    target = os.path.realpath(keeper)
    (os.symlink if kind == "symlink" else os.link)(target, tmp)
    os.replace(tmp, path)


def replace_with_copy(path: str, source: str, *, sha256: str, mtime_ns: int | None, mode: int | None) -> bool:
    """Replace `path` by an independent copy of `source`'s bytes, with the given mode and
    mtime, if those bytes have `sha256`; False (and `path` untouched) otherwise."""
    tmp = temp_beside(path)
    _synced_copy(source, tmp)
    if sha256_of(tmp) != sha256:
        tmp.unlink()
        return False
    if mode is not None:
        os.chmod(tmp, mode & 0o7777)
    if mtime_ns is not None:
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
    os.replace(tmp, path)
    return True


def replace_with_file(path: str, kept: str) -> None:
    """Put the file `kept` back at `path`, replacing what is there (a link the clean-up made)."""
    try:
        os.rename(kept, path)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        tmp = temp_beside(path)
        _synced_copy(kept, tmp)
        os.replace(tmp, path)
        os.unlink(kept)


def same_file(a: str, b: str) -> bool:
    """Whether two paths are one file (one inode, through links); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except FileNotFoundError:
        return False


def _copy_no_clobber(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    tmp = temp_beside(dst)
    _synced_copy(src, tmp)
    try:
        os.link(tmp, dst)
    except OSError as e:
        if e.errno not in _NO_LINK or os.path.lexists(dst):
            tmp.unlink()
            raise
        os.rename(tmp, dst)  # a filesystem without hard links: checked free just above
    else:
        tmp.unlink()


def _synced_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy bytes and metadata, and flush them to disk before anything is renamed onto them."""
    shutil.copy2(src, dst)
    with open(dst, "rb+") as f:
        os.fsync(f.fileno())
