"""The web app: `create_app(collection)` wires the REST API, the pages, the static files, the
error shape and the request guards around one open collection."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

import neardup
from neardup.api import Collection

from . import api_clean, api_images, api_jobs, errors, pages
from .security import Guard, Security
from .state import ServerState

STATIC = Path(__file__).parent / "static"

DESCRIPTION = """The REST API of `neardup serve`: search by uploading an image, review duplicate
groups, plan, apply and undo clean-ups, index folders as background jobs.

State-changing requests are POSTs and need the server's token in a header
(`Authorization: Bearer T`) or, from a browser, the `X-CSRF-Token` header equal to the
`neardup_csrf` cookie. Errors are JSON: `{"error": kind, "detail": message, "hint"?: …}`."""


def create_app(collection: Collection, *, security: Security | None = None, workers: int | None = None) -> FastAPI:
    """The app serving `collection` (which it does not close). `security`: token, accepted Host
    names, request size limit (default: loopback names, no token, 50 MB). `workers`: decoding
    processes of index jobs (default: one per core)."""
    security = security or Security()
    # the API docs' Swagger UI from an installed package, not a CDN: the app works offline
    app = FastAPIOffline(title="neardup", version=neardup.__version__, description=DESCRIPTION)
    app.state.neardup = ServerState(collection, security=security, workers=workers)
    errors.install(app)
    for module in (api_images, api_clean, api_jobs):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(pages.router)  # last: its /{page} must not shadow /docs or /api
    app.add_middleware(_Headers)
    app.add_middleware(Guard, security=security)
    return app


class _Headers:
    """Headers on every response: no sniffing a file as another type, no framing by other
    sites, and pages may load scripts, styles and images from this server only."""

    POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
              "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope.get("path", "").startswith(("/docs", "/redoc"))  # FastAPI's docs load their own assets

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                            (b"referrer-policy", b"same-origin")]
                if not docs:
                    headers.append((b"content-security-policy", self.POLICY.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
