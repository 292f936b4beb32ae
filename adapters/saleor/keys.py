"""Each installation's signing keys: read within caps, refetched when Saleor rotates its key.

A webhook or Dashboard token names its key by ``kid``. When the stored key set lacks it,
Saleor may have rotated its key (a new ``RSA_PRIVATE_KEY`` is a new kid), or the request
is forged. ``SigningKeys`` tells the two apart without letting a forger cost much:

- **prompt**: the first unknown kid of an installation fetches the JWKS at once, so a
  rotation right after the install is picked up by the very next webhook;
- **single flight**: one fetch at a time per installation; requests that arrive meanwhile
  wait for it instead of fetching themselves;
- **answered by a fetch that started after the request arrived**: a kid still unknown then
  is really unknown to Saleor (the caller answers 401). There is no "we fetched moments
  ago" window during which a real new kid is refused, so a forger cannot keep one open;
- **bounded**: fetches of one installation are at least ``min_interval`` apart (a flood of
  random kids makes at most one fetch per interval, plus the first), at most
  ``max_waiting`` requests wait per installation (the rest get 503, which Saleor retries),
  and a fetched JWKS must fit ``MAX_JWKS_BYTES`` and the caps of ``jws.KeySet``.

Fetches go through ``plugin.web.egress`` (the Saleor host is re-checked and the connection
pinned to the checked address), and before fetching, the store is read again: another
replica may have fetched the new keys already.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import httpx

from adapters.saleor import jws
from plugin.service.records import Installation
from plugin.web.egress import Egress, EgressRefused, egress

if TYPE_CHECKING:
    from adapters.saleor.services import SaleorServices
    from plugin.store.store import Store

__all__ = [
    "MAX_JWKS_BYTES",
    "JwksUnavailable",
    "SigningKeys",
    "UnusableJwks",
    "fetch_jwks",
    "jwks_url",
    "signing_keys",
]

log = logging.getLogger("kom.saleor.keys")

MAX_JWKS_BYTES = 64 * 1024  # Saleor's JWKS is ~500 bytes
JWKS_TIMEOUT = httpx.Timeout(4.0, connect=2.0)
MIN_INTERVAL = 3.0  # seconds between two fetches of one installation's keys
MAX_WAITING = 128
_CACHE = 1024
_EXTRA_KEY = "kom.saleor.keys"

T = TypeVar("T")


class JwksUnavailable(Exception):
    """Saleor's key set could not be fetched or used; ``str()`` is safe to show and log."""


class UnusableJwks(JwksUnavailable):
    """Saleor answered, with a key set KOM refuses (too big, not JSON, over the caps).

    Unlike a failed fetch, waiting does not help: for a webhook its kid is simply unknown.
    """


def jwks_url(api_url: str) -> str:
    """``<origin>/.well-known/jwks.json`` of a Saleor API URL (where Saleor serves its keys)."""
    parts = httpx.URL(api_url)
    return str(parts.copy_with(path="/.well-known/jwks.json", query=None, fragment=None))


async def fetch_jwks(http: httpx.AsyncClient, api_url: str) -> jws.KeySet:
    """The key set Saleor serves now, read up to ``MAX_JWKS_BYTES``; JwksUnavailable otherwise."""
    url = jwks_url(api_url)
    body = bytearray()
    try:
        async with http.stream("GET", url, timeout=JWKS_TIMEOUT) as response:
            if response.status_code != 200:
                raise JwksUnavailable(f"Saleor's JWKS ({url}) answered HTTP {response.status_code}")
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise UnusableJwks(f"Saleor's JWKS ({url}) is larger than {MAX_JWKS_BYTES} bytes")
    except EgressRefused as exc:
        raise JwksUnavailable(f"Saleor's JWKS ({url}) is not reachable: {exc.reason}") from None
    except httpx.HTTPError as exc:
        # The exception text may carry TLS or resolver details: log it, never show it.
        log.info("JWKS fetch from %s failed: %r", url, exc)
        raise JwksUnavailable(f"Saleor's JWKS ({url}) could not be fetched ({type(exc).__name__})") from None
    try:
        document = json.loads(bytes(body))
    except (ValueError, RecursionError):
        raise UnusableJwks(f"Saleor's JWKS ({url}) is not JSON") from None
    try:
        return jws.KeySet.parse(document)
    except jws.UnusableKeySet as exc:
        raise UnusableJwks(f"Saleor's JWKS ({url}) is unusable: {exc}") from None


@dataclass
class _Flight:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    started: float | None = None  # when the last finished fetch began (monotonic)
    result: jws.KeySet | JwksUnavailable | None = None
    waiting: int = 0


class SigningKeys:
    """The key sets of all installations of this process (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        policy: Egress,
        *,
        min_interval: float = MIN_INTERVAL,
        max_waiting: int = MAX_WAITING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._egress = policy
        self.min_interval = min_interval
        self.max_waiting = max_waiting
        self._clock = clock
        self._flights: dict[int, _Flight] = {}
        self._parsed: OrderedDict[tuple[int, datetime], jws.KeySet] = OrderedDict()
        self.fetches = 0  # JWKS fetches made (metrics, tests)

    def current(self, installation: Installation) -> jws.KeySet:
        """The stored key set, parsed once per version; an unusable one counts as empty."""
        cache_key = (installation.id, installation.jwks_fetched_at)
        found = self._parsed.get(cache_key)
        if found is None:
            try:
                found = jws.KeySet.parse(installation.jwks)
            except jws.UnusableKeySet as exc:
                log.warning("stored JWKS of %s is unusable (%s); refetching", installation.api_url, exc)
                found = jws.KeySet(keys={}, document={"keys": []})
            self._parsed[cache_key] = found
            while len(self._parsed) > _CACHE:
                self._parsed.popitem(last=False)
        self._parsed.move_to_end(cache_key)
        return found

    async def verified(self, installation: Installation, check: Callable[[jws.KeySet], T]) -> T:
        """``check(keys)``; on an unknown kid once more with keys fetched after this call began.

        Raises what ``check`` raises (``jws.UnknownKeyId`` when the kid is still unknown:
        answer 401), or JwksUnavailable when the keys could not be fetched (answer 503).
        """
        try:
            return check(self.current(installation))
        except jws.UnknownKeyId as exc:
            kid = exc.kid
        return check(await self.refreshed(installation, kid))

    async def refreshed(self, installation: Installation, kid: str) -> jws.KeySet:
        """Keys read from Saleor (or another replica's store write) after this call began."""
        flight = self._flights.setdefault(installation.id, _Flight())
        if flight.waiting >= self.max_waiting:
            raise JwksUnavailable("Too many requests are waiting for this Saleor's signing keys.")
        arrived = self._clock()
        flight.waiting += 1
        try:
            async with flight.lock:
                if flight.started is not None and flight.started >= arrived and flight.result is not None:
                    return _unwrap(flight.result)  # a fetch that began after we arrived answers us
                stored = await self._store.installation(installation.id)
                if stored is not None and kid in self.current(stored):
                    return self.current(stored)  # another replica fetched it already
                if flight.started is not None:
                    delay = flight.started + self.min_interval - self._clock()
                    if delay > 0:
                        await asyncio.sleep(delay)
                flight.started = self._clock()
                flight.result = await self._fetch(stored or installation)
                return _unwrap(flight.result)
        finally:
            flight.waiting -= 1

    async def _fetch(self, installation: Installation) -> jws.KeySet | JwksUnavailable:
        self.fetches += 1
        try:
            target = await self._egress.check(installation.api_url)
            async with self._egress.client(target, timeout=JWKS_TIMEOUT) as http:
                keys = await fetch_jwks(http, installation.api_url)
        except EgressRefused as exc:
            log.warning("JWKS of %s not fetched: %s", installation.api_url, exc.reason)
            return JwksUnavailable(f"Saleor's signing keys are not reachable: {exc.reason}")
        except UnusableJwks as exc:
            # Nothing to verify with: every kid is unknown (401), and what is stored is
            # replaced by an empty set if it was unusable too (cheap to read from then on).
            log.warning("JWKS of %s refused: %s", installation.api_url, exc)
            keys = jws.KeySet(keys={}, document={"keys": []})
            if self.current(installation).keys:
                return keys
        except JwksUnavailable as exc:
            log.warning("JWKS of %s not fetched: %s", installation.api_url, exc)
            return exc
        if keys.document != installation.jwks:
            await self._store.update_jwks(installation.id, dict(keys.document))
            log.info("signing keys of %s refreshed: %s", installation.api_url, sorted(keys.keys))
        return keys


def _unwrap(result: jws.KeySet | JwksUnavailable) -> jws.KeySet:
    if isinstance(result, JwksUnavailable):
        raise JwksUnavailable(str(result))  # a fresh exception per waiter, not one shared traceback
    return result


def signing_keys(services: SaleorServices) -> SigningKeys:
    """The process's SigningKeys (made on first use; a test may put its own in ``extra``)."""
    found = services.extra.get(_EXTRA_KEY)
    if isinstance(found, SigningKeys):
        return found
    built = SigningKeys(services.store, egress(services))
    services.extra[_EXTRA_KEY] = built
    return built


def install(services: SaleorServices, keys: SigningKeys) -> None:
    """Use ``keys`` for this process (tests: a short interval, an injected resolver)."""
    services.extra[_EXTRA_KEY] = keys
