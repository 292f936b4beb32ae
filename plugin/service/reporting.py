"""What to tell the platform after a sync: captures made, refunds done or refused.

Level-triggered like the plan: computed from the provider's order and the recorded
requests, so reporting twice reports nothing new (and platforms dedupe anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

from plugin.domain.actions import Refusal
from plugin.domain.ledger import build_ledger
from plugin.domain.money import format_money
from plugin.domain.provider import ProviderOrder
from plugin.domain.references import CAPTURE_PREFIX, refund_parts, refund_reference_prefix
from plugin.service.ports import TransactionReport


@dataclass(frozen=True)
class RefundRecord:
    """A refund the platform asked for, as KOM recorded it."""

    request_id: str
    psp_reference: str
    amount: int | None


def capture_reports(state: ProviderOrder, portal_url: str | None) -> list[TransactionReport]:
    """Each capture KOM made, as a charge with the capture id as its reference."""
    reports = []
    for parcel, capture in enumerate(state.captures, start=1):
        if not (capture.reference or "").startswith(CAPTURE_PREFIX):
            continue
        invoice = capture.klarna_reference or capture.capture_id
        money = format_money(capture.captured_amount, state.currency)
        reports.append(
            TransactionReport(
                type="CHARGE_SUCCESS",
                psp_reference=capture.capture_id,
                amount=capture.captured_amount,
                currency=state.currency,
                message=f"Parcel {parcel} captured as invoice {invoice}: {money}",
                external_url=portal_url,
            )
        )
    return reports


def refund_reports(
    state: ProviderOrder, requests: list[RefundRecord], refusals: list[Refusal], portal_url: str | None
) -> list[tuple[RefundRecord, TransactionReport]]:
    """A final report for each refund request that is complete or refused."""
    invoice_of = _invoices(state)
    refused = {r.subject_id: r for r in refusals if r.subject == "refund"}
    reports = []
    for request in requests:
        prefix = refund_reference_prefix(request.request_id)
        sent = [r for r in state.refunds if (r.reference or "").startswith(prefix)]
        parts = min((refund_parts(r.reference or "") or 0 for r in sent), default=0)
        if sent and len(sent) >= parts:
            total = sum(r.refunded_amount for r in sent)
            pieces = [
                f"{invoice_of.get(r.refund_id or '', '?')} {format_money(r.refunded_amount, state.currency)}"
                for r in sent
            ]
            if len(sent) == 1:
                message = (
                    f"Refunded {format_money(total, state.currency)} on invoice {pieces[0].split(' ')[0]}"
                )
            else:
                message = f"Refund split over {len(sent)} invoices: {', '.join(pieces)}"
            report = TransactionReport(
                "REFUND_SUCCESS", request.psp_reference, total, state.currency, message, portal_url
            )
        elif request.request_id in refused:
            report = TransactionReport(
                "REFUND_FAILURE",
                request.psp_reference,
                request.amount or 0,
                state.currency,
                refused[request.request_id].message,
                portal_url,
            )
        elif not sent:
            report = TransactionReport(
                "REFUND_FAILURE",
                request.psp_reference,
                request.amount or 0,
                state.currency,
                "Nothing refunded: the refund is worth nothing on the provider's invoices.",
                portal_url,
            )
        else:
            continue  # partly sent: the next pass finishes it
        reports.append((request, report))
    return reports


def _invoices(state: ProviderOrder) -> dict[str, str]:
    """Refund id -> the invoice (capture) the provider's allocation rule books it on."""
    ledger = build_ledger(state.captures, ())
    names = {c.capture_id: c.klarna_reference or c.capture_id for c in state.captures}
    result = {}
    for refund in state.refunds:
        booked = ledger.book(refund.refund_id, refund.refunded_amount, refund.lines)
        result[refund.refund_id] = names.get(booked.capture_id or "", "?") if booked else "unallocated"
    return result
