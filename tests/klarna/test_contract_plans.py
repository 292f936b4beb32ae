"""Every request body KOM can build, from random plans, validates against the OpenAPI spec."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings

from adapters.klarna.mapping import capture_request, refund_request
from plugin.domain.actions import CaptureAction
from plugin.domain.plan import plan
from plugin.domain.policy import Policy
from plugin.domain.snapshot import Order, Shipment, Tracking
from tests.domain.sim import apply_all, authorized
from tests.domain.test_properties import build_request, scenarios
from tests.klarna.contract import validate_request

TRACKINGS = [
    None,
    Tracking("DHL Express Sweden", "JJD0001", "https://track.example/JJD0001", "Home"),
    Tracking(number="X" * 150),
]


@settings()
@given(scenarios())
def test_capture_and_refund_bodies_from_random_plans_match_the_spec(
    scenario: tuple[Order, list[tuple[str, object]], Policy],
) -> None:
    base, events, policy = scenario
    order = replace(base, shipments=(), refunds=())
    provider = authorized(base)
    for minute, (kind, payload) in enumerate(events, start=20):
        if kind == "ship":
            assert isinstance(payload, Shipment)
            payload = replace(payload, tracking=TRACKINGS[minute % len(TRACKINGS)])
            order = replace(order, shipments=(*order.shipments, payload))
        else:
            order = replace(order, refunds=(*order.refunds, build_request(payload, order, provider, minute)))  # type: ignore[arg-type]
        result = plan(order, provider, policy)
        for action in result.actions:
            if isinstance(action, CaptureAction):
                validate_request(
                    "CaptureObject", capture_request(action).model_dump(mode="json", exclude_none=True)
                )
            else:
                validate_request(
                    "RefundObject", refund_request(action).model_dump(mode="json", exclude_none=True)
                )
        provider = apply_all(provider, result.actions)
