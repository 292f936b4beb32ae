"""Who is calling the dashboard API: the Saleor Dashboard's app token, checked like the app SDK does.

The page receives the token from the Dashboard (AppBridge ``handshake`` / ``tokenRefresh``)
and sends it with every call, together with the Saleor API URL:

- ``Authorization-Bearer: <token>`` (what AppBridge's ``fetch`` sends) or
  ``Authorization: Bearer <token>``;
- ``Saleor-Api-Url: https://shop.example.com/graphql/``.

The token is an RS256 JWT signed with the installation's key set (the JWKS KOM stored at
install; refetched when Saleor rotates its key, see adapters/saleor/keys.py). KOM checks
what Saleor puts in it (saleor/core/jwt.py, ``create_access_token_for_app``):

- the signature, ``exp``, ``iat`` (not in the future) and a lifetime of at most
  ``MAX_TOKEN_LIFETIME`` (Saleor's ``JWT_TTL_APP_ACCESS`` defaults to five minutes): a
  leaked token is useful only briefly;
- ``iss`` is this installation's Saleor API URL (Saleor sets it to its own ``/graphql/``
  URL, the ``Saleor-Api-Url`` it installed KOM with): a token from another Saleor sharing
  the signing key (a hosted fleet) does not pass for this one, even with the same app id;
- ``aud``, which Saleor copies from the manifest's ``audience``, is KOM's (manifest.py);
  installations made before KOM declared one get tokens without ``aud``;
- ``owner`` is ``saleor``, ``type`` is ``thirdparty`` (an app token, not a user's own),
  ``is_staff`` is true, ``app`` is this installation's app, and ``user_permissions`` hold
  what the endpoint needs.

No cookies and no session: a request without the headers is anonymous, so there is no
CSRF surface. Every refusal is 401 (who are you?) or 403 (you may not).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from adapters.saleor import jws
from adapters.saleor.keys import JwksUnavailable, signing_keys
from adapters.saleor.manifest import audience
from plugin.composition import Services
from plugin.service.records import Installation

log = logging.getLogger("kom.dashboard")

# Settings hold the provider credentials and decide when money is captured: like Saleor's own
# payment apps (saleor/apps' Stripe app), configuring the app takes both.
SETTINGS_PERMISSIONS = ("MANAGE_APPS", "HANDLE_PAYMENTS")
# Reading which orders KOM handled, and how captures and refunds were allocated.
ACTIVITY_PERMISSIONS = ("MANAGE_ORDERS",)
# "Retry now" makes KOM capture and refund at the provider again: it moves money.
RETRY_PERMISSIONS = ("MANAGE_ORDERS", "HANDLE_PAYMENTS")

# Saleor and KOM clocks may differ by a little; tokens live five minutes.
CLOCK_LEEWAY = timedelta(seconds=10)
# Saleor's default is five minutes (JWT_TTL_APP_ACCESS); longer-lived tokens are refused.
MAX_TOKEN_LIFETIME = timedelta(minutes=15)
_MAX_TOKEN = 16 * 1024


@dataclass(frozen=True)
class Caller:
    """A verified Dashboard user of one installation."""

    installation: Installation
    email: str | None
    user_id: str | None
    permissions: frozenset[str]

    def may(self, needed: Iterable[str]) -> bool:
        return set(needed) <= self.permissions

    def require(self, needed: Iterable[str]) -> None:
        missing = [p for p in needed if p not in self.permissions]
        if missing:
            raise HTTPException(
                403,
                f"Your Saleor user lacks the permission{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} needed for this.",
            )


def bearer_token(request: Request) -> str | None:
    token = request.headers.get("authorization-bearer", "").strip()
    if token:
        return token
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def authenticate(request: Request, services: Services) -> Caller:
    """The caller, or HTTPException 401 with a sentence saying why not."""
    api_url = request.headers.get("saleor-api-url", "").strip()
    if not api_url:
        raise HTTPException(401, "Missing Saleor-Api-Url header.")
    token = bearer_token(request)
    if token is None:
        raise HTTPException(401, "Missing dashboard token (Authorization-Bearer header).")
    if len(token) > _MAX_TOKEN:
        raise HTTPException(401, "The dashboard token is not valid.")
    installation = await services.store.installation_by_url(api_url)
    if installation is None:
        raise HTTPException(401, "KOM is not installed for this Saleor (unknown Saleor-Api-Url).")
    claims = await _verified_claims(token, installation, services)
    _check_claims(claims, installation, audience(services.settings.public_url))
    user_permissions = claims.get("user_permissions")
    if not isinstance(user_permissions, list):
        raise HTTPException(401, "The token carries no user permissions.")
    email, user_id = claims.get("email"), claims.get("user_id")
    return Caller(
        installation=installation,
        email=email if isinstance(email, str) else None,
        user_id=user_id if isinstance(user_id, str) else None,
        permissions=frozenset(p for p in user_permissions if isinstance(p, str)),
    )


def _check_claims(claims: dict[str, Any], installation: Installation, ours: str) -> None:
    if claims.get("iss") != installation.api_url:
        raise HTTPException(401, "The token was issued by another Saleor.")
    aud = claims.get("aud")
    if aud is not None and aud != ours and not (isinstance(aud, list) and ours in aud):
        raise HTTPException(401, "The token was issued for another audience.")
    if claims.get("owner") != "saleor" or claims.get("type") != "thirdparty":
        raise HTTPException(401, "The token is not an app token from the Saleor Dashboard.")
    if claims.get("is_staff") is not True:
        raise HTTPException(401, "The token does not belong to a staff user.")
    if claims.get("app") != installation.app_id:
        raise HTTPException(401, "The token was issued for another app.")


async def _verified_claims(token: str, installation: Installation, services: Services) -> dict[str, Any]:
    now = services.store.clock()

    def check(keys: jws.KeySet) -> dict[str, Any]:
        return jws.verify_jwt(token, keys, now=now, leeway=CLOCK_LEEWAY, max_lifetime=MAX_TOKEN_LIFETIME)

    try:
        return await signing_keys(services).verified(installation, check)
    except jws.ExpiredToken as exc:
        raise HTTPException(401, "The dashboard token has expired: reload the page.") from exc
    except jws.UnknownKeyId as exc:
        raise HTTPException(401, "The dashboard token is signed with an unknown key.") from exc
    except jws.SignatureError as exc:
        raise HTTPException(401, f"The dashboard token is not valid: {exc}.") from exc
    except JwksUnavailable as exc:
        log.warning("could not refresh the JWKS of %s: %s", installation.api_url, exc)
        raise HTTPException(401, "The dashboard token is signed with an unknown key.") from exc
