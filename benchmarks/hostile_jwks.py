"""One tenant's hostile key set against another tenant's webhooks (issue 11, item 3).

Two installations share one ``kom serve --no-worker`` process on SQLite:

- the victim, with Saleor's usual single 2048-bit key, sends validly signed webhooks one
  after another; the script reports their latency (p50, p95);
- the attacker registered a JWKS of 2,000 16,384-bit "keys" under one kid (random odd
  moduli verify exactly as slowly as real ones) and floods KOM with forged webhooks
  naming that kid, ``--attackers`` at a time. Its Saleor (on loopback) keeps serving that
  set, should KOM refetch it.

Run: ``.venv/bin/python -m benchmarks.hostile_jwks [--requests 20] [--attackers 4]``.
To measure another KOM (e.g. an older commit exported with ``git archive``), put its tree
first on ``PYTHONPATH``. Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from adapters.klarna.sandbox.server import serve_in_thread
from benchmarks.end_to_end import free_port, stop, wait_port
from plugin.store.secrets import SecretBox
from plugin.store.store import Store

SECRET = "benchmark-secret-key-0123456789"
VICTIM_URL = "https://victim.example.com/graphql/"
VICTIM_APP = "QXBwOjE="


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hostile_jwks(count: int = 2000, bits: int = 16384, *, one_kid: bool = True) -> dict[str, Any]:
    keys = []
    for i in range(count):
        n = secrets.randbits(bits) | (1 << (bits - 1)) | 1
        keys.append(
            {
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": "k" if one_kid else f"k{i}",
                "n": b64(n.to_bytes(bits // 8, "big")),
                "e": "AQAB",
            }
        )
    return {"keys": keys}


def header(kid: str) -> str:
    fields = {"alg": "RS256", "b64": False, "crit": ["b64"], "kid": kid, "typ": "JWT"}
    return b64(json.dumps(fields, separators=(",", ":")).encode())


def victim_key() -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "victim", "e": "AQAB"}
    jwk["n"] = b64(numbers.n.to_bytes(256, "big"))
    return key, {"keys": [jwk]}


def victim_webhook(key: rsa.RSAPrivateKey, n: int) -> tuple[bytes, str]:
    order = base64.b64encode(f"Order:{n:06d}".encode()).decode()
    body = json.dumps(
        {
            "__typename": "FulfillmentCreated",
            "issuedAt": "2026-12-01T10:00:00+00:00",
            "recipient": {"id": VICTIM_APP},
            "fulfillment": {"id": "RnVsZmlsbG1lbnQ6MQ==", "status": "FULFILLED"},
            "order": {"id": order, "number": str(n)},
        }
    ).encode()
    signing = header("victim").encode() + b"." + body
    return body, f"{header('victim')}..{b64(key.sign(signing, padding.PKCS1v15(), hashes.SHA256()))}"


@contextlib.contextmanager
def attacker_saleor(jwks: dict[str, Any]) -> Iterator[str]:
    document = json.dumps(jwks).encode()

    async def served(_: Any) -> Response:
        return Response(document, media_type="application/json")

    app = Starlette(routes=[Route("/.well-known/jwks.json", served)])
    with serve_in_thread(app) as url:
        yield f"{url}/graphql/"


async def measure(
    kom: str, key: rsa.RSAPrivateKey, attacker_url: str, requests: int, attackers: int, kid_k: bool
) -> dict[str, Any]:
    forged_body = b'{"__typename": "FulfillmentCreated"}'
    forged = {
        "Saleor-Event": "fulfillment_created",
        "Saleor-Api-Url": attacker_url,
        "Saleor-Signature": f"{header('k' if kid_k else 'k0')}..{b64(secrets.token_bytes(2048))}",
    }
    statuses: dict[int, int] = {}
    forged_seconds: list[float] = []
    done = asyncio.Event()

    async def attacker(http: httpx.AsyncClient) -> None:
        while not done.is_set():
            began = time.perf_counter()
            response = await http.post(
                f"{kom}/api/webhooks/fulfillment-created", content=forged_body, headers=forged
            )
            forged_seconds.append(time.perf_counter() - began)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    async def victim(http: httpx.AsyncClient, offset: int) -> list[float]:
        latencies = []
        for n in range(requests):
            body, signature = victim_webhook(key, offset + n)
            sent = {
                "Saleor-Event": "fulfillment_created",
                "Saleor-Api-Url": VICTIM_URL,
                "Saleor-Signature": signature,
            }
            began = time.perf_counter()
            response = await http.post(f"{kom}/api/webhooks/fulfillment-created", content=body, headers=sent)
            latencies.append(time.perf_counter() - began)
            assert response.status_code == 200, response.text
            await asyncio.sleep(0.05)
        return latencies

    async with httpx.AsyncClient(timeout=120) as http:
        quiet = await victim(http, 0)
        flood = [asyncio.create_task(attacker(http)) for _ in range(attackers)]
        await asyncio.sleep(0.5)
        loud = await victim(http, requests)
        done.set()
        await asyncio.gather(*flood)

    def pct(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else values[0] * 1000

    return {
        "victim_p50_quiet_ms": round(statistics.median(quiet) * 1000, 1),
        "victim_p50_flood_ms": round(statistics.median(loud) * 1000, 1),
        "victim_p95_flood_ms": round(pct(loud, 95), 1),
        "forged_requests": len(forged_seconds),
        "forged_p50_ms": round(statistics.median(forged_seconds) * 1000, 1) if forged_seconds else None,
        "forged_statuses": statuses,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="victim webhooks per phase")
    parser.add_argument("--attackers", type=int, default=4, help="concurrent forged requests")
    parser.add_argument(
        "--set",
        choices=["hostile", "largest-allowed", "normal"],
        default="hostile",
        help="the attacker's JWKS: 2,000 16,384-bit keys under one kid (the issue's), or the "
        "most costly set the caps let through (8 keys of 4096 bits, one kid each), or Saleor's "
        "usual single 2048-bit key (the cost of any forged-webhook flood, for comparison)",
    )
    args = parser.parse_args()
    import plugin

    one_kid = args.set == "hostile"
    sizes = {"hostile": (2000, 16384), "largest-allowed": (8, 4096), "normal": (1, 2048)}
    hostile = hostile_jwks(*sizes[args.set], one_kid=one_kid)
    key, victim_jwks = victim_key()
    with tempfile.TemporaryDirectory() as tmp, attacker_saleor(hostile) as attacker_url:
        database_url = f"sqlite:///{Path(tmp) / 'kom.db'}"
        store = await Store.open(database_url, SecretBox(SECRET))
        await store.save_installation(
            platform="saleor", api_url=VICTIM_URL, app_id=VICTIM_APP, token="t", jwks=victim_jwks
        )
        await store.save_installation(
            platform="saleor", api_url=attacker_url, app_id="QXBwOjI=", token="t", jwks=hostile
        )
        await store.close()
        port = free_port()
        env = {
            **os.environ,
            "KOM_DATABASE_URL": database_url,
            "KOM_SECRET_KEY": SECRET,
            "KOM_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "KOM_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",  # the attacker's Saleor is on loopback
            "KOM_LOG_LEVEL": "ERROR",
        }
        web = subprocess.Popen(
            [sys.executable, "-m", "plugin.cli", "serve", "--no-worker", "--port", str(port)], env=env
        )
        try:
            wait_port(port, web)
            kom = f"http://127.0.0.1:{port}"
            result = await measure(kom, key, attacker_url, args.requests, args.attackers, one_kid)
        finally:
            stop(web)
    where = str(Path(plugin.__file__).parent.parent)
    print(json.dumps({"kom": where, "set": args.set, "attackers": args.attackers, **result}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
