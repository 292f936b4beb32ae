"""`kom worker` as real processes on the world's database (tests/e2e/harness.py), to kill -9.

The fake Saleor, the sandbox and KOM's web part run in the test process; the workers are
separate Python processes that find everything (installation, credentials, the sandbox's
URL) in the SQLite file, exactly as a deployed `kom worker` would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness import SECRET, World

KILLED = -signal.SIGKILL


def worker_env(w: World, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOM_")}
    env.update(
        KOM_DATABASE_URL=w.settings.database_url,
        KOM_SECRET_KEY=SECRET,
        KOM_PROVIDER_MAX_ATTEMPTS="2",
        KOM_RETRY_BASE_SECONDS="0.2",
        KOM_RETRY_MAX_SECONDS="2",
        KOM_LOG_LEVEL="INFO",
    )
    env.update(settings)
    return env


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    name: str
    log: Path

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def wait(self, timeout: float = 60) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.wait()


async def start_worker(
    w: World, logs: Path, name: str, *, once: bool = False, crash_at: str | None = None, **settings: str
) -> WorkerProcess:
    env = worker_env(w, **settings)
    if crash_at:
        env["KOM_CRASH_AT"] = crash_at
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "plugin.cli", "worker", *(["--once"] if once else []),
            env=env, cwd=logs, stdout=out, stderr=out,
        )  # fmt: skip
    return WorkerProcess(process, name, log)


async def run_kom(logs: Path, name: str, *args: str, env: dict[str, str]) -> int:
    """Any `kom` command as a process, to its end; its exit code (-9 when killed)."""
    with (logs / f"{name}.log").open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "plugin.cli", *args, env=env, cwd=logs, stdout=out, stderr=out
        )
    return await asyncio.wait_for(process.wait(), 60)


async def run_worker(w: World, logs: Path, name: str, *, crash_at: str | None = None, **settings: str) -> int:
    """`kom worker --once` to the end (or to its crash point); its exit code."""
    worker = await start_worker(w, logs, name, once=True, crash_at=crash_at, **settings)
    return await worker.wait()
