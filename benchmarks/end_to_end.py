"""Orders synced per second end to end, with 1, 2 and 4 `kom worker` processes.

The world of tests/e2e, as separate processes where KOM has them: the fake Saleor and the
Klarna sandbox serve from threads of this process; KOM's web app (`kom serve --no-worker`)
and each worker (`kom worker`) are subprocesses on one database (SQLite file or PostgreSQL).

Two phases per run, each timed from the moment every worker is up until the queue is empty
and the sandbox holds everything expected:
  * ship: every order was fulfilled in two parcels -> two captures per order;
  * refund: a return spanning both parcels -> two refunds per order (one per capture).
Counted per phase: the sandbox's Order Management requests (reads and writes); per process:
peak resident memory (VmHWM).

Run: ``.venv/bin/python -m benchmarks.end_to_end [--orders 60] [--workers 1 2 4]
[--databases sqlite postgresql]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from adapters.klarna.sandbox import DEMO_API_KEY, SandboxState
from adapters.klarna.sandbox import create_app as create_sandbox
from adapters.klarna.sandbox.server import serve_in_thread
from plugin.domain.money import to_minor
from plugin.store.secrets import SecretBox
from plugin.store.store import ChannelSettings, Store

SECRET = "benchmark-secret-key-0123456789"
LINES = [
    ("TSHIRT", "T-shirt", 1, "30.00", "0.25"),
    ("JEANS", "Jeans", 1, "70.00", "0.25"),
    ("SNEAKERS", "Sneakers", 1, "100.00", "0.25"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"process exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Phase:
    seconds: float
    orders: int
    reads: int
    writes: int
    operations: int  # captures or refunds made

    @property
    def orders_per_second(self) -> float:
        return self.orders / self.seconds


@dataclass
class Run:
    database: str
    workers: int
    ship: Phase
    refund: Phase
    web_rss: float
    worker_rss: list[float] = field(default_factory=list)


def kom_env(database_url: str, kom_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "KOM_DATABASE_URL": database_url,
        "KOM_SECRET_KEY": SECRET,
        "KOM_PUBLIC_URL": kom_url,
        "KOM_ALLOWED_SALEOR_URLS": r"http://127\.0\.0\.1:\d+/graphql/",
        "KOM_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        "KOM_ENVIRONMENT": "benchmark",
        "KOM_LOG_LEVEL": "WARNING",
    }


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "plugin.cli", *args], env=env)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def workers(count: int, env: dict[str, str]) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    started = []
    try:
        for _ in range(count):
            port = free_port()
            started.append((spawn(["worker", "--metrics-port", str(port)], env), port))
        for process, port in started:
            wait_port(port, process)
        yield started
    finally:
        for process, _ in started:
            stop(process)


async def settle(store: Store, sandbox: SandboxState, done: Any, timeout: float, saleor: Any) -> None:
    deadline = time.monotonic() + timeout
    while True:
        await saleor.deliver_pending()
        stats = await store.queue_stats()
        if not stats.counts.get("pending") and done():
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"not settled after {timeout}s: {stats.counts}")
        await asyncio.sleep(0.02)


def om_requests(sandbox: SandboxState) -> tuple[int, int]:
    log = [r for r in sandbox.request_log() if r.path.startswith("/ordermanagement/")]
    reads = sum(1 for r in log if r.method == "GET")
    return reads, len(log) - reads


async def run_once(database_url: str, database: str, count: int, orders: int) -> Run:
    from tests.fakes.saleor import serve_fake_saleor

    store = await Store.open(database_url, SecretBox(SECRET))  # migrates
    sandbox = SandboxState()
    kom_port = free_port()
    kom_url = f"http://127.0.0.1:{kom_port}"
    env = kom_env(database_url, kom_url)
    web = spawn(["serve", "--no-worker", "--port", str(kom_port)], env)
    try:
        wait_port(kom_port, web)
        with serve_in_thread(create_sandbox(sandbox)) as klarna_url, serve_fake_saleor() as saleor:
            async with httpx.AsyncClient(timeout=30) as http:
                app = await saleor.install(f"{kom_url}/api/manifest")
                installation = await store.installation_by_url(saleor.api_url)
                assert installation is not None
                await store.save_settings(
                    installation.id,
                    ChannelSettings(
                        "", "klarna", "playground", "eu", DEMO_API_KEY, None, base_url=klarna_url
                    ),
                )
                made = []
                for _ in range(orders):
                    created = saleor.create_order(currency="EUR", lines=LINES, shipping=("10.00", "0.25"))
                    total = saleor.order(created.id)["total"]["gross"]["amount"]
                    response = await http.post(
                        f"{klarna_url}/_sandbox/orders",
                        json={"purchase_currency": "EUR", "order_amount": to_minor(str(total), "EUR")},
                    )
                    klarna_id = str(response.json()["order_id"])
                    transaction = saleor.create_transaction(created.id, app, klarna_id, str(total))
                    made.append((created, transaction, klarna_id))
                for created, _, _ in made:
                    lines = list(created.line_ids)
                    saleor.fulfill(created.id, {lines[0]: 1, lines[1]: 1})
                    saleor.fulfill(created.id, {lines[2]: 1})
                await saleor.deliver_pending()

                def captured() -> bool:
                    return all(len(sandbox.get(k).captures) == 2 for _, _, k in made)

                def refunded() -> bool:
                    return all(len(sandbox.get(k).refunds) == 2 for _, _, k in made)

                rss: list[float] = []
                phases = []
                for phase, done in (("ship", captured), ("refund", refunded)):
                    if phase == "refund":
                        for created, transaction, _ in made:
                            lines = list(created.line_ids)
                            grant = saleor.grant_refund(created.id, transaction, {lines[0]: 1, lines[2]: 1})
                            saleor.request_refund_for_granted_refund(grant)
                        await saleor.deliver_pending()
                    reads0, writes0 = om_requests(sandbox)
                    with workers(count, env) as started:
                        began = time.perf_counter()
                        await settle(store, sandbox, done, 300, saleor)
                        seconds = time.perf_counter() - began
                        rss += [peak_rss_mib(p.pid) for p, _ in started]
                    reads, writes = om_requests(sandbox)
                    phases.append(Phase(seconds, orders, reads - reads0, writes - writes0, 2 * orders))
                web_rss = peak_rss_mib(web.pid)
    finally:
        stop(web)
        await store.close()
    return Run(database, count, phases[0], phases[1], web_rss, rss)


@contextlib.asynccontextmanager
async def database(kind: str, tmp: Path, n: int) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / f'e2e-{n}.db'}"
        return
    from tests.store import postgres

    admin = postgres.shared_admin_url()
    url = await postgres.create_database(admin)
    try:
        yield url
    finally:
        await postgres.drop_database(admin, url)


async def measure(orders: int, counts: list[int], kinds: list[str]) -> list[Run]:
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            for n, count in enumerate(counts):
                async with database(kind, Path(tmp), n) as url:
                    runs.append(await run_once(url, kind, count, orders))
                    print(
                        f"  {kind} x{count}: {runs[-1].ship.orders_per_second:.1f} orders/s", file=sys.stderr
                    )
    return runs


def calls(phase: Phase) -> str:
    per = phase.operations
    return f"{(phase.reads + phase.writes) / per:.2f} ({phase.reads / per:.2f} + {phase.writes / per:.2f})"


def table(runs: list[Run]) -> str:
    rows = [
        "| database | workers | ship: orders/s | refund: orders/s | OM calls per shipment (reads + writes) "
        "| OM calls per refund (reads + writes) | peak RSS web / worker (MiB) |",
        "| --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in runs:
        rates = f"{r.ship.orders_per_second:.1f} | {r.refund.orders_per_second:.1f}"
        rows.append(
            f"| {r.database} | {r.workers} | {rates} | {calls(r.ship)} | {calls(r.refund)} "
            f"| {r.web_rss:.0f} / {max(r.worker_rss):.0f} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    runs = asyncio.run(measure(args.orders, args.workers, args.databases))
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
