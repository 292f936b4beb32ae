"""``POST /api/register``: Saleor hands KOM an app token at install. Who may (re)install, and how.

Saleor's install task posts ``{"auth_token": ...}`` with a ``Saleor-Api-Url`` header. The
request is not signed, so anyone can send one; KOM believes only what Saleor confirms:

1. **Rate limit**: a few registrations per client address and per process (429 otherwise).
2. **Address**: the URL must match ``KOM_ALLOWED_SALEOR_URLS`` and its host must resolve to
   public addresses only (``plugin.web.egress``); it is resolved once, and every call
   below connects to the checked address. Unresolvable or non-IDNA names are 400, private
   addresses 403. Resolver and TLS error texts are logged, never sent back.
3. **Token proof**: ``{ app { id } }`` with the token says which app it belongs to, and the
   JWKS must be fetchable and within the caps of ``jws.KeySet``.
4. **Same owner**: an installation already stored for that URL is only replaced when the
   caller proves it is the same app:

   - the same app id: a fresh token of the same app; its settings stay;
   - another app id while the stored token still works: someone else's app is trying to
     take the installation over (and with it the merchant's provider key): 403;
   - another app id and Saleor rejects the stored token: the old app is gone, this is a
     real reinstall (or a change of owner). Nothing carries over: settings, credentials,
     orders and requests of the old installation are dropped before the new one is saved;
   - Saleor cannot be asked (timeout, 5xx): 503, nothing changes; Saleor's install fails
     and the merchant retries.
"""

from __future__ import annotations

import json
import logging
import re
from enum import Enum
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.saleor.keys import JwksUnavailable, fetch_jwks
from adapters.saleor.services import SaleorServices
from plugin.web.body import read_capped
from plugin.web.egress import EgressRefused, egress
from plugin.web.ratelimit import TokenBucket

__all__ = ["register"]

log = logging.getLogger("kom.saleor.install")

MAX_BODY = 64 * 1024
SALEOR_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
_LIMITS_KEY = "kom.saleor.register-limits"
_APP_QUERY = "query KomAppId { app { id } }"


class _Token(Enum):
    WORKS = "works"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    # Saleor shows {"error": {"message": ...}} to the merchant when an install fails.
    return JSONResponse({"error": {"message": message}}, status_code=status, headers=headers)


def _limits(services: SaleorServices) -> tuple[TokenBucket, TokenBucket]:
    found = services.extra.get(_LIMITS_KEY)
    if isinstance(found, tuple):
        return found
    # Installs are rare: 10 at once then one per 30 s per client, 60 then one per second in all.
    limits = (TokenBucket(burst=10, rate=1 / 30), TokenBucket(burst=60, rate=1.0))
    services.extra[_LIMITS_KEY] = limits
    return limits


def _rate_limited(request: Request, services: SaleorServices) -> Response | None:
    per_client, overall = _limits(services)
    client = request.client.host if request.client else "?"
    wait = per_client.retry_after(client) or overall.retry_after("*")
    if wait is None:
        return None
    log.warning("registration from %s rate-limited", client)
    return _error(
        429, "Too many installation attempts; try again shortly.", {"Retry-After": str(int(wait) + 1)}
    )


async def register(request: Request) -> Response:
    services: SaleorServices = request.app.state.services
    limited = _rate_limited(request, services)
    if limited is not None:
        return limited
    body = await read_capped(request, MAX_BODY)
    api_url = request.headers.get("saleor-api-url", "").strip()
    if not api_url:
        return _error(400, "Missing Saleor-Api-Url header.")
    if len(api_url) > 2048:
        return _error(400, "The Saleor-Api-Url header is too long.")
    if not re.fullmatch(services.settings.allowed_saleor_urls, api_url):
        log.warning("refused installation from %s: not in KOM_ALLOWED_SALEOR_URLS", api_url)
        return _error(403, "This Saleor is not allowed to install this KOM (KOM_ALLOWED_SALEOR_URLS).")
    token = _token(body)
    if token is None:
        return _error(400, 'The body must be JSON with a non-empty "auth_token".')
    policy = egress(services)
    try:
        target = await policy.check(api_url)
    except EgressRefused as exc:
        log.warning("refused installation from %s: %s", api_url, exc.reason)
        return _error(403 if exc.kind == "private" else 400, exc.reason)
    async with policy.client(target, timeout=SALEOR_TIMEOUT) as http:
        verdict, app_id = await _probe_token(http, api_url, token)
        if verdict is not _Token.WORKS or app_id is None:
            return _error(401, "Saleor did not confirm the app token (query { app { id } }).")
        try:
            keys = await fetch_jwks(http, api_url)
        except JwksUnavailable as exc:
            log.warning("installation from %s failed: %s", api_url, exc)
            return _error(401, f"{exc}.")
        refusal = await _same_owner(services, http, api_url, app_id)
        if refusal is not None:
            return refusal
    await services.store.save_installation(
        platform="saleor", api_url=api_url, app_id=app_id, token=token, jwks=dict(keys.document)
    )
    log.info("installed for %s as app %s", api_url, app_id)
    return JSONResponse({"success": True})


def _token(body: bytes) -> str | None:
    try:
        token = json.loads(body)["auth_token"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return token if isinstance(token, str) and token.strip() and len(token) <= 4096 else None


async def _same_owner(
    services: SaleorServices, http: httpx.AsyncClient, api_url: str, app_id: str
) -> Response | None:
    """None when ``app_id`` may own the installation of ``api_url`` (dropping a dead one), else why not."""
    existing = await services.store.installation_by_url(api_url)
    if existing is None or existing.app_id == app_id:
        return None  # a first install, or a new token of the same app: its settings stay
    verdict, _ = await _probe_token(http, api_url, existing.token)
    if verdict is _Token.WORKS:
        log.warning(
            "refused re-registration of %s by app %s: it is installed as app %s, whose token still works",
            api_url,
            app_id,
            existing.app_id,
        )
        return _error(
            403,
            "KOM is already installed for this Saleor as another app. Uninstall that app first; "
            "a new installation then starts without the old settings.",
        )
    if verdict is _Token.UNKNOWN:
        return _error(503, "KOM could not check the existing installation with Saleor; try again.")
    # The old app is gone: nothing of it may reach the new owner.
    await services.store.delete_installation(api_url)
    log.warning(
        "%s reinstalled as app %s (was %s, whose token Saleor rejects): old settings and credentials dropped",
        api_url,
        app_id,
        existing.app_id,
    )
    return None


async def _probe_token(http: httpx.AsyncClient, api_url: str, token: str) -> tuple[_Token, str | None]:
    """Ask Saleor which app ``token`` belongs to: works (with the id), rejected, or unknown.

    Saleor treats an unknown or revoked app token as anonymous: ``app`` is null or the query
    is refused with errors. Only an answer like that is a rejection; no answer (timeout,
    connection error, 5xx) says nothing about the token.
    """
    try:
        response = await http.post(
            api_url,
            json={"query": _APP_QUERY},
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as exc:
        log.info("app-token check at %s failed: %r", api_url, exc)  # may carry TLS details: log only
        return _Token.UNKNOWN, None
    if response.status_code >= 500:
        return _Token.UNKNOWN, None
    if response.status_code in (401, 403):
        return _Token.REJECTED, None
    try:
        answer: Any = response.json()
    except ValueError:
        return _Token.UNKNOWN, None
    if not isinstance(answer, dict) or (response.status_code != 200 and "errors" not in answer):
        return _Token.UNKNOWN, None
    data = answer.get("data")
    app = data.get("app") if isinstance(data, dict) else None
    if isinstance(app, dict) and isinstance(app.get("id"), str) and app["id"]:
        return _Token.WORKS, str(app["id"])
    if isinstance(data, dict) or answer.get("errors"):
        return _Token.REJECTED, None
    return _Token.UNKNOWN, None
