"""KOM's calls to one Saleor instance's GraphQL API, with the app token of that install.

gql executes the documents in ``graphql/`` over ``HTTPXAsyncTransport``, on the shared
``httpx.AsyncClient`` of the process (see ``_SharedClientTransport``). JSON numbers are
parsed as ``Decimal`` so amounts reach ``to_minor`` exactly: never through float, where
``90071992547409.93`` would become ``…09.94`` and ``19.999999999999999`` a round 20.

Every failure is a ``SaleorError``: GraphQL errors, HTTP errors, timeouts, unusable
answers. Its message never contains the token: the token is only ever put in the
``Authorization`` header, and messages are scrubbed of it anyway in case a server echoes it.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from gql import Client, GraphQLRequest
from gql.transport.async_transport import AsyncTransport
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport

__all__ = ["OrderNotFound", "ReportError", "ReportResult", "SaleorClient", "SaleorError", "document"]

_DOCUMENTS = Path(__file__).resolve().parent / "graphql"
_MAX_PAGE = 100  # Saleor refuses first > 100


class SaleorError(Exception):
    """A Saleor API call failed; ``str()`` is safe to log (no token)."""


class OrderNotFound(SaleorError):
    """``order(id:)`` answered null: no such order, or KOM's app may not see it."""


@dataclass(frozen=True)
class ReportError:
    code: str
    message: str | None
    field: str | None


@dataclass(frozen=True)
class ReportResult:
    """``transactionEventReport``: ``already_processed`` means an identical report existed."""

    already_processed: bool
    errors: list[ReportError]


@functools.cache
def document(name: str) -> str:
    """The text of ``graphql/<name>.graphql``."""
    return (_DOCUMENTS / f"{name}.graphql").read_text(encoding="utf-8")


def _decode(text: str | bytes) -> Any:
    """Saleor's JSON, numbers with a fraction or exponent as ``Decimal`` (never float).

    ``NaN`` and ``Infinity``, which Python's json would accept, are not JSON: refused.
    """
    return json.loads(text, parse_float=Decimal, parse_constant=_not_json)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _SharedClientTransport(HTTPXAsyncTransport):
    """HTTPXAsyncTransport on an existing AsyncClient: the process keeps one connection
    pool (and tests inject an ``httpx.MockTransport``); closing the session leaves it open."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        super().__init__(url=url, json_deserialize=_decode)
        self._http = http

    async def connect(self) -> None:
        self.client = self._http

    async def close(self) -> None:
        self.client = None

    def _get_json_result(self, response: httpx.Response) -> Any:
        # Same as gql's, minus its DEBUG log of every response body: bodies carry customer
        # data, and an error page could echo request headers (the token).
        self.response_headers = response.headers
        try:
            return self.json_deserialize(response.content)
        except ValueError:
            self._raise_response_error(response, "Not a JSON answer")


class SaleorClient:
    """One installation: ``api_url`` is Saleor's ``Saleor-Api-Url`` (…/graphql/)."""

    def __init__(
        self,
        api_url: str,
        token: str,
        http: httpx.AsyncClient,
        timeout: float = 15.0,
        *,
        transport: AsyncTransport | None = None,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Saleor API URL must be an absolute http(s) URL, got {api_url!r}")
        self.api_url = api_url
        self._token = token
        self._http = http
        self._timeout = timeout
        # An injected gql transport (tests) is a single connection: serialise its use.
        self._transport = transport
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SaleorClient({self.api_url!r})"  # never the token

    async def app_id(self) -> str:
        """KOM's own App id on this instance; also proves the token works."""
        data = await self._execute("app")
        app = data.get("app")
        if not isinstance(app, dict) or not isinstance(app.get("id"), str):
            raise SaleorError("Saleor answered app { id } without an app: is the token an app token?")
        return str(app["id"])

    async def fetch_jwks(self) -> dict[str, Any]:
        """``<origin>/.well-known/jwks.json`` of the API URL (public, no token)."""
        parts = urlsplit(self.api_url)
        url = f"{parts.scheme}://{parts.netloc}/.well-known/jwks.json"
        try:
            response = await self._http.get(url, timeout=self._timeout)
            response.raise_for_status()
            jwks = response.json()
        except httpx.HTTPStatusError as exc:
            raise SaleorError(f"JWKS fetch from {url} answered {exc.response.status_code}") from exc
        except httpx.HTTPError as exc:
            raise SaleorError(f"JWKS fetch from {url} failed: {type(exc).__name__}") from exc
        except ValueError as exc:
            raise SaleorError(f"JWKS from {url} is not JSON") from exc
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise SaleorError(f"JWKS from {url} has no key list")
        return jwks

    async def order(self, order_id: str) -> dict[str, Any]:
        """The ``order`` object of ``graphql/order.graphql`` (input of ``order_snapshot``)."""
        data = await self._execute("order", {"id": order_id})
        order = data.get("order")
        if order is None:
            raise OrderNotFound(f"order {order_id} not found (or not visible to KOM's app)")
        if not isinstance(order, dict):
            raise SaleorError(f"order {order_id}: unexpected answer")
        return order

    async def report_transaction_event(
        self,
        *,
        transaction_id: str,
        type: str,
        psp_reference: str,
        amount: Decimal | None,
        message: str,
        external_url: str | None,
        available_actions: Sequence[str] | None = None,
    ) -> ReportResult:
        """``transactionEventReport``: record a CHARGE_SUCCESS, REFUND_SUCCESS, … on KOM's transaction.

        Mutation errors (``errors``) are returned, not raised: the caller decides whether
        e.g. ``INCORRECT_DETAILS`` (same pspReference, other amount) is a bug or a retry.
        """
        variables: dict[str, Any] = {
            "id": transaction_id,
            "type": type,
            "pspReference": psp_reference,
            "amount": None if amount is None else str(amount),
            "message": message,
            "externalUrl": external_url,
            "availableActions": None if available_actions is None else list(available_actions),
        }
        data = await self._execute("transaction_event_report", variables)
        report = data.get("transactionEventReport")
        if not isinstance(report, dict):
            raise SaleorError(f"transactionEventReport for {transaction_id}: unexpected answer")
        errors = [
            ReportError(code=str(error.get("code")), message=error.get("message"), field=error.get("field"))
            for error in report.get("errors") or ()
            if isinstance(error, dict)
        ]
        return ReportResult(already_processed=bool(report.get("alreadyProcessed")), errors=errors)

    async def recent_orders(
        self, updated_since: datetime, first: int = 100, *, limit: int | None = None
    ) -> list[str]:
        """Ids of orders updated since ``updated_since`` (oldest change first), for the sweep.

        Pages through ``first`` orders at a time (Saleor allows at most 100), through all of
        them unless ``limit`` stops earlier (the sweep must see every changed order).
        """
        if updated_since.tzinfo is None:
            raise ValueError("updated_since must be timezone-aware")
        page = max(1, min(first, _MAX_PAGE))
        ids: list[str] = []
        after: str | None = None
        while limit is None or len(ids) < limit:
            variables = {"since": updated_since.isoformat(), "first": page, "after": after}
            data = await self._execute("recent_orders", variables)
            orders = data.get("orders")
            if not isinstance(orders, dict):
                raise SaleorError("orders: unexpected answer")
            ids.extend(str(edge["node"]["id"]) for edge in orders.get("edges") or ())
            info = orders.get("pageInfo") or {}
            after = info.get("endCursor")
            if not info.get("hasNextPage") or not after:
                break
        return ids if limit is None else ids[:limit]

    async def _execute(self, name: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = GraphQLRequest(document(name), variable_values=variables)
        extra_args = {
            "headers": {"Authorization": f"Bearer {self._token}"},
            "timeout": self._timeout,
        }
        try:
            if self._transport is not None:
                async with (
                    self._lock,
                    Client(transport=self._transport, execute_timeout=self._timeout) as session,
                ):
                    data = await session.execute(request, extra_args=extra_args)
            else:
                # A fresh gql client per call: gql sessions are not safe to share across tasks.
                transport = _SharedClientTransport(self.api_url, self._http)
                async with Client(transport=transport, execute_timeout=self._timeout) as session:
                    data = await session.execute(request, extra_args=extra_args)
        except TransportQueryError as exc:
            raise SaleorError(self._scrub(f"{name}: Saleor answered with errors: {_messages(exc)}")) from None
        except TransportError as exc:
            raise SaleorError(self._scrub(f"{name}: {type(exc).__name__}: {exc}")) from None
        except httpx.HTTPError as exc:
            raise SaleorError(self._scrub(f"{name}: {type(exc).__name__}: {exc}")) from None
        except TimeoutError:
            raise SaleorError(f"{name}: no answer from Saleor within {self._timeout} s") from None
        except ValueError as exc:  # malformed JSON that slipped past the transport
            raise SaleorError(self._scrub(f"{name}: unusable answer: {exc}")) from None
        if not isinstance(data, dict):
            raise SaleorError(f"{name}: answer without data")
        return data

    def _scrub(self, message: str) -> str:
        return message.replace(self._token, "[token]") if self._token else message


def _messages(exc: TransportQueryError) -> str:
    errors = exc.errors or []
    texts = [str(error.get("message")) if isinstance(error, dict) else str(error) for error in errors]
    return "; ".join(texts[:3]) or str(exc)
