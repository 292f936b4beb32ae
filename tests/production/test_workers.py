"""Two worker processes, each on four orders at once, one queue, faults injected: everything
happens exactly once, never two passes of one order at once.

The whole product runs on loopback (tests/e2e/harness.py): the fake Saleor sends signed
webhooks to KOM under uvicorn, two workers (each with its own Store, so its own engine and
connections, as two `kom worker` processes would have), each running four passes at once,
sync the orders with the Klarna sandbox, which fails some calls on purpose. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from adapters.klarna.sandbox import Fault
from plugin.composition import classify
from plugin.service.worker import Worker, WorkerConfig
from plugin.store.secrets import SecretBox
from plugin.store.store import OrderJob, Store
from tests.e2e.harness import SECRET, Order, World, world

WORKERS = 2
CONCURRENCY = 4  # passes at once per worker
ORDERS = 10
SEED = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]


@dataclass
class Leases:
    """When each worker held each order, as the workers saw it; any overlap is a bug."""

    active: dict[int, str] = field(default_factory=dict)
    held: dict[int, list[tuple[float, float, str]]] = field(default_factory=lambda: defaultdict(list))
    started: dict[int, float] = field(default_factory=dict)
    overlaps: list[str] = field(default_factory=list)
    by_worker: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def claimed(self, job: OrderJob, worker: str) -> None:
        if job.id in self.active:
            self.overlaps.append(f"order {job.platform_order_id}: {worker} while {self.active[job.id]}")
        self.active[job.id] = worker
        self.started[job.id] = time.monotonic()
        self.by_worker[worker] += 1

    def released(self, job: OrderJob) -> None:
        worker = self.active.pop(job.id, "?")
        self.held[job.id].append((self.started.pop(job.id, 0.0), time.monotonic(), worker))


class RecordingStore(Store):
    """The real Store, telling ``leases`` when an order is claimed and (just before) released."""

    leases: Leases

    async def claim(self, worker_id: str, lease: timedelta) -> OrderJob | None:
        job = await super().claim(worker_id, lease)
        if job is not None:
            self.leases.claimed(job, worker_id.split("/")[0])  # the process, not the pass
        return job

    async def finish(self, job: OrderJob, **kwargs: Any) -> bool:
        self.leases.released(job)
        return await super().finish(job, **kwargs)

    async def retry_later(self, job: OrderJob, **kwargs: Any) -> None:
        self.leases.released(job)
        await super().retry_later(job, **kwargs)


def world_on(database_url: str) -> contextlib.AbstractAsyncContextManager[World]:
    """tests/e2e/harness.py's world, on any database."""
    return world(database_url=database_url)


async def run_workers(w: World, workers: list[Worker], timeout: float = 90) -> None:
    """Run the workers side by side, delivering webhooks, until every order is settled."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker.run(stop)) for worker in workers]
    deadline = time.monotonic() + timeout
    try:
        quiet = 0
        while quiet < 3:  # settled three looks in a row
            assert time.monotonic() < deadline, "the workers did not settle"
            sent = await w.saleor.deliver_pending()
            stats = await w.store.queue_stats()
            quiet = (
                quiet + 1 if not sent and not w.saleor.pending() and not stats.counts.get("pending") else 0
            )
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_two_concurrent_workers_with_faults_do_everything_once(database_url: str) -> None:
    async with world_on(database_url) as w:
        await w.install()
        leases = Leases()
        stores: list[RecordingStore] = []
        for _ in range(WORKERS):
            store = await RecordingStore.open(database_url, SecretBox(SECRET), w.clock, create=False)
            store.leases = leases
            stores.append(store)
        services = w.services()
        config = WorkerConfig(
            base_delay=timedelta(milliseconds=50), max_delay=timedelta(seconds=1), idle_sleep=0.05,
            max_attempts=20, concurrency=CONCURRENCY,
        )  # fmt: skip
        workers = [
            Worker(store, services.platform, services.provider, config=config, worker_id=f"w{n}", classify=classify)  # noqa: E501
            for n, store in enumerate(stores)
        ]  # fmt: skip
        try:
            orders: list[Order] = [await w.new_order(SEED, shipping=("10.00", "0.25")) for _ in range(ORDERS)]
            w.fault(Fault.http_error(503, method="POST", path="/captures$"), count=6)
            w.fault(Fault.lost_response(method="POST", path="/captures$"), count=4)
            w.fault(Fault.rate_limited(method="GET"), count=3)
            w.fault(Fault.http_error(500, method="GET"), count=3)
            for order in orders:
                w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
                w.saleor.fulfill(order.id, {order.lines[2]: 1})
            await run_workers(w, workers)

            w.fault(Fault.lost_response(method="POST", path="/refunds$"), count=4)
            w.fault(Fault.http_error(503, method="POST", path="/refunds$"), count=4)
            for order in orders:  # a return spanning both parcels: one refund per capture
                grant = w.saleor.grant_refund(
                    order.id, order.transaction, {order.lines[0]: 1, order.lines[2]: 1}
                )
                w.saleor.request_refund_for_granted_refund(grant)
            await run_workers(w, workers)
        finally:
            for store in stores:
                await store.close()

        assert w.sandbox.faults.pending() == []  # every injected fault was met
        assert leases.overlaps == []
        assert leases.active == {}
        assert sum(1 for count in leases.by_worker.values() if count) >= 2, leases.by_worker
        for intervals in leases.held.values():
            ordered = sorted(intervals)
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(ordered)), ordered

        writes = w.provider_writes()
        assert sum(r.path.endswith("/captures") for r in writes) == 2 * ORDERS  # once per shipment
        assert sum(r.path.endswith("/refunds") for r in writes) == 2 * ORDERS  # once per capture refunded
        for order in orders:
            state = w.klarna(order)
            # Parcels are independent: a parcel whose capture met a fault may go after the next one.
            assert sorted(c.captured_amount for c in state.captures) == [10000, 11000]
            ledger = await w.ledger(order)
            assert all(r["allocated"] for r in ledger["refunds"])
            # Each refund booked on the parcel that shipped its goods (refunds of two parcels may
            # go in either order): 30.00 of the 110.00 parcel, all of the 100.00 one.
            by_parcel = {c["captured_amount"]: c["refunded_amount"] for c in ledger["captures"]}
            assert by_parcel == {11000: 3000, 10000: 10000}
            transaction = w.saleor.transaction(order.transaction)
            assert len(transaction.of_type("CHARGE_SUCCESS")) == 2
            (refunded,) = transaction.of_type("REFUND_SUCCESS")
            assert refunded.amount == Decimal("130.00")
            job = await w.store.order_job(1, order.id)
            assert job is not None and job.state == "in_sync"
