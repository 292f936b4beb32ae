"""Order Management base URLs for Klarna and Kustom (klarna-api.md §2.1)."""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit


class Provider(StrEnum):
    KLARNA = "klarna"
    KUSTOM = "kustom"


class Environment(StrEnum):
    PLAYGROUND = "playground"
    PRODUCTION = "production"


class Region(StrEnum):
    EU = "eu"
    NA = "na"
    OC = "oc"


_HOSTS: dict[tuple[Provider, Environment, Region], str] = {
    (Provider.KLARNA, Environment.PRODUCTION, Region.EU): "https://api.klarna.com",
    (Provider.KLARNA, Environment.PRODUCTION, Region.NA): "https://api-na.klarna.com",
    (Provider.KLARNA, Environment.PRODUCTION, Region.OC): "https://api-oc.klarna.com",
    (Provider.KLARNA, Environment.PLAYGROUND, Region.EU): "https://api.playground.klarna.com",
    (Provider.KLARNA, Environment.PLAYGROUND, Region.NA): "https://api-na.playground.klarna.com",
    (Provider.KLARNA, Environment.PLAYGROUND, Region.OC): "https://api-oc.playground.klarna.com",
    # Kustom publishes one host per environment and no regional ones.
    (Provider.KUSTOM, Environment.PRODUCTION, Region.EU): "https://api.kustom.co",
    (Provider.KUSTOM, Environment.PLAYGROUND, Region.EU): "https://api.playground.kustom.co",
}


def base_url(
    provider: Provider,
    environment: Environment,
    region: Region = Region.EU,
    override: str | None = None,
) -> str:
    """The API root without a trailing slash, e.g. ``https://api.playground.klarna.com``.

    ``override`` (a test stand-in or proxy) wins over the table. It must be an absolute
    http(s) URL without user info: credentials go in the Authorization header, never in
    a URL that ends up in logs.
    """
    if override is not None:
        return check_base_url(override)
    provider, environment, region = Provider(provider), Environment(environment), Region(region)
    url = _HOSTS.get((provider, environment, region))
    if url is None:
        raise ValueError(
            f"{provider.value} has no {region.value.upper()} region; "
            f"it serves all merchants from {_HOSTS[(provider, environment, Region.EU)]}."
        )
    return url


def check_base_url(url: str) -> str:
    """``url`` without trailing slash, or ValueError if it is not a usable API root."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("The API base URL must be an absolute http:// or https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise ValueError("The API base URL must not contain user info; configure credentials instead.")
    if parts.query or parts.fragment:
        raise ValueError("The API base URL must not have a query string or fragment.")
    return url


_PORTALS: dict[tuple[Provider, Environment], str] = {
    (Provider.KLARNA, Environment.PRODUCTION): "https://portal.klarna.com",
    (Provider.KLARNA, Environment.PLAYGROUND): "https://portal.playground.klarna.com",
    (Provider.KUSTOM, Environment.PRODUCTION): "https://portal.kustom.co",
    (Provider.KUSTOM, Environment.PLAYGROUND): "https://portal.playground.kustom.co",
}


def portal_url(provider: Provider, environment: Environment) -> str:
    """The merchant portal's order list, where the merchant finds invoices and refunds."""
    return f"{_PORTALS[(Provider(provider), Environment(environment))]}/orders"
