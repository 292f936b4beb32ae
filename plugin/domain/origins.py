"""Where each capture's goods are now: still with the shopper, back, or covering a later parcel.

Platforms like Saleor do not link a return to the parcel it came from: they move the returned
units out of that parcel (dropping a parcel left empty) into a return record of their own,
and a cancelled parcel keeps its units although they never left. Every KOM capture names its
shipment (``kom:s:<id>``) and holds its units per line, so per capture and line:

- a shipment that is still out: units back = captured − units it still holds;
- a shipment that is gone: all its captured units came back;
- a cancelled shipment: the units it still held never left ("stranded"; captured units it
  no longer held came back before the cancel). Klarna cannot capture what it already
  captured, so a later parcel that ships the same goods again is *covered* by stranded units
  no refund took yet (oldest capture first) instead of being captured twice; stranded units
  no parcel covers are back too — refundable from that capture with its own references.

Units the platform reports as returned beyond what the captures account for were returned
before their parcel was captured: nobody paid for them, so no refund may take them from
another parcel's kept units.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from plugin.domain.provider import ProviderCapture
from plugin.domain.references import CAPTURE_PREFIX, capture_reference, parse_line_reference
from plugin.domain.snapshot import Order, Shipment, ShipmentLine


@dataclass(frozen=True)
class Cover:
    """Units of a shipment that an earlier capture (of a cancelled parcel) already paid for."""

    capture_key: str
    token: str
    units: int


@dataclass
class Whereabouts:
    back: dict[tuple[str, str], int] = field(default_factory=dict)
    """(capture key, line token) -> units captured there that are not with the shopper."""
    covered: dict[str, list[Cover]] = field(default_factory=dict)
    """Shipment id -> what earlier captures already paid for of it."""
    returned_uncaptured: dict[str, int] = field(default_factory=dict)
    """Line token -> units that came back although no capture paid for them."""
    cancelled: set[str] = field(default_factory=set)
    """Keys of captures whose shipment was cancelled after the capture."""
    stranded: dict[tuple[str, str], int] = field(default_factory=dict)
    """The part of ``back`` that a cancelled parcel held and no re-shipment covers."""

    def back_units(self, capture_key: str, token: str) -> int:
        return self.back.get((capture_key, token), 0)

    def covered_units(self, shipment_id: str) -> dict[str, int]:
        units: dict[str, int] = {}
        for cover in self.covered.get(shipment_id, ()):
            units[cover.token] = units.get(cover.token, 0) + cover.units
        return units


def _units_by_token(lines: Iterable[ShipmentLine], tokens: dict[str, str]) -> dict[str, int]:
    units: dict[str, int] = {}
    for item in lines:
        token = tokens.get(item.line_id)
        if token is not None:
            units[token] = units.get(token, 0) + item.quantity
    return units


def _captured_units(capture: ProviderCapture, goods: set[str]) -> dict[str, int]:
    units: dict[str, int] = {}
    for line in capture.lines:
        parsed = parse_line_reference(line.reference)
        if parsed is not None and parsed[0] in goods:
            units[parsed[0]] = units.get(parsed[0], 0) + line.quantity
    return units


def whereabouts(
    order: Order,
    captures: Sequence[ProviderCapture],
    tokens: dict[str, str],
    refunded: dict[tuple[str, str], int] | None = None,
) -> Whereabouts:
    """``refunded``: (capture key, token) -> units refunded on that capture as returned goods."""
    refunded = refunded or {}
    goods = set(tokens.values())
    result = Whereabouts()
    own = {
        capture.reference: _captured_units(capture, goods)
        for capture in captures
        if capture.reference and capture.reference.startswith(CAPTURE_PREFIX)
    }
    live: dict[str, Shipment] = {capture_reference(s.id): s for s in order.shipments}
    cancelled = {capture_reference(s.id): s for s in order.cancelled_shipments}
    stranded: dict[str, dict[str, int]] = {}  # units a cancelled parcel held, never left
    can_cover: dict[str, dict[str, int]] = {}  # of those, what no refund took yet
    accounted: dict[str, int] = {}  # units back that the captures explain

    def add_back(key: str, token: str, units: int) -> None:
        if units > 0:
            result.back[(key, token)] = result.back.get((key, token), 0) + units
            accounted[token] = accounted.get(token, 0) + units

    for key, units in own.items():
        if key in cancelled:
            result.cancelled.add(key)
            held = _units_by_token(cancelled[key].lines, tokens)
            stranded[key], can_cover[key] = {}, {}
            for token, n in units.items():
                kept = min(n, held.get(token, 0))
                add_back(key, token, n - kept)  # returned before the parcel was cancelled
                stranded[key][token] = kept
                # Refunds take returned units first, then the stranded ones.
                taken = max(0, refunded.get((key, token), 0) - (n - kept))
                can_cover[key][token] = max(0, kept - taken)
            continue
        still = _units_by_token(live[key].lines, tokens) if key in live else {}
        for token, n in units.items():  # a shipment that is gone came back whole
            add_back(key, token, n - still.get(token, 0))

    # Token -> the cancelled captures that hold it, in capture order (no other has any to give).
    covering: dict[str, list[str]] = {}
    for key, left in can_cover.items():
        for token in left:
            covering.setdefault(token, []).append(key)

    # Returns the live captures do not explain came back from a re-shipment of a cancelled
    # parcel (Saleor sends no event for a return): those stranded units can cover nothing more.
    returned_total = _units_by_token(order.returned, tokens)
    for token, n in returned_total.items():
        unexplained = n - accounted.get(token, 0)
        for left in (can_cover[key] for key in covering.get(token, ())):
            take = min(unexplained, left.get(token, 0))
            if take > 0:
                left[token] -= take
                unexplained -= take

    # Units a shipment holds beyond its own capture were paid for by a cancelled parcel's capture.
    for shipment in sorted(order.shipments, key=lambda s: (s.created_at, s.id)):
        paid = own.get(capture_reference(shipment.id), {})
        for token, count in _units_by_token(shipment.lines, tokens).items():
            excess = count - paid.get(token, 0)
            for key in covering.get(token, ()):
                left = can_cover[key]
                take = min(excess, left.get(token, 0))
                if take > 0:
                    left[token] -= take
                    stranded[key][token] -= take
                    excess -= take
                    result.covered.setdefault(shipment.id, []).append(Cover(key, token, take))
    # Stranded units no shipment covers are back (they never left, or came back from the
    # re-shipment): counted as explained returns, so they never read as "never captured".
    for key, uncovered in stranded.items():
        for token, n in uncovered.items():
            add_back(key, token, n)
            if n > 0:
                result.stranded[(key, token)] = n

    for token, n in returned_total.items():
        extra = n - accounted.get(token, 0)
        if extra > 0:
            result.returned_uncaptured[token] = extra
    return result
