"""App installation and removal the way Saleor's install task does it.

1. ``GET manifest_url`` (``Saleor-Schema-Version: 3.23``, no redirects, 2 s/18 s).
2. Validate: ``id``/``version``/``name``, known permissions, a unique identifier, and every
   webhook's ``query`` parsed and validated against the schema (events inferred from the
   query when ``asyncEvents``/``syncEvents`` are both empty).
3. Create the App ("App:<n>"), its 30-character token and its webhooks.
4. ``POST tokenTargetUrl`` with ``{"auth_token": ...}`` and the ``Saleor-*`` headers; the
   app may call back (``{ app { id } }``, JWKS) meanwhile. Non-2xx or a network error:
   the app is deleted and the installation fails (``InstallationFailed``).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import string
from dataclasses import dataclass
from typing import Any

import httpx
from graphql import GraphQLSchema

from .ids import to_global_id
from .state import App, Store, Webhook
from .webhooks import DeliveryOptions, event_types_of, parse_subscription

__all__ = ["InstallationFailed", "InstalledApp", "Installer"]

SCHEMA_VERSION = "3.23"
_TOKEN_ALPHABET = string.ascii_letters + string.digits


class InstallationFailed(Exception):
    """Saleor marks the AppInstallation FAILED with this message (shown to the merchant)."""


@dataclass(frozen=True)
class InstalledApp:
    id: str  # global id, "App:<n>" in base64
    pk: int
    identifier: str
    token: str


def _enum_values(schema: GraphQLSchema, name: str) -> set[str]:
    return set(getattr(schema.get_type(name), "values", {}))


class Installer:
    def __init__(self, store: Store, schema: GraphQLSchema, options: DeliveryOptions) -> None:
        self.store = store
        self.schema = schema
        self.options = options

    def _headers(self, url: str, extra: dict[str, str]) -> dict[str, str]:
        headers = {"User-Agent": f"Saleor/{SCHEMA_VERSION}", "Saleor-Schema-Version": SCHEMA_VERSION, **extra}
        if self.options.host_without_port:
            headers["Host"] = httpx.URL(url).host
        return headers

    async def fetch_manifest(self, client: httpx.AsyncClient, manifest_url: str) -> dict[str, Any]:
        try:
            response = await client.get(manifest_url, headers=self._headers(manifest_url, {}))
        except httpx.HTTPError as exc:
            raise InstallationFailed(f"Unable to fetch manifest data: {exc}") from exc
        if response.status_code != 200:
            raise InstallationFailed(f"Unable to fetch manifest data: HTTP {response.status_code}")
        try:
            manifest = response.json()
        except ValueError:
            raise InstallationFailed("Incorrect structure of manifest.") from None
        if not isinstance(manifest, dict):
            raise InstallationFailed("Incorrect structure of manifest.")
        return manifest

    def create_app(self, manifest: dict[str, Any], manifest_url: str) -> App:
        """Validate the manifest and create the (not yet installed) app, or raise."""
        for required in ("id", "version", "name"):
            if not manifest.get(required):
                raise InstallationFailed(f"Field required: {required}")
        identifier = str(manifest["id"])
        if any(a.identifier == identifier and not a.deleted for a in self.store.apps.values()):
            raise InstallationFailed(f"App with the same identifier is already installed: {identifier}")
        permissions = list(manifest.get("permissions") or [])
        unknown = set(permissions) - _enum_values(self.schema, "PermissionEnum")
        if unknown:
            raise InstallationFailed(f"Given permissions don't exist: {sorted(unknown)}")
        pk = self.store.next_pk("app")
        webhooks = [self._webhook(pk, spec) for spec in manifest.get("webhooks") or []]
        app = App(
            pk=pk,
            identifier=identifier,
            name=str(manifest["name"]),
            permissions=permissions,
            token="".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(30)),
            manifest=manifest,
            manifest_url=manifest_url,
            created=self.store.now(),
            webhooks=webhooks,
        )
        self.store.apps[pk] = app
        return app

    def _webhook(self, app_pk: int, spec: dict[str, Any]) -> Webhook:
        name = spec.get("name") or ""
        target = str(spec.get("targetUrl") or "")
        if httpx.URL(target).scheme not in ("http", "https"):
            raise InstallationFailed(f"Webhook {name!r}: targetUrl must be http(s), got {target!r}")
        query = spec.get("query")
        if not query:
            # Saleor would send a legacy snake_case payload; KOM always defines a query.
            raise InstallationFailed(
                f"Webhook {name!r} has no query (the fake sends subscription payloads only)"
            )
        try:
            document = parse_subscription(self.schema, query)
        except ValueError as exc:
            raise InstallationFailed(f"Webhook {name!r}: {exc}") from None
        async_events = list(spec.get("asyncEvents") or [])
        sync_events = list(spec.get("syncEvents") or [])
        bad = (set(async_events) - _enum_values(self.schema, "WebhookEventTypeAsyncEnum")) | (
            set(sync_events) - _enum_values(self.schema, "WebhookEventTypeSyncEnum")
        )
        if bad:
            raise InstallationFailed(f"Webhook {name!r}: unknown events {sorted(bad)}")
        if not async_events and not sync_events:
            inferred = event_types_of(self.schema, document)
            sync_names = _enum_values(self.schema, "WebhookEventTypeSyncEnum")
            sync_events = [e for e in inferred if e in sync_names]
            async_events = [e for e in inferred if e not in sync_names]
        return Webhook(
            pk=self.store.next_pk("webhook"),
            app_pk=app_pk,
            name=name,
            target_url=target,
            query=query,
            document=document,
            async_events=async_events,
            sync_events=sync_events,
            is_active=bool(spec.get("isActive", True)),
            custom_headers=dict(spec.get("customHeaders") or {}),
        )

    async def send_token(self, client: httpx.AsyncClient, app: App, api_url: str) -> None:
        target = app.manifest.get("tokenTargetUrl")
        if not target:
            return
        domain = httpx.URL(api_url).netloc.decode()
        headers = self._headers(
            target,
            {
                "Content-Type": "application/json",
                "Saleor-Domain": domain,
                "X-Saleor-Domain": domain,
                "Saleor-Api-Url": api_url,
            },
        )
        body = json.dumps({"auth_token": app.token}).encode()
        try:
            response = await client.post(target, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise InstallationFailed(
                f"Failed to connect to app. Try later or contact with app support. ({exc})"
            ) from exc
        if not response.is_success:
            message = f"App internal error ({response.status_code})"
            with contextlib.suppress(ValueError, KeyError, TypeError):
                message = response.json()["error"]["message"]
            raise InstallationFailed(message)

    def installed(self, app: App) -> InstalledApp:
        assert app.token is not None
        return InstalledApp(
            id=to_global_id("App", app.pk), pk=app.pk, identifier=app.identifier, token=app.token
        )
