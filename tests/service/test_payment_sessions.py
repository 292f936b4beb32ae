"""PaymentSessions placing a Klarna order from the shopper's authorization, on a real SQLite
store, against the Order Management sandbox (real provider, loopback) and a stateful fake of
Klarna Payments that follows Klarna's rules: a session is authorized for the amount it had
then; an authorization token places one order (the same Klarna-Idempotency-Key returns that
order again), is refused when declined or unknown, and the order is created with the
*authorized* amount. (The real Klarna Payments client and sandbox come from branch pay-klarna.)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from adapters.klarna.sandbox.validation import NewOrder
from plugin.service.payment_sessions import (
    CheckoutLine,
    CheckoutSnapshot,
    PaymentRefused,
    PaymentSession,
    PaymentSessions,
    PlacedOrder,
    SessionOptions,
    SessionRequest,
)
from plugin.service.records import ChannelSettings, Installation
from plugin.store.secrets import SecretBox
from plugin.store.store import Store
from tests.service.conftest import Sandbox

CHECKOUT = CheckoutSnapshot(
    id="Q2hlY2tvdXQ6MQ==",
    channel="default-channel",
    currency="EUR",
    country="SE",
    locale="sv-SE",
    email=None,
    lines=(
        CheckoutLine("l1", "TSHIRT", "T-shirt", 1, 3000, 3000, 600),
        CheckoutLine("l2", "JEANS", "Jeans", 1, 7000, 7000, 1400),
    ),
    shipping_amount=1000,
    shipping_tax_amount=200,
    total_amount=11000,
    total_tax_amount=2200,
)


@dataclass
class FakeKlarnaPayments:
    """Klarna Payments for one merchant, its orders landing in the OM sandbox's state."""

    sandbox: Sandbox
    sessions: dict[str, int] = field(default_factory=dict)  # session id -> amount it had
    tokens: dict[str, tuple[str, int, bool]] = field(
        default_factory=dict
    )  # token -> session, amount, approved
    placed: dict[uuid.UUID, PlacedOrder] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    async def create_session(self, checkout: CheckoutSnapshot, options: SessionOptions) -> PaymentSession:
        self.calls.append("create_session")
        session_id = f"session-{len(self.sessions) + 1}"
        self.sessions[session_id] = checkout.total_amount
        return PaymentSession(
            session_id, f"token-for-{session_id}", ({"identifier": "pay_later", "name": "Pay later"},)
        )

    async def update_session(
        self, session_id: str, checkout: CheckoutSnapshot, options: SessionOptions
    ) -> PaymentSession:
        self.calls.append("update_session")
        if session_id not in self.sessions:
            raise PaymentRefused("no such session")
        self.sessions[session_id] = checkout.total_amount
        return PaymentSession(
            session_id, f"token-for-{session_id}", ({"identifier": "pay_later", "name": "Pay later"},)
        )

    def authorize(self, session_id: str, *, approved: bool = True) -> str:
        """The shopper's step in Klarna's widget: an authorization token for the session as it is."""
        token = f"auth-{len(self.tokens) + 1}"
        self.tokens[token] = (session_id, self.sessions[session_id], approved)
        return token

    async def place_order(
        self,
        authorization_token: str,
        checkout: CheckoutSnapshot,
        options: SessionOptions,
        idempotency_key: uuid.UUID,
    ) -> PlacedOrder:
        self.calls.append("place_order")
        if idempotency_key in self.placed:
            return self.placed[idempotency_key]
        found = self.tokens.get(authorization_token)
        if found is None or authorization_token in self.used:
            raise PaymentRefused("authorization token unknown, expired or used already")
        _, amount, approved = found
        if not approved:
            raise PaymentRefused("the purchase was declined")
        self.used.add(authorization_token)
        order = self.sandbox.state.create_order(
            NewOrder(checkout.currency, amount, (), None, "SE", "sv-SE", None, None)
        )
        self.placed[idempotency_key] = PlacedOrder(order.order_id)
        return self.placed[idempotency_key]


@pytest.fixture
async def world(
    tmp_path: Path, sandbox: Sandbox
) -> AsyncIterator[tuple[PaymentSessions, FakeKlarnaPayments, Installation]]:
    store = await Store.open(
        f"sqlite:///{tmp_path / 'kom.db'}", SecretBox("test-secret-key-0123456789abcdef")
    )
    installation = await store.save_installation(
        platform="saleor",
        api_url="http://127.0.0.1:1/graphql/",
        app_id="QXBwOjE=",
        token="t",
        jwks={"keys": []},
    )
    await store.save_settings(
        installation.id,
        ChannelSettings(
            "", "klarna", "playground", "eu", "key", None, base_url=sandbox.base_url, payments_enabled=True
        ),
    )
    payments = FakeKlarnaPayments(sandbox)
    yield PaymentSessions(store, lambda _: payments, lambda _: sandbox.provider()), payments, installation
    await store.close()


def request(
    token: str | None, key: str = "key-1", checkout: CheckoutSnapshot = CHECKOUT, amount: int = 11000
) -> SessionRequest:
    return SessionRequest(checkout, "VHJhbnNhY3Rpb25JdGVtOjE=", key, amount, "EUR", authorization_token=token)


async def test_gateway_session_then_authorization_places_one_uncaptured_order(
    world: Any, sandbox: Sandbox
) -> None:
    sessions, payments, installation = world
    answer = await sessions.gateway_initialize(installation, CHECKOUT)
    assert answer.data["clientToken"] == "token-for-session-1" and answer.data["sessionId"] == "session-1"
    token = payments.authorize("session-1")
    outcome = await sessions.initialize(installation, request(token))
    assert outcome.kind == "authorized" and outcome.amount == 11000
    order = sandbox.state.get(outcome.psp_reference)
    assert order.captured_amount == 0 and order.order_amount == 11000
    replay = await sessions.initialize(installation, request(token))
    assert replay == outcome and payments.calls.count("place_order") == 1


async def test_declined_authorization_is_an_authorization_failure(world: Any) -> None:
    sessions, payments, installation = world
    await sessions.gateway_initialize(installation, CHECKOUT)
    outcome = await sessions.initialize(
        installation, request(payments.authorize("session-1", approved=False))
    )
    assert outcome.kind == "failed" and "declined" in outcome.message and outcome.psp_reference is None


async def test_checkout_changed_after_authorization_cancels_the_order(world: Any, sandbox: Sandbox) -> None:
    sessions, payments, installation = world
    await sessions.gateway_initialize(installation, CHECKOUT)
    token = payments.authorize("session-1")  # authorized for 110.00
    bigger = replace(CHECKOUT, total_amount=12000, shipping_amount=2000)
    outcome = await sessions.initialize(installation, request(token, checkout=bigger, amount=12000))
    assert outcome.kind == "failed" and "was cancelled" in outcome.message
    assert "it is for" in outcome.message  # the authorized 110.00, not the 120.00 now due
    (order,) = sandbox.state.orders.values()
    assert order.status.value == "CANCELLED"


async def test_amount_or_currency_other_than_the_checkout_is_refused_before_klarna(world: Any) -> None:
    sessions, payments, installation = world
    short = await sessions.initialize(installation, request("auth-x", amount=10000))
    assert short.kind == "failed" and "whole checkout" in short.message
    other = SessionRequest(
        CHECKOUT, "VHJhbnNhY3Rpb25JdGVtOjI=", "key-2", 11000, "SEK", authorization_token="auth-x"
    )
    assert (await sessions.initialize(installation, other)).message.startswith("The payment is in SEK")
    assert "place_order" not in payments.calls


async def test_without_a_token_the_storefront_is_asked_to_authorize_then_process_finishes(world: Any) -> None:
    sessions, payments, installation = world
    pending = await sessions.initialize(installation, request(None))
    assert pending.kind == "action_required" and pending.data["clientToken"].startswith("token-for-")
    token = payments.authorize(pending.data["sessionId"])
    done = await sessions.process(installation, replace(request(token), idempotency_key=None))
    assert done.kind == "authorized"
    assert await sessions.process(installation, replace(request(token), idempotency_key=None)) == done
