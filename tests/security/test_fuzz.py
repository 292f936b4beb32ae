"""Fuzzing every webhook and dashboard endpoint with validly signed input: never a 5xx.

KOM is served on loopback (uvicorn in a thread, its own event loop) with one installation
whose key signs every body, and dashboard tokens minted with that key. Bodies are random
JSON over Saleor's own field names, real 3.23.28 payloads with one subtree replaced, and
random bytes. Names are never resolved (an offline resolver), and the only host KOM may
connect to is a catcher on 127.0.0.1 (the connection test's base URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.klarna.sandbox.server import serve_in_thread
from adapters.saleor.manifest import WEBHOOKS
from plugin.settings import Settings
from plugin.store.secrets import SecretBox
from plugin.store.store import ChannelSettings, Store
from plugin.web import egress
from plugin.web.app import create_app
from tests.saleor import shared
from tests.saleor.signing import jwks_for, rsa_key, sign_detached
from tests.security.helpers import PUBLIC_URL, SECRET, Resolver, dashboard_token

API_URL = "https://shop.example.com/graphql/"
APP_ID = "QXBwOjE="

_VOCABULARY = sorted(
    {
        "__typename", "recipient", "id", "issuedAt", "version", "order", "number", "channel", "slug",
        "fulfillment", "status", "lines", "quantity", "orderLine", "transaction", "pspReference",
        "createdBy", "identifier", "action", "actionType", "amount", "currency", "grantedRefund",
        "shippingCostsIncluded", "app", "errors", "message", "chargedAmount", "authorizedAmount",
        "productSku", "productName", "totalPrice", "gross", "net", "tax", "trackingNumber",
    }
)  # fmt: skip
_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_VOCABULARY) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=30,
)


@contextlib.contextmanager
def catcher() -> Iterator[str]:
    async def anything(request: Request) -> Response:
        return JSONResponse({"error_code": "NO_SUCH_ORDER", "correlation_id": "c"}, status_code=404)

    with serve_in_thread(Starlette(routes=[Route("/{p:path}", anything, methods=["GET", "POST"])])) as url:
        yield url


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(KOM's URL, the catcher's URL)."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'kom.db'}"
    with catcher() as catcher_url:

        async def seed() -> None:
            store = await Store.open(database_url, SecretBox(SECRET))
            installation = await store.save_installation(
                platform="saleor", api_url=API_URL, app_id=APP_ID, token="t", jwks=jwks_for(rsa_key())
            )
            key = "klarna_test_api_c2F2ZWQta2V5LWZvci1mdXp6"
            await store.save_settings(
                installation.id, ChannelSettings("", "klarna", "playground", "eu", key, None, catcher_url)
            )
            await store.close()

        asyncio.run(seed())
        config = Settings(
            database_url=database_url,
            secret_key=SECRET,  # type: ignore[arg-type]
            public_url=PUBLIC_URL,
            allowed_private_networks="127.0.0.1/32",
        )
        app = create_app(config, run_worker=False)
        opened = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with opened(app):
                policy = egress.Egress(
                    allowed_networks=egress.parse_networks("127.0.0.1/32"), resolver=Resolver()
                )
                egress.install(app.state.services, policy)
                yield

        app.router.lifespan_context = lifespan
        with serve_in_thread(app) as url:
            yield url, catcher_url


def _subtrees(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _subtrees(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _subtrees(inner, (*path, index))


def _replaced(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(document))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return copy


def _real_payloads(event: str) -> list[Any]:
    try:
        return [capture.json() for capture in shared.captures(event) if capture.body]
    except pytest.skip.Exception:
        return []  # without ../shared the random payloads still run


# Examples per test from the profile (tests/conftest.py): 300, or 5,000 with HYPOTHESIS_PROFILE=deep.
_SETTLE = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTLE
@given(name=st.sampled_from(sorted(WEBHOOKS)), data=st.data())
def test_validly_signed_webhooks_never_get_a_5xx(
    served: tuple[str, str], name: str, data: st.DataObject
) -> None:
    spec = WEBHOOKS[name]
    real = _real_payloads(spec.saleor_event)
    kind = data.draw(st.sampled_from(["random", "bytes", "mutated"] if real else ["random", "bytes"]))
    if kind == "bytes":
        body = data.draw(st.binary(max_size=300))
    else:
        if kind == "random":
            document: Any = data.draw(_json)
            if isinstance(document, dict) and data.draw(st.booleans()):
                document |= {"__typename": spec.typename, "recipient": {"id": APP_ID}}
        else:
            base = data.draw(st.sampled_from(real))
            path = data.draw(st.sampled_from(list(_subtrees(base))))
            document = _replaced(base, path, data.draw(_json))
        body = json.dumps(document).encode()
    sent = {
        "Saleor-Event": spec.saleor_event,
        "Saleor-Api-Url": API_URL,
        "Saleor-Signature": sign_detached(body, rsa_key()),
    }
    response = httpx.post(f"{served[0]}{spec.path}", content=body, headers=sent, timeout=30)
    assert response.status_code < 500, (name, body[:300], response.text[:300])


_form = st.fixed_dictionaries(
    {},
    optional={
        name: _scalars | st.sampled_from(choices)
        for name, choices in {
            "provider": ["klarna", "kustom"],
            "environment": ["playground", "production"],
            "region": ["eu", "na", "oc"],
            "credential_type": ["api_key", "username_password"],
            "api_key": ["klarna_test_api_dHlwZWQ", "kco_live_api_eA", "secret"],
            "username": ["user", "a:b"],
            "base_url": ["https://nowhere.test", "http://169.254.169.254", "http://127.0.0.1:1", "ftp://x"],
            "capture_mode": ["on_fulfillment", "manual"],
            "shipping_fee": ["first_parcel", "last_parcel"],
            "unknown_origin": ["earliest_first", "latest_first"],
        }.items()
    },
)


@_SETTLE
@given(
    endpoint=st.sampled_from(["me", "get", "put", "delete", "test", "orders", "order", "retry"]),
    form=_form | _json,
    text=st.text(max_size=30),
)
def test_dashboard_endpoints_never_answer_5xx(
    served: tuple[str, str], endpoint: str, form: Any, text: str
) -> None:
    kom_url, catcher_url = served
    token = dashboard_token(API_URL, APP_ID, now=int(time.time()))
    sent = {"Saleor-Api-Url": API_URL, "Authorization-Bearer": token}
    api = f"{kom_url}/api/dashboard"
    query = (
        {"channel": text} if endpoint in ("get", "put", "delete", "test") else {"state": text, "page": text}
    )
    with httpx.Client(headers=sent, timeout=30) as client:
        if endpoint == "test" and isinstance(form, dict):
            form = {**form, "base_url": catcher_url}  # the only host KOM may reach
        body = json.dumps(form).encode()  # NaN and Infinity included, as a browser would not
        calls = {
            "me": lambda: client.get(f"{api}/me"),
            "get": lambda: client.get(f"{api}/settings", params=query),
            "put": lambda: client.put(f"{api}/settings", params=query, content=body),
            "delete": lambda: client.delete(f"{api}/settings", params=query),
            "test": lambda: client.post(f"{api}/test-connection", params=query, content=body),
            "orders": lambda: client.get(f"{api}/orders", params=query),
            "order": lambda: client.get(f"{api}/orders/{quote(text or 'x', safe='')}"),
            "retry": lambda: client.post(f"{api}/orders/{quote(text or 'x', safe='')}/retry"),
        }
        response = calls[endpoint]()
    assert response.status_code < 500, (endpoint, form, text, response.text[:300])
