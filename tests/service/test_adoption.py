"""Foreign captures matched to parcels (pure): an exact match is adopted, so the planner neither
captures that parcel again nor refunds its goods anywhere but on the foreign capture."""

from __future__ import annotations

from dataclasses import replace

from plugin.demo import seed_order
from plugin.domain.actions import CaptureAction, RefundAction
from plugin.domain.plan import plan
from plugin.domain.provider import ProviderCapture, ProviderLine, ProviderOrder
from plugin.domain.references import capture_reference
from plugin.domain.snapshot import RefundLine, RefundRequest
from plugin.service.adoption import adopt_foreign_captures, unshipped_units
from tests.domain.builders import at

TSHIRT = ProviderLine(
    "TSHIRT-M-BLUE/1", "T-shirt", "physical", 1, 3000, 3000, tax_rate=2500, total_tax_amount=600
)
JEANS = ProviderLine(
    "JEANS-32-32/1", "Jeans", "physical", 1, 7000, 7000, tax_rate=2500, total_tax_amount=1400
)
SNEAKERS = ProviderLine(
    "SNEAKERS-42/2", "Sneakers", "physical", 1, 10000, 10000, tax_rate=2500, total_tax_amount=2000
)


def provider(*captures: ProviderCapture) -> ProviderOrder:
    captured = sum(c.captured_amount for c in captures)
    return ProviderOrder(
        "k-1", "PART_CAPTURED", "EUR", 20000, captured, 0, 20000 - captured, captures=captures
    )


OWN_A = ProviderCapture("cap-a", 10000, (TSHIRT, JEANS), capture_reference("parcel-A"))


def test_a_foreign_capture_of_exactly_one_parcel_is_adopted() -> None:
    order = seed_order()
    foreign = ProviderCapture("cap-b", 10000, (SNEAKERS,), "made in the portal")
    adoption = adopt_foreign_captures(order, provider(OWN_A, foreign))
    (adopted,) = adoption.adopted
    assert (adopted.shipment.id, adopted.parcel) == ("parcel-B", 2) and adoption.unmatched == ()
    assert [s.id for s in adoption.order.shipments] == ["parcel-A"]
    state = provider(OWN_A, foreign)
    assert not any(isinstance(a, CaptureAction) for a in plan(adoption.order, state).actions)
    assert unshipped_units(order, state) == 0
    back = RefundRequest("r-1", at(60), (RefundLine("line-sneakers", 1),))
    (refund,) = plan(replace(adoption.order, refunds=(back,)), state).actions
    assert isinstance(refund, RefundAction) and refund.capture == "cap-b"
    assert [line.reference for line in refund.lines] == ["SNEAKERS-42/2"]


def test_without_adoption_the_planner_would_refuse_the_parcel() -> None:
    order = seed_order()
    foreign = ProviderCapture("cap-b", 10000, (SNEAKERS,), None)
    result = plan(order, provider(OWN_A, foreign))
    assert [r.code.value for r in result.refusals] == ["over_shipped"]


def test_a_foreign_capture_matching_no_parcel_is_reported_not_guessed() -> None:
    order = seed_order()
    duplicate = ProviderCapture("cap-x", 3000, (replace(TSHIRT, reference="TSHIRT-M-BLUE/2"),), None)
    adoption = adopt_foreign_captures(order, provider(OWN_A, duplicate))
    (unmatched,) = adoption.unmatched
    assert unmatched.goods == {"line-tshirt": 1} and adoption.adopted == ()
    blind = ProviderCapture("cap-y", 5000, (), None)
    assert adopt_foreign_captures(order, provider(blind)).unmatched[0].goods == {}
