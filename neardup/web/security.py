"""The guards every request passes before it reaches a route (one ASGI middleware, so pages,
static files, /docs and the API are guarded alike):

- Host: a server on loopback answers only to loopback names. A web page on another site
  that re-points its own domain at 127.0.0.1 (DNS rebinding) gets a 403, not our data.
- Token: when the server has one (always when bound beyond loopback), every request carries
  it: `Authorization: Bearer T` or `X-Neardup-Token: T` from scripts; in a browser, opening
  `/?token=T` once stores it in an HttpOnly, SameSite=Strict cookie. Otherwise 401.
- Cross-site requests: every state-changing request is a POST and needs proof that it
  comes from our own pages or from a script, never from a form on another site: the token
  in a header, or a CSRF token in the `X-CSRF-Token` header equal to the SameSite=Strict
  `neardup_csrf` cookie our pages set (another site can neither read the cookie nor send a
  custom header to us). An `Origin` or `Sec-Fetch-Site` that says cross-site is refused too.
- Size: a request body over the limit gets a 413 as soon as it passes it, never buffered.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from .errors import error_body

TOKEN_COOKIE = "neardup_token"
TOKEN_HEADER = "x-neardup-token"
CSRF_COOKIE = "neardup_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POSTs that change nothing (an upload must be a POST): no CSRF token needed, so that
# `curl -F file=@q.jpg …/api/search` works; a cross-site Origin is still refused
READ_ONLY_POSTS = frozenset({"/api/search"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_MAX_UPLOAD = 50 * 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Security:
    """`token`: required with every request when set. `hosts`: the Host names the server
    answers to (None: any, for a server bound to all interfaces, which the token protects).
    `max_body`: the largest request body in bytes (uploads included)."""

    token: str | None = None
    hosts: frozenset[str] | None = LOOPBACK_NAMES
    max_body: int = DEFAULT_MAX_UPLOAD


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine."""
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def hosts_for(bound: str) -> frozenset[str] | None:
    """The Host names a server bound to `bound` answers to: loopback names on loopback, that
    name and loopback's for one address, any for all interfaces."""
    bare = bound.strip("[]")
    if bare in ("0.0.0.0", "::", ""):
        return None
    return LOOPBACK_NAMES | {bare.lower()}


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(request: Request) -> tuple[str, bool]:
    """The browser's CSRF token for a page to hand its scripts: the one in its cookie, or a
    new one (True: set it with `set_csrf_cookie`)."""
    token = request.cookies.get(CSRF_COOKIE)
    if token and len(token) <= 64:
        return token, False
    return new_secret(), True


def set_csrf_cookie(response: Response, token: str) -> None:
    """Readable by our scripts (they copy it into the header); SameSite=Strict keeps it off
    every request another site makes."""
    response.set_cookie(CSRF_COOKIE, token, httponly=False, samesite="strict", path="/")


class Guard:
    """ASGI middleware applying `Security` to every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app, self.security = app, security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if int(request.headers.get("content-length") or 0) > self.security.max_body:
            await self._too_large()(scope, receive, send)
            return
        await _Limited(self.app, self.security.max_body, self._too_large())(scope, receive, send)

    def refusal(self, request: Request) -> Response | None:
        """The response refusing `request`, or None when it may proceed."""
        host = _hostname(request.headers.get("host", ""))
        if self.security.hosts is not None and host not in self.security.hosts:
            return _refuse(request, 403, "forbidden_host",
                           f"this server does not answer to the host name {host!r}; use http://127.0.0.1")
        if self.security.token is not None and not self._authenticated(request):
            return self._login(request)
        if request.method not in SAFE_METHODS:
            return self._cross_site(request)
        return None

    def _authenticated(self, request: Request) -> bool:
        given = [request.headers.get(TOKEN_HEADER), _bearer(request), request.cookies.get(TOKEN_COOKIE)]
        return any(_same(g, self.security.token) for g in given)

    def _login(self, request: Request) -> Response:
        """`?token=T` on a GET stores the token in a cookie and drops it from the address; any
        other request without the token gets a 401."""
        if request.method == "GET" and _same(request.query_params.get("token"), self.security.token):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.security.token or "", httponly=True, samesite="strict", path="/")
            return response
        return _refuse(request, 401, "unauthorized",
                       "this server requires its token: send 'Authorization: Bearer <token>', or open the address "
                       "`neardup serve` printed (it ends in ?token=…) once in this browser")

    def _cross_site(self, request: Request) -> Response | None:
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
            return _refuse(request, 403, "cross_site", f"cross-site request from {origin} refused")
        if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return _refuse(request, 403, "cross_site", "cross-site request refused")
        if request.url.path in READ_ONLY_POSTS:
            return None
        if self.security.token is not None and (
            _same(request.headers.get(TOKEN_HEADER), self.security.token) or _same(_bearer(request), self.security.token)
        ):
            return None
        cookie = request.cookies.get(CSRF_COOKIE)
        if cookie and _same(request.headers.get(CSRF_HEADER), cookie):
            return None
        return _refuse(request, 403, "csrf",
                       f"a state-changing request needs the {CSRF_HEADER} header equal to the {CSRF_COOKIE} cookie "
                       "(our pages send both), or the server's token in a header")

    def _too_large(self) -> Response:
        limit = self.security.max_body
        return JSONResponse(error_body("upload_too_large", f"the request body is over the server's limit of "
                                       f"{limit / 2**20:g} MB", "start the server with a larger --max-upload-mb"),
                            status_code=413)


class _Limited:
    """Counts the body as the app reads it; past `limit` the client gets `too_large` and the
    app sees a disconnected client (its own response, if any, is dropped)."""

    def __init__(self, app: ASGIApp, limit: int, too_large: Response) -> None:
        self.app, self.limit, self.too_large = app, limit, too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen, refused = 0, False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await self.too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, guarded)


def _refuse(request: Request, status: int, kind: str, detail: str) -> Response:
    """A JSON error for the API and scripts; a short page for a person's browser."""
    if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
        return JSONResponse(error_body(kind, detail), status_code=status)
    return HTMLResponse(f"<!doctype html><title>neardup: {status}</title><h1>{status}</h1><p>{_escape(detail)}</p>",
                        status_code=status)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _hostname(host: str) -> str:
    """The name of a Host header, without its port: "127.0.0.1:8765" -> "127.0.0.1", "[::1]:80" -> "::1"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given) and bool(expected) and secrets.compare_digest(given.encode(), expected.encode())
