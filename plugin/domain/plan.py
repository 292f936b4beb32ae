"""``plan(order, provider_order, policy)``: what must happen for the provider to match the platform.

Level-triggered: the plan depends only on the two snapshots and the policy, so running it
again after its actions were carried out yields no actions, and a duplicate or late
webhook changes nothing. Actions must be executed in order (a refund may come out of a
capture planned just before it); after a failure, re-plan rather than continue.
"""

from __future__ import annotations

from collections.abc import Sequence

from plugin.domain.actions import Action, Plan, RefundAction, Refusal, RefusalCode
from plugin.domain.captures import as_provider_capture, plan_captures
from plugin.domain.ledger import Ledger, build_ledger
from plugin.domain.lines import as_provider_line
from plugin.domain.normalize import InvalidOrder, fold_order_discounts, order_problems
from plugin.domain.policy import Policy
from plugin.domain.provider import ProviderCapture, ProviderOrder
from plugin.domain.references import line_tokens, refund_parts, refund_reference_prefix
from plugin.domain.refunds import allocate_refund
from plugin.domain.snapshot import Order, RefundRequest


def plan(order: Order, provider: ProviderOrder, policy: Policy | None = None) -> Plan:
    policy = policy or Policy()
    problems = order_problems(order)
    if provider.currency.upper() != order.currency.upper():
        problems.append(
            f"the platform order is in {order.currency}, the provider order in {provider.currency}"
        )
    try:
        order = fold_order_discounts(order)
    except InvalidOrder as exc:
        problems.append(str(exc))
    if problems:
        return Plan(refusals=(Refusal("order", order.id, RefusalCode.INVALID_LINE, "; ".join(problems)),))
    tokens = line_tokens(order)

    ledger = _ledger(provider, [], skip=())
    captures, refusals = plan_captures(
        order,
        provider.order_id,
        provider.captures,
        provider.remaining_authorized_amount,
        tokens,
        ledger,
        policy,
    )
    planned_captures = [as_provider_capture(c) for c in captures]
    actions: list[Action] = list(captures)

    def own_positions(request: RefundRequest) -> list[int]:
        prefix = refund_reference_prefix(request.id)
        return [i for i, r in enumerate(provider.refunds) if (r.reference or "").startswith(prefix)]

    def unfinished(request: RefundRequest) -> bool:
        sent = [provider.refunds[i].reference or "" for i in own_positions(request)]
        return bool(sent) and len(sent) < min(refund_parts(ref) or 0 for ref in sent)

    requests = sorted(order.refunds, key=lambda r: (r.created_at, r.id))
    # A refund can only be left unfinished as the latest thing refunded: the worker
    # finishes a refund before it starts the next one.
    latest = next((r for r in requests if unfinished(r)), None)
    if latest is not None and own_positions(latest)[-1] != len(provider.refunds) - 1:
        refusals.append(_partly_sent(latest))
        latest = None
    if latest is not None and not ledger.misallocated:
        outcome = _finish(latest, own_positions(latest), order, provider, planned_captures, tokens, policy)
        if isinstance(outcome, Refusal):
            refusals.append(outcome)
        else:
            for action in outcome:
                ledger.book(action.reference, action.refunded_amount, map(as_provider_line, action.lines))
            actions.extend(outcome)

    for request in requests:
        if own_positions(request):
            continue
        allocated = allocate_refund(request, order, tokens, ledger, policy, provider.order_id)
        if isinstance(allocated, Refusal):
            refusals.append(allocated)
        else:
            actions.extend(allocated)
    return Plan(actions=tuple(actions), refusals=tuple(refusals))


def _ledger(provider: ProviderOrder, planned: Sequence[ProviderCapture], skip: Sequence[int]) -> Ledger:
    refunds = [r for i, r in enumerate(provider.refunds) if i not in skip]
    return build_ledger([*provider.captures, *planned], refunds)


def _finish(
    request: RefundRequest,
    positions: list[int],
    order: Order,
    provider: ProviderOrder,
    planned: Sequence[ProviderCapture],
    tokens: dict[str, str],
    policy: Policy,
) -> list[RefundAction] | Refusal:
    """The parts of a partly sent refund still missing, recomputed as it was first planned."""
    scratch = _ledger(provider, planned, skip=positions)
    outcome = allocate_refund(request, order, tokens, scratch, policy, provider.order_id)
    if isinstance(outcome, Refusal):
        return outcome
    wanted = {action.reference: action for action in outcome}
    sent = [provider.refunds[i] for i in positions]
    if any(
        r.reference not in wanted or wanted[r.reference].refunded_amount != r.refunded_amount for r in sent
    ):
        return _partly_sent(request)
    done = {r.reference for r in sent}
    return [action for action in outcome if action.reference not in done]


def _partly_sent(request: RefundRequest) -> Refusal:
    return Refusal(
        "refund",
        request.id,
        RefusalCode.PARTLY_SENT,
        "Refund only partly sent, and the rest can no longer be computed the same way "
        "(the order changed in between); check the provider order and finish it manually.",
    )
