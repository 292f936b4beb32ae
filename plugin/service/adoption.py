"""Captures made outside KOM (in the provider's portal, by another integration), matched to the
platform's parcels.

KOM's own captures carry ``kom:s:<shipment id>``; any other capture is *foreign*. A foreign
capture whose line references follow KOM's ``<SKU>/<parcel>`` scheme says which goods it
holds. When those are exactly the goods of one parcel KOM has not captured, the parcel is
*adopted*: it counts as captured (never captured twice), and its goods are refunded out of
the foreign capture with the references the provider recorded for it. A foreign capture
that matches no parcel is reported, not guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from plugin.domain.origins import whereabouts
from plugin.domain.provider import ProviderCapture, ProviderOrder
from plugin.domain.references import CAPTURE_PREFIX, capture_reference, line_tokens, parse_line_reference
from plugin.domain.snapshot import Order, Shipment


@dataclass(frozen=True)
class Adopted:
    capture: ProviderCapture
    shipment: Shipment
    parcel: int
    """The capture's position on the provider order (its line references' parcel number)."""


@dataclass(frozen=True)
class Unmatched:
    capture: ProviderCapture
    parcel: int
    goods: dict[str, int]
    """Order line id -> units its references name (empty: no reference KOM can read)."""


@dataclass(frozen=True)
class Adoption:
    order: Order
    """The platform order without the adopted parcels: what the planner should capture."""
    adopted: tuple[Adopted, ...] = ()
    unmatched: tuple[Unmatched, ...] = ()


def is_foreign(capture: ProviderCapture) -> bool:
    return not (capture.reference or "").startswith(CAPTURE_PREFIX)


def captured_goods(order: Order, capture: ProviderCapture) -> dict[str, int]:
    """Units of each order line a capture holds, read from its line references."""
    by_token = {token: line_id for line_id, token in line_tokens(order).items()}
    goods: dict[str, int] = {}
    for line in capture.lines:
        parsed = parse_line_reference(line.reference)
        line_id = by_token.get(parsed[0]) if parsed else None
        if line_id is not None and line.quantity > 0:
            goods[line_id] = goods.get(line_id, 0) + line.quantity
    return goods


def shipped_goods(shipment: Shipment) -> dict[str, int]:
    goods: dict[str, int] = {}
    for item in shipment.lines:
        if item.quantity > 0:
            goods[item.line_id] = goods.get(item.line_id, 0) + item.quantity
    return goods


def adopt_foreign_captures(order: Order, provider: ProviderOrder) -> Adoption:
    own = {c.reference for c in provider.captures if not is_foreign(c)}
    waiting = [
        s
        for s in sorted(order.shipments, key=lambda s: (s.created_at, s.id))
        if capture_reference(s.id) not in own
    ]
    adopted: list[Adopted] = []
    unmatched: list[Unmatched] = []
    for parcel, capture in enumerate(provider.captures, start=1):
        if not is_foreign(capture):
            continue
        goods = captured_goods(order, capture)
        match = next((s for s in waiting if goods and shipped_goods(s) == goods), None)
        if match is None:
            unmatched.append(Unmatched(capture, parcel, goods))
            continue
        waiting.remove(match)
        adopted.append(Adopted(capture, match, parcel))
    taken = {a.shipment.id for a in adopted}
    kept = tuple(s for s in order.shipments if s.id not in taken)
    return Adoption(replace(order, shipments=kept), tuple(adopted), tuple(unmatched))


def unshipped_units(order: Order, provider: ProviderOrder) -> int:
    """Units of goods neither captured nor in a parcel waiting to be captured.

    Captured units come from the provider's line references, so a parcel Saleor dropped
    after a return still counts as shipped. Units a waiting parcel re-ships that a cancelled
    parcel's capture already paid for, and units returned before their parcel was captured
    (they will not ship again), are not counted as unshipped either.
    """
    adoption = adopt_foreign_captures(order, provider)
    tokens = line_tokens(order)
    where = whereabouts(adoption.order, provider.captures, tokens)
    own = {c.reference for c in provider.captures if not is_foreign(c)}
    accounted: dict[str, int] = {}

    def count(line_id: str | None, units: int) -> None:
        if line_id is not None and units > 0:
            accounted[line_id] = accounted.get(line_id, 0) + units

    for capture in provider.captures:
        for line_id, units in captured_goods(order, capture).items():
            count(line_id, units)
    for shipment in adoption.order.shipments:
        if capture_reference(shipment.id) not in own:
            covered = where.covered_units(shipment.id)
            for line_id, units in shipped_goods(shipment).items():
                count(line_id, units - covered.get(tokens.get(line_id, ""), 0))
    by_token = {token: line_id for line_id, token in tokens.items()}
    for token, units in where.returned_uncaptured.items():
        count(by_token.get(token), units)
    return sum(max(line.quantity - accounted.get(line.id, 0), 0) for line in order.lines)
