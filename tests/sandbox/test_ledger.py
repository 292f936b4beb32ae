"""The allocation ledger, on the "Refund allocation" article's example (T-shirt, jeans | sneakers)."""

from __future__ import annotations

from adapters.klarna.sandbox.ledger import LedgerCapture, LedgerLine, LedgerRefund, allocate

TSHIRT, JEANS, SNEAKERS = LedgerLine("A12345", 3000), LedgerLine("A98765", 7000), LedgerLine("B24680", 10000)
CAPTURE_A = LedgerCapture.of("capture-a", 10000, [TSHIRT, JEANS])
CAPTURE_B = LedgerCapture.of("capture-b", 10000, [SNEAKERS])
CAPTURES = [CAPTURE_A, CAPTURE_B]


def refund(refund_id: str, amount: int, *lines: LedgerLine) -> LedgerRefund:
    return LedgerRefund(refund_id, amount, lines)


def test_sneakers_refund_with_capture_b_references_is_allocated_to_b() -> None:
    result = allocate(CAPTURES, [refund("r1", 10000, SNEAKERS)])

    (allocation,) = result.allocations
    assert allocation.allocated and allocation.capture_id == "capture-b" and allocation.reason is None
    assert result.refunded_by_capture == {"capture-a": 0, "capture-b": 10000}
    assert result.unallocated_amount == 0


def test_partial_refund_of_a_capture_is_allocated_and_counts_against_what_it_has_left() -> None:
    result = allocate(CAPTURES, [refund("r1", 3000, TSHIRT), refund("r2", 7000, JEANS)])

    assert [a.capture_id for a in result.allocations] == ["capture-a", "capture-a"]
    assert result.refunded_by_capture == {"capture-a": 10000, "capture-b": 0}


def test_lines_not_summing_to_refunded_amount_misallocate_it_and_every_later_refund() -> None:
    result = allocate(
        CAPTURES,
        [
            refund("r1", 9000, SNEAKERS),  # lines say 10000
            refund("r2", 3000, TSHIRT),  # correct on its own, but (a) fails now
            refund("r3", 7000, JEANS),
        ],
    )

    first, second, third = result.allocations
    assert not first.allocated and first.reason == "order lines sum to 10000, not refunded_amount 9000"
    assert not second.allocated and second.reason == "an earlier refund (r1) of this order failed allocation"
    assert not third.allocated and third.reason == "an earlier refund (r1) of this order failed allocation"
    assert result.refunded_by_capture == {"capture-a": 0, "capture-b": 0}
    assert result.unallocated_amount == 19000


def test_refund_above_what_the_capture_has_left_is_misallocated() -> None:
    result = allocate(CAPTURES, [refund("r1", 3000, TSHIRT), refund("r2", 7001, LedgerLine("A98765", 7001))])

    assert result.allocations[0].capture_id == "capture-a"
    assert result.allocations[1].capture_id is None
    assert (
        result.allocations[1].reason == "refunded_amount 7001 exceeds what capture capture-a has left (7000)"
    )


def test_refund_above_the_capture_amount_is_misallocated_even_if_the_order_has_more_captured() -> None:
    big_tshirt = LedgerLine("A12345", 12000)
    result = allocate(CAPTURES, [refund("r1", 12000, big_tshirt)])

    assert (
        result.allocations[0].reason
        == "refunded_amount 12000 exceeds what capture capture-a has left (10000)"
    )


def test_references_spanning_two_captures_are_misallocated() -> None:
    result = allocate(CAPTURES, [refund("r1", 13000, TSHIRT, SNEAKERS)])

    assert result.allocations[0].capture_id is None
    assert result.allocations[0].reason == "references span several captures"


def test_unknown_reference_is_misallocated() -> None:
    result = allocate(CAPTURES, [refund("r1", 3000, LedgerLine("a12345", 3000))])  # case differs

    assert result.allocations[0].reason == "reference 'a12345' occurs on no capture"


def test_reference_present_on_two_captures_is_ambiguous_and_misallocated() -> None:
    captures = [LedgerCapture.of("c1", 3000, [TSHIRT]), LedgerCapture.of("c2", 3000, [TSHIRT])]
    result = allocate(captures, [refund("r1", 3000, TSHIRT)])

    assert result.allocations[0].reason == "reference 'A12345' occurs on several captures (c1, c2)"


def test_refund_without_lines_is_misallocated_and_poisons_later_refunds() -> None:
    result = allocate(CAPTURES, [refund("r1", 1000), refund("r2", 10000, SNEAKERS)])

    assert result.allocations[0].reason == "refund has no order lines"
    assert result.allocations[1].reason == "an earlier refund (r1) of this order failed allocation"


def test_line_without_reference_is_misallocated() -> None:
    result = allocate(CAPTURES, [refund("r1", 3000, LedgerLine(None, 3000))])

    assert result.allocations[0].reason == "order_lines[0] has no reference"


def test_negative_return_fee_line_counts_in_the_sum() -> None:
    # Sneakers back, minus a 500 return fee booked under a reference captured with them.
    capture = LedgerCapture.of("c", 10500, [SNEAKERS, LedgerLine("FEE", 500)])
    result = allocate([capture], [refund("r1", 9500, SNEAKERS, LedgerLine("FEE", -500))])

    assert result.allocations[0].capture_id == "c"
    assert result.refunded_by_capture == {"c": 9500}


def test_no_refunds_books_nothing() -> None:
    result = allocate(CAPTURES, [])
    assert result.allocations == () and result.refunded_by_capture == {"capture-a": 0, "capture-b": 0}
