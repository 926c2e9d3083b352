"""Clean-up plans made through the web app, kept by id until the server stops.

A plan is the clean engine's own `Plan`, made by `Collection.plan_clean` and later carried
out by `Collection.apply`, exactly as `neardup clean` does; the server only remembers it
between the request that shows it and the request that confirms it, and knows each planned
path's image id so a page can show its thumbnail.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from neardup.clean import Plan
from neardup.clean.plan import KEEP, PlannedFile
from neardup.search.duplicates import Group

from .errors import NotFoundError


@dataclass(frozen=True)
class StoredPlan:
    id: str
    plan: Plan
    ids: dict[str, int]  # path -> image id
    created_at: float = field(default_factory=time.time)

    def summary(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """The plan's totals and a page of its groups (a plan may hold thousands)."""
        acted = list(self.plan.actions())
        return {
            "id": self.id, "action": self.plan.action, "to": self.plan.to, "created_at": self.created_at,
            "groups_total": len(self.plan.groups), "files": len(acted), "bytes": self.plan.bytes_to_reclaim(),
            "offset": offset, "limit": limit,
            "groups": [{"keeper": self._file(g.keeper), "members": [self._file(m) for m in g.members]}
                       for g in self.plan.groups[offset : offset + limit]],
        }

    def _file(self, f: PlannedFile) -> dict[str, Any]:
        return {"id": self.ids.get(f.path), "path": f.path, "size": f.size, "action": f.action,
                "destination": f.destination, "reason": f.reason, "acted": f.action != KEEP}


class PlanStore:
    def __init__(self) -> None:
        self._plans: dict[str, StoredPlan] = {}
        self._lock = threading.Lock()

    def add(self, plan: Plan, groups: list[Group]) -> StoredPlan:
        ids = {im.path: im.image_id for g in groups for im in g.images}
        stored = StoredPlan(uuid.uuid4().hex[:12], plan, ids)
        with self._lock:
            self._plans[stored.id] = stored
        return stored

    def get(self, plan_id: str) -> StoredPlan:
        stored = self._plans.get(plan_id)
        if stored is None:
            raise NotFoundError(f"no plan with id {plan_id!r} (plans live as long as the server; make a new one)")
        return stored
