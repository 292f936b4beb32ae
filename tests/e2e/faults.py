"""Faults on the wire in front of the fakes (ASGI middleware), for every KOM process alike.

- ``PlatformFaults`` in front of the fake Saleor answers chosen GraphQL operations with a
  GraphQL error (HTTP 200, ``data: null``) or an HTTP error instead of running them.
- ``LaggingReads`` in front of the sandbox makes GET order lag behind the writes, like a
  read replica: once armed, the first read is answered for real and remembered, and the
  next ``count`` reads of that order get the remembered answer.

Both record when each fault was met (``met``, wall-clock time like the sandbox's request
log), so a test can measure from a fault's end.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class _Rule:
    operation: str
    contains: str | None
    status: int
    message: str


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _answer(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class PlatformFaults:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self.met: list[tuple[float, str, str]] = []  # (time.time(), operation, request body)

    def add(
        self,
        operation: str,
        *,
        count: int = 1,
        contains: str | None = None,
        status: int = 200,
        message: str = "Internal Server Error",
    ) -> None:
        """Fail the next ``count`` requests of ``operation`` (e.g. "TransactionEventReport")
        whose body contains ``contains``; status 200 is a GraphQL error, else an HTTP error."""
        with self._lock:
            self._rules += [_Rule(operation, contains, status, message) for _ in range(count)]

    def pending(self) -> int:
        with self._lock:
            return len(self._rules)

    def _take(self, body: bytes) -> _Rule | None:
        text = body.decode(errors="replace")
        with self._lock:
            for index, rule in enumerate(self._rules):
                named = re.search(rf"\b(query|mutation)\s+{rule.operation}\b", text)
                if named and (rule.contains is None or rule.contains in text):
                    return self._rules.pop(index)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/graphql/":
            await self.app(scope, receive, send)
            return
        body = await _body(receive)
        rule = self._take(body)
        if rule is None:
            await self.app(scope, _replay(body), send)
            return
        self.met.append((time.time(), rule.operation, body.decode(errors="replace")))
        if rule.status == 200:
            error = {"message": rule.message, "extensions": {"exception": {"code": "InternalError"}}}
            await _answer(send, 200, {"errors": [error], "data": None})
        else:
            await _answer(send, rule.status, {"errors": [{"message": rule.message}]})


_ORDER = re.compile(r"^/ordermanagement/v1/orders/([^/]+)$")


class LaggingReads:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._armed: dict[str, int] = {}  # order id -> stale reads still to serve
        self._frozen: dict[str, tuple[Message, bytes]] = {}
        self.met: list[tuple[float, str]] = []  # (time.time(), order id)

    def arm(self, order_id: str, count: int = 1) -> None:
        self._armed[order_id] = count
        self._frozen.pop(order_id, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _ORDER.match(scope.get("path", "")) if scope["type"] == "http" else None
        order_id = found.group(1) if found and scope["method"] == "GET" else None
        if order_id is None or order_id not in self._armed:
            await self.app(scope, receive, send)
            return
        frozen = self._frozen.get(order_id)
        if frozen is None:  # the read before the writes: answer it for real and remember it
            parts: list[Message] = []

            async def keep(message: Message) -> None:
                parts.append(message)
                await send(message)

            await self.app(scope, receive, keep)
            start = next(m for m in parts if m["type"] == "http.response.start")
            self._frozen[order_id] = (start, b"".join(m.get("body", b"") for m in parts[1:]))
            return
        self._armed[order_id] -= 1
        if self._armed[order_id] <= 0:
            del self._armed[order_id]
        self.met.append((time.time(), order_id))
        start, body = frozen
        await send(start)
        await send({"type": "http.response.body", "body": body})
