"""The Saleor app manifest, built from the repository's ``manifest.json`` template.

Saleor reads the manifest once, at install (``appFetchManifest`` then the install task);
later changes need a reinstall or ``webhookUpdate``. The template holds relative URLs and
no subscription queries: ``build_manifest`` makes every ``*Url`` absolute with KOM's public
URL (never the request's ``Host``: Saleor's IP filter strips its port) and fills each
webhook's ``query`` from ``webhooks/<name with _>.graphql``, so a query is edited and
schema-validated in one place (tests/saleor/test_documents.py).

``requiredSaleorVersion`` is ``">=3.21 <4"``:

- 3.21 is where the parts KOM relies on are all present: the Transactions API with
  app-owned transactions and ``transaction*Requested`` sync webhooks (whose response
  ``amount`` defaults to the requested one since 3.21), and the mandatory ``transactionId``
  on granted refunds, so each grant names the transaction (the Klarna order) it refunds.
  It is also the floor saleor/apps' payment apps declare.
- APP_DELETED is delivered to the app itself only from 3.23.5. On 3.21–3.23.4 the
  uninstall is simply not announced and KOM keeps a stale installation row, which is
  harmless: its token no longer works and Saleor sends nothing more. No reason to refuse
  those versions.
- Every document is validated against the 3.24 development schema
  (``../shared/saleor/schema.graphql``), and the payloads were checked against what a real
  3.23.28 sent (``../shared/saleor/captures-3.23.28``). Nothing used is marked "Added in
  Saleor 3.22" or later; the order sweep uses the deprecated ``orders(filter:)`` because
  ``where:`` only exists from 3.22.
- ``<4``: 4.0 removes deprecated fields and headers (``X-Saleor-*``, ``filter``).

``WEBHOOKS`` is the single list the web layer routes with: URL path, the ``Saleor-Event``
header it must carry, and whether Saleor waits for the answer (sync).
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "BY_SALEOR_EVENT",
    "TEMPLATE",
    "WEBHOOKS",
    "ManifestError",
    "WebhookSpec",
    "audience",
    "build_manifest",
    "subscription_query",
]

# The repository's top-level manifest.json; wheels carry a copy inside this package
# (pyproject.toml force-includes it), so an installed KOM finds it too.
_PACKAGED = Path(__file__).resolve().parent / "manifest.json"
TEMPLATE = _PACKAGED if _PACKAGED.is_file() else Path(__file__).resolve().parents[2] / "manifest.json"
_DOCUMENTS = Path(__file__).resolve().parent / "webhooks"


class ManifestError(ValueError):
    """The template, a subscription document or the public URL is unusable."""


@dataclass(frozen=True)
class WebhookSpec:
    """One manifest webhook: ``name`` is its URL slug, ``event`` the Saleor event enum name."""

    name: str
    event: str
    sync: bool

    @property
    def saleor_event(self) -> str:
        """The ``Saleor-Event`` header value Saleor sends with it (lower-case event)."""
        return self.event.lower()

    @property
    def path(self) -> str:
        return f"/api/webhooks/{self.name}"

    @property
    def typename(self) -> str:
        """The payload's ``__typename``, e.g. ``FulfillmentCreated``."""
        return "".join(word.capitalize() for word in self.event.split("_"))

    @property
    def document(self) -> Path:
        return _DOCUMENTS / f"{self.name.replace('-', '_')}.graphql"


# The three *_SESSION webhooks make KOM the payment app of the checkout (docs/saleor-payment-app.md).
WEBHOOKS: dict[str, WebhookSpec] = {
    spec.name: spec
    for spec in (
        WebhookSpec("fulfillment-created", "FULFILLMENT_CREATED", sync=False),
        WebhookSpec("fulfillment-approved", "FULFILLMENT_APPROVED", sync=False),
        WebhookSpec("fulfillment-canceled", "FULFILLMENT_CANCELED", sync=False),
        WebhookSpec("order-cancelled", "ORDER_CANCELLED", sync=False),
        WebhookSpec("transaction-charge-requested", "TRANSACTION_CHARGE_REQUESTED", sync=True),
        WebhookSpec("transaction-refund-requested", "TRANSACTION_REFUND_REQUESTED", sync=True),
        WebhookSpec("transaction-cancelation-requested", "TRANSACTION_CANCELATION_REQUESTED", sync=True),
        WebhookSpec("payment-gateway-initialize-session", "PAYMENT_GATEWAY_INITIALIZE_SESSION", sync=True),
        WebhookSpec("transaction-initialize-session", "TRANSACTION_INITIALIZE_SESSION", sync=True),
        WebhookSpec("transaction-process-session", "TRANSACTION_PROCESS_SESSION", sync=True),
        WebhookSpec("app-deleted", "APP_DELETED", sync=False),
    )
}

BY_SALEOR_EVENT: dict[str, WebhookSpec] = {spec.saleor_event: spec for spec in WEBHOOKS.values()}


@functools.cache
def subscription_query(name: str) -> str:
    """The subscription document of webhook ``name`` (file contents, comments included)."""
    spec = WEBHOOKS.get(name)
    if spec is None:
        raise ManifestError(f"no webhook named {name!r}")
    try:
        return spec.document.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"subscription document for {name!r} missing: {spec.document}") from exc


def build_manifest(public_url: str, version: str, *, template: Path = TEMPLATE) -> dict[str, Any]:
    """The manifest Saleor fetches: template + version + absolute URLs + subscription queries."""
    base = _base_url(public_url)
    if not version:
        raise ManifestError("the manifest needs a version")
    manifest = copy.deepcopy(_template(str(template)))
    manifest["version"] = version
    for key, value in manifest.items():
        if key.endswith("Url") and isinstance(value, str):
            manifest[key] = _absolute(base, value)
    for webhook in manifest["webhooks"]:
        webhook["targetUrl"] = _absolute(base, webhook["targetUrl"])
        webhook["query"] = subscription_query(webhook["name"])
    manifest["audience"] = audience(public_url)
    return manifest


def audience(public_url: str) -> str:
    """The ``aud`` Saleor puts in the Dashboard tokens of this KOM (the manifest's ``audience``).

    Saleor copies the manifest's ``audience`` into every app token it mints for the app
    (saleor/core/jwt.py, ``_create_access_token_for_third_party_actions``), so a token meant
    for some other audience is recognisable as such. KOM's public URL names this deployment.
    """
    return _base_url(public_url)


@functools.cache
def _template(path: str) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read the manifest template {path}: {exc}") from exc
    _check_webhooks(manifest.get("webhooks"))
    return manifest


def _check_webhooks(webhooks: object) -> None:
    # The template and WEBHOOKS must agree, or Saleor would deliver events the web layer
    # cannot route (or never deliver ones it expects).
    if not isinstance(webhooks, list):
        raise ManifestError("manifest template has no webhooks list")
    names = [hook.get("name") for hook in webhooks if isinstance(hook, dict)]
    if len(names) != len(webhooks) or sorted(map(str, names)) != sorted(WEBHOOKS):
        raise ManifestError(f"template webhooks {names} differ from WEBHOOKS {sorted(WEBHOOKS)}")
    for hook in webhooks:
        spec = WEBHOOKS[hook["name"]]
        kind, other = ("syncEvents", "asyncEvents") if spec.sync else ("asyncEvents", "syncEvents")
        if hook.get(kind) != [spec.event] or hook.get(other) or hook.get("targetUrl") != spec.path:
            raise ManifestError(f"template webhook {spec.name!r} does not match {spec}")
        if "query" in hook:
            raise ManifestError(f"template webhook {spec.name!r} must not inline its query")


def _base_url(public_url: str) -> str:
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ManifestError(f"public URL must be an absolute http(s) URL, got {public_url!r}")
    return public_url.rstrip("/")


def _absolute(base: str, url: str) -> str:
    # Plain concatenation keeps a path prefix (https://host/kom + /app); urljoin would drop it.
    return f"{base}{url}" if url.startswith("/") else url
