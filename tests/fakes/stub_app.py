"""A minimal Saleor app to exercise the fake Saleor: manifest, register, webhook recorder.

It does what an app does at install (``POST /api/register``: proves the token with
``{ app { id } }`` and fetches the JWKS) and records every webhook as received (raw body,
headers). Sync webhooks are answered by ``responders[event]`` (a queue of
``(status, body)``; the last one repeats), async ones with 200.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.klarna.sandbox.server import serve_in_thread

__all__ = ["Received", "StubApp", "serve_stub_app"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class StubApp:
    """``webhooks``: ``[(name, query, async_events, sync_events)]``."""

    webhooks: list[tuple[str, str, list[str], list[str]]]
    identifier: str = "test.stub-app"
    permissions: list[str] = field(default_factory=lambda: ["HANDLE_PAYMENTS", "MANAGE_ORDERS"])
    register_status: int = 200
    base_url: str = ""
    token: str | None = None
    app_id: str | None = None
    jwks: dict[str, Any] | None = None
    received: list[Received] = field(default_factory=list)
    responders: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)  # seconds before answering an event
    manifest_headers: dict[str, str] = field(default_factory=dict)
    register_headers: dict[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        return {
            "id": self.identifier,
            "version": "1.0.0",
            "name": "Stub Payment App",
            "permissions": self.permissions,
            "tokenTargetUrl": f"{self.base_url}/api/register",
            "webhooks": [
                {
                    "name": name,
                    "targetUrl": f"{self.base_url}/api/webhooks/{name}",
                    "query": query,
                    "asyncEvents": async_events,
                    "syncEvents": sync_events,
                    "isActive": True,
                }
                for name, query, async_events, sync_events in self.webhooks
            ],
        }

    def answer(self, event: str, *answers: tuple[int, object]) -> None:
        """Queue answers for a sync event; bodies that are not bytes are JSON-encoded."""
        self.responders[event] = [
            (status, body if isinstance(body, bytes) else json.dumps(body).encode())
            for status, body in answers
        ]

    def got(self, event: str) -> list[Received]:
        return [r for r in self.received if r.headers.get("saleor-event") == event]

    def asgi(self) -> Starlette:
        async def manifest(request: Request) -> Response:
            self.manifest_headers = {k.lower(): v for k, v in request.headers.items()}
            return JSONResponse(self.manifest())

        async def register(request: Request) -> Response:
            self.register_headers = {k.lower(): v for k, v in request.headers.items()}
            if self.register_status != 200:
                return JSONResponse({"error": {"message": "not allowed"}}, status_code=self.register_status)
            token = json.loads(await request.body())["auth_token"]
            api_url = request.headers["saleor-api-url"]
            async with httpx.AsyncClient() as client:
                answer = await client.post(
                    api_url, json={"query": "{ app { id } }"}, headers={"Authorization": f"Bearer {token}"}
                )
                origin = httpx.URL(api_url).copy_with(path="/.well-known/jwks.json")
                self.jwks = (await client.get(origin)).json()
            self.token, self.app_id = token, answer.json()["data"]["app"]["id"]
            return JSONResponse({"success": True})

        async def webhook(request: Request) -> Response:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.received.append(Received(request.url.path, headers, body))
            await asyncio.sleep(self.delays.get(headers.get("saleor-event", ""), 0))
            queue = self.responders.get(headers.get("saleor-event", ""))
            if not queue:
                return Response(status_code=200)
            status, answer = queue.pop(0) if len(queue) > 1 else queue[0]
            return Response(answer, status_code=status, media_type="application/json")

        return Starlette(
            routes=[
                Route("/api/manifest", manifest, methods=["GET"]),
                Route("/api/register", register, methods=["POST"]),
                Route("/api/webhooks/{name}", webhook, methods=["POST"]),
            ]
        )


@contextmanager
def serve_stub_app(stub: StubApp) -> Iterator[StubApp]:
    with serve_in_thread(stub.asgi()) as base_url:
        stub.base_url = base_url
        yield stub
