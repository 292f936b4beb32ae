"""What the Saleor endpoints need from the process, handed in by the app factory.

A protocol, so this adapter never imports the composition root (plugin/composition.py).
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from plugin.service.payment_sessions import PaymentSessions
from plugin.settings import Settings
from plugin.store.store import Store


class SaleorServices(Protocol):
    """Created once per process by the app factory (``app.state.services``)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def http(self) -> httpx.AsyncClient: ...

    def payment_sessions(self) -> PaymentSessions:
        """The use cases behind the payment-app session webhooks."""
        ...

    @property
    def extra(self) -> dict[str, Any]:
        """Per-process state of the endpoints (rate limiters, key fetchers)."""
        ...
