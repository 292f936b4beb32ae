"""Where each capture's goods are now: still with the shopper, back, or covering a later parcel.

Platforms like Saleor do not link a return to the parcel it came from: they move the returned
units out of that parcel (dropping a parcel left empty) into a return record of their own,
and a cancelled parcel keeps its units although they never left. Every KOM capture names its
shipment (``kom:s:<id>``) and holds its units per line, so per capture and line:

- a shipment that is still out: units back = captured − units it still holds;
- a shipment that is gone: all its captured units came back;
- a cancelled shipment: its units never left ("stranded"). Klarna cannot capture what it
  already captured, so a later parcel that ships the same goods again is *covered* by the
  stranded units (oldest capture first) instead of being captured twice; stranded units no
  parcel covers are back too — refundable from that capture with its own references.

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


def whereabouts(order: Order, captures: Sequence[ProviderCapture], tokens: dict[str, str]) -> Whereabouts:
    goods = set(tokens.values())
    result = Whereabouts()
    own = {
        capture.reference: _captured_units(capture, goods)
        for capture in captures
        if capture.reference and capture.reference.startswith(CAPTURE_PREFIX)
    }
    live: dict[str, Shipment] = {capture_reference(s.id): s for s in order.shipments}
    cancelled = {capture_reference(shipment_id) for shipment_id in order.cancelled_shipments}
    stranded: dict[str, dict[str, int]] = {}
    returned_from_captures: dict[str, int] = {}
    for key, units in own.items():
        if key in live:
            still = _units_by_token(live[key].lines, tokens)
            back = {token: max(0, n - still.get(token, 0)) for token, n in units.items()}
        elif key in cancelled:
            result.cancelled.add(key)
            stranded[key] = dict(units)
            continue
        else:
            back = dict(units)  # the platform dropped the emptied shipment: all of it came back
        for token, n in back.items():
            if n:
                result.back[(key, token)] = n
                returned_from_captures[token] = returned_from_captures.get(token, 0) + n

    # Units a shipment holds beyond its own capture were paid for by a cancelled parcel's capture.
    for shipment in sorted(order.shipments, key=lambda s: (s.created_at, s.id)):
        paid = own.get(capture_reference(shipment.id), {})
        for token, count in _units_by_token(shipment.lines, tokens).items():
            excess = count - paid.get(token, 0)
            for key, left in stranded.items():
                take = min(excess, left.get(token, 0))
                if take > 0:
                    left[token] -= take
                    excess -= take
                    result.covered.setdefault(shipment.id, []).append(Cover(key, token, take))
    for key, uncovered in stranded.items():
        for token, n in uncovered.items():
            if n:
                result.back[(key, token)] = n

    for token, n in _units_by_token(order.returned, tokens).items():
        extra = n - returned_from_captures.get(token, 0)
        if extra > 0:
            result.returned_uncaptured[token] = extra
    return result
