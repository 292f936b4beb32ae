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


async def _prepare(db: Path, jwks: dict[str, Any]) -> None:
    store = await Store.open(f"sqlite:///{db}", SecretBox(SECRET))
    await store.save_installation(platform="saleor", api_url=API_URL, app_id=APP_ID, token="bench", jwks=jwks)
    await store.close()


async def _recorded(db: Path) -> int:
    store = await Store.open(f"sqlite:///{db}", SecretBox(SECRET))
    count = len(await store.order_jobs(limit=100_000))
    await store.close()
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--orders", type=int, default=500, help="distinct signed payloads to rotate through")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    key, jwks = _keys()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "kom.db"
        asyncio.run(_prepare(db, jwks))
        script = Path(tmp) / "post.lua"
        script.write_text(_lua(_signed_bodies(key, args.orders)))
        env = {
            **os.environ,
            "KOM_DATABASE_URL": f"sqlite:///{db}",
            "KOM_SECRET_KEY": SECRET,
            "KOM_LOG_LEVEL": "WARNING",
        }
        results = {}
        for name, factory in (
            ("bare Starlette", "benchmarks.apps:bare"),
            ("KOM ingest", "benchmarks.apps:kom"),
        ):
            process, port = _serve(factory, env)
            try:
                _wrk(port, script, 2, args.connections)  # warm-up
                results[name] = _wrk(port, script, args.seconds, args.connections)
            finally:
                process.terminate()
                process.wait(timeout=10)
        recorded = asyncio.run(_recorded(db))
    bare, kom = results["bare Starlette"], results["KOM ingest"]
    setup = f"{args.seconds}s per server, {args.connections} connections, 1 uvicorn process"
    print(f"\nwebhook ingest, {setup}, {os.cpu_count()} cores")
    print(f"{'server':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for name, r in results.items():
        print(f"{name:<16}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['errors']:>10.0f}")
    ratio = kom["rps"] / bare["rps"]
    print(f"KOM / bare throughput: {ratio:.2f}   distinct orders recorded: {recorded}/{args.orders}")
    return 0 if kom["errors"] == 0 and recorded == args.orders else 1


if __name__ == "__main__":
    raise SystemExit(main())
