"""A burst of shipments behind the merchant's rate limit queues and drains: nothing fails,
nothing is parked, every parcel is captured once.

The sandbox enforces a limit of 10 requests/s, KOM paces at it (KOM_PROVIDER_RATE_LIMIT=10)
and the sandbox answers 429 to some captures on top: each 429 holds that merchant's calls for
the reset time the sandbox gave, and is waited out instead of using up attempts.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from adapters.klarna.pacing import TokenBucket
from adapters.klarna.sandbox import Fault
from plugin.composition import Services
from plugin.service.worker import WorkerConfig
from tests.e2e.harness import world
from tests.production.test_workers import SEED, run_workers

ORDERS = 12  # 24 shipments


async def test_a_burst_behind_the_rate_limit_drains_without_failing_or_parking(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.install()
        orders = [await w.new_order(SEED, shipping=("10.00", "0.25")) for _ in range(ORDERS)]
        w.sandbox.rate_limit_per_second = 10
        w.fault(Fault.rate_limited(method="POST", path="/captures$", reset=1), count=3)
        for order in orders:
            w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1})
            w.saleor.fulfill(order.id, {order.lines[2]: 1})
        settings = w.settings.model_copy(update={"provider_rate_limit": 10.0})
        services = Services(settings=settings, store=w.store, http=w.http)
        worker = services.worker(
            WorkerConfig(idle_sleep=0.05, concurrency=8, base_delay=timedelta(seconds=30)), worker_id="burst"
        )
        await run_workers(w, [worker], timeout=240)

        log = w.sandbox.request_log()
        assert sum(r.status == 429 for r in log) >= 3, "no 429 was met: the test proves nothing"
        writes = w.provider_writes()
        assert sum(r.path.endswith("/captures") for r in writes) == 2 * ORDERS
        for order in orders:
            assert [c.captured_amount for c in w.klarna(order).captures] == [11000, 10000]
            assert len(w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")) == 2
            job = await w.store.order_job(1, order.id)
            assert job is not None and job.state == "in_sync" and job.attempts == 0, job


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_the_bucket_spaces_calls_at_its_rate_and_a_429_holds_it() -> None:
    time = FakeTime()
    bucket = TokenBucket(5.0, clock=time.clock, sleep=time.sleep)
    waited = [await bucket.take() for _ in range(6)]
    assert waited[0] == 0 and all(abs(w - 0.2) < 1e-9 for w in waited[1:])  # 5 per second
    assert abs(time.now - 1.0) < 1e-9
    bucket.hold(2.0)  # the provider said: wait 2 s
    assert abs(await bucket.take() - 2.0) < 1e-9
    assert bucket.waits == 6 and abs(bucket.waited - 3.0) < 1e-9
