"""Fault injection: a queue of one-shot faults matched against Order Management requests.

Kinds:
  * "status": answer `status` (default 503) with a Klarna error body instead of executing.
    The operation does NOT happen ("fail before apply").
  * "rate_limit": 429 TOO_MANY_REQUESTS with X-Ratelimit-Limit/-Remaining/-Reset; not executed.
  * "delay": execute, then wait `seconds` before answering (a slow answer, not a slow start:
    a client that times out cannot conclude the operation did not happen).
  * "lost_response": execute for real, then drop the connection without sending a byte
    ("apply, then lose the answer"). See app.py for what the client observes.

A fault matches when its optional `method` equals the request method and its optional
`path` regex is found (re.search) in the request path. Each fault is consumed by the first
request it matches, or, with `after=N`, lets N matching requests through first (e.g. the
second refund of a split refund fails). Thread-safe, because tests add faults while a server thread runs.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from typing import Literal

from .errors import bad_value

FaultKind = Literal["status", "rate_limit", "delay", "lost_response"]
FAULT_KINDS: tuple[FaultKind, ...] = ("status", "rate_limit", "delay", "lost_response")

_KIND_FIELDS = {
    "status": ("status", "error_code", "message"),
    "rate_limit": ("limit", "reset", "message"),
    "delay": ("seconds",),
    "lost_response": (),
}
_DEFAULT_CODES = {409: "CONFLICT", 429: "TOO_MANY_REQUESTS", 500: "INTERNAL_SERVER_ERROR"}


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    method: str | None = None
    path: str | None = None  # regex searched in the request path
    status: int = 503  # for kind "status"
    error_code: str | None = None  # for kind "status"; default derived from status
    message: str | None = None
    seconds: float = 0.0  # for kind "delay"
    limit: int = 50  # for kind "rate_limit": Klarna playground allows 50 req/s
    reset: int = 1  # seconds until the rate-limit window resets
    after: int = 0  # matching requests let through before this fault applies

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.path is not None:
            re.compile(self.path)  # fail at queue time, not at match time
        if not 400 <= self.status <= 599:
            raise ValueError("fault status must be 4xx or 5xx")
        if self.after < 0:
            raise ValueError("fault after must be >= 0")

    @classmethod
    def http_error(cls, status: int = 503, *, method: str | None = None, path: str | None = None,
                   error_code: str | None = None, message: str | None = None,
                   after: int = 0) -> Fault:  # fmt: skip
        return cls("status", method, path, status=status, error_code=error_code, message=message, after=after)

    @classmethod
    def rate_limited(cls, *, method: str | None = None, path: str | None = None, limit: int = 50,
                     reset: int = 1) -> Fault:  # fmt: skip
        return cls("rate_limit", method, path, limit=limit, reset=reset)

    @classmethod
    def delayed(cls, seconds: float, *, method: str | None = None, path: str | None = None) -> Fault:
        return cls("delay", method, path, seconds=seconds)

    @classmethod
    def lost_response(cls, *, method: str | None = None, path: str | None = None) -> Fault:
        return cls("lost_response", method, path)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None

    def code(self) -> str:
        if self.error_code:
            return self.error_code
        if self.status >= 502:
            return "TEMPORARILY_UNAVAILABLE"
        return _DEFAULT_CODES.get(self.status, "SANDBOX_FAULT")

    def to_json(self) -> dict[str, object]:
        relevant = {"kind", "method", "path", *_KIND_FIELDS[self.kind], *(("after",) if self.after else ())}
        return {k: v for k, v in self.__dict__.items() if k in relevant and v is not None}


class FaultQueue:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault, count: int = 1) -> None:
        with self._lock:
            self._faults.extend([fault] * count)

    def take(self, method: str, path: str) -> Fault | None:
        """Remove and return the first fault matching this request (one waiting ``after``
        more matches counts this one down instead)."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(method, path):
                    if fault.after:
                        self._faults[index] = replace(fault, after=fault.after - 1)
                        return None
                    return self._faults.pop(index)
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)


def fault_from_json(item: object, path: str = "") -> tuple[Fault, int]:
    """(fault, count) from an admin request item; 400 BAD_VALUE naming the bad field."""
    prefix = f"{path}." if path else ""
    if not isinstance(item, dict):
        raise bad_value(path or "body")
    fields = dict(item)
    for key, value in fields.items():
        wanted = _JSON_TYPES.get(key)
        if wanted is None or isinstance(value, bool) or not isinstance(value, wanted):
            raise bad_value(f"{prefix}{key}")
    count = fields.pop("count", 1)
    checks = {
        "kind": fields.get("kind") in FAULT_KINDS,
        "status": 400 <= fields.get("status", 503) <= 599,
        "path": _compiles(fields.get("path")),
        "seconds": fields.get("seconds", 0) >= 0,
        "count": count >= 1,
        "after": fields.get("after", 0) >= 0,
    }
    for key, ok in checks.items():
        if not ok:
            raise bad_value(f"{prefix}{key}")
    return Fault(**fields), count


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,), "method": (str,), "path": (str,), "status": (int,), "error_code": (str,),
    "message": (str,), "seconds": (int, float), "limit": (int,), "reset": (int,), "count": (int,),
    "after": (int,),
}  # fmt: skip


def _compiles(pattern: str | None) -> bool:
    try:
        re.compile(pattern or "")
    except re.error:
        return False
    return True
