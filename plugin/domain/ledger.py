"""What each capture holds and has left, rebuilt from the provider's record.

Refunds are booked on captures with the provider's own allocation rule (the three
conditions of Klarna's "Refund allocation" article): a refund is allocated to capture C
only when no earlier refund failed allocation, its lines add up exactly to its amount, all
its line references are on C, and it stays within what C has left. A refund that fails is
*misallocated*, and so is every refund after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from plugin.domain.provider import ProviderCapture, ProviderLine, ProviderRefund
from plugin.domain.references import CAPTURE_PREFIX, parse_line_reference


@dataclass
class ReferenceState:
    """One line reference on one capture, and how much of it was refunded."""

    line: ProviderLine
    refunded_quantity: int = 0
    """Units refunded as returned (goodwill lines carry no returned units)."""
    refunded_amount: int = 0
    refunded_tax: int = 0
    goodwill_quantity: int = 0
    """The quantity goodwill lines used up: Klarna counts it like any refunded quantity."""

    @property
    def quantity_left(self) -> int:
        return self.line.quantity - self.refunded_quantity

    @property
    def units_unused(self) -> int:
        """Quantity no refund line of any kind has used yet (never below zero on KOM's refunds)."""
        return self.line.quantity - self.refunded_quantity - self.goodwill_quantity

    @property
    def amount_left(self) -> int:
        return self.line.total_amount - self.refunded_amount


@dataclass
class CaptureState:
    key: str
    """KOM's capture reference (``kom:s:...``) or, for captures made elsewhere, the capture id."""
    capture_id: str | None
    parcel: int
    captured_amount: int
    references: dict[str, ReferenceState]
    refunded: int = 0
    _by_token: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)
    _token_of: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def left(self) -> int:
        return self.captured_amount - self.refunded

    def references_of(self, token: str) -> list[str]:
        """This capture's references of one line token (``TOKEN/<parcel>``), in recorded order.

        Indexed once (a capture's references never change), so finding a line's units costs
        no pass over every line of every capture.
        """
        return self._index().get(token, [])

    def token_of(self, reference: str) -> str | None:
        """The line token of one of this capture's references (None: not one KOM built)."""
        self._index()
        return self._token_of.get(reference)

    def _index(self) -> dict[str, list[str]]:
        if self._by_token is None:
            self._by_token = {}
            for reference in self.references:
                parsed = parse_line_reference(reference)
                if parsed is not None:
                    self._by_token.setdefault(parsed[0], []).append(reference)
                    self._token_of[reference] = parsed[0]
        return self._by_token


@dataclass
class Ledger:
    captures: list[CaptureState] = field(default_factory=list)
    misallocated: list[tuple[str, str]] = field(default_factory=list)
    """(refund id or reference, reason) of refunds whose allocation failed."""
    _holding: dict[str, list[CaptureState]] = field(default_factory=dict, init=False, repr=False)
    """Reference -> the captures that hold it, in order (kept by ``add_capture``)."""

    def add_capture(self, capture: ProviderCapture) -> CaptureState:
        own = capture.reference is not None and capture.reference.startswith(CAPTURE_PREFIX)
        key = capture.reference if own and capture.reference else capture.capture_id
        references: dict[str, ReferenceState] = {}
        for line in capture.lines:
            if line.reference and line.reference not in references:
                references[line.reference] = ReferenceState(line)
        state = CaptureState(
            key=key,
            capture_id=capture.capture_id or None,
            parcel=len(self.captures) + 1,
            captured_amount=capture.captured_amount,
            references=references,
        )
        self.captures.append(state)
        for reference in references:
            self._holding.setdefault(reference, []).append(state)
        return state

    def why_not_allocatable(self, amount: int, lines: Iterable[ProviderLine]) -> str | CaptureState:
        """The capture this refund would be allocated to, or the reason it would not be."""
        lines = list(lines)
        if self.misallocated:
            return "an earlier refund on this order failed allocation"
        if not lines:
            return "the refund has no order lines"
        if sum(line.total_amount for line in lines) != amount:
            return "its order lines do not add up to the refunded amount"
        references = {line.reference for line in lines}
        # Only captures holding one of its references can hold them all.
        some = next(iter(references))
        candidates = self._holding.get(some, []) if some is not None else []
        holders = [c for c in candidates if all(r in c.references for r in references)]
        if len(holders) != 1:
            return "its line references do not belong to exactly one capture"
        capture = holders[0]
        if amount > capture.left:
            return f"it exceeds what capture {capture.parcel} has left"
        return capture

    def book(self, refund_id: str, amount: int, lines: Iterable[ProviderLine]) -> CaptureState | None:
        lines = list(lines)
        target = self.why_not_allocatable(amount, lines)
        if isinstance(target, str):
            self.misallocated.append((refund_id, target))
            return None
        target.refunded += amount
        for line in lines:
            assert line.reference is not None
            state = target.references[line.reference]
            if line.goodwill:
                state.goodwill_quantity += line.quantity
            else:
                state.refunded_quantity += line.quantity
            state.refunded_amount += line.total_amount
            state.refunded_tax += line.total_tax_amount
        return target


def build_ledger(captures: Iterable[ProviderCapture], refunds: Iterable[ProviderRefund]) -> Ledger:
    ledger = Ledger()
    for capture in captures:
        ledger.add_capture(capture)
    for refund in refunds:
        ledger.book(refund.refund_id or (refund.reference or "?"), refund.refunded_amount, refund.lines)
    return ledger
