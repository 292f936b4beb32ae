"""Error reports without secrets or personal data, JSON logs, /readyz and /metrics."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from plugin import __version__, observability
from plugin.settings import Settings
from plugin.store import schema
from plugin.store.secrets import SecretBox
from plugin.store.store import Store

KEY = "test-secret-key-0123456789abcdef"

SECRETS = [
    "klarna_test_api_SECRETKEYVALUE123",
    "kco_live_api_OTHERSECRET",
    "SALEOR-APP-TOKEN-abc",
    "Basic dXNlcjpwYXNzd29yZA==",
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    "hunter2-db-password",
]
PERSONAL = ["ada@example.com", "Lovelace", "Ada", "12 Analytical Street", "SW1A 1AA", "+44 20 7946 0958"]


def sentry_event() -> dict[str, Any]:
    """An event shaped as sentry-sdk builds it for an exception in a webhook handler."""
    return {
        "event_id": "abc",
        "level": "error",
        "release": f"kom@{__version__}",
        "environment": "production",
        "user": {"ip_address": "203.0.113.9", "email": "ada@example.com"},
        "request": {
            "url": "https://kom.example.com/api/webhooks/transaction-refund-requested",
            "method": "POST",
            "headers": {
                "Authorization": "Basic dXNlcjpwYXNzd29yZA==",
                "Saleor-Signature": "eyJhbGciOiJSUzI1NiJ9..c2ln",
                "X-Forwarded-For": "203.0.113.9",
                "Content-Type": "application/json",
            },
            "cookies": {"session": "s"},
            "data": {"order": {"userEmail": "ada@example.com", "billingAddress": {"city": "London"}}},
            "env": {"REMOTE_ADDR": "203.0.113.9"},
        },
        "exception": {
            "values": [
                {
                    "type": "Rejected",
                    "value": "refund failed for ada@example.com with key klarna_test_api_SECRETKEYVALUE123",
                    "stacktrace": {
                        "frames": [
                            {
                                "function": "refund",
                                "lineno": 12,
                                "vars": {
                                    "api_key": "klarna_test_api_SECRETKEYVALUE123",
                                    "token": "SALEOR-APP-TOKEN-abc",
                                    "installation": "Installation(id=1, api_url='https://shop/graphql/')",
                                    "database_url": "postgresql://kom:hunter2-db-password@db/kom",
                                    "shipping_address": {
                                        "given_name": "Ada",
                                        "family_name": "Lovelace",
                                        "street_address": "12 Analytical Street",
                                        "postal_code": "SW1A 1AA",
                                        "phone": "+44 20 7946 0958",
                                    },
                                    "body": '{"email": "ada@example.com", "phone": "+44 20 7946 0958"}',
                                    "headers": [["authorization", "Bearer kom-token"], ["accept", "json"]],
                                    "amount": 10000,
                                    "order_id": "T3JkZXI6MQ==",
                                },
                            }
                        ]
                    },
                }
            ]
        },
        "breadcrumbs": {
            "values": [
                {"category": "httpx", "data": {"url": "https://x.test/", "key": "kco_live_api_OTHERSECRET"}},
                {"category": "log", "message": "shopper ada@example.com asked for a refund"},
            ]
        },
        "extra": {"password": "hunter2-db-password"},
    }  # fmt: skip


def test_scrub_removes_credentials_and_personal_data_everywhere() -> None:
    scrubbed = observability.scrub(sentry_event(), {})
    text = json.dumps(scrubbed)
    for secret in SECRETS + PERSONAL + ["203.0.113.9", "kom-token"]:
        assert secret not in text, secret
    frame = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]
    # What an engineer needs to debug stays.
    assert frame["vars"]["amount"] == 10000 and frame["vars"]["order_id"] == "T3JkZXI6MQ=="
    assert frame["function"] == "refund" and frame["lineno"] == 12
    assert "Installation(id=1" in frame["vars"]["installation"]
    assert scrubbed["request"]["headers"]["Content-Type"] == "application/json"
    assert scrubbed["request"]["url"].endswith("/transaction-refund-requested")
    assert scrubbed["exception"]["values"][0]["value"].startswith("refund failed for [Filtered]")
    assert scrubbed["release"] == f"kom@{__version__}" and scrubbed["environment"] == "production"
    assert "user" not in scrubbed and "cookies" not in scrubbed["request"]


def test_sentry_is_initialised_with_release_environment_and_the_scrubber(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sentry_sdk

    captured: dict[str, Any] = {}
    monkeypatch.setattr(sentry_sdk, "init", lambda **options: captured.update(options))
    assert not observability.init_sentry(Settings())
    assert captured == {}
    settings = Settings(sentry_dsn="https://k@o1.ingest.sentry.io/1", environment="staging")  # type: ignore[arg-type]
    assert observability.init_sentry(settings)
    assert captured["release"] == f"kom@{__version__}" and captured["environment"] == "staging"
    assert captured["before_send"] is observability.scrub and captured["send_default_pii"] is False
    names = {type(i).__name__ for i in captured["integrations"]}
    assert "StarletteIntegration" in names


def test_json_logs_carry_the_context_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.JsonFormatter())
    log = logging.getLogger("kom.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning(
            "order %s: %s", "T3JkZXI6MQ==", "provider down",
            extra={"installation": 3, "order": "T3JkZXI6MQ==", "correlation_id": "c-42"},
        )  # fmt: skip
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "order T3JkZXI6MQ==: provider down" and first["level"] == "WARNING"
    assert (first["installation"], first["order"], first["correlation_id"]) == (3, "T3JkZXI6MQ==", "c-42")
    assert first["logger"] == "kom.test.json" and first["time"].endswith("+00:00")
    assert "correlation_id" not in second and "ValueError: boom" in second["exception"]


def test_configure_logging_switches_to_json(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        observability.configure_logging("INFO", json_logs=True)
        logging.getLogger("kom.x").info("hello", extra={"order": "o-1"})
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert json.loads(line)["order"] == "o-1"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("GET", "/ordermanagement/v1/orders/abc", "get_order"),
        ("POST", "/ordermanagement/v1/orders/abc/captures", "capture"),
        ("POST", "/ordermanagement/v1/orders/abc/refunds", "refund"),
        ("POST", "/ordermanagement/v1/orders/abc/cancel", "cancel"),
        ("POST", "/ordermanagement/v1/orders/a/release-remaining-authorization", "release_remaining_authorization"),  # noqa: E501
        ("POST", "/ordermanagement/v1/orders/abc/captures/c1/shipping-info", "shipping_info"),
        ("GET", "/graphql/", None),
    ],
)  # fmt: skip
def test_provider_operations(method: str, path: str, operation: str | None) -> None:
    assert observability.provider_operation(method, path) == operation


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    value = observability.REGISTRY.get_sample_value(name, labels or {})
    return value or 0.0


async def test_the_transport_counts_provider_calls_by_outcome() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/captures"):
            return httpx.Response(201)
        if request.url.path.endswith("/refunds"):
            return httpx.Response(403, json={"error_code": "NOT_ALLOWED"})
        if request.url.path.endswith("/cancel"):
            raise httpx.ConnectError("refused")
        if request.url.path.endswith("/graphql/"):
            return httpx.Response(200, json={"data": {}})
        raise httpx.ReadTimeout("no answer")

    labels = {"operation": "capture", "outcome": "ok"}
    before = {
        "capture": sample("kom_provider_calls_total", labels),
        "refund": sample("kom_provider_calls_total", {"operation": "refund", "outcome": "rejected"}),
        "cancel": sample("kom_provider_calls_total", {"operation": "cancel", "outcome": "not_sent"}),
        "get": sample("kom_provider_calls_total", {"operation": "get_order", "outcome": "unknown"}),
        "platform": sample("kom_platform_calls_total", {"outcome": "ok"}),
        "latency": sample("kom_provider_call_duration_seconds_count", {"operation": "capture"}),
    }
    transport = observability.MetricsTransport(httpx.MockTransport(answer))
    async with httpx.AsyncClient(transport=transport, base_url="https://api.klarna.test") as http:
        await http.post("/ordermanagement/v1/orders/o1/captures")
        await http.post("/ordermanagement/v1/orders/o1/refunds")
        with pytest.raises(httpx.ConnectError):
            await http.post("/ordermanagement/v1/orders/o1/cancel")
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/ordermanagement/v1/orders/o1")
        await http.post("https://shop.test/graphql/")
    assert sample("kom_provider_calls_total", labels) == before["capture"] + 1
    assert (
        sample("kom_provider_calls_total", {"operation": "refund", "outcome": "rejected"})
        == before["refund"] + 1
    )
    assert (
        sample("kom_provider_calls_total", {"operation": "cancel", "outcome": "not_sent"})
        == before["cancel"] + 1
    )
    assert (
        sample("kom_provider_calls_total", {"operation": "get_order", "outcome": "unknown"})
        == before["get"] + 1
    )
    assert sample("kom_platform_calls_total", {"outcome": "ok"}) == before["platform"] + 1
    latency = sample("kom_provider_call_duration_seconds_count", {"operation": "capture"})
    assert latency == before["latency"] + 1


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[tuple[Store, httpx.AsyncClient, Starlette]]:
    from plugin.web.app import create_app

    store = await Store.open(database_url, SecretBox(KEY))
    settings = Settings(database_url=database_url, secret_key=KEY)  # type: ignore[arg-type]
    app: Starlette = create_app(settings, store=store, run_worker=False)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kom") as http,
        ):
            yield store, http, app
    finally:
        await store.close()


async def test_readyz_needs_a_reachable_database_with_current_schema(
    served: tuple[Store, httpx.AsyncClient, Starlette],
) -> None:
    store, http, app = served
    assert (await http.get("/healthz")).status_code == 200
    ready = await http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["schema"] == schema.head()
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    stale = await http.get("/readyz")
    assert stale.status_code == 503 and "kom migrate" in stale.json()["reason"]
    unreachable = Store(create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none"), SecretBox(KEY))
    app.state.services.store = unreachable
    try:
        down = await http.get("/readyz")
        assert down.status_code == 503 and "database unreachable" in down.json()["reason"]
    finally:
        app.state.services.store = store
        await unreachable.close()


async def test_metrics_in_prometheus_text_format(served: tuple[Store, httpx.AsyncClient, Starlette]) -> None:
    store, http, _ = served
    saved = await store.save_installation(
        platform="saleor", api_url="https://shop.example/graphql/", app_id="a", token="t", jwks={"keys": []}
    )
    await store.touch_order(saved.id, "order-1")
    before = sample("kom_webhooks_rejected_total", {"webhook": "unknown", "reason": "unknown_webhook"})
    assert (await http.post("/api/webhooks/nope", content=b"{}")).status_code == 404
    unsigned = await http.post(
        "/api/webhooks/fulfillment-created",
        content=b"{}",
        headers={"saleor-api-url": "https://other.example/graphql/", "saleor-event": "fulfillment_created"},
    )
    assert unsigned.status_code == 401
    response = await http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert 'kom_orders{state="pending"} 1.0' in body
    assert "kom_oldest_pending_order_age_seconds" in body
    assert f'kom_build_info{{version="{__version__}"}} 1.0' in body
    assert "# TYPE kom_provider_call_duration_seconds histogram" in body
    assert (
        sample("kom_webhooks_rejected_total", {"webhook": "unknown", "reason": "unknown_webhook"})
        == before + 1
    )
    assert (
        sample("kom_webhooks_rejected_total", {"webhook": "fulfillment-created", "reason": "unauthenticated"})
        >= 1
    )


async def test_metrics_on_the_web_port_need_a_token_outside_development(
    served: tuple[Store, httpx.AsyncClient, Starlette],
) -> None:
    from pydantic import SecretStr

    _, http, app = served
    services = app.state.services
    development = services.settings
    try:
        services.settings = development.model_copy(update={"environment": "production"})
        closed = await http.get("/metrics")
        assert closed.status_code == 404 and "KOM_METRICS_TOKEN" in closed.json()["error"]
        token = SecretStr("scrape-token-0123456789")
        services.settings = development.model_copy(
            update={"environment": "production", "metrics_token": token}
        )
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"authorization": "Bearer guess"})
        assert wrong.status_code == 401
        right = await http.get("/metrics", headers={"authorization": "Bearer scrape-token-0123456789"})
        assert right.status_code == 200 and "kom_build_info" in right.text
    finally:
        services.settings = development


def test_the_env_example_placeholder_secret_is_refused() -> None:
    from pathlib import Path

    from pydantic import ValidationError

    from plugin.settings import PLACEHOLDER_SECRET

    example = (Path(__file__).parents[2] / "deploy" / ".env.example").read_text()
    assert f"KOM_SECRET_KEY={PLACEHOLDER_SECRET}" in example
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(secret_key=PLACEHOLDER_SECRET)  # type: ignore[arg-type]
