"""**Test connection** for Klarna and Kustom: prove credentials against the chosen endpoint, and
say exactly what failed (``plugin.service.connection`` is the use case; entry point group
``kom.connection_probes``).

The probe reads an order that cannot exist (a random UUID). Order Management answers
``404 NO_SUCH_ORDER`` only after it accepted the credentials, so that answer means the
endpoint and the credentials are right, without touching any real order. Otherwise:

- no connection (DNS, refused, connect timeout) -> ``unreachable``;
- 401 -> ``wrong_credentials``; for Klarna's own hosts KOM then tries the same credentials
  on the other regions, because a key is valid in one region only and the other regions
  answer 401 too: when one of them accepts it, the answer is ``wrong_region``;
- 403 -> ``wrong_region`` (the account exists but may not use this endpoint);
- 429 -> ``rate_limited``; 5xx or no answer -> ``unavailable``;
- a 404 that is not Order Management's (some other web server) -> ``not_order_management``.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx

from adapters.klarna import errors
from adapters.klarna.client import OrderManagementClient, RetryPolicy
from adapters.klarna.hosts import Environment, Provider, Region, base_url
from plugin.service.connection import ConnectionResult as Result
from plugin.service.records import ChannelSettings

PROBE_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_NAMES = {"klarna": "Klarna", "kustom": "Kustom"}
_REGIONS = {"eu": "EU", "na": "North America", "oc": "Oceania"}


def region_endpoint(provider: str, environment: str, region: str) -> str:
    """The standard host of one region (a seam: tests point it at local sandboxes)."""
    return base_url(Provider(provider), Environment(environment), Region(region))


def endpoint_for(settings: ChannelSettings) -> str:
    if settings.base_url:
        return base_url(
            Provider(settings.provider), Environment(settings.environment), override=settings.base_url
        )
    return region_endpoint(settings.provider, settings.environment, settings.region)


async def _probe(
    settings: ChannelSettings, endpoint: str, http: httpx.AsyncClient
) -> errors.ProviderError | None:
    """None when the credentials were accepted; else what the provider (or the network) said."""
    client = OrderManagementClient(
        base_url=endpoint,
        api_key=settings.api_key,
        username=settings.username,
        http_client=http,
        retry=RetryPolicy(max_attempts=1),
        timeout=PROBE_TIMEOUT,
    )
    try:
        await client.get_order(f"kom-connection-test-{uuid.uuid4()}")
    except errors.NotFound as exc:
        return None if exc.error_code else exc
    except errors.ProviderError as exc:
        return exc
    return None  # an order with that id exists: the credentials were accepted all the same


async def check_connection(
    settings: ChannelSettings, http: httpx.AsyncClient, *, other_regions: bool = True
) -> Result:
    """The probe of ``kom.connection_probes`` (klarna, kustom): one GET of an order that cannot exist.

    ``other_regions``: on a 401, try the same credentials on Klarna's other regions (only for
    a key typed in this request: a saved key never goes anywhere but its own endpoint).
    """
    endpoint = endpoint_for(settings)
    provider = _NAMES.get(settings.provider, settings.provider)
    where = f"{provider} {settings.environment}"
    if not settings.base_url and settings.provider == Provider.KLARNA:
        where += f" ({_REGIONS[settings.region]})"
    failure = await _probe(settings, endpoint, http)
    if failure is None:
        return Result(
            True, "ok", f"Connected to {where} at {endpoint}: the credentials are accepted.", endpoint
        )
    if isinstance(failure, errors.NotSent):
        return Result(
            False,
            "unreachable",
            f"KOM could not connect to {endpoint} ({failure.reason.removeprefix('last: ')}). "
            "Check the base URL, DNS and any firewall between KOM and the provider.",
            endpoint,
        )
    if not isinstance(failure, errors.Rejected):
        reason = str(getattr(failure, "reason", type(failure).__name__)).removeprefix("last: ")
        return Result(
            False,
            "unavailable",
            f"{endpoint} did not answer properly ({reason}); the provider may be down, or the base URL "
            "points elsewhere. Try again later.",
            endpoint,
        )

    def refused(outcome: str, message: str, suggested_region: str | None = None) -> Result:
        assert isinstance(failure, errors.Rejected)
        return Result(
            False,
            outcome,
            message,
            endpoint,
            status=failure.status_code,
            error_code=failure.error_code,
            correlation_id=failure.correlation_id,
            suggested_region=suggested_region,
        )

    if isinstance(failure, errors.AuthenticationFailed):
        region = await _region_that_accepts(settings, http) if other_regions else None
        if region is not None:
            return refused(
                "wrong_region",
                f"{provider} refused these credentials in the {_REGIONS[settings.region]} region, "
                f"but they work in {_REGIONS[region]}: choose {_REGIONS[region]} as the region.",
                region,
            )
        what = "API key" if settings.username is None else "username and password"
        return refused(
            "wrong_credentials",
            f"{provider} answered 401 Unauthorized at {endpoint}: the {what} is not valid for {where}. "
            "Check the credentials, the environment and the region.",
        )
    if isinstance(failure, errors.NotAllowed):
        return refused(
            "wrong_region",
            f"{provider} answered 403 Forbidden at {endpoint}: the account exists but may not use this "
            "endpoint. Check the region, and that the account has Order Management.",
        )
    if isinstance(failure, errors.NotFound):
        return refused(
            "not_order_management",
            f"{endpoint} answered 404 without an Order Management error: is the base URL right?",
        )
    if isinstance(failure, errors.RateLimited):
        return refused(
            "rate_limited",
            f"{provider} is rate-limiting this account right now (HTTP 429); try again in a minute.",
        )
    code = f" {failure.error_code}" if failure.error_code else ""
    return refused("rejected", f"{provider} answered HTTP {failure.status_code}{code} at {endpoint}.")


async def _region_that_accepts(settings: ChannelSettings, http: httpx.AsyncClient) -> str | None:
    """For Klarna's standard hosts: the other region these credentials work in, if any."""
    if settings.base_url or settings.provider != Provider.KLARNA:
        return None
    others = [r.value for r in Region if r.value != settings.region]
    results = await asyncio.gather(
        *(
            _probe(settings, region_endpoint(settings.provider, settings.environment, region), http)
            for region in others
        )
    )
    return next((region for region, failure in zip(others, results, strict=True) if failure is None), None)
