"""HTTP Basic authentication as Klarna/Kustom document it, and the 401 answer."""

from __future__ import annotations

import base64

import httpx
import pytest

from adapters.klarna.sandbox import (
    DEMO_API_KEY,
    DEMO_CREDENTIALS,
    DEMO_KEY_USERNAME,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    Credentials,
    Fault,
    SandboxApp,
    SandboxState,
    create_app,
)

from .conftest import OM, assert_error


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ACCEPTED = [
    pytest.param(f"Basic {DEMO_API_KEY}", id="api-key-as-is"),
    pytest.param(f"basic  {DEMO_API_KEY} ", id="scheme-case-insensitive"),
    pytest.param(basic(DEMO_API_KEY, ""), id="api-key-as-user-empty-password"),
    pytest.param(basic(DEMO_KEY_USERNAME, DEMO_API_KEY), id="key-username-with-key-as-password"),
    pytest.param(basic(DEMO_USERNAME, DEMO_PASSWORD), id="legacy-username-and-secret"),
]
REFUSED = [
    pytest.param(None, id="no-header"),
    pytest.param("", id="empty"),
    pytest.param(f"Bearer {DEMO_API_KEY}", id="bearer"),
    pytest.param("Basic", id="no-token"),
    pytest.param("Basic klarna_test_api_unknown", id="unknown-key"),
    pytest.param(basic("someone-else", DEMO_API_KEY), id="key-with-wrong-username"),
    pytest.param(basic(DEMO_USERNAME, "wrong"), id="legacy-wrong-secret"),
    pytest.param(basic(DEMO_PASSWORD, DEMO_USERNAME), id="legacy-swapped"),
    pytest.param(basic(DEMO_USERNAME, ""), id="legacy-user-without-secret"),
    pytest.param("Basic " + base64.b64encode(DEMO_API_KEY.encode()).decode(), id="base64-key-without-colon"),
    pytest.param("Basic !!!", id="not-base64"),
    pytest.param("Basic " + base64.b64encode(b"\xff:\xfe").decode(), id="not-utf8"),
]


@pytest.mark.parametrize("header", ACCEPTED)
def test_accepted_forms(header: str) -> None:
    assert DEMO_CREDENTIALS.accepts(header)


@pytest.mark.parametrize("header", REFUSED)
def test_refused_forms(header: str | None) -> None:
    assert not DEMO_CREDENTIALS.accepts(header)


def test_key_without_username_accepts_only_key_forms() -> None:
    credentials = Credentials(api_keys={"kco_test_api_abc": None})

    assert credentials.accepts("Basic kco_test_api_abc")
    assert credentials.accepts(basic("kco_test_api_abc", ""))
    assert not credentials.accepts(basic("anyone", "kco_test_api_abc"))


def test_non_ascii_header_is_refused_not_crashed() -> None:
    assert not Credentials(pairs={"u": "p"}).accepts("Basic klärna")


async def test_401_body_and_challenge_and_no_fault_consumed(state: SandboxState) -> None:
    app = create_app(state, credentials=Credentials(pairs={"merchant": "secret"}))
    state.faults.add(Fault.http_error(503))
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://sandbox.test") as client:
        refused = await client.get(f"{OM}/some-order", auth=("merchant", "wrong"))
        accepted = await client.get(f"{OM}/some-order", auth=httpx.BasicAuth("merchant", "secret"))

    assert_error(refused, 401, "UNAUTHORIZED", "Invalid credentials.")
    assert refused.headers["www-authenticate"].startswith("Basic ")
    assert_error(accepted, 503, "TEMPORARILY_UNAVAILABLE")  # the queued fault went to the authenticated call
    assert [(r.status, r.fault) for r in state.request_log()] == [(401, None), (503, "status")]


async def test_admin_api_needs_no_credentials(app: SandboxApp) -> None:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://sandbox.test") as client:
        response = await client.get("/_sandbox/requests")
    assert response.status_code == 200
