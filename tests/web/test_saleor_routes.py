"""KOM's Saleor endpoints: every refusal, and the real requests a Saleor 3.23.28 sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from adapters.klarna.sandbox.server import serve_in_thread
from plugin.settings import Settings
from plugin.store.secrets import SecretBox
from plugin.store.store import Store
from plugin.web import egress
from plugin.web.app import create_app
from plugin.web.body import MAX_WEBHOOK_BODY
from tests.saleor import shared
from tests.saleor.signing import jwks_for, rsa_key, sign_detached

SECRET = "route-test-secret-0123456789abcdef"
API_URL = "https://shop.example.com/graphql/"
APP_ID = "QXBwOjE="


@dataclass
class Kom:
    app: Starlette
    client: httpx.AsyncClient
    store: Store


@pytest.fixture
async def kom(tmp_path: Path) -> AsyncIterator[Kom]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'kom.db'}",
        secret_key=SECRET,  # type: ignore[arg-type]
        public_url="https://kom.example.com",
    )
    store = await Store.open(settings.database_url, SecretBox(SECRET))
    app = create_app(settings, store=store, run_worker=False)
    async with app.router.lifespan_context(app):
        egress.install(app.state.services, egress.Egress(resolver=offline))  # no test resolves names
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kom") as client:
            yield Kom(app, client, store)
    await store.close()


async def offline(host: str, port: int) -> list[egress.Address]:
    raise OSError(f"tests do not resolve {host}")


def headers(body: bytes, event: str = "fulfillment_created", *, api_url: str = API_URL) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Saleor-Event": event,
        "Saleor-Api-Url": api_url,
        "Saleor-Signature": sign_detached(body, rsa_key()),
    }


def fulfillment(recipient: str = APP_ID) -> bytes:
    return json.dumps(
        {
            "__typename": "FulfillmentCreated",
            "issuedAt": "2026-11-21T12:00:00+00:00",
            "recipient": {"id": recipient},
            "fulfillment": {"id": "RnVsZmlsbG1lbnQ6MQ==", "status": "FULFILLED"},
            "order": {"id": "T3JkZXI6MQ==", "number": "1"},
        }
    ).encode()


async def installed(
    kom: Kom, jwks: dict[str, Any] | None = None, api_url: str = API_URL, app_id: str = APP_ID
) -> None:
    await kom.store.save_installation(
        platform="saleor", api_url=api_url, app_id=app_id, token="t0ken", jwks=jwks or jwks_for(rsa_key())
    )


async def test_manifest_uses_the_public_url_not_the_host_header(kom: Kom) -> None:
    response = await kom.client.get("/api/manifest", headers={"Host": "127.0.0.1"})
    manifest = response.json()
    assert manifest["tokenTargetUrl"] == "https://kom.example.com/api/register"
    assert {"HANDLE_PAYMENTS", "MANAGE_ORDERS"} <= set(manifest["permissions"])
    assert all(
        w["targetUrl"].startswith("https://kom.example.com/api/webhooks/") for w in manifest["webhooks"]
    )


async def test_health(kom: Kom) -> None:
    assert (await kom.client.get("/healthz")).json()["status"] == "ok"


async def test_a_valid_webhook_records_the_order(kom: Kom) -> None:
    await installed(kom)
    body = fulfillment()
    response = await kom.client.post("/api/webhooks/fulfillment-created", content=body, headers=headers(body))
    assert response.status_code == 200
    job = await kom.store.order_job(1, "T3JkZXI6MQ==")
    assert job is not None and job.state == "pending"


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"Saleor-Api-Url": "https://other.example.com/graphql/"}, 401, "unknown installation"),
        ({"Saleor-Signature": ""}, 401, "missing saleor-signature"),
        ({"Saleor-Event": "order_updated"}, 400, "takes fulfillment_created"),
    ],
)
async def test_webhook_refusals(kom: Kom, change: dict[str, str], status: int, words: str) -> None:
    await installed(kom)
    body = fulfillment()
    response = await kom.client.post(
        "/api/webhooks/fulfillment-created", content=body, headers={**headers(body), **change}
    )
    assert response.status_code == status and words in response.json()["error"].lower()
    assert await kom.store.order_job(1, "T3JkZXI6MQ==") is None


async def test_a_changed_byte_fails_the_signature(kom: Kom) -> None:
    await installed(kom)
    body = fulfillment()
    sent = headers(body)
    response = await kom.client.post(
        "/api/webhooks/fulfillment-created", content=body.replace(b'"1"', b'"2"'), headers=sent
    )
    assert response.status_code == 401 and "signature" in response.json()["error"].lower()


async def test_signed_but_not_json_is_400_and_other_recipient_403(kom: Kom) -> None:
    await installed(kom)
    bad = b"{not json"
    response = await kom.client.post("/api/webhooks/fulfillment-created", content=bad, headers=headers(bad))
    assert response.status_code == 400
    other = fulfillment(recipient="QXBwOjk5")
    response = await kom.client.post(
        "/api/webhooks/fulfillment-created", content=other, headers=headers(other)
    )
    assert response.status_code == 403
    assert await kom.store.order_job(1, "T3JkZXI6MQ==") is None


async def test_unknown_webhook_is_404(kom: Kom) -> None:
    body = fulfillment()
    assert (
        await kom.client.post("/api/webhooks/nope", content=body, headers=headers(body))
    ).status_code == 404


async def test_oversized_body_with_content_length_is_413(kom: Kom) -> None:
    await installed(kom)
    body = b"x" * (MAX_WEBHOOK_BODY + 1)
    response = await kom.client.post("/api/webhooks/fulfillment-created", content=body, headers=headers(b"x"))
    assert response.status_code == 413


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'kom.db'}", secret_key=SECRET)  # type: ignore[arg-type]
    with serve_in_thread(create_app(settings, run_worker=False)) as url:
        yield url


def test_oversized_chunked_body_without_length_is_413_over_real_http(served: str) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 4 MiB offered; KOM stops reading after its cap
            sent += 65536
            yield b"x" * 65536

    with httpx.Client() as client:
        try:
            response = client.post(
                f"{served}/api/webhooks/fulfillment-created",
                content=chunks(),
                headers={"Saleor-Event": "fulfillment_created", "Saleor-Api-Url": API_URL},
            )
        except httpx.TransportError:
            return  # the server answered 413 and closed while we were still sending: also a refusal
    assert response.status_code in (401, 413)  # unknown installation is checked after the cap


async def test_register_refusals(kom: Kom) -> None:
    no_header = await kom.client.post("/api/register", json={"auth_token": "x"})
    assert no_header.status_code == 400 and "message" in no_header.json()["error"]
    private = await kom.client.post(
        "/api/register", json={"auth_token": "x"}, headers={"Saleor-Api-Url": "https://10.0.0.1/graphql/"}
    )
    assert private.status_code == 403
    bad_body = await kom.client.post("/api/register", content=b"[]", headers={"Saleor-Api-Url": API_URL})
    assert bad_body.status_code == 400
    assert await kom.store.installations() == []


# -- the requests a real Saleor 3.23.28 sent, replayed against KOM -----------------------------


async def replay(kom: Kom, name: str) -> httpx.Response:
    captured = shared.capture(name)
    sent = {
        k: v
        for k, v in captured.meta["headers"].items()
        if k.lower().startswith("saleor-") or k == "Content-Type"
    }
    path = captured.meta["path"]
    return await kom.client.post(path, content=captured.body, headers=sent)


async def install_captured(kom: Kom) -> None:
    api_url = shared.capture("0003_fulfillment_created").meta["headers"]["Saleor-Api-Url"]
    await installed(kom, jwks=shared.jwks(), api_url=api_url, app_id="QXBwOjE=")


async def test_real_fulfillment_created_is_verified_and_recorded(kom: Kom) -> None:
    await install_captured(kom)
    response = await replay(kom, "0003_fulfillment_created")
    assert response.status_code == 200
    order_id = shared.capture("0003_fulfillment_created").json()["order"]["id"]
    assert await kom.store.order_job(1, order_id) is not None


async def test_real_refund_request_is_accepted_pending_and_recorded(kom: Kom) -> None:
    await install_captured(kom)
    response = await replay(kom, "0015_transaction_refund_requested")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"pspReference"} and body["pspReference"].startswith("kom-refund-")
    again = await replay(kom, "0015_transaction_refund_requested")  # Saleor may deliver twice
    assert again.json() == body
    order_id = shared.capture("0015_transaction_refund_requested").json()["transaction"]["order"]["id"]
    (recorded,) = await kom.store.requests_for(1, order_id)
    assert recorded.body["lines"] and recorded.body["amount"] == 10000


async def test_real_empty_retry_gets_a_failure_answer_not_a_crash(kom: Kom) -> None:
    await install_captured(kom)
    response = await replay(kom, "0051_transaction_refund_requested")
    assert response.status_code == 200
    assert response.json()["result"] == "REFUND_FAILURE"
    assert await kom.store.requests_for(1, "anything") == []


async def test_real_charge_request_is_answered_with_an_explanation(kom: Kom) -> None:
    await install_captured(kom)
    response = await replay(kom, "0011_transaction_charge_requested")
    assert response.status_code == 200
    assert response.json()["result"] == "CHARGE_FAILURE" and "parcel" in response.json()["message"]
