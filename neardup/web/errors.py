"""Every failure of a request as one JSON shape, `{"error": kind, "detail": message, "hint"?}`,
with the status code its cause deserves; never a traceback in a response.

A `NeardupError` is something the client can fix, so its class decides the status (`STATUS`,
most specific first). Anything else is a bug: the client gets a 500 saying so, and the
server's log gets the traceback.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from neardup.api import ImageNotPresentError, UnknownImageError
from neardup.clean import DeleteNotConfirmedError, NothingToUndoError, PlanCatalogMismatchError
from neardup.indexer.decode import UnreadableImageError
from neardup.indexer.walk import NoSuchPathError
from neardup.search.features import ThresholdError, UnknownFeatureError
from neardup.storage.errors import NeardupError
from neardup.storage.journal import UnknownRunError
from neardup.storage.schema import CatalogBusyError, CatalogReadOnlyError, DiskFullError

class WebError(NeardupError):
    """A request the web app refuses; `status` is its HTTP status code."""

    status = 400


class NotFoundError(WebError, LookupError):
    """No plan, job or group with the given id (ids live as long as the server)."""

    status = 404


class UploadTooLargeError(WebError, ValueError):
    """A request body over the server's limit (`neardup serve --max-upload-mb`)."""

    status = 413


class ConflictError(WebError):
    """The request clashes with the server's state (an index job already running, …)."""

    status = 409


class UnauthorizedError(WebError):
    """No valid token with a request to a server that requires one."""

    status = 401


class ForbiddenError(WebError):
    """A cross-site request, or a Host header the server does not answer to."""

    status = 403


STATUS: tuple[tuple[type[NeardupError], int], ...] = (  # the library's errors; a WebError has its own
    (UnknownImageError, 404),
    (UnknownRunError, 404),
    (ImageNotPresentError, 404),
    (UnreadableImageError, 422),
    (UnknownFeatureError, 422),
    (ThresholdError, 422),
    (NoSuchPathError, 422),
    (NothingToUndoError, 409),
    (PlanCatalogMismatchError, 409),
    (DeleteNotConfirmedError, 409),
    (CatalogReadOnlyError, 409),
    (CatalogBusyError, 503),
    (DiskFullError, 507),
)


def status_of(error: NeardupError) -> int:
    """The HTTP status of a project error: a WebError's own, else the first matching class of
    STATUS, else 400."""
    if isinstance(error, WebError):
        return error.status
    return next((status for kind, status in STATUS if isinstance(error, kind)), 400)


def error_body(kind: str, detail: str, hint: str | None = None) -> dict:
    return {"error": kind, "detail": detail, **({"hint": hint} if hint else {})}


def error_response(status: int, kind: str, detail: str, hint: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(kind, detail, hint), status_code=status)


def install(app: FastAPI) -> None:
    """Make every failure of `app` a JSON error of the one shape."""

    @app.exception_handler(NeardupError)
    async def project_error(request: Request, error: NeardupError) -> JSONResponse:
        return error_response(status_of(error), _kind(type(error).__name__), str(error), error.hint)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({**error_body("bad_parameter", _describe(error.errors())), "errors": _plain(error.errors())},
                            status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(error.status_code, kind, str(error.detail), None)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:
        # Starlette raises the error on after this answer, so the server logs its traceback
        return error_response(500, "internal_error", "internal error: a bug in neardup; the server's log has the details")


def _kind(name: str) -> str:
    """UnreadableImageError -> "unreadable_image"."""
    name = name.removesuffix("Error")
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


def _describe(errors: list[dict]) -> str:
    """FastAPI's validation errors as one line: "query k: Input should be …; body action: …"."""
    parts = []
    for e in errors:
        where = " ".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _plain(errors: list[dict]) -> list[dict]:
    """Validation errors without their `ctx` and `input` (which may hold non-JSON values)."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]
