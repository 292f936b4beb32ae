"""Every request body KOM can build, from random plans, validates against the OpenAPI spec."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings

from adapters.klarna.mapping import capture_request, refund_request
from plugin.domain.actions import CaptureAction
from plugin.domain.policy import Policy
from plugin.domain.snapshot import Order, Shipment, Tracking
from tests.domain.test_properties import play, scenarios
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
    def tracked(shipment: Shipment, minute: int) -> Shipment:
        return replace(shipment, tracking=TRACKINGS[minute % len(TRACKINGS)])

    for step in play(scenario, tracked):
        for action in step.result.actions:
            if isinstance(action, CaptureAction):
                body = capture_request(action).model_dump(mode="json", exclude_none=True)
                validate_request("CaptureObject", body)
            else:
                body = refund_request(action).model_dump(mode="json", exclude_none=True)
                validate_request("RefundObject", body)
