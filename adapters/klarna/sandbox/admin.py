"""Sandbox-only admin API under /_sandbox/ (documented in app.py). No authentication."""

from __future__ import annotations

import json
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import validation, views
from .errors import bad_value
from .faults import fault_from_json
from .state import SandboxState


class AdminRoutes:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/_sandbox/orders", self.create_order, methods=["POST"]),
            Route("/_sandbox/orders", self.list_orders, methods=["GET"]),
            Route("/_sandbox/orders/{order_id}/ledger", self.ledger, methods=["GET"]),
            Route("/_sandbox/faults", self.list_faults, methods=["GET"]),
            Route("/_sandbox/faults", self.add_faults, methods=["POST"]),
            Route("/_sandbox/faults", self.clear_faults, methods=["DELETE"]),
            Route("/_sandbox/requests", self.requests, methods=["GET"]),
            Route("/_sandbox/requests", self.clear_requests, methods=["DELETE"]),
            Route("/_sandbox/clock", self.clock, methods=["GET"]),
            Route("/_sandbox/clock", self.advance_clock, methods=["POST"]),
            Route("/_sandbox/reset", self.reset, methods=["POST"]),
        ]

    async def create_order(self, request: Request) -> Response:
        order = self.state.create_order(
            validation.new_order(await validation.read_json(request, strict=False))
        )
        return JSONResponse(views.order_json(order), status_code=201)

    async def list_orders(self, request: Request) -> Response:
        return JSONResponse([views.order_json(self.state.get(i)) for i in list(self.state.orders)])

    async def ledger(self, request: Request) -> Response:
        return JSONResponse(views.ledger_json(self.state.get(request.path_params["order_id"])))

    async def list_faults(self, request: Request) -> Response:
        return JSONResponse([f.to_json() for f in self.state.faults.pending()])

    async def add_faults(self, request: Request) -> Response:
        body = _parse_any(await request.body())
        items = body if isinstance(body, list) else [body]
        parsed = [
            fault_from_json(item, f"[{i}]" if isinstance(body, list) else "") for i, item in enumerate(items)
        ]
        for fault, count in parsed:
            self.state.faults.add(fault, count)
        return JSONResponse([f.to_json() for f in self.state.faults.pending()], status_code=201)

    async def clear_faults(self, request: Request) -> Response:
        self.state.faults.clear()
        return Response(status_code=204)

    async def requests(self, request: Request) -> Response:
        return JSONResponse([r.to_json() for r in self.state.request_log()])

    async def clear_requests(self, request: Request) -> Response:
        self.state.clear_requests()
        return Response(status_code=204)

    async def clock(self, request: Request) -> Response:
        return JSONResponse({"now": views.timestamp(self.state.now())})

    async def advance_clock(self, request: Request) -> Response:
        body = await validation.read_json(request, strict=False)
        seconds = body.get("advance_seconds")
        if set(body) != {"advance_seconds"} or not isinstance(seconds, int) or isinstance(seconds, bool):
            raise bad_value("advance_seconds")
        if seconds < 0:
            raise bad_value("advance_seconds")  # time only moves forward
        self.state.clock_offset += timedelta(seconds=seconds)
        return JSONResponse({"now": views.timestamp(self.state.now())})

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return Response(status_code=204)


def _parse_any(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        raise bad_value("body") from None
