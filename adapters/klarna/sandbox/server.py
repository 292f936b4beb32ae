"""Serve the sandbox over real HTTP with uvicorn (`kom sandbox --port N` calls run())."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

from .app import create_app
from .auth import DEMO_CREDENTIALS, Credentials
from .state import SandboxState

DEFAULT_PORT = 8765


def run(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    credentials: Credentials = DEMO_CREDENTIALS,
    *,
    state: SandboxState | None = None,
    log_level: str = "info",
) -> None:
    """Serve until interrupted; logs the base URL and the accepted credentials first."""
    config = uvicorn.Config(
        create_app(state, credentials=credentials), host=host, port=port, log_level=log_level
    )
    server = uvicorn.Server(config)  # Config has set up uvicorn's loggers by now
    logger = logging.getLogger("uvicorn.error")
    for line in banner(f"http://{host}:{port}", credentials):
        logger.info("%s", line)
    server.run()


def banner(base_url: str, credentials: Credentials) -> list[str]:
    lines = [f"Klarna Order Management sandbox at {base_url}  (admin API: {base_url}/_sandbox/)"]
    for key, username in credentials.api_keys.items():
        lines.append(f"  API key:   Authorization: Basic {key}")
        if username:
            lines.append(f"             or user {username!r} with the key as password")
    for username, password in credentials.pairs.items():
        lines.append(f"  user/pass: {username} / {password}")
    lines.append(
        f"  try: curl -s -X POST {base_url}/_sandbox/orders -d "
        """'{"purchase_currency": "EUR", "order_amount": 20000}'"""
    )
    return lines


@contextmanager
def serve_in_thread(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, lifespan: Literal["auto", "on", "off"] = "auto"
) -> Iterator[str]:
    """Run `app` on a real socket in a background thread; yields the base URL (for tests).

    The socket is made with proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted
    connections only when the listening socket says so, and without it uvicorn's separate
    header and body writes meet Nagle plus delayed ACK (~40 ms per keep-alive answer).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()  # a port taken meanwhile: say so, and leave no socket for the collector
        raise
    # log_config=None: leave the host process's logging alone
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("sandbox server did not start")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
