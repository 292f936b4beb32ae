"""``POST /graphql/``: the real schema executed by graphql-core over the fake's state.

Authentication like Saleor: ``Authorization: Bearer <app token>``. A token that matches no
active app (unknown, revoked, app uninstalled) is *not* an HTTP error: Saleor then treats
the request as anonymous, so the answer is HTTP 200 with a ``PermissionDenied`` GraphQL
error (``extensions.exception.code``) and ``null`` data for the protected field. HTTP 400
is only for unparsable bodies and invalid documents, as in Saleor's ``GraphQLView``.

Root fields resolve through the root value (a dict of callables); mutation errors go into
the payload's ``errors`` list like Saleor's ``BaseMutation``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    execute,
    parse,
    validate,
)

from .ids import from_global_id
from .money import to_decimal, to_minor
from .presenters import Presenter
from .state import App, Order, SaleorError, Store, Transaction
from .transactions import ACTIONS, Payments, PermissionDenied

__all__ = ["GraphQLApi"]

_MAX_PAGE = 100
Info = GraphQLResolveInfo  # context: {"app": App | None}


def _error(exc: GraphQLError) -> dict[str, Any]:
    """Saleor's ``format_error``: the original exception's class name is the code."""
    original = exc.original_error
    formatted: dict[str, Any] = {"message": exc.message}
    if exc.locations:
        formatted["locations"] = [{"line": loc.line, "column": loc.column} for loc in exc.locations]
    if exc.path:
        formatted["path"] = exc.path
    code = type(original).__name__ if original is not None else "GraphQLError"
    formatted["extensions"] = {"exception": {"code": code}}
    return formatted


def _mutation_errors(error: SaleorError, typename: str) -> list[dict[str, Any]]:
    return [{"__typename": typename, "field": error.field, "message": error.message, "code": error.code}]


def _datetime(value: object) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class GraphQLApi:
    def __init__(self, store: Store, schema: GraphQLSchema, presenter: Presenter, payments: Payments) -> None:
        self.store = store
        self.schema = schema
        self.presenter = presenter
        self.payments = payments
        self.root: dict[str, Callable[..., Any]] = {
            "app": self._app,
            "order": self._order,
            "orders": self._orders,
            "transaction": self._transaction,
            "transactionEventReport": self._transaction_event_report,
            "transactionRequestAction": self._transaction_request_action,
        }

    def app_for_token(self, authorization: str | None) -> App | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        for app in self.store.active_apps():
            if app.token is not None and app.token == token.strip():
                return app
        return None

    def run(self, entry: object, app: App | None) -> tuple[dict[str, Any], int]:
        """Execute one request entry; ``(response JSON, HTTP status)``."""
        if not isinstance(entry, dict) or not isinstance(entry.get("query"), str) or not entry["query"]:
            return {"errors": [{"message": "Must provide a query string."}]}, 400
        try:
            document = parse(entry["query"])
        except GraphQLError as exc:
            return {"errors": [_error(exc)]}, 400
        errors = validate(self.schema, document)
        if errors:
            return {"errors": [_error(e) for e in errors]}, 400
        variables = entry.get("variables") or None
        with self.store.lock:
            result = execute(
                self.schema,
                document,
                root_value=self.root,
                context_value={"app": app},
                variable_values=variables if isinstance(variables, dict) else None,
                operation_name=entry.get("operationName") or None,
            )
        assert isinstance(result, ExecutionResult)
        response: dict[str, Any] = {}
        if result.errors:
            response["errors"] = [_error(e) for e in result.errors]
        if result.data is None and result.errors:
            return response, 400  # variables or operation did not even start executing
        response["data"] = result.data
        return response, 200

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _requestor(info: Info) -> App | None:
        app: App | None = info.context["app"]
        return app

    def _require(self, info: Info, permission: str) -> App:
        app = self._requestor(info)
        if app is None or permission not in app.permissions:
            raise PermissionDenied([permission])
        return app

    def _find_order(self, global_id: str) -> Order | None:
        try:
            return self.store.orders.get(from_global_id(global_id, "Order"))
        except ValueError:
            raise GraphQLError(f"Couldn't resolve id: {global_id}.") from None

    def _find_transaction(self, global_id: str | None, token: str | None) -> Transaction:
        try:
            key = token if token else from_global_id(global_id or "", "TransactionItem")
        except ValueError:
            key = None
        transaction = self.store.transactions.get(key) if key else None
        if transaction is None:
            raise SaleorError("NOT_FOUND", f"Couldn't resolve to a node: {global_id or token}", "id")
        return transaction

    # -- queries -------------------------------------------------------------------------

    def _app(self, info: Info, id: str | None = None) -> Any:
        app = self._requestor(info)
        if app is None:
            raise PermissionDenied(["MANAGE_APPS", "AUTHENTICATED_APP"])
        if id is None or from_global_id(id, "App") == str(app.pk):
            return self.presenter.app(app)
        if "MANAGE_APPS" not in app.permissions:
            raise PermissionDenied(["MANAGE_APPS"])
        other = self.store.apps.get(int(from_global_id(id, "App")))
        return self.presenter.app(other)

    def _order(self, info: Info, id: str | None = None, **_: Any) -> Any:
        self._require(info, "MANAGE_ORDERS")
        order = self._find_order(id) if id else None
        return self.presenter.order(order) if order else None

    def _transaction(self, info: Info, id: str | None = None, token: str | None = None) -> Any:
        self._require(info, "HANDLE_PAYMENTS")
        try:
            return self.presenter.transaction(self._find_transaction(id, token))
        except SaleorError:
            return None

    def _orders(self, info: Info, **args: Any) -> Any:
        """``orders`` with the deprecated ``filter`` (updatedAt, ids, numbers) and keyset pages."""
        self._require(info, "MANAGE_ORDERS")
        first, last = args.get("first"), args.get("last")
        if first is None and last is None:
            raise GraphQLError(
                "You must provide a `first` or `last` value to properly paginate the `orders` connection."
            )
        size = first if first is not None else last
        if size is not None and size > _MAX_PAGE:
            raise GraphQLError(
                f"Requesting {size} records on the `orders` connection exceeds the "
                f"`{'first' if first is not None else 'last'}` limit of {_MAX_PAGE} records."
            )
        orders = list(self.store.orders.values())
        filters = args.get("filter") or {}
        updated = filters.get("updatedAt") or {}
        if updated.get("gte") is not None:
            orders = [o for o in orders if o.updated_at >= _datetime(updated["gte"])]
        if updated.get("lte") is not None:
            orders = [o for o in orders if o.updated_at <= _datetime(updated["lte"])]
        if filters.get("ids"):
            wanted = {from_global_id(i, "Order") for i in filters["ids"]}
            orders = [o for o in orders if o.uuid in wanted]
        if filters.get("numbers"):
            orders = [o for o in orders if str(o.number) in set(filters["numbers"])]

        sort = args.get("sortBy") or {"field": "NUMBER", "direction": "DESC"}  # Order.Meta.ordering
        key_of: Callable[[Order], tuple[str, int]] = {
            "LAST_MODIFIED_AT": lambda o: (o.updated_at.isoformat(), o.number),
            "CREATED_AT": lambda o: (o.created.isoformat(), o.number),
            "CREATION_DATE": lambda o: (o.created.isoformat(), o.number),
        }.get(sort["field"], lambda o: ("", o.number))
        descending = sort["direction"] == "DESC"
        orders.sort(key=key_of, reverse=descending)
        total = len(orders)

        def cursor(order: Order) -> str:
            return base64.b64encode(json.dumps(list(key_of(order))).encode()).decode()

        def position(raw: str) -> tuple[str, int]:
            value = json.loads(base64.b64decode(raw))
            return value[0], value[1]

        if args.get("after"):  # keyset: strictly after the cursor's sort values
            mark = position(args["after"])
            orders = [o for o in orders if (key_of(o) < mark if descending else key_of(o) > mark)]
        if args.get("before"):
            mark = position(args["before"])
            orders = [o for o in orders if (key_of(o) > mark if descending else key_of(o) < mark)]
        window = orders[:first] if first is not None else orders[-last:] if last else []
        edges = [{"node": self.presenter.order(o), "cursor": cursor(o)} for o in window]
        return {
            "edges": edges,
            "totalCount": total,
            "pageInfo": {
                "hasNextPage": first is not None and len(orders) > first,
                "hasPreviousPage": last is not None and len(orders) > last,
                "startCursor": edges[0]["cursor"] if edges else None,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        }

    # -- mutations -----------------------------------------------------------------------

    @staticmethod
    def _positive(amount: object) -> None:
        # PositiveDecimal: Saleor's scalar refuses negative values before the mutation runs.
        if amount is not None and to_decimal(amount) < 0:
            raise GraphQLError("Value cannot be lower than 0.")

    def _transaction_event_report(self, info: Info, **args: Any) -> Any:
        self._positive(args.get("amount"))
        app = self._requestor(info)
        if app is None or "HANDLE_PAYMENTS" not in app.permissions:
            raise PermissionDenied(["HANDLE_PAYMENTS"])
        try:
            if not args.get("id") and not args.get("token"):
                raise SaleorError(
                    "GRAPHQL_ERROR", "At least one of arguments is required: 'id', 'token'.", "id"
                )
            transaction = self._find_transaction(args.get("id"), args.get("token"))
            time = _datetime(args["time"]) if args.get("time") else None
            already, event = self.payments.report(
                app,
                transaction,
                type_=args["type"],
                psp_reference=args["pspReference"],
                amount=args.get("amount"),
                time=time,
                external_url=args.get("externalUrl"),
                message=args.get("message"),
                available_actions=args.get("availableActions"),
            )
        except SaleorError as error:
            return {
                "__typename": "TransactionEventReport",
                "alreadyProcessed": None,
                "transaction": None,
                "transactionEvent": None,
                "errors": _mutation_errors(error, "TransactionEventReportError"),
            }
        return {
            "__typename": "TransactionEventReport",
            "alreadyProcessed": already,
            "transaction": self.presenter.transaction(transaction),
            "transactionEvent": self.presenter.event(event),
            "errors": [],
        }

    def _transaction_request_action(self, info: Info, **args: Any) -> Any:
        self._positive(args.get("amount"))
        app = self._require(info, "HANDLE_PAYMENTS")
        try:
            transaction = self._find_transaction(args.get("id"), args.get("token"))
            if args["actionType"] not in ACTIONS:
                raise SaleorError("INVALID", f"Unknown action {args['actionType']}.", "actionType")
            amount = args.get("amount")
            minor = None if amount is None else to_minor(amount, transaction.currency)
            self.payments.request_action(transaction, args["actionType"], minor, by=("App", app.pk))
        except SaleorError as error:
            return {
                "__typename": "TransactionRequestAction",
                "transaction": None,
                "errors": _mutation_errors(error, "TransactionRequestActionError"),
            }
        return {
            "__typename": "TransactionRequestAction",
            "transaction": self.presenter.transaction(transaction),
            "errors": [],
        }
