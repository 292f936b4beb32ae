"""Bodies for answering TRANSACTION_{CHARGE,REFUND,CANCELATION}_REQUESTED.

Saleor parses any answer below 500 as JSON, whatever the status, with the pydantic models
in ``saleor/webhook/response_schemas/transaction.py``:

- no ``result``: pending; ``pspReference`` is required and the final outcome must come
  later through ``transactionEventReport`` with that same pspReference;
- ``result``: must be the success or failure of *this* action, spelled exactly (it is
  case-sensitive in practice); a success needs ``pspReference``; ``amount`` overrides the
  requested amount; ``externalUrl`` must be an http(s) URL or the whole answer is refused;
  ``message`` is cut at 512 characters.

The builders return plain JSON-serialisable dicts; anything Saleor would refuse raises
``ValueError`` here instead, where the bug is.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MAX_MESSAGE", "RESULTS", "SESSION_RESULTS", "ResultKind", "pending", "result", "session_result"]

MAX_MESSAGE = 512
_ACTIONS = frozenset({"CHARGE", "REFUND", "CANCEL"})


class ResultKind(StrEnum):
    CHARGE_SUCCESS = "CHARGE_SUCCESS"
    CHARGE_FAILURE = "CHARGE_FAILURE"
    REFUND_SUCCESS = "REFUND_SUCCESS"
    REFUND_FAILURE = "REFUND_FAILURE"
    CANCEL_SUCCESS = "CANCEL_SUCCESS"
    CANCEL_FAILURE = "CANCEL_FAILURE"

    @property
    def success(self) -> bool:
        return self.name.endswith("_SUCCESS")


# (success, failure) allowed for each sync event; any other result becomes a failure event.
RESULTS: dict[str, tuple[ResultKind, ResultKind]] = {
    "TRANSACTION_CHARGE_REQUESTED": (ResultKind.CHARGE_SUCCESS, ResultKind.CHARGE_FAILURE),
    "TRANSACTION_REFUND_REQUESTED": (ResultKind.REFUND_SUCCESS, ResultKind.REFUND_FAILURE),
    "TRANSACTION_CANCELATION_REQUESTED": (ResultKind.CANCEL_SUCCESS, ResultKind.CANCEL_FAILURE),
}


def pending(psp_reference: str, *, actions: Sequence[str] | None = None) -> dict[str, Any]:
    """Accept the request; KOM reports the outcome later with this pspReference."""
    if not psp_reference:
        raise ValueError("a pending answer needs a pspReference")
    body: dict[str, Any] = {"pspReference": psp_reference}
    if actions is not None:
        body["actions"] = _actions(actions)
    return body


def result(
    kind: ResultKind | str,
    *,
    psp_reference: str | None = None,
    amount: Decimal | None,
    message: str,
    external_url: str | None = None,
    actions: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A final answer. ``amount`` is in major units (``None``: the requested amount)."""
    kind = ResultKind(kind)
    body: dict[str, Any] = {"result": kind.value}
    if psp_reference:
        body["pspReference"] = psp_reference
    elif kind.success:
        raise ValueError(f"{kind} needs a pspReference (Saleor turns it into a failure otherwise)")
    if amount is not None:
        body["amount"] = _json_number(amount)
    body["message"] = message[:MAX_MESSAGE]
    if external_url is not None:
        parts = urlsplit(external_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"externalUrl must be an absolute http(s) URL, got {external_url!r}")
        body["externalUrl"] = external_url
    if actions is not None:
        body["actions"] = _actions(actions)
    return body


def _json_number(amount: Decimal) -> float:
    # json has no decimal type; a float whose shortest repr is the exact decimal text
    # serialises to exactly that text ("59.99"). Refuse anything that would not.
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
        raise ValueError(f"amount must be a non-negative finite Decimal, got {amount!r}")
    number = float(amount)
    if Decimal(repr(number)) != amount:
        raise ValueError(f"amount {amount} cannot be written exactly as a JSON number")
    return number


def _actions(actions: Sequence[str]) -> list[str]:
    unknown = set(actions) - _ACTIONS
    if unknown:
        raise ValueError(f"unknown transaction actions {sorted(unknown)}")
    return list(dict.fromkeys(actions))


# The session webhooks' results (TransactionSession*Schema): Saleor takes these whatever the
# action asked (CHARGE or AUTHORIZATION); KOM only ever authorizes, parcels are captured later.
SESSION_RESULTS = {
    "authorized": "AUTHORIZATION_SUCCESS",
    "failed": "AUTHORIZATION_FAILURE",
    "action_required": "AUTHORIZATION_ACTION_REQUIRED",
}


def session_result(
    kind: str,
    *,
    message: str,
    psp_reference: str | None = None,
    amount: Decimal | None = None,
    external_url: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A TRANSACTION_{INITIALIZE,PROCESS}_SESSION answer; ``data`` goes back to the storefront."""
    result = SESSION_RESULTS[kind]
    if result == "AUTHORIZATION_SUCCESS" and not psp_reference:
        raise ValueError("AUTHORIZATION_SUCCESS needs a pspReference (Saleor refuses it otherwise)")
    body: dict[str, Any] = {"result": result, "message": message[:MAX_MESSAGE]}
    if psp_reference:
        body["pspReference"] = psp_reference
    if amount is not None:
        body["amount"] = _json_number(amount)
    if external_url is not None:
        parts = urlsplit(external_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"externalUrl must be an absolute http(s) URL, got {external_url!r}")
        body["externalUrl"] = external_url
    if result == "AUTHORIZATION_SUCCESS":
        # Saleor never updates availableActions itself: offer what the order will need. No
        # CHARGE: each parcel is captured when it ships.
        body["actions"] = ["REFUND", "CANCEL"]
    if data is not None:
        body["data"] = data
    return body
