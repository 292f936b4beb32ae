"""The merchant's page inside the Saleor dashboard (settings, connection test, allocation view).

- ``GET /app``: the page the manifest's ``appUrl`` points at (Jinja2 template, plain JS/CSS
  under ``/app/static``), loaded by the Dashboard in its iframe with ``saleorApiUrl``,
  ``id`` and ``theme`` in the query. The page talks to the Dashboard with AppBridge's
  postMessage protocol and to KOM with the JSON API.
- ``/api/dashboard/...``: the JSON API (``api.py``), authenticated with the Dashboard's
  app token (``auth.py``).

docs/dashboard.md describes the page, the permissions and the endpoints.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from plugin import __version__
from plugin.web.dashboard.api import api_routes

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"

# The page runs only its own script and style; it calls only KOM. The Dashboard frames it,
# so no frame-ancestors restriction (the Dashboard's origin differs per shop).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)


def dashboard_routes() -> list[BaseRoute]:
    return [
        Route("/app", page, methods=["GET"]),
        Mount("/app/static", StaticFiles(directory=STATIC), name="dashboard-static"),
        *api_routes(),
    ]


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


@functools.cache
def asset(name: str) -> str:
    """The static file's URL, with a content hash so a new release is never served stale."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"/app/static/{name}?v={digest}"


async def page(request: Request) -> Response:
    theme = "dark" if request.query_params.get("theme") == "dark" else "light"
    html = _environment().get_template("app.html").render(asset=asset, version=__version__, theme=theme)
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        },
    )
