"""What to tell the platform, made from the recorded outcomes (not from a re-read of the
provider, which may lag behind a write): captures made, refunds done, partly done or
refused, authorizations released, requests answered.

The same records always give the same reports, and the outbox keeps the first wording of
each, so a report sent again says the same thing. Pure functions: the worker records and
sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from plugin.domain.actions import CaptureAction, RefundAction, Refusal, ReleaseAction, ShippingInfoAction
from plugin.domain.ledger import build_ledger
from plugin.domain.money import format_money, to_minor
from plugin.domain.provider import ProviderOrder
from plugin.domain.references import CAPTURE_PREFIX, REFUND_PREFIX, refund_parts, refund_reference_prefix
from plugin.service.ports import OutboxReport, TransactionReport
from plugin.service.records import Outcome, StoredRequest
from plugin.service.sync import SyncResult


def adopt(state: ProviderOrder, known: Sequence[Outcome], request_ids: Sequence[str]) -> list[Outcome]:
    """Captures and refunds of KOM's on the provider's record that KOM did not record as done
    (it crashed between the provider's answer and the record): their outcomes, from the record.

    A refund is tied to the platform request whose reference it carries, or to what KOM
    recorded it meant to do; a refund of KOM's that matches neither (e.g. made for an
    installation since removed) is recorded but never reported, so nothing is counted twice.
    """
    done = {o.key for o in known if o.status == "done"}
    intents = {o.key: o for o in known}
    invoices = _booked_on(state)
    adopted = []
    for parcel, capture in enumerate(state.captures, start=1):
        key = capture.reference or ""
        if key.startswith(CAPTURE_PREFIX) and key not in done:
            adopted.append(
                Outcome(key, "capture", "done", capture.captured_amount, capture.capture_id, parcel=parcel)
            )
    for refund in state.refunds:
        key = refund.reference or ""
        if not key.startswith(REFUND_PREFIX) or key in done:
            continue
        intent = intents.get(key)
        request_id = intent.request_id if intent else None
        if request_id is None:
            request_id = next((r for r in request_ids if key.startswith(refund_reference_prefix(r))), None)
        adopted.append(
            Outcome(
                key, "refund", "done", refund.refunded_amount, refund.refund_id, request_id=request_id,
                parcel=intent.parcel if intent else None, capture=invoices.get(refund.refund_id),
                automatic=intent.automatic if intent else False,
            )
        )  # fmt: skip
    return adopted


@dataclass
class Composed:
    reports: list[OutboxReport] = field(default_factory=list)
    finished: list[StoredRequest] = field(default_factory=list)
    """Platform requests answered by these reports (marked done with them)."""
    rests: list[Outcome] = field(default_factory=list)
    """Failed records to keep: the part of a partly sent refund the planner will not finish."""


def compose(
    outcomes: Sequence[Outcome],
    requests: Sequence[StoredRequest],
    result: SyncResult,
    state: ProviderOrder,
    transaction_id: str,
    portal_url: str | None,
    provider: str = "Klarna",
) -> Composed:
    """Reports for every recorded outcome, and answers to the open requests that are complete.

    ``provider`` names the provider in the messages ("Klarna invoice K1IF1J5-1").
    """
    out = Composed()
    names = _invoice_names(state, provider)
    currency = state.currency
    for outcome in outcomes:
        report = _own_report(outcome, names, currency, portal_url)
        if report is not None:
            out.reports.append(OutboxReport(transaction_id, report))
    refused = {r.subject_id: r for r in result.refusals if r.subject == "refund"}
    planned = {a.request_id for a in result.actions if isinstance(a, RefundAction)}
    for request in requests:
        if request.kind == "refund":
            report = _refund_answer(request, outcomes, refused.get(request.request_id), request.request_id in planned, names, currency, portal_url, out, request.request_id in result.settled)  # noqa: E501  # fmt: skip
        elif request.kind == "cancel":
            report = _cancel_answer(request, outcomes, currency, portal_url)
        else:
            report = _charge_answer(request, result, currency)
        if report is not None:
            out.reports.append(OutboxReport(request.transaction_id, report))
            out.finished.append(request)
    return out


def lasting_attention(outcomes: Sequence[Outcome], state: ProviderOrder) -> list[str]:
    """Partly sent refunds: on the merchant's list until an operator clears them ("Retry now")."""
    names = _invoice_names(state)
    requests = {
        o.request_id for o in outcomes if o.kind == "refund" and o.status == "failed" and o.request_id
    }
    messages = []
    for request_id in sorted(requests):
        mine = [o for o in outcomes if o.kind == "refund" and not o.automatic and o.request_id == request_id]
        message = _partial_message(request_id, mine, names, state.currency)
        if message:
            messages.append(message)
    return messages


def failure_attention(result: SyncResult, currency: str) -> list[str]:
    """Actions the provider refused that no platform request answers for, and captures held
    back behind them: the merchant's needs-attention list."""
    messages = []
    for failure in result.failed:
        action = failure.action
        if isinstance(action, CaptureAction):
            money = format_money(action.captured_amount, currency)
            messages.append(f"Parcel {action.parcel} ({money}) could not be captured: {failure.reason}")
        elif isinstance(action, RefundAction) and action.automatic:
            money = format_money(action.refunded_amount, currency)
            messages.append(f"KOM could not refund {money} for goods that will not ship: {failure.reason}")
        elif isinstance(action, RefundAction):  # answered to the platform as failed (or partly done)
            money = format_money(action.refunded_amount, currency)
            messages.append(f"A refund of {money} failed: {failure.reason}")
        elif isinstance(action, ShippingInfoAction):
            messages.append(f"Tracking for parcel {action.parcel} could not be added: {failure.reason}")
        elif isinstance(action, ReleaseAction):
            messages.append(f"The authorization left could not be released: {failure.reason}")
    if not result.transient:
        messages += [
            f"Parcel {action.parcel} is not captured yet: {why}."
            for action, why in result.waiting
            if isinstance(action, CaptureAction)
        ]
    return messages


def _own_report(
    outcome: Outcome, names: dict[str, str], currency: str, portal_url: str | None
) -> TransactionReport | None:
    """The report of an outcome no platform request waits for (captures, automatic refunds, releases)."""
    if outcome.status != "done" or (outcome.request_id is not None and outcome.kind in ("cancel", "release")):
        return None  # not done, or answered in the reply to its request
    money = format_money(outcome.amount, currency)
    if outcome.kind == "capture" and outcome.provider_id:
        invoice = names.get(outcome.provider_id, f"capture {outcome.provider_id}")
        if outcome.provider_id not in invoice:
            invoice += f" (capture {outcome.provider_id})"
        message = f"Captured parcel {outcome.parcel} as {invoice}: {money}"
        return TransactionReport(
            "CHARGE_SUCCESS", outcome.provider_id, outcome.amount, currency, message, portal_url
        )
    if outcome.kind == "refund" and outcome.automatic and outcome.provider_id:
        invoice = _invoice_of(outcome, names)
        message = f"Refunded {money} on {invoice}{_refund_id(outcome)}: goods that will not ship"
        return TransactionReport(
            "REFUND_SUCCESS", outcome.provider_id, outcome.amount, currency, message, portal_url
        )
    if outcome.kind in ("cancel", "release"):
        message = _freed(outcome.kind, money) + " The order was cancelled."
        return TransactionReport("CANCEL_SUCCESS", outcome.key, outcome.amount, currency, message, portal_url)
    return None


def _freed(kind: str, money: str) -> str:
    if kind == "cancel":
        return f"Cancelled the order; {money} released."
    return f"Released the remaining authorization of {money}."


def _refund_answer(
    request: StoredRequest,
    outcomes: Sequence[Outcome],
    refusal: Refusal | None,
    planned: bool,
    names: dict[str, str],
    currency: str,
    portal_url: str | None,
    out: Composed,
    settled: bool = False,
) -> TransactionReport | None:
    """The final answer to a platform refund, once it is complete, refused or stopped."""
    mine = [
        o for o in outcomes if o.kind == "refund" and not o.automatic and o.request_id == request.request_id
    ]
    done = [o for o in mine if o.status == "done"]
    failed = [o for o in mine if o.status == "failed"]
    psp = request.psp_reference
    wanted = _requested(request)
    if not failed and refusal is not None and done:
        # Partly sent and the planner cannot finish it: keep the rest as a failure of its own.
        rest = Outcome(
            f"rest:{request.request_id}", "refund", "failed", max((wanted or 0) - _sum(done), 0),
            request_id=request.request_id, message=refusal.message,
        )  # fmt: skip
        out.rests.append(rest)
        failed = [rest]
    reason = _reason(request)
    if failed and done:  # money moved: say how much, never REFUND_FAILURE
        message = _split_message(done, names, currency) + f"; the rest was not refunded: {failed[0].message}"
        message += reason
        return TransactionReport("REFUND_SUCCESS", psp, _sum(done), currency, message, portal_url)
    if failed:
        message = (failed[0].message or "") + _correlation(failed[0])
        return TransactionReport("REFUND_FAILURE", psp, wanted or 0, currency, message, portal_url)
    parts = min((refund_parts(o.key) or 1 for o in mine if o.key.startswith(REFUND_PREFIX)), default=0)
    if done and len(done) >= parts:
        return TransactionReport("REFUND_SUCCESS", psp, _sum(done), currency, _split_message(done, names, currency) + reason, portal_url)  # noqa: E501  # fmt: skip
    if refusal is not None and not done:
        return TransactionReport("REFUND_FAILURE", psp, wanted or 0, currency, refusal.message, portal_url)
    if not mine and not planned and settled:
        message = "Nothing to refund through the provider: only goods worth nothing came back."
        return TransactionReport("REFUND_SUCCESS", psp, 0, currency, message, portal_url)
    if not mine and not planned:
        message = "Nothing refunded: the refund is worth nothing on the provider's invoices."
        return TransactionReport("REFUND_FAILURE", psp, wanted or 0, currency, message, portal_url)
    return None  # under way: a later pass finishes it


def _partial_message(
    request_id: str, mine: Sequence[Outcome], names: dict[str, str], currency: str
) -> str | None:
    done = [o for o in mine if o.status == "done"]
    failed = [o for o in mine if o.status == "failed"]
    if not (done and failed):
        return None
    return (
        f"Refund {request_id} only partly sent: {_split_message(done, names, currency)}; "
        f"{format_money(_sum(failed), currency)} was not refunded ({failed[0].message}). Refund the "
        "rest in the provider's portal or grant it again, then press Retry now to clear this."
    )


def _split_message(done: Sequence[Outcome], names: dict[str, str], currency: str) -> str:
    total = format_money(_sum(done), currency)
    if len(done) == 1:
        return f"Refunded {total} on {_invoice_of(done[0], names)}{_refund_id(done[0])}"
    pieces = [f"{_invoice_of(o, names)} {format_money(o.amount, currency)}{_refund_id(o)}" for o in done]
    return f"Refunded {total}, split over {len(done)} invoices: {', '.join(pieces)}"


def _invoice_of(outcome: Outcome, names: dict[str, str]) -> str:
    """``Klarna invoice K1IF1J5-1`` (or the capture's id), else the parcel."""
    return names.get(outcome.capture or "", f"the invoice of parcel {outcome.parcel}" if outcome.parcel else "an invoice")  # noqa: E501  # fmt: skip


def _correlation(outcome: Outcome) -> str:
    """Saleor shows only the message: the provider's correlation id goes in it, once."""
    return f" Correlation id {outcome.correlation_id}." if outcome.correlation_id else ""


def _refund_id(outcome: Outcome) -> str:
    return f" (refund {outcome.provider_id})" if outcome.provider_id else ""


def _reason(request: StoredRequest) -> str:
    """The merchant's reason for the refund, as they gave it in Saleor."""
    reason = str(request.body.get("reason") or "").strip()
    return f". Reason: {reason}" if reason else ""


def _cancel_answer(
    request: StoredRequest, outcomes: Sequence[Outcome], currency: str, portal_url: str | None
) -> TransactionReport | None:
    outcome = next((o for o in outcomes if o.key == f"cancel:{request.request_id}"), None)
    if outcome is None or outcome.status == "started":
        return None
    if outcome.status == "failed":
        message = (outcome.message or "") + _correlation(outcome)
        return TransactionReport("CANCEL_FAILURE", request.psp_reference, 0, currency, message, portal_url)
    message = _freed(outcome.kind, format_money(outcome.amount, currency))
    return TransactionReport(
        "CANCEL_SUCCESS", request.psp_reference, outcome.amount, currency, message, portal_url
    )


def _charge_answer(request: StoredRequest, result: SyncResult, currency: str) -> TransactionReport | None:
    """Resolve a dashboard "capture" request: parcels were captured (and reported) one by one.

    Each parcel is its own invoice and its own charge on the platform, so the request
    itself is closed without an amount of its own, saying what was captured instead. While
    a parcel may still be captured on a later pass, the answer waits for it.
    """
    if any(isinstance(f.action, CaptureAction) for f in result.transient) or any(
        isinstance(a, CaptureAction) for a, _ in result.waiting
    ):
        return None
    made = [d.action for d in result.done if isinstance(d.action, CaptureAction)]
    refused = [(f.action, f.reason) for f in result.failed if isinstance(f.action, CaptureAction)]
    parts = []
    if made:
        listed = ", ".join(f"parcel {a.parcel} {format_money(a.captured_amount, currency)}" for a in made)
        parts.append(f"Captured per parcel, each reported as its own charge: {listed}.")
    parts += [f"Parcel {action.parcel} could not be captured: {reason}" for action, reason in refused]
    if not parts:
        parts.append(
            "Nothing to capture: no fulfilled parcel is waiting. KOM captures each parcel when it ships."
        )
    return TransactionReport("CHARGE_FAILURE", request.psp_reference, 0, currency, " ".join(parts))


_CLOSED = frozenset({"CANCELLED", "EXPIRED", "CLOSED"})


def available_actions(state: ProviderOrder, *, manual_capture: bool) -> tuple[str, ...]:
    """The buttons Saleor should offer on the payment, from the provider's order.

    Saleor keeps whatever the app last set (saleor-observed.md), so KOM sets them with every
    report: CHARGE only when the merchant captures by hand and something is still authorized
    (KOM captures each parcel itself otherwise), REFUND only while captured money is left to
    refund, CANCEL only while something is authorized.
    """
    open_ = state.status not in _CLOSED and state.remaining_authorized_amount > 0
    actions = []
    if open_ and manual_capture:
        actions.append("CHARGE")
    if state.captured_amount - state.refunded_amount > 0:
        actions.append("REFUND")
    if open_:
        actions.append("CANCEL")
    return tuple(actions)


def requested_cancel(request: StoredRequest, currency: str) -> int:
    """The amount a cancel request asked to free (the platform's remaining authorization)."""
    amount = request.body.get("amount")
    return to_minor(str(amount), currency) if amount not in (None, "", "None") else 0


def _requested(request: StoredRequest) -> int | None:
    amount = request.body.get("amount")
    return None if amount is None else int(amount)


def _sum(outcomes: Sequence[Outcome]) -> int:
    return sum(o.amount for o in outcomes)


def _invoice_names(state: ProviderOrder, provider: str = "Klarna") -> dict[str, str]:
    """Capture id and capture reference -> the invoice the customer sees (Klarna's reference),
    or the capture id when it has none."""
    names: dict[str, str] = {}
    for capture in state.captures:
        name = (
            f"{provider} invoice {capture.klarna_reference}"
            if capture.klarna_reference
            else f"{provider} capture {capture.capture_id}"
        )
        names[capture.capture_id] = name
        if capture.reference:
            names[capture.reference] = name
    return names


def _booked_on(state: ProviderOrder) -> dict[str, str]:
    """Refund id -> the capture id the provider's allocation rule books it on."""
    ledger = build_ledger(state.captures, ())
    booked_on = {}
    for refund in state.refunds:
        booked = ledger.book(refund.refund_id, refund.refunded_amount, refund.lines)
        if booked is not None and booked.capture_id:
            booked_on[refund.refund_id] = booked.capture_id
    return booked_on
