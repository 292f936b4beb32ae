"""Webhook ingest: KOM (JWS verified + hint durably recorded) against a bare Starlette endpoint.

Run: ``.venv/bin/python -m benchmarks.webhook_ingest [--seconds 10] [--connections 8]``
Needs Debian's ``wrk`` (``apt-get install wrk``). Both servers run as one uvicorn process
each, measured one after the other in the same run with the same load; prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from plugin.store.secrets import SecretBox
from plugin.store.store import Store

API_URL = "https://shop.example.com/graphql/"
APP_ID = "QXBwOjE="
SECRET = "benchmark-secret-key-0123456789"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _keys() -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": "bench",
        "n": _b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": _b64(numbers.e.to_bytes(3, "big")),
    }
    return key, {"keys": [jwk]}


def _signed_bodies(key: rsa.RSAPrivateKey, count: int) -> list[tuple[str, str]]:
    header = _b64(
        json.dumps({"alg": "RS256", "b64": False, "crit": ["b64"], "kid": "bench", "typ": "JWT"}).encode()
    )
    bodies = []
    for n in range(count):
        order_id = base64.b64encode(f"Order:{n:08d}".encode()).decode()
        payload = {
            "__typename": "FulfillmentCreated",
            "issuedAt": "2026-11-21T12:00:00+00:00",
            "version": "3.23.28",
            "recipient": {"id": APP_ID},
            "fulfillment": {
                "id": base64.b64encode(f"Fulfillment:{n}".encode()).decode(),
                "status": "FULFILLED",
            },
            "order": {"id": order_id, "number": str(1000 + n), "channel": {"slug": "default-channel"}},
        }
        body = json.dumps(payload)
        signature = key.sign(f"{header}.".encode() + body.encode(), padding.PKCS1v15(), hashes.SHA256())
        bodies.append((body, f"{header}..{_b64(signature)}"))
    return bodies


def _lua(bodies: list[tuple[str, str]]) -> str:
    def quote(text: str) -> str:
        return "[==[" + text + "]==]"

    items = ",\n".join(f"{{{quote(b)}, {quote(s)}}}" for b, s in bodies)
    return f"""
local items = {{
{items}
}}
local i = 0
request = function()
  i = i % #items + 1
  local headers = {{}}
  headers["Content-Type"] = "application/json"
  headers["Saleor-Event"] = "fulfillment_created"
  headers["Saleor-Api-Url"] = "{API_URL}"
  headers["Saleor-Signature"] = items[i][2]
  return wrk.format("POST", "/api/webhooks/fulfillment-created", headers, items[i][1])
end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(factory: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            factory,
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{factory} did not start")


def _wrk(port: int, script: Path, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/api/webhooks/fulfillment-created"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def percentile(p: str) -> float:
        match = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rps": rate,
        "p50": percentile("50"),
        "p99": percentile("99"),
        "errors": float(errors.group(1)) if errors else 0,
    }


async def _prepare(url: str, jwks: dict[str, Any]) -> None:
    store = await Store.open(url, SecretBox(SECRET))
    await store.save_installation(platform="saleor", api_url=API_URL, app_id=APP_ID, token="bench", jwks=jwks)
    await store.close()


async def _recorded(url: str) -> int:
    store = await Store.open(url, SecretBox(SECRET))
    count = len(await store.order_jobs(limit=100_000))
    await store.close()
    return count


def measure(
    seconds: int, connections: int, orders: int, databases: dict[str, str]
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Bare Starlette, then KOM on each of ``databases`` (label -> URL, empty databases)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    key, jwks = _keys()
    results: dict[str, dict[str, float]] = {}
    recorded: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_lua(_signed_bodies(key, orders)))
        servers = [("bare Starlette", "benchmarks.apps:bare", None)]
        servers += [(f"KOM ingest ({label})", "benchmarks.apps:kom", url) for label, url in databases.items()]
        for name, factory, url in servers:
            env = {**os.environ, "KOM_SECRET_KEY": SECRET, "KOM_LOG_LEVEL": "WARNING"}
            if url is not None:
                asyncio.run(_prepare(url, jwks))
                env["KOM_DATABASE_URL"] = url
            process, port = _serve(factory, env)
            try:
                _wrk(port, script, 2, connections)  # warm-up
                results[name] = _wrk(port, script, seconds, connections)
            finally:
                process.terminate()
                process.wait(timeout=10)
            if url is not None:
                recorded[name] = asyncio.run(_recorded(url))
    return results, recorded


def table(results: dict[str, dict[str, float]], recorded: dict[str, int], orders: int) -> str:
    bare = results["bare Starlette"]["rps"]
    rows = [
        "| server | req/s | vs bare | p50 ms | p99 ms | non-2xx | orders recorded |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        kept = f"{recorded[name]}/{orders}" if name in recorded else "-"
        rows.append(
            f"| {name} | {r['rps']:.0f} | {r['rps'] / bare:.2f} | {r['p50']:.2f} | {r['p99']:.2f} "
            f"| {r['errors']:.0f} | {kept} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--orders", type=int, default=500, help="distinct signed payloads to rotate through")
    parser.add_argument(
        "--database-url", help="measure KOM on this (empty) database instead of a new SQLite file"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'kom.db'}"
        results, recorded = measure(args.seconds, args.connections, args.orders, {"sqlite": url})
    setup = f"{args.seconds}s per server, {args.connections} connections, 1 uvicorn process"
    print(f"\nwebhook ingest, {setup}, {os.cpu_count()} cores")
    print(table(results, recorded, args.orders))
    ok = all(r["errors"] == 0 for r in results.values()) and all(n == args.orders for n in recorded.values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
