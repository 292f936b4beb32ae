"""Refund allocation ledger: which capture (invoice) each refund of an order is booked on.

Klarna's "Refund allocation" article lets a refund land on a specific partial capture only if
  (a) no earlier refund of the order failed allocation,
  (b) the refund's order lines add up exactly to refunded_amount, and
  (c) refunded_amount <= the captured amount of the capture being refunded;
the capture is found by the refund lines' `reference` values, which must be identical to
that capture's. Otherwise the refund is still accepted but booked on the order in general.

Where Klarna leaves details open, this ledger is deliberately strict, so that a client
which passes here also passes on the real service:
  * references compare byte-for-byte (case-sensitive); a line without a reference
    (missing or "") cannot be matched;
  * every reference of the refund must occur on one capture and on no other capture;
    references spread over two captures, matching none, or shared by two captures fail;
  * (c) is applied to what the capture has left: captured_amount minus the refunds
    already allocated to it;
  * a refund without order lines fails (b), and by (a) so does every later refund.

Pure functions over plain values: no I/O, no clock, integer minor units only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LedgerLine:
    reference: str | None
    total_amount: int


@dataclass(frozen=True)
class LedgerCapture:
    capture_id: str
    captured_amount: int
    references: frozenset[str]

    @classmethod
    def of(cls, capture_id: str, captured_amount: int, lines: Sequence[LedgerLine]) -> LedgerCapture:
        refs = frozenset(line.reference for line in lines if line.reference)
        return cls(capture_id, captured_amount, refs)


@dataclass(frozen=True)
class LedgerRefund:
    refund_id: str
    refunded_amount: int
    lines: tuple[LedgerLine, ...]  # empty when the refund request carried no order lines


@dataclass(frozen=True)
class Allocation:
    refund_id: str
    refunded_amount: int
    capture_id: str | None  # None: misallocated, booked on the order in general
    reason: str | None  # why allocation failed; None when allocated

    @property
    def allocated(self) -> bool:
        return self.capture_id is not None


@dataclass(frozen=True)
class LedgerResult:
    allocations: tuple[Allocation, ...]
    refunded_by_capture: dict[str, int]  # allocated refund total per capture id

    @property
    def unallocated_amount(self) -> int:
        return sum(a.refunded_amount for a in self.allocations if not a.allocated)


def allocate(captures: Sequence[LedgerCapture], refunds: Sequence[LedgerRefund]) -> LedgerResult:
    """Book `refunds` (in the order they were made) against `captures`."""
    refunded = {c.capture_id: 0 for c in captures}
    allocations: list[Allocation] = []
    failed_before: str | None = None
    for refund in refunds:
        capture_id: str | None = None
        if failed_before is not None:
            reason: str | None = f"an earlier refund ({failed_before}) of this order failed allocation"
        else:
            capture_id, reason = _match(refund, captures, refunded)
        if capture_id is None:
            failed_before = failed_before or refund.refund_id
        else:
            refunded[capture_id] += refund.refunded_amount
        allocations.append(Allocation(refund.refund_id, refund.refunded_amount, capture_id, reason))
    return LedgerResult(tuple(allocations), refunded)


def _match(
    refund: LedgerRefund, captures: Sequence[LedgerCapture], refunded: dict[str, int]
) -> tuple[str | None, str | None]:
    """Conditions (b) and (c) for one refund: (capture_id, None) or (None, reason)."""
    if not refund.lines:
        return None, "refund has no order lines"
    line_sum = sum(line.total_amount for line in refund.lines)
    if line_sum != refund.refunded_amount:
        return None, f"order lines sum to {line_sum}, not refunded_amount {refund.refunded_amount}"
    for index, line in enumerate(refund.lines):
        if not line.reference:
            return None, f"order_lines[{index}] has no reference"
    wanted = {line.reference for line in refund.lines if line.reference}
    for ref in sorted(wanted):
        holders = [c.capture_id for c in captures if ref in c.references]
        if len(holders) > 1:
            return None, f"reference {ref!r} occurs on several captures ({', '.join(holders)})"
    candidates = [c for c in captures if wanted <= c.references]
    if not candidates:
        unknown = [ref for ref in sorted(wanted) if not any(ref in c.references for c in captures)]
        if unknown:
            return None, f"reference {unknown[0]!r} occurs on no capture"
        return None, "references span several captures"
    capture = candidates[0]  # unique: each reference occurs on one capture only
    left = capture.captured_amount - refunded[capture.capture_id]
    if refund.refunded_amount > left:
        return None, (
            f"refunded_amount {refund.refunded_amount} exceeds what capture {capture.capture_id} "
            f"has left ({left})"
        )
    return capture.capture_id, None
