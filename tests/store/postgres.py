"""A PostgreSQL server for the tests, and a fresh database per test.

``KOM_TEST_POSTGRES_URL`` (e.g. ``postgresql://user:pw@127.0.0.1:5432/postgres``) names a
server to use: a user allowed to create databases. Without it the tests start a throwaway
server themselves when PostgreSQL's binaries are installed (``.ci/install-postgres``; they
are looked for on PATH and under /usr/lib/postgresql/*/bin): ``initdb`` into a temporary
directory, ``postgres`` on a free loopback port, run as the ``postgres`` user when the tests
run as root (PostgreSQL refuses to run as root). Without either, PostgreSQL tests skip,
except under CI=true, where they fail: CI must test both databases.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

ENV_URL = "KOM_TEST_POSTGRES_URL"


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI (where PostgreSQL must be tested)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL: {reason}")
    raise AssertionError("unreachable")


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    """Start a private PostgreSQL on loopback; yields the URL of its ``postgres`` database."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise FileNotFoundError(
            f"initdb/pg_ctl not found (set {ENV_URL}, or run .ci/install-postgres as root)"
        )
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="kom-pg-"))
    data = base / "data"
    run_as: list[str] = []
    if as_root:
        runuser = shutil.which("runuser")
        run_as = [runuser, "-u", "postgres", "--"] if runuser else []
        if not run_as:
            raise FileNotFoundError("running as root needs runuser to start PostgreSQL as user postgres")
        shutil.chown(base, "postgres")
        base.chmod(0o700)
    port = _free_port()
    log = base / "server.log"
    try:
        subprocess.run(
            [*run_as, initdb, "-D", str(data), "-U", "kom", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
        )
        try:
            yield f"postgresql://kom@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace")
        if log.exists():
            detail += log.read_text(errors="replace")
        raise RuntimeError(f"could not start PostgreSQL: {detail.strip()}") from exc
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def server_url() -> Iterator[str]:
    """The server named by KOM_TEST_POSTGRES_URL, else a throwaway one."""
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    with throwaway_server() as url:
        yield url


_shared: str | None = None
_failure: str | None = None


def shared_admin_url() -> str:
    """One server for the whole test run (started on first use, stopped at exit), or skip/fail."""
    global _shared, _failure
    if _shared is None and _failure is None:
        stack = contextlib.ExitStack()
        try:
            url = stack.enter_context(server_url())
            wait_ready(url)
        except (OSError, RuntimeError) as exc:
            stack.close()
            _failure = str(exc)
        else:
            atexit.register(stack.close)
            _shared = url
    if _shared is None:
        unavailable(_failure or "unknown")
    assert _shared is not None
    return _shared


def _replace_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def create_database(admin_url: str) -> str:
    """A new, empty database on the server; returns its URL."""
    import asyncpg

    name = f"kom_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _replace_database(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def wait_ready(url: str, timeout: float = 30) -> None:
    """Wait until the server accepts TCP connections (pg_ctl -w waits too; a given URL may not)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextlib.asynccontextmanager
async def fresh_database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of ``kind`` ("sqlite" or "postgresql"); dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'kom.db'}"
        return
    admin = shared_admin_url()
    url = await create_database(admin)
    try:
        yield url
    finally:
        await drop_database(admin, url)
