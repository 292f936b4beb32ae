"""Process start-up for `kom serve`, `kom worker`, `kom migrate` and `kom configure`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import signal
from pathlib import Path

from adapters.klarna.hosts import Environment, Provider, Region, base_url
from plugin.composition import Services
from plugin.observability import http_client, start_metrics_server
from plugin.settings import Settings, get_settings
from plugin.store import schema
from plugin.store.secrets import SecretBox
from plugin.store.store import ChannelSettings, Store

log = logging.getLogger("kom")

DEV_SECRET_FILE = Path("kom.secret")


def load_settings() -> Settings:
    """The settings; in development a missing KOM_SECRET_KEY is generated once into ./kom.secret."""
    settings = get_settings()
    if settings.secret_key is not None:
        return settings
    if settings.environment != "development":
        raise SystemExit("KOM_SECRET_KEY is required outside development (it encrypts credentials at rest).")
    if not DEV_SECRET_FILE.exists():
        DEV_SECRET_FILE.write_text(secrets.token_urlsafe(32))
        DEV_SECRET_FILE.chmod(0o600)
        log.warning(
            "generated a development KOM_SECRET_KEY in %s; set KOM_SECRET_KEY in production", DEV_SECRET_FILE
        )
    return settings.model_copy(update={"secret_key": DEV_SECRET_FILE.read_text().strip()})


def migrates_itself(url: str) -> bool:
    """SQLite (the zero-setup default) is migrated by whichever KOM process opens it first;
    PostgreSQL only by `kom migrate`, run once per upgrade before the new version starts."""
    return url.startswith("sqlite")


async def open_store(settings: Settings) -> Store:
    """The Store with a current schema: SQLite is migrated on the spot; an out-of-date
    PostgreSQL schema raises SchemaOutOfDate (saying to run `kom migrate`)."""
    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    store = await Store.open(
        settings.database_url, SecretBox(key), create=migrates_itself(settings.database_url)
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


async def migrate(*, check: bool = False) -> int:
    settings = load_settings()
    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    store = await Store.open(settings.database_url, SecretBox(key), create=False)
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


async def run_worker(*, once: bool = False, metrics_port: int | None = None) -> int:
    settings = load_settings()
    store = await _open_store(settings)
    if metrics_port is not None:
        start_metrics_server(metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
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


async def configure(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        url = base_url(
            Provider(args.provider), Environment(args.environment), Region(args.region), args.base_url
        )
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    store = await _open_store(settings)
    try:
        installation = await store.installation_by_url(args.saleor_api_url)
        if installation is None:
            print(f"error: no installation for {args.saleor_api_url}; install KOM from that dashboard first")
            return 2
        channel = args.channel or ""
        previous = await store.settings_for(installation.id, channel)
        kept = previous if previous is not None and previous.channel == channel else None
        await store.save_settings(
            installation.id,
            ChannelSettings(
                channel=channel,
                provider=args.provider,
                environment=args.environment,
                region=args.region,
                api_key=args.api_key,
                username=args.username,
                base_url=args.base_url,
                capture_mode=kept.capture_mode if kept else "on_fulfillment",
                shipping_fee=kept.shipping_fee if kept else "first_parcel",
                unknown_origin=kept.unknown_origin if kept else "earliest_first",
                extend_authorization=(
                    args.extend_authorization
                    if args.extend_authorization is not None
                    else bool(kept and kept.extend_authorization)
                ),
            ),
        )
    finally:
        await store.close()
    scope = f"channel {channel}" if channel else "all channels"
    print(f"saved: {args.provider} {args.environment} ({url}) for {scope} of {args.saleor_api_url}")
    print("API key stored encrypted: ********")
    return 0
