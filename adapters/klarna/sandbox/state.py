"""In-memory orders and the Order Management rules that change them.

Status transitions:
  AUTHORIZED --capture--> PART_CAPTURED --capture rest / release--> CAPTURED
  AUTHORIZED --cancel--> CANCELLED;  AUTHORIZED --clock passes expires_at--> EXPIRED
  CAPTURED --refunds reach captured_amount--> CLOSED  (Kustom: "Closed" = refunded)
A PART_CAPTURED order past expires_at keeps its status; only further captures are refused.

Every refusal is an ApiError with the code and text Klarna documents (klarna-api.md §1.4).
Messages the docs don't quote are written in the same "<fact>. <X> not possible." style.
"""

from __future__ import annotations

import secrets
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from .errors import ApiError
from .faults import FaultQueue
from .idempotency import IdempotencyStore
from .ledger import LedgerCapture, LedgerLine, LedgerRefund, LedgerResult, allocate
from .validation import CaptureRequest, JSONObject, NewOrder, OrderLine, RefundRequest

Clock = Callable[[], datetime]

AUTHORIZATION_PERIOD = timedelta(days=28)  # Klarna's usual account setting; also the extension step
MAX_AUTHORIZATION_AGE = timedelta(days=180)  # extensions end 180 days after creation


class OrderStatus(StrEnum):
    AUTHORIZED = "AUTHORIZED"
    PART_CAPTURED = "PART_CAPTURED"
    CAPTURED = "CAPTURED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    CLOSED = "CLOSED"


@dataclass
class Capture:
    capture_id: str
    klarna_reference: str
    captured_amount: int
    captured_at: datetime
    description: str | None
    reference: str | None
    order_lines: tuple[OrderLine, ...]
    shipping_info: list[JSONObject]
    refunded_amount: int = 0  # what the ledger allocated to this capture


@dataclass
class Refund:
    refund_id: str
    refunded_amount: int
    refunded_at: datetime
    description: str | None
    reference: str | None
    order_lines: tuple[OrderLine, ...]
    credit_invoice: bool | None = None
    allocated_to: str | None = None  # capture id, None when misallocated
    allocation_reason: str | None = None


@dataclass
class Order:
    order_id: str
    klarna_reference: str
    status: OrderStatus
    purchase_currency: str
    purchase_country: str
    locale: str
    order_amount: int
    original_order_amount: int
    remaining_authorized_amount: int
    order_lines: tuple[OrderLine, ...]
    created_at: datetime
    expires_at: datetime
    merchant_reference1: str | None = None
    merchant_reference2: str | None = None
    captures: list[Capture] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)

    @property
    def captured_amount(self) -> int:
        return sum(c.captured_amount for c in self.captures)

    @property
    def refunded_amount(self) -> int:
        return sum(r.refunded_amount for r in self.refunds)

    def capture(self, capture_id: str) -> Capture:
        for capture in self.captures:
            if capture.capture_id == capture_id:
                return capture
        raise ApiError(404, "NO_SUCH_CAPTURE", f"Capture {capture_id} not found.")

    def refund(self, refund_id: str) -> Refund:
        for refund in self.refunds:
            if refund.refund_id == refund_id:
                return refund
        raise ApiError(404, "NOT_FOUND", f"Refund {refund_id} not found.")

    def ledger(self) -> LedgerResult:
        captures = [
            LedgerCapture.of(c.capture_id, c.captured_amount, _ledger_lines(c.order_lines))
            for c in self.captures
        ]
        refunds = [
            LedgerRefund(r.refund_id, r.refunded_amount, _ledger_lines(r.order_lines)) for r in self.refunds
        ]
        return allocate(captures, refunds)


@dataclass(frozen=True)
class RequestRecord:
    """One Order Management request as the sandbox saw it (for tests counting provider calls)."""

    method: str
    path: str
    idempotency_key: str | None
    status: int
    at: datetime
    fault: str | None = None  # kind of the injected fault it consumed
    replayed: bool = False  # answered from the idempotency memory, not executed
    dropped: bool = False  # executed, but the response was never sent

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "at": self.at.isoformat()}


def system_clock() -> datetime:
    return datetime.now(UTC)


class SandboxState:
    """Orders, fault queue, idempotency memory and request log of one sandbox."""

    def __init__(self, clock: Clock | None = None, *, rate_limit_per_second: int | None = None) -> None:
        self.clock: Clock = clock or system_clock
        self.clock_offset = timedelta()  # moved by POST /_sandbox/clock
        self.rate_limit_per_second = rate_limit_per_second
        self.orders: dict[str, Order] = {}
        self.faults = FaultQueue()
        self.idempotency = IdempotencyStore()
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()  # requests may be read from another thread

    def now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the sandbox clock must return timezone-aware datetimes")
        return now + self.clock_offset

    def reset(self) -> None:
        self.orders.clear()
        self.faults.clear()
        self.idempotency.clear()
        self.clear_requests()
        self.clock_offset = timedelta()

    # --- request log -------------------------------------------------------------------

    def log_request(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def request_log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self.requests)

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- orders ------------------------------------------------------------------------

    def create_order(self, new: NewOrder) -> Order:
        order_id = new.order_id or str(uuid.uuid4())
        if order_id in self.orders:
            raise ApiError(409, "CONFLICT", f"Order {order_id} already exists.")
        now = self.now()
        order = Order(
            order_id=order_id,
            klarna_reference=_klarna_reference(),
            status=OrderStatus.AUTHORIZED,
            purchase_currency=new.purchase_currency,
            purchase_country=new.purchase_country,
            locale=new.locale,
            order_amount=new.order_amount,
            original_order_amount=new.order_amount,
            remaining_authorized_amount=new.order_amount,
            order_lines=new.order_lines,
            created_at=now,
            expires_at=now + AUTHORIZATION_PERIOD,
            merchant_reference1=new.merchant_reference1,
            merchant_reference2=new.merchant_reference2,
        )
        self.orders[order_id] = order
        return order

    def get(self, order_id: str, *, not_found_code: str = "NO_SUCH_ORDER") -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise ApiError(404, not_found_code, f"Order {order_id} not found.")
        if order.status is OrderStatus.AUTHORIZED and self._expired(order):
            order.status = OrderStatus.EXPIRED
        return order

    def _expired(self, order: Order) -> bool:
        return self.now() >= order.expires_at

    def capture(self, order_id: str, request: CaptureRequest) -> Capture:
        order = self.get(order_id)
        if order.status is OrderStatus.CANCELLED:
            raise ApiError(403, "CAPTURE_NOT_ALLOWED", "Order is cancelled. Capture not possible.")
        if order.status is OrderStatus.EXPIRED or self._expired(order):
            raise ApiError(403, "CAPTURE_NOT_ALLOWED", f"Order {order_id} is expired. Capture not possible.")
        if request.captured_amount > order.remaining_authorized_amount:
            raise ApiError(
                403,
                "CAPTURE_NOT_ALLOWED",
                "Captured amount is higher than the remaining authorized amount. Capture not possible.",
            )
        if request.captured_amount == 0:  # sandbox choice: a Capture has captured_amount >= 1
            raise ApiError(
                403, "CAPTURE_NOT_ALLOWED", "Captured amount must be positive. Capture not possible."
            )
        capture = Capture(
            capture_id=str(uuid.uuid4()),
            klarna_reference=f"{order.klarna_reference}-{len(order.captures) + 1}",
            captured_amount=request.captured_amount,
            captured_at=self.now(),
            description=request.description,
            reference=request.reference,
            order_lines=request.order_lines,
            shipping_info=list(request.shipping_info),
        )
        order.captures.append(capture)
        order.remaining_authorized_amount -= request.captured_amount
        fully = order.remaining_authorized_amount == 0
        order.status = OrderStatus.CAPTURED if fully else OrderStatus.PART_CAPTURED
        return capture

    def add_shipping_info(self, order_id: str, capture_id: str, items: tuple[JSONObject, ...]) -> None:
        order = self.get(order_id)
        if not order.captures:
            raise ApiError(403, "NOT_ALLOWED", "Order has no captures. Shipping info cannot be added.")
        order.capture(capture_id).shipping_info.extend(items)

    def refund(self, order_id: str, request: RefundRequest) -> Refund:
        order = self.get(order_id, not_found_code="NOT_FOUND")
        if not order.captures:
            raise ApiError(403, "REFUND_NOT_ALLOWED", "Order has no captures. Refund not possible.")
        if order.refunded_amount + request.refunded_amount > order.captured_amount:
            raise ApiError(403, "REFUND_NOT_ALLOWED", "Over refund is not allowed. Refund not possible.")
        if request.refunded_amount == 0:  # sandbox choice: an empty refund is a client bug
            raise ApiError(
                403, "REFUND_NOT_ALLOWED", "Refunded amount must be positive. Refund not possible."
            )
        refund = Refund(
            refund_id=str(uuid.uuid4()),
            refunded_amount=request.refunded_amount,
            refunded_at=self.now(),
            description=request.description,
            reference=request.reference,
            order_lines=request.order_lines,
            credit_invoice=request.credit_invoice,
        )
        order.refunds.append(refund)
        self._book(order)
        if order.remaining_authorized_amount == 0 and order.refunded_amount == order.captured_amount:
            order.status = OrderStatus.CLOSED
        return refund

    def _book(self, order: Order) -> None:
        """Re-run the allocation ledger and copy its result onto captures and refunds."""
        result = order.ledger()
        for capture in order.captures:
            capture.refunded_amount = result.refunded_by_capture[capture.capture_id]
        for refund, allocation in zip(order.refunds, result.allocations, strict=True):
            refund.allocated_to = allocation.capture_id
            refund.allocation_reason = allocation.reason

    def cancel(self, order_id: str) -> None:
        order = self.get(order_id)
        if order.captures:
            raise ApiError(403, "CANCEL_NOT_ALLOWED", "Order has previous captures. Cancel not possible.")
        if order.status is OrderStatus.CANCELLED:
            raise ApiError(403, "CANCEL_NOT_ALLOWED", "Order is already cancelled. Cancel not possible.")
        order.status = OrderStatus.CANCELLED
        order.remaining_authorized_amount = 0

    def release_remaining_authorization(self, order_id: str) -> None:
        order = self.get(order_id)
        if order.status is OrderStatus.CANCELLED:
            raise ApiError(
                403, "NOT_ALLOWED", "Order is cancelled. Remaining authorization cannot be released."
            )
        if not order.captures:
            raise ApiError(
                403, "NOT_ALLOWED", "Order has no captures. Remaining authorization cannot be released."
            )
        if order.remaining_authorized_amount == 0:
            raise ApiError(
                403, "NOT_ALLOWED", "Order is fully captured. Remaining authorization cannot be released."
            )
        order.remaining_authorized_amount = 0
        order.status = OrderStatus.CAPTURED
        if order.refunded_amount == order.captured_amount:
            order.status = OrderStatus.CLOSED

    def extend_authorization_time(self, order_id: str) -> None:
        order = self.get(order_id)
        if order.status is OrderStatus.CANCELLED:
            raise ApiError(403, "NOT_ALLOWED", "Order is cancelled. Authorization time cannot be extended.")
        if order.status is OrderStatus.EXPIRED or self._expired(order):
            raise ApiError(403, "NOT_ALLOWED", "Order is expired. Authorization time cannot be extended.")
        if order.remaining_authorized_amount == 0:
            raise ApiError(
                403,
                "NOT_ALLOWED",
                "Order has no remaining authorization. Authorization time cannot be extended.",
            )
        limit = order.created_at + MAX_AUTHORIZATION_AGE
        if order.expires_at >= limit:  # Klarna's hard limit: no authorization past day 180
            raise ApiError(
                403,
                "NOT_ALLOWED",
                "Order has reached the maximum authorization time of 180 days. "
                "Authorization time cannot be extended.",
            )
        # "today + the configured period", capped 180 days after creation; never shortens
        order.expires_at = max(order.expires_at, min(self.now() + AUTHORIZATION_PERIOD, limit))


def _ledger_lines(lines: tuple[OrderLine, ...]) -> tuple[LedgerLine, ...]:
    return tuple(LedgerLine(line.reference, line.total_amount) for line in lines)


def _klarna_reference() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "K" + "".join(secrets.choice(alphabet) for _ in range(6))
