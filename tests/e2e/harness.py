"""The whole product on loopback: KOM under uvicorn, the fake Saleor, the Klarna sandbox.

KOM serves webhooks from its own thread and event loop (as `kom serve --no-worker` would);
the test drives a worker on the same SQLite database, so each step can be observed.
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.klarna.sandbox import DEMO_API_KEY, Fault, SandboxState
from adapters.klarna.sandbox import create_app as create_sandbox
from adapters.klarna.sandbox.server import serve_in_thread
from plugin.composition import Services
from plugin.service.worker import Worker, WorkerConfig
from plugin.settings import Settings
from plugin.store.secrets import SecretBox
from plugin.store.store import ChannelSettings, Installation, Store
from plugin.web.app import create_app
from tests.e2e.faults import LaggingReads, PlatformFaults
from tests.fakes.saleor.driver import FakeSaleor
from tests.fakes.saleor.install import InstalledApp
from tests.fakes.saleor.money import to_minor

SECRET = "e2e-secret-key-0123456789abcdef"


class Clock:
    """Real time plus an offset the test can move forward (backoff, leases)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def free_port() -> int:
    """A loopback port free now, below the kernel's ephemeral range.

    KOM's port must be known before it starts (its public URL) and again after a restart, so
    it is picked, released and bound later. Picked from the ephemeral range, it could be
    handed meanwhile to a server bound to port 0 (the sandbox, the fake Saleor).
    """
    low, _ = _ephemeral_range()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


@dataclass
class Order:
    id: str
    number: str
    lines: list[str]
    transaction: str
    klarna_id: str


@dataclass
class World:
    saleor: FakeSaleor
    sandbox: SandboxState
    klarna_url: str
    kom_url: str
    settings: Settings
    store: Store
    http: httpx.AsyncClient
    clock: Clock
    platform_faults: PlatformFaults
    """GraphQL errors from the fake Saleor, on the wire (tests/e2e/faults.py)."""
    lagging: LaggingReads
    """GET order answers that lag behind the writes, on the wire."""
    app: InstalledApp | None = None
    worker: Worker = field(init=False)
    kom: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __post_init__(self) -> None:
        self.worker = self.services().worker(
            WorkerConfig(base_delay=timedelta(seconds=1)), worker_id="test-worker"
        )

    def start_kom(self) -> None:
        port = int(self.kom_url.rsplit(":", 1)[1])
        self.kom.enter_context(kom_server(self.settings, port))

    def stop_kom(self) -> None:
        """Stop KOM's web process (as if killed); its database stays."""
        self.kom.close()

    def services(self) -> Services:
        return Services(settings=self.settings, store=self.store, http=self.http)

    async def install(self) -> Installation:
        self.app = await self.saleor.install(f"{self.kom_url}/api/manifest")
        installation = await self.store.installation_by_url(self.saleor.api_url)
        assert installation is not None
        await self.configure("")
        return installation

    async def configure(self, channel: str, *, shipping_fee: str = "first_parcel") -> None:
        """The merchant's settings for ``channel`` ("" = every channel) on KOM's settings page."""
        installation = await self.store.installation_by_url(self.saleor.api_url)
        assert installation is not None
        await self.store.save_settings(
            installation.id,
            ChannelSettings(
                channel,
                "klarna",
                "playground",
                "eu",
                DEMO_API_KEY,
                None,
                base_url=self.klarna_url,
                shipping_fee=shipping_fee,
            ),
        )

    async def new_order(
        self,
        lines: list[tuple[str, str, int, str, str]],
        *,
        shipping: tuple[str, str] | None = None,
        currency: str = "EUR",
        order_discount: Any = None,
        channel: str = "default-channel",
        gift_cards: Sequence[tuple[str, object]] = (),
    ) -> Order:
        """A checkout completed in Saleor and paid with Klarna: the Klarna order and KOM's
        transaction authorize the order total minus what Saleor gift cards paid."""
        assert self.app is not None
        created = self.saleor.create_order(
            channel=channel,
            currency=currency,
            lines=lines,
            shipping=shipping,
            order_discount=order_discount,
            gift_cards=gift_cards,
        )
        order = self.saleor.order(created.id)
        total = Decimal(str(order["total"]["gross"]["amount"])) - self.saleor.gift_card_total(created.id)
        response = await self.http.post(
            f"{self.klarna_url}/_sandbox/orders",
            json={"purchase_currency": currency, "order_amount": to_minor(total, currency)},
        )
        klarna_id = str(response.json()["order_id"])
        transaction = self.saleor.create_transaction(created.id, self.app, klarna_id, total)
        return Order(created.id, created.number, list(created.line_ids), transaction, klarna_id)

    async def settle(self, rounds: int = 20) -> None:
        """Deliver webhooks and run the worker until nothing is left to do."""
        for _ in range(rounds):
            sent = await self.saleor.deliver_pending()
            worked = await self.worker.drain()
            if not sent and not worked and not self.saleor.pending():
                return
        raise AssertionError("the system did not settle")

    def klarna(self, order: Order) -> Any:
        return self.sandbox.get(order.klarna_id)

    async def ledger(self, order: Order) -> dict[str, Any]:
        body: dict[str, Any] = (
            await self.http.get(f"{self.klarna_url}/_sandbox/orders/{order.klarna_id}/ledger")
        ).json()
        return body

    def provider_writes(self) -> list[Any]:
        return [
            r for r in self.sandbox.request_log() if r.method == "POST" and r.status < 300 and not r.replayed
        ]

    def fault(self, fault: Fault, count: int = 1) -> None:
        self.sandbox.faults.add(fault, count=count)


@contextlib.contextmanager
def kom_server(settings: Settings, port: int) -> Iterator[str]:
    with serve_in_thread(create_app(settings, run_worker=False), port=port) as url:
        yield url


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path | None = None, *, database_url: str | None = None, **saleor_options: Any
) -> AsyncIterator[World]:
    """The three systems on loopback, KOM's database a SQLite file in ``tmp_path`` or ``database_url``."""
    if database_url is None:
        assert tmp_path is not None
        database_url = f"sqlite:///{tmp_path / 'kom.db'}"
    port = free_port()
    kom_url = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=database_url,
        secret_key=SecretStr(SECRET),
        public_url=kom_url,
        allowed_saleor_urls=r"http://127\.0\.0\.1:\d+/graphql/",
        allowed_private_networks="127.0.0.0/8",  # the fake Saleor and the sandbox are on loopback
        provider_max_attempts=3,
    )
    clock = Clock()
    sandbox = SandboxState()
    lagging = LaggingReads(create_sandbox(sandbox))
    saleor = FakeSaleor(**saleor_options)
    platform_faults = PlatformFaults(saleor.asgi)
    store = await Store.open(settings.database_url, SecretBox(SECRET), clock)
    try:
        with (
            serve_in_thread(lagging) as klarna_url,
            serve_in_thread(platform_faults) as saleor_url,
        ):
            saleor.base_url = saleor_url
            async with httpx.AsyncClient(timeout=20) as http:
                built = World(
                    saleor,
                    sandbox,
                    klarna_url,
                    kom_url,
                    settings,
                    store,
                    http,
                    clock,
                    platform_faults,
                    lagging,
                )
                built.start_kom()
                try:
                    yield built
                finally:
                    built.stop_kom()
    finally:
        await store.close()
