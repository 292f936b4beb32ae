"""The settings form: what the page may read (never a secret) and how a submitted form is checked.

A form is a JSON object::

    {"provider": "klarna", "environment": "playground", "region": "eu",
     "credential_type": "api_key" | "username_password",
     "api_key": "...",            # the API key, or the password; omit to keep the saved one
     "username": "...",           # username_password only
     "base_url": "" | "https://...",
     "capture_mode": "on_fulfillment" | "manual",
     "shipping_fee": "first_parcel" | "last_parcel",
     "unknown_origin": "earliest_first" | "latest_first",
     "extend_authorization": false | true,   # extend an expiring authorization with goods unshipped
     "payments_enabled": false | true,       # Klarna Payments at checkout (KOM as the payment app)
     "payment_categories": ["pay_later", ...],  # offered; [] = whatever Klarna offers
     "payment_locale": "" | "sv-SE",         # fixed locale; "" = the checkout's language
     "purchase_countries": "" | "SE, FI"}    # shoppers' countries allowed; "" = any

``check_form`` answers either the ``ChannelSettings`` to store or ``{field: message}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from adapters.klarna.hosts import Environment, Provider, Region, base_url, check_base_url
from plugin.domain.policy import OriginPolicy, ShippingFeePolicy
from plugin.service.records import ChannelSettings

CAPTURE_MODES = ("on_fulfillment", "manual")
# Klarna Payments' payment_method_categories identifiers (docs.klarna.com, Payments API).
PAYMENT_CATEGORIES = ("pay_now", "pay_later", "pay_over_time", "direct_debit", "direct_bank_transfer")
_LOCALE = re.compile(r"[a-z]{2}-[A-Z]{2}")
_COUNTRY = re.compile(r"[A-Z]{2}")
CREDENTIAL_TYPES = ("api_key", "username_password")
MAX_SECRET = 1024
MAX_USERNAME = 255
# Saleor channel slugs: letters, digits, "-" and "_" ("" is the default for every channel).
CHANNEL = re.compile(r"[\w-]{0,255}")
# Klarna and Kustom API keys say which provider and environment they belong to.
_KEY_PREFIX = re.compile(r"(?P<provider>klarna|kco)_(?P<env>test|live)_api_", re.IGNORECASE)
_LOOPBACK = ("localhost", "127.0.0.1", "::1")

DEFAULTS: dict[str, Any] = {
    "provider": Provider.KLARNA.value,
    "environment": Environment.PLAYGROUND.value,
    "region": Region.EU.value,
    "credential_type": "api_key",
    "username": None,
    "base_url": None,
    "capture_mode": "on_fulfillment",
    "shipping_fee": ShippingFeePolicy.FIRST_PARCEL.value,
    "unknown_origin": OriginPolicy.EARLIEST_FIRST.value,
    "extend_authorization": False,
    "payments_enabled": False,
    "payment_categories": [],
    "payment_locale": None,
    "purchase_countries": "",
    "api_key_set": False,
    "api_key_hint": None,
}


def key_hint(secret: str) -> str:
    """Enough of a saved key to recognise it: its last four characters, if it is long."""
    return f"…{secret[-4:]}" if len(secret) >= 16 else "…"


def public_view(settings: ChannelSettings | None) -> dict[str, Any]:
    """The settings as the page may see them: the secret only as "set" and a hint."""
    if settings is None:
        return dict(DEFAULTS)
    return {
        "provider": settings.provider,
        "environment": settings.environment,
        "region": settings.region,
        "credential_type": "api_key" if settings.username is None else "username_password",
        "username": settings.username,
        "base_url": settings.base_url,
        "capture_mode": settings.capture_mode,
        "shipping_fee": settings.shipping_fee,
        "unknown_origin": settings.unknown_origin,
        "extend_authorization": settings.extend_authorization,
        "payments_enabled": settings.payments_enabled,
        "payment_categories": list(settings.payment_categories),
        "payment_locale": settings.payment_locale,
        "purchase_countries": ", ".join(settings.purchase_countries),
        "api_key_set": bool(settings.api_key),
        "api_key_hint": key_hint(settings.api_key) if settings.api_key else None,
    }


@dataclass(frozen=True)
class Checked:
    settings: ChannelSettings | None
    errors: dict[str, str]
    secret_from_store: bool = False


def check_form(form: Any, channel: str, stored: ChannelSettings | None) -> Checked:
    """Validate a submitted form for ``channel``; ``stored`` is that channel's own saved row."""
    if not isinstance(form, dict):
        return Checked(None, {"form": "The settings must be a JSON object."})
    errors: dict[str, str] = {}

    def choice(name: str, allowed: tuple[str, ...], message: str) -> str:
        value = form.get(name, DEFAULTS[name])
        if not isinstance(value, str) or value not in allowed:
            errors[name] = message
            return str(DEFAULTS[name])
        return value

    provider = choice("provider", tuple(Provider), "Choose Klarna or Kustom.")
    environment = choice("environment", tuple(Environment), "Choose playground or production.")
    region = choice("region", tuple(Region), "Choose EU, North America or Oceania.")
    credential_type = choice(
        "credential_type", CREDENTIAL_TYPES, "Choose an API key, or a username and password."
    )
    capture_mode = choice(
        "capture_mode", CAPTURE_MODES, "Choose when KOM captures: on each fulfillment, or manually."
    )
    shipping_fee = choice(
        "shipping_fee", tuple(ShippingFeePolicy), "Choose the first or the last parcel for the shipping fee."
    )
    unknown_origin = choice(
        "unknown_origin", tuple(OriginPolicy), "Choose which invoice returns of unknown parcel are booked on."
    )

    extend_authorization = form.get("extend_authorization", DEFAULTS["extend_authorization"])
    if not isinstance(extend_authorization, bool):
        errors["extend_authorization"] = "Choose whether KOM extends expiring authorizations."
        extend_authorization = False

    payments = _payment_rules(form, errors)

    username = _text(form.get("username"))
    if credential_type == "username_password":
        if not username:
            errors["username"] = "Enter the username."
        elif len(username) > MAX_USERNAME or ":" in username or not username.isprintable():
            errors["username"] = "The username must be printable, without a colon, at most 255 characters."
    else:
        username = None

    secret_field = "api_key"
    secret = _text(form.get("api_key"))
    from_store = False
    if secret is None:
        same_kind = stored is not None and (stored.username is None) == (username is None)
        if stored is not None and same_kind and stored.api_key:
            secret, from_store = stored.api_key, True
        elif credential_type == "api_key":
            errors[secret_field] = "Enter the API key."
        else:
            errors[secret_field] = "Enter the password."
    elif len(secret) > MAX_SECRET or not (secret.isascii() and secret.isprintable()) or " " in secret:
        errors[secret_field] = (
            "The API key must be printable ASCII without spaces."
            if credential_type == "api_key"
            else "The password must be printable ASCII without spaces."
        )
    elif not errors.get("provider") and not errors.get("environment"):
        mismatch = _key_mismatch(secret, provider, environment)
        if mismatch:
            errors[secret_field] = mismatch

    override = _text(form.get("base_url"))
    if override is not None:
        try:
            override = check_base_url(override)
        except ValueError as exc:
            errors["base_url"] = str(exc)
        else:
            host = urlsplit(override).hostname or ""
            if urlsplit(override).scheme != "https" and environment == "production" and host not in _LOOPBACK:
                errors["base_url"] = "Production credentials are only sent over https://."
    if provider == Provider.KUSTOM and region != Region.EU and override is None and "region" not in errors:
        try:
            base_url(Provider(provider), Environment(environment), Region(region))
        except ValueError as exc:
            errors["region"] = str(exc)
    if from_store and stored is not None and not errors:
        # A saved secret goes only to the endpoint it was saved for: whoever changes where it
        # is sent (a base URL, or provider, environment and region) must type it again.
        wanted = _endpoint(provider, environment, region, override)
        if wanted is None or wanted != _endpoint(
            stored.provider, stored.environment, stored.region, stored.base_url
        ):
            what = "API key" if credential_type == "api_key" else "password"
            errors[secret_field] = (
                f"Enter the {what} again: KOM sends a saved {what} only to the address it was saved for."
            )

    if errors:
        return Checked(None, errors)
    assert secret is not None
    return Checked(
        ChannelSettings(
            channel=channel,
            provider=provider,
            environment=environment,
            region=region,
            api_key=secret,
            username=username,
            base_url=override,
            capture_mode=capture_mode,
            shipping_fee=shipping_fee,
            unknown_origin=unknown_origin,
            extend_authorization=extend_authorization,
            **payments,
        ),
        {},
        secret_from_store=from_store,
    )


def _payment_rules(form: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """Klarna Payments at checkout: on/off, categories offered, locale and purchase countries."""
    enabled = form.get("payments_enabled", False)
    if not isinstance(enabled, bool):
        errors["payments_enabled"] = "Choose whether shoppers pay with Klarna at checkout."
        enabled = False
    categories = form.get("payment_categories", [])
    if not isinstance(categories, list) or not all(c in PAYMENT_CATEGORIES for c in categories):
        errors["payment_categories"] = "Choose among Klarna's payment categories."
        categories = []
    locale = _text(form.get("payment_locale"))
    if locale is not None and not _LOCALE.fullmatch(locale):
        errors["payment_locale"] = (
            "A locale is language-COUNTRY, for example sv-SE; leave empty for the checkout's."
        )
    raw = _text(form.get("purchase_countries")) or ""
    countries = [part.strip().upper() for part in raw.split(",") if part.strip()]
    bad = [c for c in countries if not _COUNTRY.fullmatch(c)]
    if bad:
        errors["purchase_countries"] = (
            f"Two-letter country codes separated by commas, for example SE, FI (not {bad[0]})."
        )
    return {
        "payments_enabled": enabled,
        "payment_categories": tuple(dict.fromkeys(categories)),
        "payment_locale": locale,
        "purchase_countries": tuple(dict.fromkeys(countries)),
    }


def _endpoint(provider: str, environment: str, region: str, override: str | None) -> str | None:
    try:
        return base_url(Provider(provider), Environment(environment), Region(region), override)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _key_mismatch(secret: str, provider: str, environment: str) -> str | None:
    found = _KEY_PREFIX.match(secret)
    if found is None:
        return None
    key_provider = "klarna" if found["provider"].lower() == "klarna" else "kustom"
    key_environment = "playground" if found["env"].lower() == "test" else "production"
    names = {"klarna": "Klarna", "kustom": "Kustom"}
    if key_provider != provider:
        return f"This is a {names[key_provider]} API key; choose {names[key_provider]} as the provider."
    if key_environment != environment:
        return (
            f"This is a {'test' if key_environment == 'playground' else 'live'} key: "
            f"it only works in the {key_environment} environment."
        )
    return None
