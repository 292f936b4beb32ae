"""Transaction amounts from events, the way Saleor's ``recalculate_transaction_amounts`` does.

Events are grouped by (action, pspReference). A ``*_REQUEST`` counts as pending until a
SUCCESS or FAILURE with the same pspReference exists; a SUCCESS moves its amount out of the
previous bucket (CHARGE: authorized -> charged, REFUND: charged -> refunded, CANCEL:
authorized -> canceled). Events without pspReference (``transactionCreate``'s manual
adjustments) just add. Only events with ``include_in_calculations`` count: a request
Saleor has not yet got a pspReference for, and the FAILURE events it records for
unusable answers, do not.
"""

from __future__ import annotations

from .state import Transaction, TransactionEvent

__all__ = [
    "ACTIONS",
    "AUTH_TYPES",
    "FAILED_TYPE",
    "FAILURE",
    "REQUEST",
    "SUCCESS",
    "SYNC_EVENT",
    "recalculate",
]

ACTIONS = ("CHARGE", "REFUND", "CANCEL")
SYNC_EVENT = {
    "CHARGE": "TRANSACTION_CHARGE_REQUESTED",
    "REFUND": "TRANSACTION_REFUND_REQUESTED",
    "CANCEL": "TRANSACTION_CANCELATION_REQUESTED",
}
REQUEST = {"CHARGE": "CHARGE_REQUEST", "REFUND": "REFUND_REQUEST", "CANCEL": "CANCEL_REQUEST"}
SUCCESS = {"CHARGE": "CHARGE_SUCCESS", "REFUND": "REFUND_SUCCESS", "CANCEL": "CANCEL_SUCCESS"}
FAILURE = {"CHARGE": "CHARGE_FAILURE", "REFUND": "REFUND_FAILURE", "CANCEL": "CANCEL_FAILURE"}
# get_failed_type_based_on_event
FAILED_TYPE = {
    "AUTHORIZATION_REQUEST": "AUTHORIZATION_FAILURE",
    "AUTHORIZATION_SUCCESS": "AUTHORIZATION_FAILURE",
    "AUTHORIZATION_ADJUSTMENT": "AUTHORIZATION_FAILURE",
    "CHARGE_REQUEST": "CHARGE_FAILURE",
    "CHARGE_SUCCESS": "CHARGE_FAILURE",
    "CHARGE_BACK": "CHARGE_FAILURE",
    "REFUND_REQUEST": "REFUND_FAILURE",
    "REFUND_SUCCESS": "REFUND_FAILURE",
    "REFUND_REVERSE": "REFUND_FAILURE",
    "CANCEL_REQUEST": "CANCEL_FAILURE",
    "CANCEL_SUCCESS": "CANCEL_FAILURE",
}
AUTH_TYPES = (
    "AUTHORIZATION_REQUEST",
    "AUTHORIZATION_SUCCESS",
    "AUTHORIZATION_FAILURE",
    "AUTHORIZATION_ADJUSTMENT",
)
_ROLES = {
    "AUTHORIZATION_REQUEST": ("authorization", "request"),
    "AUTHORIZATION_SUCCESS": ("authorization", "success"),
    "AUTHORIZATION_FAILURE": ("authorization", "failure"),
    "AUTHORIZATION_ADJUSTMENT": ("authorization", "adjustment"),
    "CHARGE_REQUEST": ("charge", "request"),
    "CHARGE_SUCCESS": ("charge", "success"),
    "CHARGE_FAILURE": ("charge", "failure"),
    "CHARGE_BACK": ("charge", "back"),
    "REFUND_REQUEST": ("refund", "request"),
    "REFUND_SUCCESS": ("refund", "success"),
    "REFUND_FAILURE": ("refund", "failure"),
    "REFUND_REVERSE": ("refund", "reverse"),
    "CANCEL_REQUEST": ("cancel", "request"),
    "CANCEL_SUCCESS": ("cancel", "success"),
    "CANCEL_FAILURE": ("cancel", "failure"),
}
# (pending field, amount field, field the amount moves out of)
_FIELDS = {
    "authorization": ("authorize_pending", "authorized", None),
    "charge": ("charge_pending", "charged", "authorized"),
    "refund": ("refund_pending", "refunded", "charged"),
    "cancel": ("cancel_pending", "canceled", "authorized"),
}


def recalculate(transaction: Transaction) -> None:
    """Saleor's ``calculate_transaction_amount_based_on_events`` in minor units."""
    events = sorted(
        (e for e in transaction.events if e.include_in_calculations), key=lambda e: (e.created_at, e.pk)
    )
    auth = [e for e in events if e.type in AUTH_TYPES]
    adjustments = [i for i, e in enumerate(auth) if e.type == "AUTHORIZATION_ADJUSTMENT"]
    if adjustments:  # an adjustment overwrites everything authorized before it
        auth = auth[adjustments[-1] :]
    without_psp: list[TransactionEvent] = []
    groups: dict[str, dict[str, dict[str, TransactionEvent]]] = {kind: {} for kind in _FIELDS}
    for event in [*auth, *(e for e in events if e.type not in AUTH_TYPES)]:
        if event.type not in _ROLES:
            continue
        if not event.psp_reference:
            without_psp.append(event)
            continue
        kind, role = _ROLES[event.type]
        groups[kind].setdefault(event.psp_reference, {})[role] = event

    for name in ("authorized", "charged", "refunded", "canceled"):
        setattr(transaction, name, 0)
    for name in ("authorize_pending", "charge_pending", "refund_pending", "cancel_pending"):
        setattr(transaction, name, 0)

    for event in without_psp:  # transactionCreate/Update: no pairing, no moving
        if event.type == "AUTHORIZATION_SUCCESS":
            transaction.authorized += event.amount
        elif event.type == "AUTHORIZATION_ADJUSTMENT":
            transaction.authorized = event.amount
        elif event.type in ("CHARGE_SUCCESS", "REFUND_REVERSE"):
            transaction.charged += event.amount
        elif event.type == "CHARGE_BACK":
            transaction.charged -= event.amount
        elif event.type == "REFUND_SUCCESS":
            transaction.refunded += event.amount
        elif event.type == "CANCEL_SUCCESS":
            transaction.canceled += event.amount

    for kind, by_psp in groups.items():
        pending_field, amount_field, source_field = _FIELDS[kind]
        for roles in by_psp.values():
            if "adjustment" in roles:
                transaction.authorized = roles["adjustment"].amount
            if "back" in roles:
                transaction.charged -= roles["back"].amount
            if "reverse" in roles:
                transaction.charged += roles["reverse"].amount
                transaction.refunded -= roles["reverse"].amount
            request, success, failure = roles.get("request"), roles.get("success"), roles.get("failure")
            if request is not None and success is None and failure is None:
                _move(transaction, pending_field, source_field, request.amount)
            if success is not None and (failure is None or success.created_at > failure.created_at):
                _move(transaction, amount_field, source_field, success.amount)


def _move(transaction: Transaction, target: str, source: str | None, amount: int) -> None:
    setattr(transaction, target, getattr(transaction, target) + amount)
    if source:
        setattr(transaction, source, getattr(transaction, source) - amount)
