"""Every measurement in docs/performance.md, in one command.

    .venv/bin/python -m benchmarks.report            # print the page
    .venv/bin/python -m benchmarks.report --write    # and write docs/performance.md

Needs ``wrk`` (apt-get install wrk) and PostgreSQL's binaries (.ci/install-postgres) or
KOM_TEST_POSTGRES_URL; takes about five minutes on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import end_to_end, webhook_ingest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )  # fmt: skip
    memory = next(
        int(line.split()[1]) // 1024 // 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    from tests.store import postgres

    pg = postgres._bin("postgres")
    pg_version = (
        subprocess.run([pg, "--version"], capture_output=True, text=True).stdout.strip() if pg else "-"
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory} GiB memory, Linux {platform.release()}; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {pg_version}"
    )


async def _postgres_database() -> str:
    """A new database on the tests' PostgreSQL (KOM_TEST_POSTGRES_URL, else a throwaway server)."""
    from tests.store import postgres

    return await postgres.create_database(postgres.shared_admin_url())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {PAGE.relative_to(PAGE.parents[1])}")
    parser.add_argument("--seconds", type=int, default=10, help="per ingest server")
    parser.add_argument("--orders", type=int, default=60, help="orders per end-to-end run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pg_url = asyncio.run(_postgres_database())
        print("webhook ingest ...", file=sys.stderr)
        ingest, recorded = webhook_ingest.measure(
            args.seconds, 8, 500, {"SQLite": f"sqlite:///{Path(tmp) / 'ingest.db'}", "PostgreSQL": pg_url}
        )
    print("end to end ...", file=sys.stderr)
    runs = asyncio.run(end_to_end.measure(args.orders, [1, 2, 4], ["sqlite", "postgresql"]))
    page = render(machine(), args, webhook_ingest.table(ingest, recorded, 500), end_to_end.table(runs))
    print(page)
    if args.write:
        PAGE.write_text(page)
    return 0


def render(host: str, args: argparse.Namespace, ingest: str, e2e: str) -> str:
    return f"""# Performance

Measured with `.venv/bin/python -m benchmarks.report --write` (this page is its output;
the section "Reading the numbers" is written by hand and kept), on {host}.

## Webhook ingest

One uvicorn process per server, `wrk` with 1 thread and 8 connections for {args.seconds} s
after a 2 s warm-up, rotating through 500 distinct signed `FULFILLMENT_CREATED` payloads.
"bare Starlette" reads the body and answers `{{}}`: the floor. "KOM ingest" is the real app
without worker: cap the body, look up the installation, verify the JWS (RS256), parse, record
the hint durably (committed before the answer, SQLite `synchronous=FULL`), answer.

{ingest}

## End to end

The fake Saleor and the Klarna sandbox serve from threads of the benchmark process; KOM's
web app (`kom serve --no-worker`) and N `kom worker` processes run as subprocesses on one
database. {args.orders} orders, each shipped in two parcels ("ship": two captures, reported to
Saleor as two charges), then returned across both parcels ("refund": two refunds, one per
capture, reported as one refund). Orders per second from the moment the workers are up until
the queue is empty and the sandbox holds every capture/refund. OM calls are Order Management
requests per capture or refund made, split into reads (GET order) and writes.

{e2e}

{notes()}"""


NOTES = "## Reading the numbers"


def notes() -> str:
    """The hand-written part of the page, kept when the tables are measured again."""
    if PAGE.exists() and NOTES in PAGE.read_text():
        return PAGE.read_text()[PAGE.read_text().index(NOTES) :].rstrip() + "\n"
    return f"{NOTES}\n\n(write the analysis here; `--write` keeps this section)\n"


if __name__ == "__main__":
    raise SystemExit(main())
