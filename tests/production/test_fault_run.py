"""The fault run (issue 10, acceptance): many orders, several `kom worker` processes, provider
5xx / 429 / 409 / lost answers, Saleor GraphQL errors, and kill -9 at every crash point.

Each order ships, is captured per parcel and reported, then either refunds a return
spanning both parcels or cancels what is left. The run counts what happened and checks:
no duplicate (no write executed twice, no outcome reported twice), nothing lost (every
expected capture, refund, release and report is there), nothing misallocated, and every
order converges; it measures the longest time from a fault's end to the convergence of
an order it could have touched. ``KOM_FAULT_RUN_ORDERS`` / ``KOM_FAULT_RUN_WORKERS`` make
it bigger (docs/reliability.md has the numbers of a run).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from adapters.klarna.sandbox import Fault
from plugin.service.crashpoints import POINTS
from plugin.store import tables as t
from tests.e2e.harness import Order, World, world
from tests.production.processes import KILLED, WorkerProcess, start_worker

ORDERS = int(os.environ.get("KOM_FAULT_RUN_ORDERS", "12"))
WORKERS = int(os.environ.get("KOM_FAULT_RUN_WORKERS", "3"))
LEASE = os.environ.get("KOM_FAULT_RUN_LEASE_SECONDS", "5")
TIMEOUT = 240.0
SEED = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]
CRASHES = [p for p in POINTS if p != "mid-migration"]  # mid-migration: test_crash_points.py


@dataclass
class Tracked:
    order: Order
    cancels: bool  # ships parcel 1 only, then cancels the rest; else ships both and refunds
    shipped_at: float | None = None  # every parcel captured and reported
    asked_at: float | None = None  # the refund or cancel was requested
    converged_at: float | None = None  # ... and carried out and reported

    @property
    def asked(self) -> bool:
        return self.asked_at is not None

    def settled_after(self, moment: float) -> float | None:
        """When the work the order had at ``moment`` was done (what a fault then could delay)."""
        if self.asked_at is None or moment < self.asked_at:
            return self.shipped_at
        return self.converged_at


@dataclass
class Supervisor:
    """Keeps WORKERS `kom worker` processes running; each of the first ones dies at a crash point."""

    w: World
    logs: Path
    crashes: list[str] = field(default_factory=lambda: list(CRASHES))
    workers: list[WorkerProcess] = field(default_factory=list)
    kills: list[tuple[float, str, list[str]]] = field(default_factory=list)
    """(when, which worker, the orders it held when it died)"""
    started: int = 0

    async def start(self) -> WorkerProcess:
        crash = self.crashes.pop(0) if self.crashes else None
        self.started += 1
        # One pass per worker, as this run was tuned: with many, the first workers can finish every
        # order before a later one reaches its crash point (tests/production/test_workers.py
        # covers concurrent passes with faults).
        settings = {"KOM_LEASE_SECONDS": LEASE, "KOM_WORKER_CONCURRENCY": "1"}
        # Not the first time the point is reached: the worker dies in the middle of the run.
        at = f"{crash}@{2 + self.started % 3}" if crash else None
        return await start_worker(
            self.w, self.logs, f"worker-{self.started}-{crash or 'clean'}", crash_at=at, **settings
        )

    async def keep_running(self) -> None:
        if not self.workers:
            self.workers = [await self.start() for _ in range(WORKERS)]
        for index, worker in enumerate(self.workers):
            if worker.returncode is None:
                continue
            assert worker.returncode == KILLED, (
                f"{worker.name} exited {worker.returncode}: {worker.log.read_text()[-3000:]}"
            )
            self.kills.append((time.time(), worker.name, await self.held_by(worker)))
            self.workers[index] = await self.start()

    async def held_by(self, worker: WorkerProcess) -> list[str]:
        """The orders whose lease the dead worker still holds (its id is in its log)."""
        found = re.search(r"worker (worker-[0-9a-f]+) started", worker.log.read_text())
        assert found, worker.log.read_text()[-2000:]
        async with self.w.store.engine.connect() as conn:
            rows = await conn.execute(
                select(t.orders.c.platform_order_id).where(
                    t.orders.c.lease_owner.startswith(found.group(1) + "/")
                )
            )
            return [str(row[0]) for row in rows]

    async def stop(self) -> None:
        for worker in self.workers:
            code = await worker.stop()
            assert code in (0, KILLED), f"{worker.name} exited {code}"


def inject(w: World) -> int:
    """Transient faults only: everything must converge by itself. Returns how many."""
    scale = max(1, ORDERS // 12)
    sandbox = [
        (Fault.http_error(503, method="POST", path="/captures$"), 4),
        (Fault.lost_response(method="POST", path="/captures$"), 4),
        (Fault.http_error(409, method="POST", path="/captures$", error_code="CONFLICT"), 2),
        (Fault.rate_limited(method="GET"), 4),
        (Fault.http_error(500, method="GET"), 4),
        (Fault.lost_response(method="POST", path="/refunds$"), 3),
        (Fault.http_error(502, method="POST", path="/refunds$"), 3),
        (Fault.http_error(503, method="POST", path="/release-remaining-authorization$"), 2),
    ]
    for fault, count in sandbox:
        w.fault(fault, count * scale)
    w.platform_faults.add("TransactionEventReport", count=4 * scale)  # a GraphQL error
    w.platform_faults.add("Order", count=3 * scale, status=502)  # Saleor's proxy failing
    return (sum(count for _, count in sandbox) + 7) * scale


def converged(w: World, tracked: Tracked) -> bool:
    order, state = tracked.order, w.klarna(tracked.order)
    transaction = w.saleor.transaction(order.transaction)
    charges = transaction.of_type("CHARGE_SUCCESS")
    if tracked.cancels:
        cancels = transaction.of_type("CANCEL_SUCCESS")
        return (
            [c.captured_amount for c in state.captures] == [10000]
            and state.remaining_authorized_amount == 0
            and len(charges) == 1
            and [c.amount for c in cancels] == [Decimal("100.00")]
        )
    refunds = transaction.of_type("REFUND_SUCCESS")
    return (
        [c.captured_amount for c in state.captures] == [10000, 10000]
        and sorted(r.refunded_amount for r in state.refunds) == [3000, 10000]
        and len(charges) == 2
        and [r.amount for r in refunds] == [Decimal("130.00")]
    )


async def drive(w: World, tracked: list[Tracked]) -> None:
    """Play the merchant: ship, and once the charges are in, ask for the refund or cancel."""
    for item in tracked:
        order = item.order
        if item.asked:
            continue
        charges = w.saleor.transaction(order.transaction).of_type("CHARGE_SUCCESS")
        if len(charges) != (1 if item.cancels else 2):  # Saleor refunds only what was charged
            continue
        item.shipped_at = item.shipped_at or time.time()
        if item.cancels:
            w.saleor.request_action(order.transaction, "CANCEL")
        else:
            grant = w.saleor.grant_refund(order.id, order.transaction, {order.lines[0]: 1, order.lines[2]: 1})
            w.saleor.request_refund_for_granted_refund(grant)
        item.asked_at = time.time()
    await w.saleor.deliver_pending()
    await w.saleor.retry_failed()


async def test_fault_run(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.install()
        tracked = [Tracked(await w.new_order(SEED), cancels=n % 3 == 2) for n in range(ORDERS)]
        injected = inject(w)
        for item in tracked:
            order = item.order
            w.saleor.fulfill(
                order.id, {order.lines[0]: 1, order.lines[1]: 1}, tracking_number=f"PN-{order.number}"
            )
            if not item.cancels:
                w.saleor.fulfill(order.id, {order.lines[2]: 1}, tracking_number=f"DHL-{order.number}")
        supervisor = Supervisor(w, tmp_path)
        began = time.time()
        try:
            while any(t.converged_at is None for t in tracked):
                assert time.time() - began < TIMEOUT, not_converged(w, tracked)
                await supervisor.keep_running()
                await drive(w, tracked)
                for item in tracked:
                    if item.converged_at is None and item.asked and converged(w, item):
                        item.converged_at = time.time()
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.5)  # let anything that would duplicate an outcome happen
            await w.saleor.deliver_pending()
        finally:
            await supervisor.stop()

        assert supervisor.crashes == [], f"crash points never reached: {supervisor.crashes}"
        assert len(supervisor.kills) == len(CRASHES) and all(held for _, _, held in supervisor.kills)
        assert w.sandbox.faults.pending() == [] and w.platform_faults.pending() == 0
        report = summary(w, tracked, supervisor, injected, began)
        (tmp_path / "fault-run.json").write_text(json.dumps(report, indent=2))
        print("\nfault run:", json.dumps(report))  # noqa: T201  (the numbers docs/reliability.md quotes)
        assert report["duplicates"] == 0 and report["lost"] == 0 and report["misallocated"] == 0
        for item in tracked:
            job = await w.store.order_job(1, item.order.id)
            assert job is not None and job.state == "in_sync", (job and job.reason, job and job.state)


def summary(
    w: World, tracked: list[Tracked], supervisor: Supervisor, injected: int, began: float
) -> dict[str, object]:
    log = w.sandbox.request_log()
    executed = Counter(
        (r.path, r.idempotency_key) for r in log if r.method == "POST" and r.status < 300 and not r.replayed
    )
    events = Counter()  # type: Counter[tuple[str, str, str]]
    for item in tracked:
        for e in w.saleor.transaction(item.order.transaction).events:
            if e.type.endswith(("_SUCCESS", "_FAILURE")) and e.type != "AUTHORIZATION_SUCCESS":
                events[(item.order.transaction, e.type, e.psp_reference)] += 1
    captures = sum(len(w.klarna(t.order).captures) for t in tracked)
    refunds = sum(len(w.klarna(t.order).refunds) for t in tracked)
    expected_captures = sum(1 if t.cancels else 2 for t in tracked)
    expected_refunds = sum(0 if t.cancels else 2 for t in tracked)
    failures = sum(n for (_, kind, _), n in events.items() if kind.endswith("_FAILURE"))
    misallocated = sum(1 for t in tracked for r in w.klarna(t.order).refunds if r.allocated_to is None)
    # A fault ends when it is met and touches the order its request names (a kill: the
    # orders the dead worker held). From then to when that order's work of the moment was
    # done (its parcels captured and reported, or its refund or cancel carried out).
    ends: dict[str, list[tuple[float, list[Tracked]]]] = {"provider": [], "platform": [], "kill": []}
    for record in log:
        if record.fault:
            touched = [o for o in tracked if o.order.klarna_id in record.path]
            ends["provider"].append((record.at.timestamp(), touched))
    for at, _, body in w.platform_faults.met:
        ends["platform"].append(
            (at, [o for o in tracked if o.order.id in body or o.order.transaction in body])
        )
    for at, _, held in supervisor.kills:
        ends["kill"].append((at, [o for o in tracked if o.order.id in held]))
    waits = {
        kind: [
            o.converged_at - at
            for at, touched in found
            for o in touched
            if o.converged_at and o.converged_at > at
        ]
        for kind, found in ends.items()
    }
    return {
        "orders": len(tracked),
        "workers": WORKERS,
        "lease_seconds": float(LEASE),
        "captures": captures,
        "refunds": refunds,
        "releases": sum(1 for t in tracked if t.cancels),
        "faults_injected": injected + len(supervisor.kills),
        "provider_faults_met": sum(1 for r in log if r.fault),
        "platform_faults_met": len(w.platform_faults.met),
        "kills": [name for _, name, _ in supervisor.kills],
        "duplicates": sum(n - 1 for n in executed.values() if n > 1)
        + sum(n - 1 for n in events.values() if n > 1)
        + max(captures - expected_captures, 0)
        + max(refunds - expected_refunds, 0),
        "lost": sum(1 for t in tracked if not converged(w, t)) + failures,
        "misallocated": misallocated,
        "max_seconds_from_fault_end_to_convergence": round(
            max(max(v, default=0.0) for v in waits.values()), 1
        ),
        "max_seconds_by_fault": {kind: round(max(v, default=0.0), 1) for kind, v in waits.items()},
        "seconds_total": round(max(t.converged_at or 0 for t in tracked) - began, 1),
    }


def not_converged(w: World, tracked: list[Tracked]) -> str:
    left = [t for t in tracked if t.converged_at is None]
    return f"{len(left)} orders did not converge, e.g. {left[0].order.id}: {w.klarna(left[0].order)}"
