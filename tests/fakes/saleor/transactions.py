"""Saleor's Transactions API mutations over the fake's records.

- ``transactionCreate`` (``Payments.create``), ``transactionRequestAction`` and
  ``transactionRequestRefundForGrantedRefund`` (a ``*_REQUEST`` event + the sync webhook);
- ``transactionEventReport``: only the owning app with HANDLE_PAYMENTS; the same
  (transaction, pspReference, type) is deduplicated: same amount -> ``alreadyProcessed``,
  other amount -> error (and a FAILURE event, as Saleor records one);
- applying answers to the sync webhooks (``responses.py`` parses them);
- after every amount change, the order webhooks Saleor's ``order_transaction_updated``
  sends, and the granted refund's status.
Amounts follow from the events (``amounts.recalculate``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from .amounts import ACTIONS, AUTH_TYPES, FAILED_TYPE, FAILURE, REQUEST, SUCCESS, SYNC_EVENT, recalculate
from .money import to_minor
from .orders import order_totals
from .responses import FAILED_DELIVERY, parse_sync_response, truncate
from .state import (
    App,
    GrantedRefund,
    Principal,
    SaleorError,
    Store,
    Transaction,
    TransactionEvent,
)

__all__ = [
    "ACTIONS",
    "FAILED_DELIVERY",
    "SYNC_EVENT",
    "Payments",
    "PermissionDenied",
    "recalculate",
]

_NO_DEDUP = ("INFO", "AUTHORIZATION_ACTION_REQUIRED", "CHARGE_ACTION_REQUIRED")
_OPTIONAL_AMOUNT = (*FAILURE.values(), "AUTHORIZATION_FAILURE", "CHARGE_BACK", "REFUND_REVERSE", "INFO")
NO_APP = "No app or plugin is configured to handle payment action requests."
DIFFERENT_AMOUNT = (
    "The transaction with provided `pspReference` and `type` already exists with different amount."
)


class PermissionDenied(Exception):
    """Saleor's ``PermissionDenied``: a top-level GraphQL error, not a mutation error."""

    def __init__(self, permissions: list[str]) -> None:
        super().__init__(
            "To access this path, you need one of the following permissions: " + ", ".join(permissions)
        )


class Emit(Protocol):
    def __call__(self, event_type: str, principal: Principal | None, **subjects: Any) -> None: ...


# Sends the sync webhook to the owner; False when it has no app or webhook for it.
SendRequest = Callable[[str, Transaction, TransactionEvent, GrantedRefund | None], bool]


class Payments:
    """The transaction mutations and the sync-webhook response handling.

    ``emit`` queues async webhooks (ORDER_PAID, ...); ``send_request`` queues the sync
    TRANSACTION_*_REQUESTED delivery to the owning app.
    """

    def __init__(
        self, store: Store, emit: Emit, send_request: SendRequest, new_uuid: Callable[[], str]
    ) -> None:
        self.store = store
        self.emit = emit
        self.send_request = send_request
        self.new_uuid = new_uuid

    # -- records -------------------------------------------------------------------------

    def _add_event(
        self, transaction: Transaction, type_: str, amount: int, **fields: Any
    ) -> TransactionEvent:
        event = TransactionEvent(
            pk=self.store.next_pk("transaction_event"),
            transaction_token=transaction.token,
            type=type_,
            amount=amount,
            psp_reference=fields.pop("psp_reference", ""),
            created_at=fields.pop("created_at", None) or self.store.now(),
            **fields,
        )
        transaction.events.append(event)
        self.store.events[event.pk] = event
        transaction.modified_at = self.store.now()
        return event

    def _fail(self, event: TransactionEvent, cause: str) -> TransactionEvent:
        """``create_failed_transaction_event``: recorded, but not counted."""
        transaction = self.store.transactions[event.transaction_token]
        failure = self._add_event(
            transaction,
            FAILED_TYPE.get(event.type, event.type),
            event.amount,
            psp_reference=event.psp_reference,
            message=truncate(cause),
            include_in_calculations=False,
            related_granted_refund_pk=event.related_granted_refund_pk,
        )
        self._update_grant_status(event.related_granted_refund_pk)
        return failure

    def _existing(self, transaction: Transaction, psp: str, type_: str) -> TransactionEvent | None:
        if type_ in _NO_DEDUP:
            return None
        for event in transaction.events:
            if event.psp_reference == psp and event.type == type_:
                return event
        return None

    def _update_grant_status(self, grant_pk: int | None) -> None:
        """``calculate_order_granted_refund_status``: from the grant's latest refund event."""
        grant = self.store.granted_refunds.get(grant_pk) if grant_pk is not None else None
        if grant is None:
            return
        transaction = self.store.transactions[grant.transaction_token]
        related = [
            e
            for e in transaction.events
            if e.related_granted_refund_pk == grant.pk
            and e.type in ("REFUND_REQUEST", "REFUND_SUCCESS", "REFUND_REVERSE", "REFUND_FAILURE")
        ]
        if not related:
            return
        last = max(related, key=lambda e: (e.created_at, e.pk))
        grant.status = {"REFUND_SUCCESS": "SUCCESS", "REFUND_REQUEST": "PENDING"}.get(last.type, "FAILURE")
        grant.updated_at = self.store.now()

    def _amounts_changed(
        self, transaction: Transaction, before: tuple[int, int, int], by: Principal | None
    ) -> None:
        """``order_transaction_updated``: which order webhooks an amount change triggers."""
        order = self.store.orders[transaction.order_uuid]
        order.updated_at = self.store.now()
        authorized, charged, refunded = before
        updated = transaction.authorized != authorized
        if transaction.charged > charged:
            updated = False
            self.emit("ORDER_PAID", by, order=order)
            if order_totals(self.store, order).charge_status in ("FULL", "OVERCHARGED"):
                self.emit("ORDER_FULLY_PAID", by, order=order)
            self.emit("ORDER_UPDATED", by, order=order)
        elif transaction.charged != charged:
            updated = True
        if transaction.refunded > refunded:
            updated = False
            self.emit("ORDER_REFUNDED", by, order=order)
            totals = order_totals(self.store, order)
            if totals.charged <= 0 and totals.refunded > 0:
                self.emit("ORDER_FULLY_REFUNDED", by, order=order)
            self.emit("ORDER_UPDATED", by, order=order)
        if updated:
            self.emit("ORDER_UPDATED", by, order=order)

    @staticmethod
    def _snapshot(transaction: Transaction) -> tuple[int, int, int]:
        return transaction.authorized, transaction.charged, transaction.refunded

    # -- transactionCreate ---------------------------------------------------------------

    def create(
        self,
        *,
        order_uuid: str,
        app: App,
        psp_reference: str,
        authorized: int,
        name: str,
        message: str,
        actions: list[str],
    ) -> Transaction:
        order = self.store.orders[order_uuid]
        now = self.store.now()
        transaction = Transaction(
            token=self.new_uuid(),
            order_uuid=order_uuid,
            currency=order.currency,
            name=name,
            psp_reference=psp_reference,
            created_at=now,
            modified_at=now,
            app_pk=app.pk,
            app_identifier=app.identifier,
            message=message,
            actions=sorted(set(actions)),
        )
        self.store.transactions[transaction.token] = transaction
        order.transaction_tokens.append(transaction.token)
        before = self._snapshot(transaction)
        # As observed: the amount goes into a manual AUTHORIZATION_SUCCESS without
        # pspReference, and the given pspReference into a separate INFO event.
        if authorized:
            self._add_event(
                transaction,
                "AUTHORIZATION_SUCCESS",
                authorized,
                message="Manual adjustment of the transaction.",
                app_pk=app.pk,
            )
        self._add_event(transaction, "INFO", 0, psp_reference=psp_reference, message=message, app_pk=app.pk)
        recalculate(transaction)
        self._amounts_changed(transaction, before, ("App", app.pk))
        return transaction

    # -- transactionEventReport ----------------------------------------------------------

    def check_access(self, transaction: Transaction, app: App | None) -> None:
        if app is None or "HANDLE_PAYMENTS" not in app.permissions:
            raise PermissionDenied(["OWNER", "HANDLE_PAYMENTS"])
        has_owner = transaction.app_pk is not None or transaction.app_identifier or transaction.user_pk
        if not has_owner:
            return  # ownerless transactions accept any HANDLE_PAYMENTS app
        if transaction.app_pk == app.pk or (
            transaction.app_identifier is not None and transaction.app_identifier == app.identifier
        ):
            return
        raise PermissionDenied(["OWNER", "HANDLE_PAYMENTS"])

    def _amount_for(self, transaction: Transaction, type_: str, psp: str) -> int:
        """Saleor's ``get_transaction_event_amount`` for types whose amount is optional."""
        if type_ == "INFO":
            return 0
        related = {
            "CHARGE_BACK": ("CHARGE_SUCCESS",),
            "REFUND_REVERSE": ("REFUND_SUCCESS",),
            "AUTHORIZATION_FAILURE": ("AUTHORIZATION_REQUEST", "AUTHORIZATION_SUCCESS"),
        }.get(type_)
        if related is None:
            action = type_.removesuffix("_FAILURE")
            related = (REQUEST[action], SUCCESS[action])
        matches = [e for e in transaction.events if e.psp_reference == psp and e.type in related]
        if not matches:
            raise SaleorError(
                "REQUIRED",
                f"Missing amount: no earlier event with pspReference {psp!r} to take it from.",
                "amount",
            )
        return max(matches, key=lambda e: (e.created_at, e.pk)).amount

    def report(
        self,
        app: App | None,
        transaction: Transaction,
        *,
        type_: str,
        psp_reference: str,
        amount: object | None,
        time: datetime | None = None,
        external_url: str | None = None,
        message: str | None = None,
        available_actions: list[str] | None = None,
    ) -> tuple[bool, TransactionEvent]:
        """``(alreadyProcessed, event)``; ``SaleorError`` / ``PermissionDenied`` like Saleor."""
        self.check_access(transaction, app)
        assert app is not None
        if amount is None:
            if type_ not in _OPTIONAL_AMOUNT:
                raise SaleorError("REQUIRED", f"The `amount` field is required for {type_} event.", "amount")
            minor = self._amount_for(transaction, type_, psp_reference)
        else:
            minor = to_minor(amount, transaction.currency)
        grant_pk = None
        if type_.startswith("REFUND_"):  # linked through the REFUND_REQUEST with that psp
            requests = [
                e
                for e in transaction.events
                if e.type == "REFUND_REQUEST" and e.psp_reference == psp_reference
            ]
            grant_pk = requests[-1].related_granted_refund_pk if requests else None
        actions = sorted(set(available_actions)) if available_actions is not None else None

        existing = self._existing(transaction, psp_reference, type_)
        error: tuple[str, str, str] | None = None
        if existing is not None and existing.amount != minor:
            error = ("INCORRECT_DETAILS", DIFFERENT_AMOUNT, "pspReference")
        elif (
            existing is None
            and type_ == "AUTHORIZATION_SUCCESS"
            and any(e.type == "AUTHORIZATION_SUCCESS" for e in transaction.events)
        ):
            error = (
                "ALREADY_EXISTS",
                "Event with `AUTHORIZATION_SUCCESS` already reported for the transaction. "
                "Use `AUTHORIZATION_ADJUSTMENT` to change the authorization amount.",
                "type",
            )
        if error is not None:
            code, text, field_name = error
            probe = TransactionEvent(
                pk=0,
                transaction_token=transaction.token,
                type=type_,
                psp_reference=psp_reference,
                amount=minor,
                created_at=self.store.now(),
                related_granted_refund_pk=grant_pk,
            )
            self._fail(probe, text)
            raise SaleorError(code, text, field_name)
        if existing is not None:
            if actions is not None and actions != transaction.actions:
                transaction.actions = actions
            return True, existing

        before = self._snapshot(transaction)
        event = self._add_event(
            transaction,
            type_,
            minor,
            psp_reference=psp_reference,
            created_at=time,
            external_url=external_url or "",
            message=truncate(message or ""),
            app_pk=app.pk,
            related_granted_refund_pk=grant_pk,
        )
        if not transaction.psp_reference and type_ in (*AUTH_TYPES[:2], "CHARGE_REQUEST", "CHARGE_SUCCESS"):
            transaction.psp_reference = psp_reference
        if actions is not None:
            transaction.actions = actions
        if transaction.app_pk is None and transaction.app_identifier is None and transaction.user_pk is None:
            transaction.app_pk, transaction.app_identifier = app.pk, app.identifier  # first reporter owns it
        recalculate(transaction)
        self._amounts_changed(transaction, before, ("App", app.pk))
        self._update_grant_status(grant_pk)
        return False, event

    # -- transactionRequestAction / transactionRequestRefundForGrantedRefund ------------

    def request_action(
        self,
        transaction: Transaction,
        action: str,
        amount: int | None,
        *,
        by: Principal | None,
        grant: GrantedRefund | None = None,
    ) -> TransactionEvent:
        """Record the ``*_REQUEST`` and queue the sync webhook (Saleor sends it from a task)."""
        if action not in ACTIONS:
            raise SaleorError("INVALID", f"Unknown action {action!r}.", "actionType")
        limit = transaction.charged if action == "REFUND" else transaction.authorized
        value = min(amount or limit, limit)  # 0/None means "everything possible"
        request = self._add_event(
            transaction,
            REQUEST[action],
            value,
            include_in_calculations=False,  # counted as pending once a pspReference is known
            idempotency_key=self.new_uuid(),
            user_pk=by[1] if by and by[0] == "User" else None,
            app_pk=by[1] if by and by[0] == "App" else None,
            related_granted_refund_pk=grant.pk if grant else None,
        )
        sent = self.send_request(SYNC_EVENT[action], transaction, request, grant)
        if not sent:
            self._fail(request, NO_APP)
            raise SaleorError("MISSING_TRANSACTION_ACTION_REQUEST_WEBHOOK", NO_APP)
        # After the payload was generated: it shows the grant's status before this request.
        self._update_grant_status(request.related_granted_refund_pk)
        return request

    def request_grant_refund(self, grant: GrantedRefund) -> TransactionEvent:
        transaction = self.store.transactions[grant.transaction_token]
        if grant.status == "PENDING":
            raise SaleorError(
                "REFUND_IS_PENDING", "The refund request is already in progress.", "grantedRefundId"
            )
        if grant.status == "SUCCESS":
            raise SaleorError(
                "REFUND_ALREADY_PROCESSED", "The granted refund is already processed.", "grantedRefundId"
            )
        if transaction.charged < grant.amount:
            raise SaleorError(
                "AMOUNT_GREATER_THAN_AVAILABLE",
                "The granted refund amount is greater than available charged amount on transactionItem.",
                "grantedRefundId",
            )
        # A 0.00 grant asks for the whole charged amount (observed on 3.23.28).
        return self.request_action(transaction, "REFUND", grant.amount or None, by=None, grant=grant)

    # -- sync webhook outcomes -----------------------------------------------------------

    def delivery_failed(self, request: TransactionEvent) -> TransactionEvent:
        """After the last retry of a >=500/timeout answer."""
        return self._fail(request, FAILED_DELIVERY)

    def apply_response(self, request: TransactionEvent, app: App, body: bytes) -> TransactionEvent:
        """Interpret an answer with status < 500 (any status: the body decides)."""
        transaction = self.store.transactions[request.transaction_token]
        action = next(a for a, t in REQUEST.items() if t == request.type)
        try:
            parsed = parse_sync_response(action, transaction.currency, body)
        except ValueError as exc:
            return self._fail(request, str(exc))
        before = self._snapshot(transaction)
        request.psp_reference = parsed.psp_reference or ""
        request.include_in_calculations = True
        event = request
        if parsed.result is not None:
            amount = parsed.amount if parsed.amount is not None else request.amount
            existing = self._existing(transaction, request.psp_reference, parsed.result)
            if existing is not None and existing.amount != amount:
                recalculate(transaction)
                return self._fail(request, DIFFERENT_AMOUNT)
            event = existing or self._add_event(
                transaction,
                parsed.result,
                amount,
                psp_reference=request.psp_reference,
                created_at=parsed.time,
                external_url=parsed.external_url,
                message=parsed.message,
                app_pk=app.pk,
                related_granted_refund_pk=request.related_granted_refund_pk,
            )
        if parsed.actions is not None:
            transaction.actions = parsed.actions
        recalculate(transaction)
        self._amounts_changed(transaction, before, ("App", app.pk))
        self._update_grant_status(request.related_granted_refund_pk)
        return event
