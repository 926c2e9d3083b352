"""Carry out a clean-up plan: every file checked again at apply time, every action journaled
before and after it happens, so a killed run is finished by applying the same plan again."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from neardup.storage.journal import APPLIED, DONE, PLANNED, Entry, Intent, Journal

from .actions import ACTIONS, Refused
from .fileops import same_file, sha256_of
from .plan import LINKS, Plan, PlanCatalogMismatchError, PlanError, PlannedFile, PlannedGroup, is_under

if TYPE_CHECKING:
    from neardup.indexer.progress import Progress


class DeleteNotConfirmedError(PlanError):
    """A plan deletes files permanently and the caller did not confirm it (yes=True, --yes)."""


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class ApplyReport:
    """What one `apply` did. `bytes_reclaimed` counts files gone from the collection (trashed
    files free their space when the trash is emptied); `bytes_in_recovery` the replaced near
    copies kept for undo. `already_done` counts actions an earlier, interrupted apply of the
    same plan had finished."""

    run_id: int
    action: str
    resumed: bool
    acted: int
    bytes_reclaimed: int
    bytes_in_recovery: int
    already_done: int
    skipped: tuple[Skipped, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def apply(
    plan: Plan, *, journal: Journal, yes: bool = False, progress: Progress | None = None, catalog_id: str | None = None
) -> ApplyReport:
    """Carry out `plan`, or finish it if an earlier apply of it was interrupted.

    Raises before touching anything when the plan deletes without `yes` or (given
    `catalog_id`) was made for another catalog. Files that changed since planning, groups
    whose keeper changed, and anything else unsafe are skipped with their reason.
    """
    check_applicable(plan, yes=yes, catalog_id=catalog_id)
    run, resumed = journal.resume_or_start(plan.action, plan.digest)
    prior = {e.seq: e for e in journal.entries(run.id)}
    checks = _Checks(plan)
    counts = {"acted": 0, "reclaimed": 0, "recovery": 0, "already": 0}
    skipped: list[Skipped] = []
    steps = list(plan.actions())
    if progress is not None:
        progress.start(len(steps))
    try:
        for seq, group, member in steps:
            outcome = _apply_one(journal, run.id, seq, group, member, prior.get(seq), checks)
            if isinstance(outcome, Skipped):
                skipped.append(outcome)
            else:
                counts[outcome] += 1
                if outcome == "acted":
                    counts["recovery" if checks.keeps_original(group, member) else "reclaimed"] += member.size
            if progress is not None:
                progress.advance()
    finally:
        if progress is not None:
            progress.close()
    journal.set_status(run.id, APPLIED)
    return ApplyReport(run.id, plan.action, resumed, counts["acted"], counts["reclaimed"], counts["recovery"],
                       counts["already"], tuple(skipped))


def check_applicable(plan: Plan, *, yes: bool, catalog_id: str | None) -> None:
    """Errors that stop a whole apply before anything is touched."""
    if catalog_id is not None and plan.catalog_id != catalog_id:
        raise PlanCatalogMismatchError(f"the plan was made for catalog {plan.catalog_id!r}, not {catalog_id!r}")
    deletes = sum(1 for _, _, m in plan.actions() if m.action == "delete")
    if deletes and not yes:
        raise DeleteNotConfirmedError(
            f"the plan deletes {deletes} files permanently (no undo); confirm with --yes (yes=True) or use trash"
        )


def _apply_one(
    journal: Journal, run_id: int, seq: int, group: PlannedGroup, member: PlannedFile, prior: Entry | None,
    checks: _Checks,
) -> str | Skipped:
    """One file: "acted", "already" (done before) or Skipped(path, reason)."""
    if prior is not None and prior.state == DONE:
        return "already"
    if prior is not None and prior.state == PLANNED:  # a killed apply: was this done or not?
        try:
            done = ACTIONS[prior.action].settled(prior)
        except Refused as refused:
            return _unsettled(journal, prior, refused.reason)
        if done is not None:
            journal.done(prior, destination=done.destination)
            return "acted"
    intent = checks.intent(run_id, seq, group, member, journal)
    if reason := checks.reason(group, member):
        return _skip(journal, run_id, seq, intent, reason)
    entry = journal.intend(run_id, seq, intent)
    try:
        destination = ACTIONS[entry.action].act(entry)
    except OSError as error:
        return _failed(journal, run_id, seq, entry, error)
    journal.done(entry, destination=destination)
    return "acted"


def _failed(journal: Journal, run_id: int, seq: int, entry: Entry, error: OSError) -> str | Skipped:
    """An action raised: it may have half happened, so settle it from the file system."""
    try:
        done = ACTIONS[entry.action].settled(entry)
    except Refused as refused:
        return _unsettled(journal, entry, f"{error}; {refused.reason}")
    if done is None:
        return _skip(journal, run_id, seq, entry, f"cannot {entry.action}: {error.strerror or error}")
    journal.done(entry, destination=done.destination)
    return "acted"


def _skip(journal: Journal, run_id: int, seq: int, intent: Intent, reason: str) -> Skipped:
    journal.skip(run_id, seq, intent, reason)
    return Skipped(intent.source, reason)


def _unsettled(journal: Journal, entry: Entry, reason: str) -> Skipped:
    """Neither done nor untouched (the file is gone, but not where the action puts it): the
    entry stays "planned", with the reason, for the user, a later apply or undo to settle."""
    journal.refuse(entry, reason)
    return Skipped(entry.source, reason)


class _Checks:
    """The apply-time safety checks, keepers checked once per group."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.keepers = {os.path.realpath(g.keeper.path) for g in plan.groups}
        self.protect = [os.path.realpath(p) for p in plan.protect]
        self._keeper_reason: dict[str, str | None] = {}
        self._group_no = {id(g): i for i, g in enumerate(plan.groups)}

    def keeps_original(self, group: PlannedGroup, member: PlannedFile) -> bool:
        """A link replacing a near copy keeps the replaced file in the recovery folder."""
        return member.action in LINKS and member.sha256 != group.keeper.sha256

    def intent(self, run_id: int, seq: int, group: PlannedGroup, member: PlannedFile, journal: Journal) -> Intent:
        try:
            st = os.stat(member.path, follow_symlinks=False)
            mtime_ns, mode = st.st_mtime_ns, st.st_mode
        except FileNotFoundError:
            mtime_ns = mode = None
        destination, recovery = member.destination, None
        if member.action in LINKS:
            destination = os.path.realpath(group.keeper.path)  # what the link names
        if self.keeps_original(group, member):
            recovery = str(journal.recovery_dir / str(run_id) / f"{seq}-{os.path.basename(member.path)}")
        return Intent(
            group_no=self._group_no[id(group)], action=member.action, source=member.path,
            keeper=group.keeper.path, sha256=member.sha256 or "", size=member.size,
            keeper_sha256=group.keeper.sha256, destination=destination, recovery=recovery,
            mtime_ns=mtime_ns, mode=mode,
        )

    def reason(self, group: PlannedGroup, member: PlannedFile) -> str | None:
        """Why `member` must not be acted on now, or None."""
        keeper = group.keeper
        if keeper.path not in self._keeper_reason:
            self._keeper_reason[keeper.path] = _keeper_reason(keeper)
        return self._keeper_reason[keeper.path] or self._member_reason(group, member)

    def _member_reason(self, group: PlannedGroup, member: PlannedFile) -> str | None:
        path, keeper = member.path, group.keeper.path
        if not os.path.lexists(path):
            return "missing"
        if os.path.islink(path):
            return "a symbolic link (acting on it would free nothing)"
        real = os.path.realpath(path)
        if same_file(path, keeper):
            return "the same file as the keeper"
        if real in self.keepers:
            return "the keeper of another group"
        if is_under(real, self.protect):
            return "in a protected folder"
        if (size := os.path.getsize(path)) != member.size:
            return f"size changed since planning ({member.size} -> {size} bytes)"
        if why := self._action_reason(group, member):
            return why
        if sha256_of(path) != member.sha256:
            return "content changed since planning"
        return None

    def _action_reason(self, group: PlannedGroup, member: PlannedFile) -> str | None:
        """Why the member's action cannot be carried out as planned, or None."""
        if member.action == "move" and os.path.lexists(member.destination or ""):
            return f"the destination exists: {member.destination}"
        if member.action == "hardlink" and os.stat(member.path).st_dev != os.stat(group.keeper.path).st_dev:
            return "on another filesystem than the keeper (a hard link cannot cross it)"
        if member.action in LINKS and member.sha256 != group.keeper.sha256 and not self.plan.include_near:
            return "not an exact copy of the keeper (plan with include_near to link near copies)"
        return None


def _keeper_reason(keeper: PlannedFile) -> str | None:
    """Why a keeper disqualifies its group now (missing or changed), or None."""
    if not os.path.isfile(keeper.path):
        return f"the keeper {keeper.path} is missing"
    if keeper.sha256 is None:
        return f"the keeper {keeper.path} has no recorded SHA-256"
    if os.path.getsize(keeper.path) != keeper.size or sha256_of(keeper.path) != keeper.sha256:
        return f"the keeper {keeper.path} changed since planning"
    return None
