"""Why an Order Management call failed, sorted by what the caller may safely do next.

- ``NotSent``: the request never reached the provider. Nothing changed; retry freely.
- ``OutcomeUnknown``: the request may have reached the provider but no usable answer came
  back. Retry only with the same idempotency key (Klarna then replays the first result),
  or read the order to find out what happened.
- ``Rejected``: the provider answered with a 4xx and did not carry out the request.

Messages are built only from the operation, the order id and what the provider said (the
client scrubs credentials from the latter), so ``str(error)`` is safe to log and show.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base class: an Order Management call did not succeed."""

    def __init__(self, message: str, *, operation: str, order_id: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.operation = operation
        self.order_id = order_id
        self.attempts = attempts


class NotSent(ProviderError):
    """No attempt reached the provider (connect error, connect or pool timeout)."""

    def __init__(self, *, operation: str, order_id: str, attempts: int, reason: str) -> None:
        super().__init__(
            f"{operation} for order {order_id} was never sent to the provider "
            f"({reason}, {_attempts(attempts)}); nothing changed and it is safe to retry.",
            operation=operation,
            order_id=order_id,
            attempts=attempts,
        )
        self.reason = reason


class OutcomeUnknown(ProviderError):
    """An attempt may have reached the provider but no usable answer came back."""

    def __init__(self, *, operation: str, order_id: str, attempts: int, reason: str) -> None:
        super().__init__(
            f"{operation} for order {order_id} got no usable answer from the provider "
            f"({reason}, {_attempts(attempts)}); it may or may not have been applied, so retry "
            "only with the same idempotency key or read the order first.",
            operation=operation,
            order_id=order_id,
            attempts=attempts,
        )
        self.reason = reason


class UnexpectedResponse(OutcomeUnknown):
    """The provider answered, but not in a form we can use (e.g. 201 without a capture id)."""


class Rejected(ProviderError):
    """The provider answered 4xx: the request was not carried out."""

    def __init__(
        self,
        *,
        operation: str,
        order_id: str,
        status_code: int,
        error_code: str | None = None,
        error_messages: tuple[str, ...] = (),
        correlation_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        message = f"The provider rejected {operation} for order {order_id} with HTTP {status_code}"
        if error_code:
            message += f" {error_code}"
        if correlation_id:
            message += f" (correlation id {correlation_id})"
        if error_messages:
            message += ": " + " ".join(error_messages)
        super().__init__(
            message if message.endswith(".") else message + ".",
            operation=operation,
            order_id=order_id,
            attempts=attempts,
        )
        self.status_code = status_code
        self.error_code = error_code
        self.error_messages = error_messages
        self.correlation_id = correlation_id


class AuthenticationFailed(Rejected):
    """401: the API key (or username/key pair) is missing, wrong or for another environment."""


class NotAllowed(Rejected):
    """403: the order's state forbids it (CAPTURE_NOT_ALLOWED, REFUND_NOT_ALLOWED, ...)."""


class NotFound(Rejected):
    """404: no such order or capture (NO_SUCH_ORDER, NO_SUCH_CAPTURE, NOT_FOUND)."""


class RateLimited(Rejected):
    """429 on every attempt: the merchant id is over its rate limit; try again later."""


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"
