"""Klarna-shaped API errors: every error body is {error_code, error_messages, correlation_id}."""

from __future__ import annotations

import uuid


def error_body(error_code: str, *messages: str) -> dict[str, object]:
    # A fresh correlation id per error, as Klarna's portal logs would have.
    return {"error_code": error_code, "error_messages": list(messages), "correlation_id": str(uuid.uuid4())}


class ApiError(Exception):
    """A refusal the sandbox answers with a Klarna error body."""

    def __init__(
        self, status: int, error_code: str, *messages: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error_code}: {'; '.join(messages)}")
        self.status = status
        self.error_code = error_code
        self.messages = messages
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return error_body(self.error_code, *self.messages)


def bad_value(*paths: str) -> ApiError:
    """400 BAD_VALUE naming each offending field, e.g. "Bad value: order_lines[0].total_tax_amount"."""
    return ApiError(400, "BAD_VALUE", *(f"Bad value: {path}" for path in paths))
