"""``create_app``: the Starlette application KOM serves (``kom serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plugin import __version__
from plugin.composition import Services
from plugin.service.worker import WorkerConfig
from plugin.settings import Settings
from plugin.store.secrets import SecretBox
from plugin.store.store import Store

log = logging.getLogger("kom.web")


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    run_worker: bool = True,
    worker_config: WorkerConfig | None = None,
) -> Starlette:
    """The app; with ``run_worker`` the lifespan also runs one worker in the same process."""
    from adapters.saleor.routes import saleor_routes
    from plugin.web.dashboard import dashboard_routes

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened = store or await Store.open(settings.database_url, SecretBox(_secret(settings)))
        async with httpx.AsyncClient(timeout=settings.provider_timeout_seconds) as http:
            services = Services(settings=settings, store=opened, http=http)
            app.state.services = services
            stop = asyncio.Event()
            task = asyncio.create_task(services.worker(worker_config).run(stop)) if run_worker else None
            try:
                yield
            finally:
                stop.set()
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                if store is None:
                    await opened.close()

    return Starlette(
        routes=[Route("/healthz", healthz, methods=["GET"]), *saleor_routes(), *dashboard_routes()],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},  # type: ignore[dict-item]
    )


def _secret(settings: Settings) -> str | None:
    return settings.secret_key.get_secret_value() if settings.secret_key else None


async def healthz(request: Request) -> Response:
    """Alive: the process answers. (Readiness, with the database, is /readyz in production docs.)"""
    return JSONResponse({"status": "ok", "version": __version__})


async def http_error(request: Request, exc: HTTPException) -> Response:
    """Every refusal is JSON with a sentence a human can act on."""
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
