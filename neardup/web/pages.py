"""The pages: Search, Duplicates, Collection. Each is a server-rendered shell whose small
script asks the REST API for data, a page at a time (never thousands of groups at once), so
the pages stay as fast on a 100,000-image catalog as on a sample."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

import neardup

from .security import csrf_token, set_csrf_cookie
from .state import ServerState, state

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
PAGES = {"search": "Search", "duplicates": "Duplicates", "collection": "Collection"}

router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/search", status_code=303)


@router.get("/{page}", response_class=HTMLResponse)
def page(page: str, request: Request, st: ServerState = Depends(state)) -> HTMLResponse:
    token, new = csrf_token(request)
    known = page in PAGES
    response = TEMPLATES.TemplateResponse(request, f"{page}.html" if known else "missing.html",
                                          {**_context(st, page), "csrf": token}, status_code=200 if known else 404)
    if new:
        set_csrf_cookie(response, token)
    return response


def _context(st: ServerState, page: str) -> dict:
    path = st.collection.path
    return {"page": page, "pages": PAGES, "catalog": str(path), "catalog_name": path.name, "version": neardup.__version__}
