"""``create_app``: the Starlette application KOM serves (``kom serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plugin import __version__, observability
from plugin.composition import Services
from plugin.service.worker import WorkerConfig
from plugin.settings import Settings
from plugin.store.store import Store

if TYPE_CHECKING:
    from adapters.saleor.services import SaleorServices

log = logging.getLogger("kom.web")


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    run_worker: bool = True,
    worker_config: WorkerConfig | None = None,
) -> Starlette:
    """The app; with ``run_worker`` the lifespan also runs one worker in the same process.

    Without ``store`` the lifespan opens one on KOM_DATABASE_URL: SQLite is migrated on the
    spot, an out-of-date PostgreSQL schema stops the start-up (run `kom migrate`).
    """
    from adapters.saleor.manifest import WEBHOOKS
    from adapters.saleor.routes import saleor_routes
    from plugin.runtime import open_store
    from plugin.web.dashboard import dashboard_routes
    from plugin.web.pages import page_routes

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened = store or await open_store(settings)
        async with observability.http_client(settings.provider_timeout_seconds) as http:
            services = Services(settings=settings, store=opened, http=http)
            _share(app, services)
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
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *saleor_routes(),
            *dashboard_routes(),
            *page_routes(),  # the manifest's homepageUrl and supportUrl
        ],
        middleware=[Middleware(observability.WebhookMetrics, known=frozenset(WEBHOOKS))],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},  # type: ignore[dict-item]
    )


def _share(app: Starlette, services: SaleorServices) -> None:
    # Every endpoint reads app.state.services; typed as what the Saleor endpoints take, so
    # mypy checks that Services provides it (routes.py does not import the composition root).
    app.state.services = services


async def healthz(request: Request) -> Response:
    """Alive: the process answers (liveness). Says nothing about the database: see /readyz."""
    return JSONResponse({"status": "ok", "version": __version__})


async def readyz(request: Request) -> Response:
    """Ready for traffic: the database answers and its schema is the one this KOM needs."""
    store: Store = request.app.state.services.store
    try:
        found = await asyncio.wait_for(store.schema_status(), timeout=5)
    except Exception as exc:
        log.warning("not ready: database unreachable (%s)", type(exc).__name__)
        return JSONResponse(
            {"status": "unavailable", "reason": f"database unreachable: {type(exc).__name__}"},
            status_code=503,
        )
    if not found.up_to_date:
        return JSONResponse({"status": "unavailable", "reason": found.describe()}, status_code=503)
    return JSONResponse({"status": "ready", "version": __version__, "schema": found.current})


async def metrics(request: Request) -> Response:
    """Prometheus metrics (text format); the queue figures are read from the database now.

    Not public on the web port (it faces Saleor and the internet): a bearer token
    (KOM_METRICS_TOKEN) or development only; ``kom worker --metrics-port`` serves them apart.
    """
    settings = request.app.state.services.settings
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if token is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "Metrics need Authorization: Bearer <KOM_METRICS_TOKEN>."}, 401)
    elif not settings.is_development():
        why = "Metrics are not served here: set KOM_METRICS_TOKEN, or see kom worker --metrics-port."
        return JSONResponse({"error": why}, 404)
    store: Store = request.app.state.services.store
    try:
        observability.observe_queue(await store.queue_stats(), store.clock())
    except Exception:
        log.warning("metrics: could not read the order queue", exc_info=True)
    return Response(observability.render(), media_type=observability.CONTENT_TYPE)


async def http_error(request: Request, exc: HTTPException) -> Response:
    """Every refusal is JSON with a sentence a human can act on."""
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
