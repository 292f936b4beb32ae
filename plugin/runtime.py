"""Process start-up for `kom serve`, `kom worker` and `kom migrate` (settings: plugin/preflight.py)."""

from __future__ import annotations

import asyncio
import logging
import signal
from urllib.parse import urlsplit

from plugin import __version__
from plugin.composition import Services
from plugin.observability import http_client, start_metrics_server
from plugin.settings import Settings
from plugin.store import schema
from plugin.store.secrets import SecretBox
from plugin.store.store import Store

log = logging.getLogger("kom")


def load_settings(command: str = "start") -> Settings:
    """The checked settings (secret key included; in development generated into ./kom.secret),
    or exit with one line per problem. Commands that also use the database call
    ``preflight.settings_or_exit``, which checks that it answers too."""
    from plugin.preflight import settings_or_exit

    return settings_or_exit(command, database=False)


def migrates_itself(url: str) -> bool:
    """SQLite (the zero-setup default) is migrated by whichever KOM process opens it first;
    PostgreSQL only by `kom migrate`, run once per upgrade before the new version starts."""
    return url.startswith("sqlite")


def _box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key.get_secret_value() if settings.secret_key else None)


async def open_store(settings: Settings) -> Store:
    """The Store with a current schema: SQLite is migrated on the spot; an out-of-date
    PostgreSQL schema raises SchemaOutOfDate (saying to run `kom migrate`)."""
    store = await Store.open(
        settings.database_url, _box(settings), create=migrates_itself(settings.database_url)
    )
    try:
        await schema.require_current(store.engine)
    except BaseException:
        await store.close()
        raise
    return store


async def _open_store(settings: Settings) -> Store:
    try:
        return await open_store(settings)
    except schema.SchemaOutOfDate as exc:
        raise SystemExit(f"error: {exc}") from None


async def check_schema(settings: Settings) -> None:
    """Exit with a message saying what to run when the database's schema is not current."""
    store = await _open_store(settings)
    await store.close()


def announce(settings: Settings, host: str, port: int, *, worker: bool) -> None:
    """`kom serve`'s first lines: where it listens, and the manifest URL to paste into Saleor."""
    role = "web app and worker" if worker else "web app only (run `kom worker` apart)"
    log.info("KOM %s listening on http://%s:%d: %s", __version__, host, port, role)
    log.info(
        "install KOM in Saleor: Dashboard -> Apps -> Install external app, manifest URL %s/api/manifest",
        settings.public_url,
    )
    public = urlsplit(settings.public_url)
    loopback = public.hostname in ("localhost", "127.0.0.1", "::1")
    if loopback and host not in ("localhost", "127.0.0.1", "::1"):
        log.warning(
            "KOM_PUBLIC_URL is %s: only this machine reaches that; set KOM_PUBLIC_URL to the "
            "address Saleor calls this KOM at",
            settings.public_url,
        )
    elif loopback and (public.port or 80) != port:
        log.warning(
            "KOM_PUBLIC_URL is %s but KOM listens on port %d: Saleor would call the wrong port; "
            "set KOM_PUBLIC_URL to the address Saleor reaches this KOM at",
            settings.public_url,
            port,
        )


async def migrate(settings: Settings, *, check: bool = False) -> int:
    store = await Store.open(settings.database_url, _box(settings), create=False)
    try:
        before = await store.schema_status()
        if before.up_to_date:
            print(f"database is up to date ({before.describe()})")
            return 0
        if check:
            print(f"database needs migrating: {before.describe()}")
            return 1
        after = await store.migrate()
    finally:
        await store.close()
    print(f"migrated from {before.current or 'an empty database'} to revision {after.current}")
    return 0


async def run_worker(settings: Settings, *, once: bool = False, metrics_port: int | None = None) -> int:
    store = await _open_store(settings)
    try:
        if metrics_port is not None:
            try:
                start_metrics_server(metrics_port)
            except OSError as exc:  # taken between the start-up check and now
                raise SystemExit(f"error: --metrics-port {metrics_port}: {exc.strerror}") from None
        stop = asyncio.Event()
        if not once:  # a long run stops cleanly on SIGINT/SIGTERM, after the order in hand
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        async with http_client(settings.provider_timeout_seconds) as http:
            worker = Services(settings=settings, store=store, http=http).worker()
            if once:
                done = await worker.drain()
                print(f"processed {done} orders")
            else:
                await worker.run(stop)
    finally:
        await store.close()
    return 0
