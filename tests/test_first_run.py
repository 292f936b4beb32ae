"""A newcomer's first run: every command started as a new process from an empty directory,
with no KOM_* variable at all, on the development defaults (SQLite ./kom.db, a secret key
generated once into ./kom.secret). Nothing may print a traceback, on the first start or
on the second."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import free_port

KOM = Path(sys.executable).with_name("kom")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """Only what any shell has: no KOM_*, no FORWARDED_ALLOW_IPS, no NO_COLOR."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    assert not any(name.startswith("KOM_") for name in env if name not in extra)
    return env


@dataclass
class Ran:
    code: int
    out: str
    err: str


def kom(cwd: Path, *args: str, stdin: str | None = None, **env: str) -> Ran:
    done = subprocess.run(
        [str(KOM), *args],
        cwd=cwd,
        env=clean_env(cwd, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "fresh"
    folder.mkdir()
    return folder


def serve_until_healthy(cwd: Path, port: int) -> str:
    """Start `kom serve`, wait for /healthz, read the home page, stop it; its stderr."""
    process = subprocess.Popen(
        [str(KOM), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=clean_env(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "kom serve did not answer /healthz within 60 s"
            time.sleep(0.2)
        manifest = httpx.get(f"http://127.0.0.1:{port}/api/manifest", timeout=5).json()
        for page in ("homepageUrl", "supportUrl"):
            url = manifest[page].replace("http://localhost:", "http://127.0.0.1:")
            assert httpx.get(url, timeout=5).status_code == 200, manifest[page]
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    return err


def test_serve_starts_twice_on_the_development_defaults(empty: Path) -> None:
    port = free_port()
    first = serve_until_healthy(empty, port)
    secret = (empty / "kom.secret").read_text()
    assert len(secret.strip()) >= 32 and (empty / "kom.secret").stat().st_mode & 0o777 == 0o600
    assert "generated a development KOM_SECRET_KEY in kom.secret" in first
    # Where to install, with the port it really listens on (KOM_PUBLIC_URL follows --port).
    assert f"manifest URL http://localhost:{port}/api/manifest" in first
    second = serve_until_healthy(empty, port)
    assert (empty / "kom.secret").read_text() == secret  # the same key: stored secrets stay readable
    assert "generated" not in second


def test_worker_migrate_and_the_other_commands_on_the_development_defaults(empty: Path) -> None:
    migrated = kom(empty, "migrate")
    assert migrated.code == 0 and "to revision" in migrated.out
    assert not (empty / "kom.secret").exists()  # the schema needs no key
    assert kom(empty, "migrate").out.startswith("database is up to date")
    assert kom(empty, "migrate", "--check").code == 0
    for attempt in (1, 2):
        worker = kom(empty, "worker", "--once")
        assert worker.code == 0 and "processed 0 orders" in worker.out, worker.err
        assert ("generated a development KOM_SECRET_KEY" in worker.err) == (attempt == 1)
    listing = kom(empty, "installations")
    assert listing.code == 0 and "no installations yet" in listing.out
    checked = kom(empty, "check")
    assert checked.code == 0 and "no problems found" in checked.out
    assert "KOM_SECRET_KEY=**********" in checked.out and "(kom.secret)" in checked.out


def test_configure_on_the_development_defaults_uses_the_generated_key(empty: Path) -> None:
    """The key from the first start encrypts; the second process decrypts with the same file."""
    assert kom(empty, "worker", "--once").code == 0  # creates kom.db and kom.secret
    install = (
        "import asyncio, pathlib\n"
        "from plugin.store.secrets import SecretBox\n"
        "from plugin.store.store import Store\n"
        "async def main():\n"
        "    key = pathlib.Path('kom.secret').read_text().strip()\n"
        "    store = await Store.open('sqlite:///./kom.db', SecretBox(key))\n"
        "    await store.save_installation(platform='saleor', api_url='https://shop.example.com/graphql/',\n"
        "        app_id='QXBwOjE=', token='t', jwks={})\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", install], cwd=empty, env=clean_env(empty), check=True, timeout=60)
    args = ["configure", "--saleor-api-url", "https://shop.example.com/graphql/", "--provider", "kustom"]
    args += ["--environment", "playground", "--api-key-stdin"]
    saved = kom(empty, *args, stdin="kco_test_api_Zmlyc3QtcnVuLWtleQ\n")
    assert saved.code == 0 and "saved: kustom playground" in saved.out, saved.err
    assert "Zmlyc3QtcnVuLWtleQ" not in saved.out
    listing = kom(empty, "installations")
    assert listing.code == 0 and "all channels: kustom playground eu" in listing.out
