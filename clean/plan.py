"""Clean-up plans: what to do with each member of each duplicate group, as values that keep
their guarantees (`validate`) and as JSON that a user may read, edit and hand back.

A plan records every file's size and SHA-256 at planning time; `apply` acts on a file only
while both still match, so an edited or old plan can never act on other bytes than planned.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from neardup.storage.errors import NeardupError

FORMAT = "neardup-clean-plan"
VERSION = 1
ACTIONS = ("trash", "move", "hardlink", "symlink", "delete")
KEEP = "keep"
LINKS = ("hardlink", "symlink")


class PlanError(NeardupError, ValueError):
    """A plan cannot be made or used as given."""


class PlanFileError(PlanError):
    """A plan file is not JSON, or not a neardup clean-up plan."""


class PlanVersionError(PlanFileError):
    """A plan file was written in another format version."""


class PlanCatalogMismatchError(PlanError):
    """A plan was made for another catalog."""


class InvalidPlanError(PlanError):
    """A plan that would break a guarantee: a keeper acted on, a file planned twice, …"""


class DestinationInsideRootError(PlanError):
    """`move --to` names a folder inside an indexed folder (moved files would be re-indexed)."""


@dataclass(frozen=True)
class PlannedFile:
    """One file of a group. `action` is "keep" or one of ACTIONS; `destination` is the move
    target; `reason` says why a keeper was chosen or why a file is kept."""

    path: str
    size: int
    sha256: str | None
    action: str = KEEP
    destination: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class PlannedGroup:
    keeper: PlannedFile
    members: tuple[PlannedFile, ...]  # the other members, each with its action

    def acted(self) -> Iterator[PlannedFile]:
        return (m for m in self.members if m.action != KEEP)


@dataclass(frozen=True)
class Plan:
    """A whole clean-up. Invalid plans cannot be built (see `validate`)."""

    catalog_id: str
    action: str
    groups: tuple[PlannedGroup, ...]
    to: str | None = None
    include_near: bool = False
    roots: tuple[str, ...] = ()
    protect: tuple[str, ...] = ()
    version: int = field(default=VERSION)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def digest(self) -> str:
        """SHA-256 of the plan's canonical JSON: the journal recognises a re-applied plan by it."""
        return hashlib.sha256(_canonical(self).encode()).hexdigest()

    def actions(self) -> Iterator[tuple[int, PlannedGroup, PlannedFile]]:
        """(seq, group, file) of every file to act on, in a stable order."""
        seq = 0
        for group in self.groups:
            for member in group.acted():
                yield seq, group, member
                seq += 1

    def bytes_to_reclaim(self) -> int:
        return sum(m.size for _, _, m in self.actions())

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": VERSION, **asdict(self)}, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes, *, catalog_id: str | None = None) -> Plan:
        """Read a plan file; with `catalog_id`, refuse a plan made for another catalog."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise PlanFileError(f"a plan file must be JSON written by `neardup clean --plan`: {e}") from e
        except RecursionError as e:  # json nests by recursion: "[[[[…" past ~1,000 levels
            raise PlanFileError("a plan file must be JSON written by `neardup clean --plan`: nested too deeply") from e
        plan = _plan_from_dict(data)
        if catalog_id is not None and plan.catalog_id != catalog_id:
            raise PlanCatalogMismatchError(
                f"the plan was made for catalog {plan.catalog_id!r}, not {catalog_id!r}; plan again with this catalog"
            )
        return plan


def validate(plan: Plan) -> None:
    """Refuse a plan that breaks a guarantee, whoever wrote it."""
    if plan.version != VERSION:
        raise PlanVersionError(f"plan format version {plan.version!r}; this neardup reads version {VERSION}")
    if plan.action not in ACTIONS:
        raise InvalidPlanError(f"unknown action {plan.action!r}; expected one of {', '.join(ACTIONS)}")
    _check_paths(plan)
    if plan.action == "move":
        _check_move_target(plan.to, plan.roots)
    keepers = {os.path.normpath(g.keeper.path) for g in plan.groups}
    seen: set[str] = set()
    for group in plan.groups:
        for member in group.members:
            _check_member(member, plan, keepers, seen)


def _check_paths(plan: Plan) -> None:
    """No path of the plan holds a NUL: no file name can, and the OS refuses one (ValueError)."""
    files = [f for g in plan.groups for f in (g.keeper, *g.members)]
    paths = [plan.to, *plan.roots, *plan.protect, *(f.path for f in files), *(f.destination for f in files)]
    if bad := next((p for p in paths if p is not None and "\0" in p), None):
        raise InvalidPlanError(f"paths cannot contain a NUL character, got {bad!r}")


def _check_move_target(to: str | None, roots: Sequence[str]) -> None:
    if not to:
        raise InvalidPlanError("action 'move' needs a destination folder (--to DIR)")
    real = os.path.realpath(to)
    for root in roots:
        if is_under(real, [os.path.realpath(root)]):
            raise DestinationInsideRootError(
                f"--to {to} is inside the indexed folder {root}; choose a folder outside it"
            )


def _check_member(member: PlannedFile, plan: Plan, keepers: set[str], seen: set[str]) -> None:
    path = os.path.normpath(member.path)
    if path in seen:
        raise InvalidPlanError(f"{member.path} appears twice in the plan")
    seen.add(path)
    if member.action == KEEP:
        return
    if member.action not in ACTIONS:
        raise InvalidPlanError(f"unknown action {member.action!r} for {member.path}")
    if path in keepers:
        raise InvalidPlanError(f"{member.path} is a keeper and cannot be acted on")
    if is_under(path, plan.protect):
        raise InvalidPlanError(f"{member.path} is in a protected folder and cannot be acted on")
    if not member.sha256:
        raise InvalidPlanError(f"{member.path} has no SHA-256: it cannot be verified before acting")
    if member.action == "move" and not member.destination:
        raise InvalidPlanError(f"{member.path} is to be moved but has no destination")
    if member.action == "move":
        _check_move_target(member.destination, plan.roots)


def _plan_from_dict(data: Any) -> Plan:
    """A Plan from parsed JSON, checking every field's type (plan files come from users)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PlanFileError(f"not a neardup clean-up plan (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise PlanVersionError(f"plan format version {data.get('version')!r}; this neardup reads version {VERSION}")
    try:
        groups = tuple(_group(g) for g in _list(data["groups"]))
        return Plan(
            catalog_id=_typed(data["catalog_id"], str), action=_typed(data["action"], str), groups=groups,
            to=_typed(data.get("to"), str, none=True), include_near=_typed(data.get("include_near", False), bool),
            roots=tuple(_typed(r, str) for r in _list(data.get("roots", []))),
            protect=tuple(_typed(p, str) for p in _list(data.get("protect", []))),
        )
    except (KeyError, TypeError) as e:
        raise PlanFileError(f"malformed plan file: {e}") from e


def _group(data: Any) -> PlannedGroup:
    if not isinstance(data, dict):
        raise TypeError(f"expected a group object, got {data!r}")
    return PlannedGroup(_file(data["keeper"]), tuple(_file(m) for m in _list(data["members"])))


def _file(data: Any) -> PlannedFile:
    if not isinstance(data, dict):
        raise TypeError(f"expected a file object, got {data!r}")
    path = _typed(data["path"], str)
    if not os.path.isabs(path):
        raise TypeError(f"paths must be absolute, got {path!r}")
    size = _typed(data["size"], int)
    if isinstance(size, bool) or size < 0:
        raise TypeError(f"size of {path} must be a byte count, got {size!r}")
    return PlannedFile(
        path, size, _sha(data.get("sha256")), _typed(data.get("action", KEEP), str),
        _typed(data.get("destination"), str, none=True), _typed(data.get("reason"), str, none=True),
    )


def _sha(value: Any) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
        raise TypeError(f"sha256 must be 64 lowercase hex digits, got {value!r}")
    return value


def _typed(value: Any, kind: type, *, none: bool = False) -> Any:
    if (value is None and none) or isinstance(value, kind):
        return value
    raise TypeError(f"expected {kind.__name__}, got {value!r}")


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {value!r}")
    return value


def _canonical(plan: Plan) -> str:
    return json.dumps(asdict(plan), sort_keys=True, separators=(",", ":"))


def is_under(path: str, folders: Iterable[str]) -> bool:
    """Whether `path` is one of `folders` or inside one (by path text, no I/O)."""
    path = os.path.normpath(path)
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in map(os.path.normpath, folders))
