"""Planning cost by order size: ``plan()`` time (median of N runs) and peak memory.

Run: ``.venv/bin/python -m benchmarks.planning [--runs 7] [--full]``

Orders come from tests/domain/large_orders.py (seeded): N lines in P parcels, with a
discount and a gift card. Per size it times four passes of the planner:
- capture: every parcel shipped, nothing captured yet (P captures to plan);
- in sync: the same after those captures were made (nothing to do: the worker's usual pass);
- refund: R returns (default 50) came back, Saleor's way, and were granted; all parcels
  captured (R refunds to plan, and the captures checked again);
- in sync after: the same after those refunds were made.
Times are the median of ``--runs`` runs of the process's CPU time (planning is pure CPU, and
CPU time stays meaningful on a machine shared with other work); ``--wall`` takes wall-clock
time instead. Peak memory is tracemalloc's peak during one plan (Python allocations, not RSS).
By default the sizes form a cross around 1,000 lines × 50 parcels so growth in each
dimension shows; ``--full`` measures every combination.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, replace

from plugin.domain.plan import plan
from plugin.domain.policy import Policy
from plugin.domain.provider import ProviderOrder
from plugin.domain.snapshot import Order
from tests.domain.large_orders import Shape, base_order, carried_out, come_back, parcels
from tests.domain.sim import authorized

LINES = (100, 250, 500, 1000, 2000)
PARCELS = (10, 25, 50, 100)
PASSES = ("capture", "in sync", "refund", "in sync after")


@dataclass(frozen=True)
class Row:
    lines: int
    parcels: int
    returns: int
    ms: dict[str, float]
    peak_kib: dict[str, float]


def inputs(shape: Shape) -> dict[str, tuple[Order, ProviderOrder]]:
    """The planner's inputs for each pass (each carried out before the next)."""
    rng = random.Random(shape.seed)
    order = base_order(shape, rng)
    shipments = parcels(order, shape, rng)
    order = replace(order, shipments=tuple(shipments))
    fresh = authorized(order, "kl-bench")
    captured = carried_out(fresh, plan(order, fresh).actions)
    result = {"capture": (order, fresh), "in sync": (order, captured)}
    if shape.returns:
        kept, returned, requests = come_back(shipments, shape, rng, order)
        back = replace(order, shipments=tuple(kept), returned=tuple(returned), refunds=tuple(requests))
        refunded = carried_out(captured, plan(back, captured).actions)
        result["refund"] = (back, captured)
        result["in sync after"] = (back, refunded)
    return result


def _median_ms(call: Callable[[], object], runs: int, clock: Callable[[], float]) -> float:
    call()  # warm-up
    times = []
    for _ in range(runs):
        gc.collect()
        start = clock()
        call()
        times.append(clock() - start)
    return statistics.median(times) * 1000


def _peak_kib(call: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def measure(
    sizes: list[tuple[int, int, int]], runs: int, clock: Callable[[], float] = time.process_time
) -> list[Row]:
    rows = []
    policy = Policy()
    for lines, parcel_count, returns in sizes:
        shape = Shape(lines, parcel_count, returns=returns, seed=7, discount=True, gift_card=True)
        print(f"  {shape.name} ...", file=sys.stderr)
        ms: dict[str, float] = {}
        peak: dict[str, float] = {}
        for name, (order, provider) in inputs(shape).items():

            def call(order: Order = order, provider: ProviderOrder = provider) -> object:
                return plan(order, provider, policy)

            ms[name] = _median_ms(call, runs, clock)
            peak[name] = _peak_kib(call)
        rows.append(Row(lines, parcel_count, returns, ms, peak))
    return rows


def table(rows: list[Row]) -> str:
    head = (
        "| lines | parcels | returns | capture ms | in sync ms | refund ms | in sync after ms "
        "| capture µs/line | peak MiB (capture / refund) |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    )
    out = [head]
    for row in rows:

        def cell(name: str, row: Row = row) -> str:
            return f"{row.ms[name]:.1f}" if name in row.ms else "-"

        peak = " / ".join(f"{row.peak_kib[n] / 1024:.1f}" for n in ("capture", "refund") if n in row.peak_kib)
        per_line = row.ms["capture"] * 1000 / row.lines
        out.append(
            f"| {row.lines} | {row.parcels} | {row.returns} | {cell('capture')} | {cell('in sync')} "
            f"| {cell('refund')} | {cell('in sync after')} | {per_line:.0f} | {peak} |"
        )
    return "\n".join(out)


def default_sizes(returns: int) -> list[tuple[int, int, int]]:
    """A cross around 1,000 × 50: lines grow at 50 parcels, parcels grow at 1,000 lines."""
    sizes = [(n, 50, returns) for n in LINES]
    sizes += [(1000, p, returns) for p in PARCELS if p != 50]
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per pass (median)")
    parser.add_argument("--returns", type=int, default=50)
    parser.add_argument("--full", action="store_true", help="every lines × parcels combination")
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of CPU time")
    args = parser.parse_args()
    if args.full:
        sizes = [(n, p, args.returns) for n in LINES for p in PARCELS]
    else:
        sizes = default_sizes(args.returns)
    print(table(measure(sizes, args.runs, time.perf_counter if args.wall else time.process_time)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
