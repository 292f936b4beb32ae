"""`kom configure` and `kom installations`: the merchant's settings from a shell.

``configure`` checks a submission with the dashboard's own rules
(``plugin.web.dashboard.settings_form.check_form``), so a key that the page refuses is
refused here with the same sentence. The API key never travels on the command line, where
shell history and ``ps`` would keep it: it comes on stdin (``--api-key-stdin``) or in
``KOM_API_KEY``; with neither, the channel's saved key is kept.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from plugin.service.records import ChannelSettings, Installation
from plugin.settings import Settings
from plugin.store.secrets import SecretError
from plugin.store.store import Store
from plugin.web.dashboard.settings_form import CHANNEL, DEFAULTS, check_form, key_hint

API_KEY_ENV = "KOM_API_KEY"

# The form's fields as `kom configure` calls them, for its error lines.
_FLAGS = {
    "provider": "--provider",
    "environment": "--environment",
    "region": "--region",
    "credential_type": "--username",
    "username": "--username",
    "api_key": "API key",
    "base_url": "--base-url",
    "capture_mode": "--capture-mode",
    "shipping_fee": "--shipping-fee",
    "unknown_origin": "--unknown-origin",
    "extend_authorization": "--extend-authorization",
}


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def read_api_key(args: argparse.Namespace) -> str | None:
    """The key from stdin (first line) or KOM_API_KEY; None keeps the saved one."""
    if args.api_key_stdin:
        return sys.stdin.readline().strip() or None
    return os.environ.get(API_KEY_ENV, "").strip() or None


async def find_installation(store: Store, api_url: str) -> Installation | None:
    """The installation of ``api_url``; else None, after saying what KOM knows instead."""
    found = await store.installation_by_url(api_url)
    if found is not None:
        return found
    # Saleor sends its API URL exactly (usually ending in /graphql/); one slash more or
    # less is another installation, so say so instead of guessing.
    near = [
        known.api_url
        for known in await store.installations()
        if known.api_url.rstrip("/") == api_url.rstrip("/")
    ]
    if near:
        slash = "with" if near[0].endswith("/") else "without"
        _error(f"no installation for {api_url}; KOM knows {near[0]}, {slash} the trailing slash: use that")
    else:
        _error(
            f"no installation for {api_url}; install KOM from that Saleor dashboard first "
            "(`kom installations` lists the ones KOM knows)"
        )
    return None


def _form(args: argparse.Namespace, key: str | None, kept: ChannelSettings | None) -> dict[str, Any]:
    """The page's form, filled from the options; what is not given stays as saved."""

    def given(option: str, name: str) -> Any:
        value = getattr(args, option)
        if value is not None:
            return value
        return getattr(kept, name) if kept is not None else DEFAULTS[name]

    region = args.region
    if region is None:
        # Kustom has one host per environment (EU); Klarna's region must be chosen.
        region = "eu" if args.provider == "kustom" else (kept.region if kept is not None else None)
    return {
        "provider": args.provider,
        "environment": args.environment,
        "region": region,
        "credential_type": "username_password" if args.username else "api_key",
        "api_key": key,
        "username": args.username,
        "base_url": args.base_url,
        "capture_mode": given("capture_mode", "capture_mode"),
        "shipping_fee": given("shipping_fee", "shipping_fee"),
        "unknown_origin": given("unknown_origin", "unknown_origin"),
        "extend_authorization": given("extend_authorization", "extend_authorization"),
    }


def _field_error(name: str, message: str, key_given: bool) -> str:
    if name == "api_key" and not key_given:
        return (
            "API key: none given and none saved for this channel: pass it on stdin with "
            f"--api-key-stdin, or in {API_KEY_ENV}"
        )
    if name == "region" and message.startswith("Choose"):
        return "--region: Klarna serves each merchant from one region: choose eu, na or oc"
    return f"{_FLAGS.get(name, name)}: {message}"


async def configure(settings: Settings, args: argparse.Namespace) -> int:
    from plugin.observability import http_client
    from plugin.runtime import _open_store

    if args.api_key is not None:
        _error(
            "--api-key: a key on the command line stays in shell history and shows in `ps`; "
            f"pass it on stdin with --api-key-stdin, or in {API_KEY_ENV}"
        )
        return 2
    channel = args.channel or ""
    if not CHANNEL.fullmatch(channel):
        _error(f"--channel {channel!r}: a Saleor channel slug has letters, digits, - and _ only")
        return 2
    key = read_api_key(args)
    store = await _open_store(settings)
    try:
        installation = await find_installation(store, args.saleor_api_url)
        if installation is None:
            return 2
        previous = await store.settings_for(installation.id, channel)
        kept = previous if previous is not None and previous.channel == channel else None
        checked = check_form(_form(args, key, kept), channel, kept)
        if checked.settings is None:
            for name, message in checked.errors.items():
                _error(_field_error(name, message, key is not None))
            return 2
        chosen = checked.settings
        if args.test:
            from plugin.composition import Services

            async with http_client(settings.provider_timeout_seconds) as http:
                result = await Services(settings=settings, store=store, http=http).check_connection(chosen)
            print(f"connection test: {result.message}")
            if result.correlation_id:
                print(f"  correlation id: {result.correlation_id}")
            if not result.ok:
                _error("not saved: the connection test failed (run without --test to save anyway)")
                return 1
        await store.save_settings(installation.id, chosen)
    except SecretError as exc:
        _error(f"{exc}: KOM_SECRET_KEY must be the key the database was written with")
        return 2
    finally:
        await store.close()
    from adapters.klarna.connection import endpoint_for

    scope = f"channel {channel}" if channel else "all channels"
    where = f"{chosen.provider} {chosen.environment} ({endpoint_for(chosen)})"
    print(f"saved: {where} for {scope} of {args.saleor_api_url}")
    kept_note = " (the saved one, unchanged)" if checked.secret_from_store else ""
    what = "API key" if chosen.username is None else f"password for {chosen.username}"
    print(f"{what} stored encrypted: {key_hint(chosen.api_key)}{kept_note}")
    return 0


async def installations(settings: Settings) -> int:
    """Every installation KOM knows, with the settings each channel has."""
    from plugin.runtime import _open_store

    store = await _open_store(settings)
    try:
        known = await store.installations()
        rows = []
        for installation in known:
            parts = []
            for channel in await store.channels(installation.id):
                own = await store.settings_for(installation.id, channel)
                if own is not None:
                    where = f"channel {channel}" if channel else "all channels"
                    parts.append(f"{where}: {own.provider} {own.environment} {own.region}")
            rows.append(
                [
                    str(installation.id),
                    installation.platform,
                    installation.api_url,
                    "; ".join(parts) or "not configured",
                ]
            )
    except SecretError as exc:
        _error(f"{exc}: KOM_SECRET_KEY must be the key the database was written with")
        return 2
    finally:
        await store.close()
    if not rows:
        print(f"no installations yet: install KOM in Saleor with {settings.public_url}/api/manifest")
        return 0
    header = ["id", "platform", "API URL", "settings"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0
