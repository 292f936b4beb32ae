"""Order Management routes: thin HTTP wrappers around SandboxState's rules."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import validation, views
from .state import SandboxState

ORDER = "/ordermanagement/v1/orders/{order_id}"


class OrderManagementRoutes:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route(ORDER, self.get_order, methods=["GET"]),
            Route(f"{ORDER}/captures", self.create_capture, methods=["POST"]),
            Route(f"{ORDER}/captures", self.list_captures, methods=["GET"]),
            Route(f"{ORDER}/captures/{{capture_id}}", self.get_capture, methods=["GET"]),
            Route(f"{ORDER}/captures/{{capture_id}}/shipping-info", self.add_shipping_info, methods=["POST"]),
            Route(f"{ORDER}/refunds", self.create_refund, methods=["POST"]),
            Route(f"{ORDER}/refunds/{{refund_id}}", self.get_refund, methods=["GET"]),
            Route(f"{ORDER}/cancel", self.cancel, methods=["POST"]),
            Route(f"{ORDER}/release-remaining-authorization", self.release, methods=["POST"]),
            Route(f"{ORDER}/extend-authorization-time", self.extend, methods=["POST"]),
        ]

    async def get_order(self, request: Request) -> Response:
        return JSONResponse(views.order_json(self.state.get(request.path_params["order_id"])))

    async def create_capture(self, request: Request) -> Response:
        capture_request = validation.capture_request(await validation.read_json(request))
        order_id = request.path_params["order_id"]
        capture = self.state.capture(order_id, capture_request)
        location = views.absolute_url(
            request, f"/ordermanagement/v1/orders/{order_id}/captures/{capture.capture_id}"
        )
        return Response(status_code=201, headers={"Capture-Id": capture.capture_id, "Location": location})

    async def list_captures(self, request: Request) -> Response:
        order = self.state.get(request.path_params["order_id"])
        return JSONResponse([views.capture_json(c) for c in order.captures])

    async def get_capture(self, request: Request) -> Response:
        order = self.state.get(request.path_params["order_id"])
        return JSONResponse(views.capture_json(order.capture(request.path_params["capture_id"])))

    async def add_shipping_info(self, request: Request) -> Response:
        items = validation.shipping_info_update(await validation.read_json(request))
        self.state.add_shipping_info(
            request.path_params["order_id"], request.path_params["capture_id"], items
        )
        return Response(status_code=204)

    async def create_refund(self, request: Request) -> Response:
        refund_request = validation.refund_request(await validation.read_json(request))
        order_id = request.path_params["order_id"]
        refund = self.state.refund(order_id, refund_request)
        location = views.absolute_url(
            request, f"/ordermanagement/v1/orders/{order_id}/refunds/{refund.refund_id}"
        )
        return Response(status_code=201, headers={"Refund-Id": refund.refund_id, "Location": location})

    async def get_refund(self, request: Request) -> Response:
        order = self.state.get(request.path_params["order_id"], not_found_code="NOT_FOUND")
        return JSONResponse(views.refund_json(order.refund(request.path_params["refund_id"])))

    async def cancel(self, request: Request) -> Response:
        self.state.cancel(request.path_params["order_id"])
        return Response(status_code=204)

    async def release(self, request: Request) -> Response:
        self.state.release_remaining_authorization(request.path_params["order_id"])
        return Response(status_code=204)

    async def extend(self, request: Request) -> Response:
        self.state.extend_authorization_time(request.path_params["order_id"])
        return Response(status_code=204)
