"""REST routes over duplicate groups and their clean-up: paged groups, "not a duplicate"
feedback, plans, apply and undo — the clean engine's own, as `neardup clean` and `neardup undo`
use them (every action journaled, files checked again when applied, undo from the journal)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from .groups import group_json, with_keepers
from .schemas import (
    ERRORS, ApplyIn, ApplyOut, GroupsPage, NotDuplicateIn, PlanIn, PlanOut, RunOut, UndoIn, UndoOut,
)
from .state import ServerState, state

router = APIRouter(prefix="/api", responses=ERRORS, tags=["duplicates"])


@router.get("/duplicates", response_model=GroupsPage)
def duplicates(offset: int = Query(0, ge=0), limit: int = Query(20, ge=1, le=200),
               st: ServerState = Depends(state)) -> GroupsPage:
    """A page of the catalog's duplicate groups (largest first), each with its keeper and the
    reason. Groups are found once per catalog generation; paging does not find them again."""
    with st.turn() as c:
        found = st.groups.get(c)
    return GroupsPage(generation=found.generation, total=len(found.groups), offset=offset, limit=limit,
                      groups=[group_json(n, g) for n, g in found.page(offset, limit)])


@router.post("/duplicates/not-duplicate", status_code=204)
def not_duplicate(body: NotDuplicateIn, st: ServerState = Depends(state)) -> Response:
    """Record that two images are not duplicates of each other: the catalog remembers it and
    later groups keep them apart."""
    with st.turn() as c:
        for image_id in (body.a, body.b):
            c.image(image_id, exif=False)  # an unknown id is a 404, before anything is stored
        c.not_duplicate(body.a, body.b)
    return Response(status_code=204)


@router.post("/plans", response_model=PlanOut, status_code=201, tags=["clean-up"])
def make_plan(body: PlanIn, st: ServerState = Depends(state)) -> PlanOut:
    """Plan a clean-up of the duplicate groups (all, or those holding `groups`), with the
    keepers a person chose; nothing is touched. Review it, then apply it."""
    with st.turn() as c:
        groups = with_keepers(st.groups.get(c), body.keepers, body.groups)
        plan = c.plan_clean(groups=groups, action=body.action, to=body.to, protect=body.protect,
                            include_near=body.include_near)
    return PlanOut(**st.plans.add(plan, groups).summary())


@router.get("/plans/{plan_id}", response_model=PlanOut, tags=["clean-up"])
def get_plan(plan_id: str, offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500),
             st: ServerState = Depends(state)) -> PlanOut:
    """A plan's totals and a page of its groups."""
    return PlanOut(**st.plans.get(plan_id).summary(offset, limit))


@router.get("/plans/{plan_id}/file", tags=["clean-up"],
            responses={200: {"content": {"application/json": {}}, "description": "a plan file"}})
def plan_file(plan_id: str, st: ServerState = Depends(state)) -> Response:
    """The plan as `neardup clean --plan` writes it: `neardup clean --apply FILE` carries it out."""
    return Response(st.plans.get(plan_id).plan.to_json(), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="plan-{plan_id}.json"'})


@router.post("/plans/{plan_id}/apply", response_model=ApplyOut, tags=["clean-up"])
def apply_plan(plan_id: str, body: ApplyIn | None = None, st: ServerState = Depends(state)) -> ApplyOut:
    """Carry out a plan (or finish it after an interruption), journaled. Files that changed
    since planning are skipped with their reason; `delete` needs `yes`."""
    plan = st.plans.get(plan_id).plan
    with st.turn() as c:
        report = c.apply(plan, yes=bool(body and body.yes))
    return ApplyOut(**report.to_dict())


@router.post("/undo", response_model=UndoOut, tags=["clean-up"])
def undo(body: UndoIn | None = None, st: ServerState = Depends(state)) -> UndoOut:
    """Put back what a clean-up run acted on (default: the last run not undone)."""
    with st.turn() as c:
        report = c.undo(body.run if body else None)
    return UndoOut(**report.to_dict())


@router.get("/history", response_model=list[RunOut], tags=["clean-up"])
def history(st: ServerState = Depends(state)) -> list[RunOut]:
    """Every clean-up run, newest first."""
    with st.turn() as c:
        return [RunOut(**r.to_dict()) for r in c.history()]
