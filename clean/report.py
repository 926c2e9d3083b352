"""Clean-up plans, runs and undos as text for people (the CLI) and as JSON for scripts."""

from __future__ import annotations

from .apply import ApplyReport
from .plan import KEEP, Plan
from .undo import RunSummary, UndoReport

_VERB = {"trash": "to trash", "move": "to move", "hardlink": "to hard-link", "symlink": "to symlink",
         "delete": "to delete for good"}


def render_plan(plan: Plan) -> str:
    """Group by group: the keeper with its reason, then what happens to each other member."""
    out = []
    for n, group in enumerate(plan.groups, 1):
        out.append(f"group {n}: keep {group.keeper.path}  ({group.keeper.reason})")
        for m in group.members:
            if m.action == KEEP:
                out.append(f"  keep    {'':>12}  {m.path}  ({m.reason})")
            else:
                where = f" -> {m.destination}" if m.destination else ""
                out.append(f"  {m.action:<7} {m.size:>12,} B  {m.path}{where}")
    acted = list(plan.actions())
    out.append(f"{len(plan.groups)} groups: {len(acted)} files {_VERB[plan.action]}, "
               f"{_megabytes(plan.bytes_to_reclaim())} to reclaim")
    return "\n".join(out) + "\n"


def render_applied(report: ApplyReport) -> str:
    lines = [f"run {report.run_id}: {report.acted} files {report.action}"
             f"{'ed' if not report.action.endswith('e') else 'd'}, {_megabytes(report.bytes_reclaimed)} reclaimed"
             + (f", {report.already_done} already done by an interrupted run" if report.already_done else "")
             + (f", {_megabytes(report.bytes_in_recovery)} kept for undo in the recovery folder"
                if report.bytes_in_recovery else "")]
    lines += _skipped(report.skipped)
    return "\n".join(lines) + "\n"


def render_undone(report: UndoReport) -> str:
    state = "undone" if report.complete else "partly undone (run it again once the reasons below are resolved)"
    lines = [f"run {report.run_id} {state}: {report.restored} files put back, {_megabytes(report.bytes_restored)}"]
    lines += _skipped(report.skipped)
    return "\n".join(lines) + "\n"


def render_history(runs: list[RunSummary]) -> str:
    if not runs:
        return "no clean-up runs yet\n"
    lines = [f"{'run':>4}  {'action':<8} {'status':<14} {'started':<26} {'done':>5} {'skipped':>7} {'undone':>6}  size"]
    for r in runs:
        lines.append(f"{r.run_id:>4}  {r.action:<8} {r.status:<14} {r.started_at:<26} {r.done:>5} {r.skipped:>7} "
                     f"{r.undone:>6}  {_megabytes(r.bytes_done)}")
    return "\n".join(lines) + "\n"


def _skipped(skipped) -> list[str]:
    if not skipped:
        return []
    return [f"skipped {len(skipped)}:"] + [f"  {s.path}: {s.reason}" for s in skipped]


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"
