"""The REST API's request bodies and answers as Pydantic models: validated on the way in,
documented in the OpenAPI schema (/docs) on the way out."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, Field

from neardup.clean import ACTIONS
from neardup.search.query import Match
from neardup.storage.catalog import MAX_ID

Action = Literal[ACTIONS]  # type: ignore[valid-type]
# ids are SQLite rowids (1 .. 2**63 - 1): a larger number was a 500 (OverflowError in the driver)
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
ImageId = Annotated[int, Path(ge=1, le=MAX_ID, description="an image id")]


class ErrorOut(BaseModel):
    error: str = Field(description="the kind of error, e.g. unreadable_image, unknown_image, bad_parameter")
    detail: str = Field(description="what was received and what was expected")
    hint: str | None = Field(None, description="what to do next")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": why} for code, why in {
        400: "bad request", 401: "the server's token is missing", 403: "cross-site request or foreign Host",
        404: "no such image, plan, job or run", 409: "conflicts with the catalog's state",
        413: "request body over the limit", 422: "bad parameter, or an image that cannot be decoded",
    }.items()
}


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    catalog: str
    images: int
    features: list[str]
    generation: str


class MatchOut(BaseModel):
    id: int
    path: str
    score: float = Field(description="higher is more similar, 1.0 identical")
    distance: float = Field(description="the feature's own distance (Hamming bits, 1 - cosine, 1 - score)")
    by: str
    evidence: dict[str, float] = Field(
        default_factory=dict, description="each kind of evidence's confidence: hashes, cnn, geometry (auto)")


def match_out(m: Match) -> MatchOut:
    return MatchOut(id=m.image_id, path=m.path, score=round(m.score, 6), distance=m.distance, by=m.by,
                    evidence={k: round(v, 4) for k, v in m.evidence})


class SearchOut(BaseModel):
    """The CLI's `search --json` contract, each result with its catalog id."""

    query: str
    results: list[MatchOut]


class ImageOut(BaseModel):
    id: int
    path: str
    size: int = Field(description="bytes")
    mtime_ns: int
    sha256: str | None
    width: int | None
    height: int | None
    format: str | None
    status: str = Field(description='"ok", "failed", or what a clean-up did: trashed, moved, linked, deleted')
    error: str | None = Field(description="why a failed file failed")
    taken: str | None = Field(description="EXIF DateTimeOriginal (else DateTime) as written")
    camera: str | None = Field(description="EXIF Make and Model")
    exif_error: str | None = Field(description="why the EXIF header could not be read")


class MemberOut(BaseModel):
    id: int
    path: str
    size: int
    width: int | None
    height: int | None
    format: str | None
    keeper: bool
    exact_copy: bool = Field(description="the same bytes as the keeper")


class GroupOut(BaseModel):
    index: int
    keeper: int = Field(description="the keeper's image id")
    reason: str = Field(description="why it is the keeper")
    members: list[MemberOut]
    contains: list[Any] = Field(default_factory=list, description="images that contain several originals")


class GroupsPage(BaseModel):
    generation: str = Field(description="the catalog generation the groups were found at")
    total: int
    offset: int
    limit: int
    groups: list[GroupOut]


class NotDuplicateIn(BaseModel):
    a: Id = Field(description="an image id")
    b: Id = Field(description="another image id of the same group")


class PlanIn(BaseModel):
    action: Action = "trash"
    to: str | None = Field(None, description="move: the folder copies go to (outside every indexed folder)")
    keepers: list[Id] = Field(default_factory=list, description="image ids chosen as keepers of their groups")
    groups: list[Id] | None = Field(
        None, description="plan only the groups holding these image ids (default: every group)")
    protect: list[str] = Field(default_factory=list, description="folders never acted on; they win the keeper")
    include_near: bool = Field(False, description="let hardlink/symlink replace near copies too")


class PlannedFileOut(BaseModel):
    id: int | None
    path: str
    size: int
    action: str
    destination: str | None
    reason: str | None
    acted: bool


class PlannedGroupOut(BaseModel):
    keeper: PlannedFileOut
    members: list[PlannedFileOut]


class PlanOut(BaseModel):
    id: str
    action: str
    to: str | None
    created_at: float
    groups_total: int
    files: int = Field(description="files the plan acts on")
    bytes: int = Field(description="bytes those files hold")
    offset: int
    limit: int
    groups: list[PlannedGroupOut]


class ApplyIn(BaseModel):
    yes: bool = Field(False, description="confirm a plan that deletes files permanently")


class SkippedOut(BaseModel):
    path: str
    reason: str


class ApplyOut(BaseModel):
    run_id: int
    action: str
    resumed: bool
    acted: int
    bytes_reclaimed: int
    bytes_in_recovery: int
    already_done: int
    skipped: list[SkippedOut]


class UndoIn(BaseModel):
    run: Id | None = Field(None, description="the run to undo (default: the last one not undone)")


class UndoOut(BaseModel):
    run_id: int
    restored: int
    bytes_restored: int
    skipped: list[SkippedOut]
    complete: bool


class RunOut(BaseModel):
    run_id: int
    action: str
    status: str
    started_at: str
    finished_at: str | None
    undone_at: str | None
    done: int
    skipped: int
    undone: int
    bytes_done: int


class IndexIn(BaseModel):
    paths: list[str] = Field(min_length=1, description="absolute folders or files on the server's disk")


class JobOut(BaseModel):
    id: str
    kind: str
    state: Literal["running", "done", "failed"]
    description: str
    stage: int = Field(description="1: decoding new and changed files; 2 and on: what the catalog lacks (see label)")
    label: str = Field(description="what the stage computes, e.g. 'cnn vectors'; empty for decoding new and changed files")
    total: int
    done: int
    percent: float
    started_at: float
    finished_at: float | None
    result: dict[str, Any] | None
    error: str | None


class FailureOut(BaseModel):
    path: str
    reason: str


class CollectionOut(BaseModel):
    path: str
    counts: dict[str, int]
    roots: list[str]
    features: list[str]
    indexes: list[dict[str, Any]]
    failures_total: int
    failures: list[FailureOut]
    offset: int
    limit: int
