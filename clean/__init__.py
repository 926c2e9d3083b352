"""Act on duplicate groups safely: plan (pure, JSON), apply (journaled, interrupt-safe), undo.

    plan = plan_clean(collection.duplicates(), action="trash", roots=roots, catalog_id=cid)
    report = apply(plan, journal=Journal(catalog))
    undo(journal=Journal(catalog))
"""

from .apply import ApplyReport, DeleteNotConfirmedError, Skipped, apply
from .plan import (
    ACTIONS,
    DestinationInsideRootError,
    InvalidPlanError,
    Plan,
    PlanCatalogMismatchError,
    PlanError,
    PlanFileError,
    PlannedFile,
    PlannedGroup,
    PlanVersionError,
)
from .planner import move_destination, plan_clean
from .trash import TrashLookupError
from .undo import NothingToUndoError, RunSummary, UndoReport, history, undo

__all__ = [
    "ACTIONS", "ApplyReport", "DeleteNotConfirmedError", "DestinationInsideRootError", "InvalidPlanError",
    "NothingToUndoError", "Plan", "PlanCatalogMismatchError", "PlanError", "PlanFileError", "PlanVersionError",
    "PlannedFile", "PlannedGroup", "RunSummary", "Skipped", "TrashLookupError", "UndoReport", "apply",
    "history", "move_destination", "plan_clean", "undo",
]
