"""Client-side pacing of Order Management calls, per merchant credentials (klarna-api.md §2.5).

Klarna limits requests per merchant (200/s live, 50/s in the playground) and recommends a
token bucket on the client side. One ``TokenBucket`` per credentials is shared by every
call of the process that uses them (``bucket_for``): the concurrent passes of a worker queue
for it in order, instead of running into 429s. A 429 still happens (other processes use the
same merchant, the limit is approximate): ``hold`` then stops that merchant's calls until
the time the provider gave, while other merchants' calls go on.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from collections.abc import Awaitable, Callable

import httpx

# Requests per second per merchant, by environment (klarna-api.md §2.5); Kustom has not
# published its limits, so it gets Klarna's.
DOCUMENTED_LIMITS = {"playground": 50.0, "production": 200.0}

Observe = Callable[[float], None]


def _nothing(_: float) -> None:
    return None


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; FIFO for the callers waiting."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observe: Observe = _nothing,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("A token bucket needs rate > 0 and burst >= 1.")
        self.rate = rate
        self.capacity = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._observe = observe
        self._tokens = self.capacity
        self._stamp = clock()
        self._held_until = 0.0
        self._turn = asyncio.Lock()  # asyncio.Lock wakes waiters in arrival order
        self.waits = 0
        self.waited = 0.0

    async def take(self) -> float:
        """Wait until one call may go out; returns the seconds waited."""
        waited = 0.0
        async with self._turn:
            while True:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                delay = self._held_until - now
                if delay <= 0 and self._tokens >= 1 - 1e-9:  # float refill: 0.2 s x 5/s may be 0.999...
                    self._tokens = max(self._tokens - 1, 0.0)
                    break
                if delay <= 0:
                    delay = (1 - self._tokens) / self.rate
                await self._sleep(delay)
                waited += delay
        if waited:
            self.waits += 1
            self.waited += waited
            self._observe(waited)
        return waited

    def hold(self, seconds: float) -> None:
        """The provider answered 429: nothing goes out for ``seconds``, and no burst after."""
        now = self._clock()
        self._held_until = max(self._held_until, now + max(seconds, 0.0))
        self._tokens = 0.0
        self._stamp = now


_buckets: weakref.WeakKeyDictionary[httpx.AsyncClient, dict[tuple[str, str], TokenBucket]] = (
    weakref.WeakKeyDictionary()
)


def bucket_for(
    http: httpx.AsyncClient, base_url: str, credentials: str, rate: float, *, observe: Observe = _nothing
) -> TokenBucket:
    """The bucket of one merchant's credentials at one endpoint, shared by every call made
    through ``http`` (one client per process). Keyed by a hash: no credential is kept here."""
    key = (base_url, hashlib.sha256(credentials.encode()).hexdigest())
    buckets = _buckets.setdefault(http, {})
    bucket = buckets.get(key)
    if bucket is None or bucket.rate != rate:
        bucket = buckets[key] = TokenBucket(rate, observe=observe)
    return bucket
