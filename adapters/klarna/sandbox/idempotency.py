"""`Klarna-Idempotency-Key` memory: first response per key, replayed for 24 hours.

Klarna: the same key within 24 h of the first attempt executes once and every request gets
the same response; the request body is disregarded, only the key matters. Keys are scoped
to (method, path), i.e. per order and endpoint.

Which responses are remembered (Klarna does not say; Stripe-like choice): those of requests
that reached the order, 2xx and 403/404. Requests refused before that (401, 400/422
validation, 409 in-flight, injected faults, 429) are not remembered, so a corrected retry
with the same key executes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

KEY_LIFETIME = timedelta(hours=24)

ScopedKey = tuple[str, str, str]  # (method, path, key)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


def remembered(status: int) -> bool:
    return 200 <= status < 300 or status in (403, 404)


class IdempotencyStore:
    def __init__(self) -> None:
        self._entries: dict[ScopedKey, tuple[datetime, StoredResponse]] = {}
        self._in_flight: set[ScopedKey] = set()
        self._lock = threading.Lock()

    def lookup(self, key: ScopedKey, now: datetime) -> StoredResponse | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            first_seen, response = entry
            if now - first_seen >= KEY_LIFETIME:
                del self._entries[key]  # forgotten: the next request executes again
                return None
            return response

    def begin(self, key: ScopedKey) -> bool:
        """Mark the key in flight; False when a request with it is already executing."""
        with self._lock:
            if key in self._in_flight:
                return False
            self._in_flight.add(key)
            return True

    def finish(self, key: ScopedKey, first_seen: datetime, response: StoredResponse | None) -> None:
        with self._lock:
            self._in_flight.discard(key)
            if response is not None:
                self._entries[key] = (first_seen, response)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
