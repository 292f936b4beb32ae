"""Pieces of the security tests: KOM in-process, a small Saleor on loopback, resolvers, tokens.

Nothing here opens a connection to anything but loopback: names are resolved by
``Resolver`` (a dict), and every server is served on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.klarna.sandbox.server import serve_in_thread
from adapters.saleor.manifest import audience
from plugin.composition import Services
from plugin.settings import Settings
from plugin.store.secrets import SecretBox
from plugin.store.store import Store
from plugin.web import egress
from plugin.web.app import create_app
from tests.saleor.signing import KID, jwks_for, rsa_key, sign_jwt

SECRET = "security-test-secret-0123456789ab"
PUBLIC_URL = "https://kom.example.com"


class Resolver:
    """An offline resolver: ``names[host]`` -> addresses; unknown names fail like the system's."""

    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.names = dict(names or {})
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[egress.Address]:
        self.calls.append(host)
        if host not in self.names:
            raise OSError(-2, f"Name or service not known: {host} (resolver detail)")
        return [ipaddress.ip_address(a) for a in self.names[host]]


@dataclass
class Kom:
    """KOM's Starlette app in-process, called through ASGI (no socket)."""

    app: Starlette
    client: httpx.AsyncClient
    store: Store
    services: Services
    resolver: Resolver


@contextlib.asynccontextmanager
async def kom(
    tmp_path: Path,
    *,
    allowed: str = "",
    names: dict[str, list[str]] | None = None,
    allowed_saleor_urls: str = r"https?://.+",
) -> AsyncIterator[Kom]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'kom.db'}",
        secret_key=SECRET,  # type: ignore[arg-type]
        public_url=PUBLIC_URL,
        allowed_saleor_urls=allowed_saleor_urls,
        allowed_private_networks=allowed,
    )
    store = await Store.open(settings.database_url, SecretBox(SECRET))
    app = create_app(settings, store=store, run_worker=False)
    resolver = Resolver(names)
    try:
        async with app.router.lifespan_context(app):
            services: Services = app.state.services
            egress.install(
                services, egress.Egress(allowed_networks=egress.parse_networks(allowed), resolver=resolver)
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://kom") as client:
                yield Kom(app, client, store, services, resolver)
    finally:
        await store.close()


def dashboard_token(api_url: str, app_id: str, *, now: int, **changes: Any) -> str:
    """A Dashboard app token with the claims Saleor's ``create_access_token_for_app`` sets."""
    claims: dict[str, Any] = {
        "iat": now,
        "owner": "saleor",
        "iss": api_url,
        "exp": now + 300,
        "token": "user-jwt-token-key",
        "email": "staff@example.com",
        "type": "thirdparty",
        "user_id": "VXNlcjox",
        "is_staff": True,
        "app": app_id,
        "permissions": ["HANDLE_PAYMENTS"],
        "user_permissions": ["MANAGE_APPS", "HANDLE_PAYMENTS", "MANAGE_ORDERS"],
        "aud": audience(PUBLIC_URL),
    }
    claims.update(changes)
    return sign_jwt({k: v for k, v in claims.items() if v is not None}, rsa_key(), KID)


@dataclass
class MiniSaleor:
    """Just enough Saleor for /api/register: ``{ app { id } }`` per token, and a JWKS.

    ``apps[token]`` is the App id the token belongs to (None: Saleor treats it as
    anonymous, ``app: null``); ``failing`` tokens get a 502 (Saleor unreachable).
    """

    apps: dict[str, str | None] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    jwks: Any = field(default_factory=lambda: jwks_for(rsa_key()))
    jwks_delay: float = 0.0
    jwks_fetches: int = 0
    hosts: list[str] = field(default_factory=list)  # Host headers received

    def app(self) -> Starlette:
        async def graphql(request: Request) -> Response:
            self.hosts.append(request.headers.get("host", ""))
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token in self.failing:
                return Response("bad gateway", status_code=502)
            return JSONResponse(
                {"data": {"app": {"id": app_id} if (app_id := self.apps.get(token)) else None}}
            )

        async def jwks(request: Request) -> Response:
            self.hosts.append(request.headers.get("host", ""))
            self.jwks_fetches += 1
            if self.jwks_delay:
                await asyncio.sleep(self.jwks_delay)
            body = self.jwks if isinstance(self.jwks, bytes) else json.dumps(self.jwks).encode()
            return Response(body, media_type="application/json")

        return Starlette(
            routes=[
                Route("/graphql/", graphql, methods=["POST"]),
                Route("/.well-known/jwks.json", jwks, methods=["GET"]),
            ]
        )


@contextlib.contextmanager
def serve_mini_saleor(saleor: MiniSaleor) -> Iterator[str]:
    """Serve ``saleor`` on loopback; yields its port."""
    with serve_in_thread(saleor.app()) as url:
        yield url.rsplit(":", 1)[1]
