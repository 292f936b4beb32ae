"""Process start-up for `kom serve`, `kom worker` and `kom configure`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import signal
from pathlib import Path

import httpx

from adapters.klarna.hosts import Environment, Provider, Region, base_url
from plugin.composition import Services
from plugin.settings import Settings, get_settings
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


async def _open_store(settings: Settings) -> Store:
    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    return await Store.open(settings.database_url, SecretBox(key))


async def run_worker(*, once: bool = False) -> int:
    settings = load_settings()
    store = await _open_store(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with httpx.AsyncClient(timeout=settings.provider_timeout_seconds) as http:
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
            ),
        )
    finally:
        await store.close()
    scope = f"channel {channel}" if channel else "all channels"
    print(f"saved: {args.provider} {args.environment} ({url}) for {scope} of {args.saleor_api_url}")
    print("API key stored encrypted: ********")
    return 0
