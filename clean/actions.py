"""What each clean-up action does to one file, how to tell after a crash whether it was done,
and how to revert it: a registry, so `apply` and `undo` are one loop for every action.

Guarantees of undo, per action:
- trash, move: the very file (same inode when on one filesystem) goes back, verified by SHA-256.
- hardlink of an exact copy: the bytes stay at the path (the link shares them); undo writes
  them back as an independent file, verified by SHA-256, with the original mode and mtime.
- symlink of an exact copy: undo copies the keeper's bytes back, verified by SHA-256; if
  the keeper changed meanwhile, undo refuses (the replaced bytes no longer exist anywhere).
- hard or symbolic link of a near copy (include_near): the replaced file is kept in the
  recovery folder beside the catalog first and put back by undo; no space is reclaimed
  until that folder is emptied.
- delete: none; it is permanent (and needs yes=True).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from neardup.storage.journal import Entry

from . import trash
from .fileops import (
    clear_temp, keep_copy, move_file, replace_with_copy, replace_with_file, replace_with_link, same_file, sha256_of,
)


class Refused(ValueError):
    """One file's action or undo cannot be carried out safely; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Done:
    """An action found done after a crash, and where the file went (None for delete)."""

    destination: str | None


@dataclass(frozen=True)
class Action:
    """`act` does it and returns where the file went (or the link target); `settled` says,
    after a crash between intent and done, whether it was done (None: the file is untouched,
    and any partial work is cleared); `reverted` whether an undo already put it back;
    `revert` puts it back or raises Refused."""

    act: Callable[[Entry], str | None]
    settled: Callable[[Entry], Done | None]
    reverted: Callable[[Entry], bool]
    revert: Callable[[Entry], None]


def _restored(entry: Entry) -> bool:
    """The original bytes are back at the path and gone from where they were put."""
    back = os.path.isfile(entry.source) and not os.path.islink(entry.source)
    gone = entry.destination is None or not os.path.lexists(entry.destination)
    return back and gone and sha256_of(entry.source) == entry.sha256


def _take_back(entry: Entry) -> str:
    """The path of the moved or trashed bytes, checked before they are put back."""
    if entry.destination is None or not os.path.isfile(entry.destination):
        raise Refused(f"not found where it was put ({entry.destination})")
    if os.path.lexists(entry.source):
        raise Refused("the original path is occupied")
    if sha256_of(entry.destination) != entry.sha256:
        raise Refused(f"{entry.destination} changed since it was put there")
    return entry.destination


# -- trash ----------------------------------------------------------------------------------
def _trash(entry: Entry) -> str:
    return trash.send(entry.source)


def _trash_settled(entry: Entry) -> Done | None:
    if os.path.lexists(entry.source):
        trash.drop_orphan_info(entry.source)
        return None
    found = trash.find(entry.source, entry.sha256)
    if found is None:
        raise Refused("missing after an interrupted run, and not found in the trash")
    return Done(found)


def _trash_revert(entry: Entry) -> None:
    trash.restore(_take_back(entry), entry.source)


def _trash_reverted(entry: Entry) -> bool:
    if _restored(entry):
        trash.forget(entry.destination or "")
        return True
    return False


# -- move -----------------------------------------------------------------------------------
def _move(entry: Entry) -> str:
    move_file(entry.source, entry.destination or "")
    return entry.destination or ""


def _move_settled(entry: Entry) -> Done | None:
    src, dst = entry.source, entry.destination or ""
    clear_temp(dst)
    if not os.path.lexists(dst):
        return None
    if os.path.lexists(src):
        # dst did not exist when the move was planned: a whole copy there is ours
        if not (same_file(src, dst) or sha256_of(dst) == entry.sha256):
            return None
        os.unlink(src)
    elif sha256_of(dst) != entry.sha256:
        raise Refused(f"missing after an interrupted move, and {dst} holds other bytes")
    return Done(dst)


def _move_revert(entry: Entry) -> None:
    move_file(_take_back(entry), entry.source)


# -- hardlink, symlink ----------------------------------------------------------------------
def _link(kind: str) -> Callable[[Entry], str]:
    def act(entry: Entry) -> str:
        if entry.recovery:
            keep_copy(entry.source, entry.recovery)
        replace_with_link(entry.source, entry.keeper, kind)
        return entry.destination

    return act


def _is_our_link(entry: Entry, kind: str) -> bool:
    """The path is the link apply makes: to the keeper's real path, recorded as destination."""
    if kind == "symlink":
        return os.path.islink(entry.source) and os.readlink(entry.source) == entry.destination
    return not os.path.islink(entry.source) and same_file(entry.source, entry.keeper)


def _link_settled(kind: str) -> Callable[[Entry], Done | None]:
    def settled(entry: Entry) -> Done | None:
        clear_temp(entry.source)
        if _is_our_link(entry, kind):
            return Done(entry.destination)
        if entry.recovery and os.path.lexists(entry.recovery):
            os.unlink(entry.recovery)  # kept by the attempt that never replaced the file
        return None

    return settled


def _link_reverted(kind: str) -> Callable[[Entry], bool]:
    def reverted(entry: Entry) -> bool:
        if _is_our_link(entry, kind) or os.path.islink(entry.source) or not os.path.isfile(entry.source):
            return False
        return (not entry.recovery or not os.path.lexists(entry.recovery)) and sha256_of(entry.source) == entry.sha256

    return reverted


def _still_linked(entry: Entry, kind: str) -> bool:
    """The path holds what apply put there: the link, or for a hard link the keeper's bytes
    (the keeper itself may have been replaced since, e.g. by an editor saving through a rename)."""
    if _is_our_link(entry, kind):
        return True
    regular = os.path.isfile(entry.source) and not os.path.islink(entry.source)
    return kind == "hardlink" and regular and sha256_of(entry.source) == entry.keeper_sha256


def _link_revert(kind: str) -> Callable[[Entry], None]:
    def revert(entry: Entry) -> None:
        if not _still_linked(entry, kind):
            raise Refused("the path changed since it was linked")
        if entry.recovery:
            if not os.path.isfile(entry.recovery) or sha256_of(entry.recovery) != entry.sha256:
                raise Refused(f"the kept original {entry.recovery} is missing or changed")
            replace_with_file(entry.source, entry.recovery)
            return
        # an exact copy: its bytes are the keeper's, read through the link
        if not replace_with_copy(entry.source, entry.source, sha256=entry.sha256, mtime_ns=entry.mtime_ns,
                                 mode=entry.mode):
            raise Refused("the keeper changed since it was linked; the replaced bytes are gone")

    return revert


# -- delete ---------------------------------------------------------------------------------
def _delete(entry: Entry) -> None:
    os.unlink(entry.source)


def _delete_settled(entry: Entry) -> Done | None:
    return None if os.path.lexists(entry.source) else Done(None)


def _delete_revert(entry: Entry) -> None:
    raise Refused("deleted permanently; cannot be undone")


def _link_action(kind: str) -> Action:
    return Action(_link(kind), _link_settled(kind), _link_reverted(kind), _link_revert(kind))


ACTIONS: dict[str, Action] = {
    "trash": Action(_trash, _trash_settled, _trash_reverted, _trash_revert),
    "move": Action(_move, _move_settled, _restored, _move_revert),
    "hardlink": _link_action("hardlink"),
    "symlink": _link_action("symlink"),
    "delete": Action(_delete, _delete_settled, lambda entry: False, _delete_revert),
}
