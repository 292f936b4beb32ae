"""The fake's HTTP face (Starlette) and a helper that serves it on a loopback port.

Routes: ``POST /graphql/`` (batched lists too) and ``GET /.well-known/jwks.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.klarna.sandbox.server import serve_in_thread

if TYPE_CHECKING:
    from .driver import FakeSaleor

__all__ = ["create_app", "serve_fake_saleor"]


def create_app(fake: FakeSaleor) -> Starlette:
    async def graphql(request: Request) -> Response:
        if request.method != "POST":
            return Response(status_code=405, headers={"Allow": "OPTIONS, POST"})
        try:
            data: Any = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"errors": [{"message": "Unable to parse query."}]}, status_code=400)
        with fake.store.lock:
            app = fake.graphql.app_for_token(request.headers.get("authorization"))
        if isinstance(data, list):
            results = [fake.graphql.run(entry, app) for entry in data]
            status = max((code for _, code in results), default=200)
            return JSONResponse([body for body, _ in results], status_code=status)
        body, status = fake.graphql.run(data, app)
        return JSONResponse(body, status_code=status)

    async def jwks(_: Request) -> Response:
        return JSONResponse(fake.jwks())

    return Starlette(
        routes=[
            Route("/graphql/", graphql, methods=["GET", "POST"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        ]
    )


@contextmanager
def serve_fake_saleor(fake: FakeSaleor | None = None, **options: Any) -> Iterator[FakeSaleor]:
    """Serve a fake (new unless given, with ``FakeSaleor(**options)``) on ``127.0.0.1:<free
    port>``; its ``base_url``/``api_url`` point there while the block runs."""
    from .driver import FakeSaleor

    fake = fake or FakeSaleor(**options)
    with serve_in_thread(fake.asgi) as base_url:
        fake.base_url = base_url
        yield fake
