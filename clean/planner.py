"""Planning a clean-up: from duplicate groups to a `Plan`, touching nothing (only the move
target's real path is looked up, to refuse one inside an indexed folder), so a dry run is
the plan itself."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Protocol

from .plan import LINKS, Plan, PlannedFile, PlannedGroup, is_under


class _Image(Protocol):
    path: str
    size: int
    sha256: str | None


class _Group(Protocol):
    keeper: str
    members: Sequence[str]
    images: Sequence[_Image]


def plan_clean(
    groups: Iterable[_Group],
    *,
    action: str = "trash",
    to: str | os.PathLike[str] | None = None,
    protect: Iterable[str | os.PathLike[str]] = (),
    include_near: bool = False,
    roots: Iterable[str | os.PathLike[str]] = (),
    catalog_id: str = "",
) -> Plan:
    """A plan from duplicate groups (keeper first): nothing is read or touched.

    Files under a `protect` folder are never acted on, and the first of them in a group
    becomes its keeper. Links replace exact copies only (same SHA-256) unless `include_near`:
    a link puts the keeper's bytes at the copy's path. `move` keeps each file's path relative
    to the indexed root it lies under (`roots`) under `to`.
    """
    roots = tuple(_absolute(r) for r in roots)
    protect = tuple(_absolute(p) for p in protect)
    target = _absolute(to) if to is not None else None
    planned = tuple(_plan_group(g, action, target, protect, include_near, roots) for g in groups)
    return Plan(catalog_id, action, tuple(g for g in planned if g is not None), target, include_near, roots, protect)


def _plan_group(
    group: _Group, action: str, to: str | None, protect: tuple[str, ...], include_near: bool, roots: tuple[str, ...]
) -> PlannedGroup | None:
    images = list(group.images)
    if len(images) < 2:
        return None
    protected = [im for im in images if is_under(im.path, protect)]
    keeper = protected[0] if protected else images[0]
    why = "in a protected folder" if protected else (getattr(group, "reason", None) or "suggested keeper")
    members = tuple(
        _plan_member(im, keeper, action, to, protect, include_near, roots) for im in images if im is not keeper
    )
    return PlannedGroup(PlannedFile(keeper.path, keeper.size, keeper.sha256, reason=why), members)


def _plan_member(
    im: _Image, keeper: _Image, action: str, to: str | None, protect: tuple[str, ...], include_near: bool,
    roots: tuple[str, ...],
) -> PlannedFile:
    def keep(reason: str) -> PlannedFile:
        return PlannedFile(im.path, im.size, im.sha256, reason=reason)

    if is_under(im.path, protect):
        return keep("in a protected folder")
    if im.sha256 is None:
        return keep("no SHA-256 recorded (unreadable when indexed)")
    if action in LINKS and im.sha256 != keeper.sha256 and not include_near:
        return keep("not an exact copy of the keeper (a link would change the bytes at this path)")
    destination = move_destination(im.path, to, roots) if action == "move" and to is not None else None
    return PlannedFile(im.path, im.size, im.sha256, action, destination)


def move_destination(path: str, to: str, roots: Sequence[str]) -> str:
    """Where `move` puts `path`: its path relative to the deepest root holding it, under `to`;
    a file under no root keeps its whole absolute path under `to`."""
    holding = [r for r in roots if is_under(path, [r])]
    if holding:
        relative = os.path.relpath(path, max(holding, key=len))
    else:
        relative = os.path.abspath(path).lstrip(os.sep)
    return os.path.join(to, relative)


def _absolute(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))
