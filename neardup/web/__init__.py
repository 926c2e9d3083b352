"""`neardup serve`: a local web app and a documented REST API over the Python API.

    from neardup.web import create_app
    app = create_app(neardup.open("photos.db"))   # an ASGI app; `neardup serve` runs it on uvicorn
"""

from .app import create_app

__all__ = ["create_app"]
