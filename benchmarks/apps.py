"""The two apps the webhook-ingest benchmark compares, as uvicorn factories."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plugin.settings import Settings
from plugin.web.app import create_app


def kom() -> Starlette:
    """KOM as deployed: verify the JWS, record the hint durably (SQLite), answer. No worker."""
    return create_app(Settings(), run_worker=False)


async def _bare(request: Request) -> Response:
    await request.body()
    return JSONResponse({})


def bare() -> Starlette:
    """The floor: a Starlette endpoint that reads the body and answers, nothing else."""
    return Starlette(routes=[Route("/api/webhooks/{name}", _bare, methods=["POST"])])
