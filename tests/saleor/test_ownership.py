"""Which Saleor payment is KOM's: its App, its identifier after a reinstall, or a lone orphan."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.saleor.snapshot import APP_IDENTIFIER, SnapshotError, order_snapshot

APP = "QXBwOjI="


def order(*transactions: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "T3JkZXI6MQ==",
        "number": "1",
        "total": {"gross": {"amount": 10.0, "currency": "EUR"}},
        "lines": [],
        "fulfillments": [],
        "transactions": list(transactions),
    }


def transaction(psp: str, created_by: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": f"tx-{psp}", "pspReference": psp, "createdBy": created_by, "chargedAmount": {"amount": 0.0}}


def test_this_installation_or_an_earlier_one_by_identifier() -> None:
    mine = order(transaction("k-1", {"__typename": "App", "id": APP}))
    assert order_snapshot(mine, app_id=APP).provider_order_id == "k-1"
    earlier = order(transaction("k-2", {"__typename": "App", "id": "QXBwOjE=", "identifier": APP_IDENTIFIER}))
    assert order_snapshot(earlier, app_id=APP).provider_order_id == "k-2"


def test_another_apps_or_a_staff_payment_is_not_kom_s() -> None:
    other = order(
        transaction("x", {"__typename": "App", "id": "QXBwOjk=", "identifier": "com.other"}),
        transaction("y", {"__typename": "User", "id": "VXNlcjox"}),
    )
    assert order_snapshot(other, app_id=APP).provider_order_id is None


def test_one_creator_less_payment_is_taken_two_are_not_guessed() -> None:
    lone = order(transaction("k-3", None), transaction("y", {"__typename": "User", "id": "VXNlcjox"}))
    assert order_snapshot(lone, app_id=APP).provider_order_id == "k-3"
    two = order(transaction("a", None), transaction("b", None))
    assert order_snapshot(two, app_id=APP).provider_order_id is None


def test_two_payments_of_kom_are_an_error_not_a_guess() -> None:
    both = order(
        transaction("a", {"__typename": "App", "id": APP}), transaction("b", {"__typename": "App", "id": APP})
    )
    with pytest.raises(SnapshotError, match="2 transactions"):
        order_snapshot(both, app_id=APP)
