"""The authorization clock: the pure reading at an injected ``now``, then keep_authorization
against the sandbox (its own clock moved forward) with the real Store on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from adapters.klarna.client import OrderManagementClient, RetryPolicy
from adapters.klarna.provider import KlarnaProvider
from adapters.klarna.sandbox import DEMO_API_KEY, SandboxState, create_app
from adapters.klarna.sandbox.server import serve_in_thread
from plugin.demo import seed_order
from plugin.domain.provider import ProviderCapture, ProviderLine, ProviderOrder
from plugin.domain.references import capture_reference
from plugin.domain.snapshot import Order, ShipmentLine
from plugin.service.authorization import Decision, enqueue_expiring, keep_authorization, read_clock
from plugin.service.sync import sync_order
from plugin.store.secrets import SecretBox
from plugin.store.store import Store

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=48)


def provider_order(
    order: Order, *captured: str, expires_in: timedelta | None = timedelta(days=20)
) -> ProviderOrder:
    """The provider's record with the named parcels of ``order`` captured (KOM's references)."""
    total = sum(line.total_amount for line in order.lines)
    captures = []
    for parcel, shipment_id in enumerate(captured, start=1):
        shipment = next(s for s in order.shipments if s.id == shipment_id)
        lines = []
        for item in shipment.lines:
            line = order.line(item.line_id)
            assert line is not None and line.sku is not None
            amount = line.unit_price * item.quantity
            lines.append(
                ProviderLine(
                    f"{line.sku}/{parcel}", line.name, "physical", item.quantity, line.unit_price, amount
                )
            )
        captures.append(
            ProviderCapture(
                f"cap-{parcel}",
                sum(x.total_amount for x in lines),
                tuple(lines),
                capture_reference(shipment_id),
            )
        )
    captured_amount = sum(c.captured_amount for c in captures)
    return ProviderOrder(
        order_id="klarna-1",
        status="PART_CAPTURED" if captures else "AUTHORIZED",
        currency="EUR",
        order_amount=total,
        captured_amount=captured_amount,
        refunded_amount=0,
        remaining_authorized_amount=total - captured_amount,
        captures=tuple(captures),
        expires_at=None if expires_in is None else NOW + expires_in,
    )


def only_parcel_a() -> Order:
    order = seed_order()
    return replace(order, shipments=order.shipments[:1])


def test_far_from_expiry_nothing_to_do() -> None:
    order = only_parcel_a()
    reading = read_clock(order, provider_order(order, "parcel-A"), extend=True, window=WINDOW, now=NOW)
    assert (reading.decision, reading.state, reading.unshipped_units) == (Decision.NOTHING, "ok", 1)
    assert reading.remaining == 10000 and "2026-12-21" in reading.message


def test_inside_the_window_with_goods_unshipped_warns() -> None:
    order = only_parcel_a()
    state = provider_order(order, "parcel-A", expires_in=timedelta(hours=30))
    reading = read_clock(order, state, extend=False, window=WINDOW, now=NOW)
    assert (reading.decision, reading.state, reading.finding_kind) == (
        Decision.WARN,
        "warning",
        "authorization_expiring",
    )
    assert (
        "in 30 h" in reading.message
        and "1 item not shipped" in reading.message
        and "€100.00" in reading.message
    )
    assert reading.idempotency_key is None
    just_outside = read_clock(order, state, extend=False, window=timedelta(hours=29), now=NOW)
    assert just_outside.decision is Decision.NOTHING


def test_the_merchant_who_enabled_it_gets_an_extension_one_key_per_expiry() -> None:
    order = only_parcel_a()
    state = provider_order(order, "parcel-A", expires_in=timedelta(hours=10))
    first = read_clock(order, state, extend=True, window=WINDOW, now=NOW)
    again = read_clock(order, state, extend=True, window=WINDOW, now=NOW + timedelta(hours=1))
    assert first.decision is Decision.EXTEND and first.idempotency_key == again.idempotency_key
    moved = replace(state, expires_at=NOW + timedelta(hours=20))
    assert (
        read_clock(order, moved, extend=True, window=WINDOW, now=NOW).idempotency_key != first.idempotency_key
    )


def test_past_the_expiry_is_a_warning_that_it_expired() -> None:
    order = only_parcel_a()
    state = provider_order(order, "parcel-A", expires_in=timedelta(hours=-1))
    reading = read_clock(order, state, extend=True, window=WINDOW, now=NOW)
    assert (reading.decision, reading.state, reading.finding_kind) == (
        Decision.WARN,
        "expired",
        "authorization_expired",
    )
    assert "can no longer be captured" in reading.message


def test_everything_shipped_is_settled_even_before_the_last_capture() -> None:
    order = seed_order()  # both parcels shipped, only A captured: B is waiting for the worker
    state = provider_order(order, "parcel-A", expires_in=timedelta(hours=1))
    reading = read_clock(order, state, extend=True, window=WINDOW, now=NOW)
    assert (reading.decision, reading.state, reading.unshipped_units) == (Decision.NOTHING, "settled", 0)


def test_after_the_last_parcel_nothing_is_left_to_extend_or_warn_about() -> None:
    order = seed_order()
    state = provider_order(order, "parcel-A", "parcel-B", expires_in=timedelta(hours=1))
    assert state.remaining_authorized_amount == 0
    reading = read_clock(order, replace(state, status="CAPTURED"), extend=True, window=WINDOW, now=NOW)
    assert (reading.decision, reading.state) == (Decision.NOTHING, "settled")


def test_a_parcel_saleor_dropped_after_a_return_still_counts_as_shipped() -> None:
    order = seed_order()
    state = provider_order(order, "parcel-A", "parcel-B", expires_in=timedelta(hours=1))
    returned = replace(order, shipments=order.shipments[:1])  # Saleor moved parcel B's units into a return
    reading = read_clock(
        returned, replace(state, remaining_authorized_amount=500), extend=True, window=WINDOW, now=NOW
    )
    assert (reading.unshipped_units, reading.state) == (0, "settled")


def test_a_cancelled_order_is_settled_the_planner_releases_the_rest() -> None:
    order = replace(only_parcel_a(), cancelled=True)
    state = provider_order(order, "parcel-A", expires_in=timedelta(hours=1))
    reading = read_clock(order, state, extend=True, window=WINDOW, now=NOW)
    assert (reading.decision, reading.state, reading.unshipped_units) == (Decision.NOTHING, "settled", 0)


def test_units_returned_before_their_parcel_was_captured_are_not_unshipped() -> None:
    order = seed_order()
    parcel_a = order.shipments[0]
    kept = replace(parcel_a, lines=tuple(item for item in parcel_a.lines if item.line_id == "line-jeans"))
    returned = replace(order, shipments=(kept,), returned=(ShipmentLine("line-tshirt", 1),))
    reading = read_clock(returned, provider_order(returned), extend=False, window=WINDOW, now=NOW)
    assert reading.unshipped_units == 1  # the sneakers; the T-shirt came back and will not ship


def test_no_expiry_from_the_provider_is_never_a_warning() -> None:
    order = only_parcel_a()
    reading = read_clock(order, provider_order(order, expires_in=None), extend=True, window=WINDOW, now=NOW)
    assert (reading.decision, reading.state, reading.unshipped_units) == (
        Decision.NOTHING,
        "ok",
        1,
    )  # parcel A shipped, not captured yet


# -- against the sandbox ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Bench:
    sandbox: SandboxState
    clock: Clock
    provider: KlarnaProvider
    store: Store
    http: httpx.AsyncClient
    base_url: str
    installation: int

    async def order(self, order: Order) -> str:
        """A sandbox order for ``order`` with its first parcel captured by sync_order."""
        amount = sum(line.total_amount for line in order.lines)
        created = await self.http.post(
            f"{self.base_url}/_sandbox/orders", json={"purchase_currency": "EUR", "order_amount": amount}
        )
        order_id = str(created.json()["order_id"])
        result = await sync_order(order, order_id, self.provider)
        assert len(result.done) == len(order.shipments)
        return order_id

    def extensions(self) -> int:
        return sum(1 for r in self.sandbox.request_log() if r.path.endswith("/extend-authorization-time"))


@pytest.fixture
def served() -> Iterator[tuple[SandboxState, Clock, str]]:
    clock = Clock()
    state = SandboxState(clock)
    with serve_in_thread(create_app(state)) as base_url:
        yield state, clock, base_url


@pytest.fixture
async def bench(served: tuple[SandboxState, Clock, str], tmp_path: Path) -> AsyncIterator[Bench]:
    state, clock, base_url = served

    async def no_sleep(_: float) -> None:
        return None

    store = await Store.open(f"sqlite:///{tmp_path / 'kom.db'}", SecretBox("k" * 32), clock)
    installation = await store.save_installation(
        platform="saleor", api_url="https://shop.example/graphql/", app_id="QXBwOjE=", token="t", jwks={}
    )
    async with httpx.AsyncClient(timeout=10) as http:
        client = OrderManagementClient(
            base_url=base_url, api_key=DEMO_API_KEY, http_client=http, retry=RetryPolicy(2, sleep=no_sleep)
        )
        yield Bench(state, clock, KlarnaProvider(client), store, http, base_url, installation.id)
    await store.close()


async def keep(bench: Bench, order: Order, order_id: str, *, extend: bool, events: list[str]) -> object:
    state = await bench.provider.get_order(order_id)
    return await keep_authorization(
        bench.store,
        bench.provider,
        installation_id=bench.installation,
        order=order,
        state=state,
        extend=extend,
        window=WINDOW,
        now=bench.clock(),
        observe=events.append,
    )


async def test_extends_against_the_sandbox_once_and_records_it(bench: Bench) -> None:
    order = only_parcel_a()
    order_id = await bench.order(order)
    bench.clock.now = NOW + timedelta(days=27)  # the sandbox authorizes for 28 days
    events: list[str] = []
    reading = await keep(bench, order, order_id, extend=True, events=events)
    assert events == ["extended"] and bench.extensions() == 1
    assert bench.sandbox.get(order_id).expires_at == bench.clock.now + timedelta(days=28)
    assert getattr(reading, "state", None) == "ok"
    (record,) = (await bench.store.authorizations(bench.installation, [order.id])).values()
    assert (record.state, record.extensions, record.extended_at) == ("ok", 1, bench.clock.now)
    assert record.expires_at == bench.clock.now + timedelta(days=28) and record.unshipped_units == 1
    assert await bench.store.findings(bench.installation) == []
    await keep(bench, order, order_id, extend=True, events=events)  # the next pass: far from expiry again
    assert events == ["extended"] and bench.extensions() == 1


async def test_warns_once_per_expiry_then_says_it_expired(bench: Bench) -> None:
    order = only_parcel_a()
    order_id = await bench.order(order)
    bench.clock.now = NOW + timedelta(days=27)
    events: list[str] = []
    for _ in range(3):  # however often the order is synced
        await keep(bench, order, order_id, extend=False, events=events)
    assert events == ["warned"] and bench.extensions() == 0
    (finding,) = await bench.store.findings(bench.installation, order.id)
    assert (
        finding.kind == "authorization_expiring" and "turn on automatic extension" in finding.suggested_action
    )
    bench.clock.now = NOW + timedelta(days=28, hours=1)
    await keep(bench, order, order_id, extend=True, events=events)  # too late to extend
    assert events == ["warned", "expired"] and bench.extensions() == 0
    (finding,) = await bench.store.findings(bench.installation, order.id)
    assert finding.kind == "authorization_expired"


async def test_a_refused_extension_warns_instead(bench: Bench) -> None:
    order = only_parcel_a()
    order_id = await bench.order(order)
    record = bench.sandbox.get(order_id)
    record.expires_at = record.created_at + timedelta(days=180)  # extended to Klarna's limit already
    bench.clock.now = record.expires_at - timedelta(hours=12)
    events: list[str] = []
    reading = await keep(bench, order, order_id, extend=True, events=events)
    assert events == ["extend_failed", "warned"] and bench.extensions() == 1
    assert "could not extend" in getattr(reading, "message", "") and "180 days" in getattr(
        reading, "message", ""
    )
    (finding,) = await bench.store.findings(bench.installation, order.id)
    assert "automatic extension failed" in finding.suggested_action


async def test_shipping_the_rest_settles_the_clock_and_clears_the_warning(bench: Bench) -> None:
    order = seed_order()
    partial = replace(order, shipments=order.shipments[:1])
    order_id = await bench.order(partial)
    bench.clock.now = NOW + timedelta(days=27)
    events: list[str] = []
    await keep(bench, partial, order_id, extend=False, events=events)
    assert [f.kind for f in await bench.store.findings(bench.installation)] == ["authorization_expiring"]
    await sync_order(order, order_id, bench.provider)  # the last parcel: nothing left authorized
    assert bench.sandbox.get(order_id).remaining_authorized_amount == 0
    reading = await keep(bench, order, order_id, extend=True, events=events)
    assert getattr(reading, "state", None) == "settled" and events == ["warned"] and bench.extensions() == 0
    assert await bench.store.findings(bench.installation) == []


async def test_the_sweep_enqueues_orders_entering_the_window(bench: Bench) -> None:
    order = only_parcel_a()
    order_id = await bench.order(order)
    await keep(bench, order, order_id, extend=False, events=[])  # day 0: recorded, far from expiry
    assert await enqueue_expiring(bench.store, now=bench.clock(), window=WINDOW) == 0
    bench.clock.now = NOW + timedelta(days=26, hours=13)
    assert await enqueue_expiring(bench.store, now=bench.clock(), window=WINDOW) == 1
    job = await bench.store.order_job(bench.installation, order.id)
    assert job is not None and job.state == "pending"
    await keep(bench, order, order_id, extend=False, events=[])  # the worker's pass warns
    assert await enqueue_expiring(bench.store, now=bench.clock(), window=WINDOW) == 0
