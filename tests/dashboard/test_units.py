"""The dashboard's pure parts: the settings form, the allocation view, token checks in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request

from plugin.domain.provider import ProviderCapture, ProviderLine, ProviderOrder, ProviderRefund
from plugin.domain.references import capture_reference
from plugin.domain.snapshot import Shipment, ShipmentLine, Tracking
from plugin.store.store import ChannelSettings
from plugin.web.dashboard.allocation import allocation
from plugin.web.dashboard.auth import authenticate
from plugin.web.dashboard.settings_form import DEFAULTS, check_form, key_hint, public_view
from tests.dashboard.helpers import headers, token
from tests.e2e.harness import world

KEY = "klarna_test_api_c2VjcmV0LWtleS0xMjM0"


def stored(**changes: object) -> ChannelSettings:
    values: dict[str, object] = {
        "channel": "",
        "provider": "klarna",
        "environment": "playground",
        "region": "eu",
        "api_key": KEY,
        "username": None,
        "base_url": None,
    }
    values.update(changes)
    return ChannelSettings(**values)  # type: ignore[arg-type]


# -- settings form ----------------------------------------------------------------------------


def test_public_view_masks_the_secret() -> None:
    view = public_view(stored())
    assert view["api_key_set"] is True and view["api_key_hint"] == "…MjM0"
    assert KEY not in repr(view)
    assert public_view(None) == DEFAULTS
    assert key_hint("short") == "…"  # a short password reveals nothing


def test_a_complete_form_becomes_channel_settings() -> None:
    checked = check_form(
        {
            "provider": "kustom",
            "environment": "production",
            "region": "eu",
            "credential_type": "username_password",
            "username": " PK123 ",
            "api_key": "s3cret",
            "base_url": "https://proxy.example.com/",
            "capture_mode": "manual",
            "shipping_fee": "last_parcel",
            "unknown_origin": "latest_first",
        },
        "channel-de",
        None,
    )
    assert checked.errors == {}
    assert checked.settings == ChannelSettings(
        "channel-de",
        "kustom",
        "production",
        "eu",
        "s3cret",
        "PK123",
        "https://proxy.example.com",
        "manual",
        "last_parcel",
        "latest_first",
    )


def test_blank_secret_keeps_the_stored_one_only_for_the_same_sign_in_method() -> None:
    form = {"credential_type": "api_key", "api_key": "  "}
    checked = check_form(form, "", stored())
    assert checked.settings is not None and checked.settings.api_key == KEY and checked.secret_from_store
    switched = check_form({"credential_type": "username_password", "username": "PK1"}, "", stored())
    assert switched.errors == {"api_key": "Enter the password."}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"api_key": "kco_test_api_abc"},
            "api_key",
            "This is a Kustom API key; choose Kustom as the provider.",
        ),
        (
            {"api_key": "klarna_live_api_abc"},
            "api_key",
            "This is a live key: it only works in the production",
        ),
        ({"api_key": "has space"}, "api_key", "The API key must be printable ASCII without spaces."),
        ({"credential_type": "username_password", "username": "a:b", "api_key": "x"}, "username", "colon"),
        ({"base_url": "https://user:pw@example.com"}, "base_url", "must not contain user info"),
        ({"region": "mars"}, "region", "Choose EU, North America or Oceania."),
        ({"unknown_origin": 3}, "unknown_origin", "Choose which invoice"),
    ],
)
def test_each_field_has_a_clear_message(changes: dict[str, object], field: str, message: str) -> None:
    form: dict[str, object] = {"api_key": KEY}
    form.update(changes)
    checked = check_form(form, "", None)
    assert checked.settings is None
    assert message in checked.errors[field]


def test_form_must_be_an_object() -> None:
    assert check_form([1], "", None).errors == {"form": "The settings must be a JSON object."}


# -- allocation view --------------------------------------------------------------------------


def line(reference: str, amount: int, quantity: int = 1, name: str = "Item") -> ProviderLine:
    return ProviderLine(reference, name, "physical", quantity, amount // quantity, amount)


def seed_order(*refunds: ProviderRefund) -> ProviderOrder:
    return ProviderOrder(
        order_id="k-1",
        status="CAPTURED",
        currency="EUR",
        order_amount=21000,
        captured_amount=21000,
        refunded_amount=sum(r.refunded_amount for r in refunds),
        remaining_authorized_amount=0,
        captures=(
            ProviderCapture(
                "cap-a",
                11000,
                (line("TSHIRT/1", 3000), line("JEANS/1", 7000), line("SHIPPING/1", 1000)),
                reference=capture_reference("ful-1"),
                klarna_reference="INV-A",
            ),
            ProviderCapture(
                "cap-b", 10000, (line("SNEAKERS/2", 10000),), reference=None, klarna_reference="INV-B"
            ),
        ),
        refunds=refunds,
    )


def test_refunds_are_shown_on_the_invoice_they_were_booked_on() -> None:
    shipment = Shipment("ful-1", None, (ShipmentLine("l1", 1),), Tracking("DHL", "PN-1", None), number="12-1")  # type: ignore[arg-type]
    view = allocation(
        seed_order(ProviderRefund("ref-1", 3000, (line("TSHIRT/1", 3000),), reference="kom:r:req:abc/1")),
        (shipment,),
        "https://portal.playground.klarna.com/orders",
    )
    first, second = view["captures"]
    assert first["tracking"] == {"company": "DHL", "number": "PN-1", "uri": None}
    assert first["fulfillment"] == "12-1" and first["made_by"] == "kom"
    assert first["refunded_amount"] == 3000 and first["left"] == 8000
    assert first["lines"][0]["refunded_quantity"] == 1 and first["lines"][1]["refunded_amount"] == 0
    assert second["made_by"] == "elsewhere" and second["tracking"] is None
    (refund,) = view["refunds"]
    assert refund["booked_on"] == 1 and refund["booked_on_invoice"] == "INV-A" and refund["made_by"] == "kom"
    assert view["warnings"] == [] and view["provider"]["exponent"] == 2


def test_a_refund_made_elsewhere_that_breaks_allocation_is_a_warning() -> None:
    view = allocation(
        seed_order(
            ProviderRefund("ref-x", 500, (), reference=None),
            ProviderRefund("ref-2", 10000, (line("SNEAKERS/2", 10000),), reference="kom:r:req:def/1"),
        )
    )
    (warning,) = view["warnings"]
    assert warning["kind"] == "misallocated" and "A refund made outside KOM (ref-x)" in warning["message"]
    assert "the refund has no order lines" in warning["message"]
    elsewhere, after = view["refunds"]
    assert elsewhere["booked_on"] is None and elsewhere["made_by"] == "elsewhere"
    assert after["booked_on"] is None
    assert after["not_allocated_reason"] == "an earlier refund on this order failed allocation"


# -- tokens, in-process (the store's clock is the test's) -------------------------------------


def request_with(sent: dict[str, str]) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/dashboard/me",
        "headers": [(k.lower().encode(), v.encode()) for k, v in sent.items()],
        "query_string": b"",
    }
    return Request(scope)


async def test_a_saleor_key_rotated_right_after_install_is_fetched_at_once(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.install()
        services = w.services()
        w.saleor.rotate_key()
        request = request_with(headers(w, token(w)))
        caller = await authenticate(request, services)  # no "fetched moments ago" refusal
        assert caller.installation.app_id == w.app.id  # type: ignore[union-attr]
        installation = await w.store.installation(caller.installation.id)
        assert installation is not None
        assert [key["kid"] for key in installation.jwks["keys"]] == [w.saleor.key.kid]


async def test_a_user_token_without_app_claims_is_refused(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.install()
        assert w.app is not None
        now = int(w.store.clock().timestamp())
        user_claims = {"iat": now, "exp": now + 300, "iss": w.saleor.api_url, "owner": "saleor"}
        claims_token = w.saleor.key.encode_jwt({**user_claims, "type": "access", "user_permissions": []})
        with pytest.raises(HTTPException) as refused:
            await authenticate(request_with(headers(w, claims_token)), w.services())
        assert refused.value.detail == "The token is not an app token from the Saleor Dashboard."


def test_a_provider_refund_is_named_by_the_saleor_refund_it_was_made_for() -> None:
    from datetime import UTC, datetime

    from plugin.domain.references import refund_reference
    from plugin.service.records import StoredRequest
    from plugin.web.dashboard.activity import fixed_in_settings
    from plugin.web.dashboard.allocation import platform_refund

    at = datetime(2026, 12, 1, tzinfo=UTC)
    grant = StoredRequest(
        1,
        "refund",
        "T3JkZXJHcmFudGVkUmVmdW5kOjc=",
        "kom-refund-7-AAAAAA",
        "tx",
        {"amount": 2500, "reason": "Damaged"},
        at,
        True,
    )
    goodwill = StoredRequest(
        2, "refund", "saleor-refund:" + "a" * 32, "kom-refund-x", "tx", {"amount": 500}, at, True
    )
    requests = [grant, goodwill]
    found = platform_refund(refund_reference(grant.request_id, "kom:s:F1", 1), requests)
    assert found is not None and (found["label"], found["amount"], found["reason"]) == (
        "Saleor refund 7",
        2500,
        "Damaged",
    )
    other = platform_refund(refund_reference(goodwill.request_id, "kom:s:F1", 2), requests)
    assert other is not None and other["label"] == "Saleor refund (amount only)" and other["reason"] is None
    assert platform_refund("made-in-the-portal", requests) is None and platform_refund(None, requests) is None
    assert fixed_in_settings(
        "The provider rejected KOM's credentials (HTTP 401): check the API key and region."
    )
    assert not fixed_in_settings(
        "Parcel 2 (€100.00) could not be captured: The provider refused the capture."
    )
