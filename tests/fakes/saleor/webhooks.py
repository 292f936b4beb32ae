"""Webhooks like Saleor: payloads from each webhook's own subscription, signed deliveries.

Payload: the webhook's subscription document is *executed* against the event object
(``Subscription.event`` resolves to it); the body is ``json.dumps`` of the result's
``event`` (plus ``"errors"`` if resolvers failed), with Python's default ``", "`` / ``": "``
separators exactly like Saleor. Payloads are generated when the event happens (so they
show the state of that moment), signed when sent (so a key rotation shows at once).

Delivery: async events wait in a queue until ``deliver_pending()``; 2xx = done, 3xx/4xx =
dropped, 5xx/timeout/connection error = retried by ``retry_failed()`` at most
``max_retries`` times (Celery's backoff is not waited for). Sync TRANSACTION_*_REQUESTED go
only to the transaction's owner, also through the queue (Saleor sends them from a task
after the mutation returned); an answer < 500 is parsed whatever its status, >= 500 is
retried with an EMPTY body (Saleor 3.23.28's bug, signed over b"").
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    execute,
    parse,
    validate,
)
from graphql.error import GraphQLError

from .ids import to_global_id
from .presenters import Presenter
from .signing import SigningKey
from .state import App, GrantedRefund, Principal, Store, Transaction, TransactionEvent, Webhook
from .transactions import Payments

__all__ = ["Attempt", "Delivery", "WebhookHub", "event_types_of", "parse_subscription"]

USER_AGENT = "Saleor/3.23"
_MAX_ROUNDS = 100
_OWN_LIFECYCLE = ("APP_INSTALLED", "APP_UPDATED", "APP_DELETED", "APP_STATUS_CHANGED")


def _required_permission(event_type: str) -> str | None:
    if event_type.startswith(("ORDER_", "FULFILLMENT_", "DRAFT_ORDER_")):
        return "MANAGE_ORDERS"
    if event_type.startswith(("TRANSACTION_", "PAYMENT_")):
        return "HANDLE_PAYMENTS"
    if event_type.startswith("APP_"):
        return "MANAGE_APPS"
    return None


def parse_subscription(schema: GraphQLSchema, query: str) -> DocumentNode:
    """Parse and validate a webhook query; ``ValueError`` says what is wrong."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        raise ValueError(f"invalid subscription query: {exc.message}") from None
    errors = validate(schema, document)
    if errors:
        raise ValueError("invalid subscription query: " + "; ".join(e.message for e in errors))
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation != OperationType.SUBSCRIPTION:
        raise ValueError("the query must hold exactly one subscription operation")
    fields = [s for s in operations[0].selection_set.selections if isinstance(s, FieldNode)]
    if [f.name.value for f in fields] != ["event"]:
        # Saleor also has filterable top-level fields (orderUpdated(channels:)); the fake does not.
        raise ValueError("the fake supports subscriptions on `event` only")
    return document


def event_types_of(schema: GraphQLSchema, document: DocumentNode) -> list[str]:
    """Events a subscription listens to (Saleor infers them when the manifest lists none)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    names: list[str] = []

    def visit(selection_set: SelectionSetNode | None) -> None:
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, InlineFragmentNode) and selection.type_condition:
                names.append(selection.type_condition.name.value)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
                names.append(fragments[selection.name.value].type_condition.name.value)

    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode) and selection.name.value == "event":
            visit(selection.selection_set)
    known = {
        value
        for enum_name in ("WebhookEventTypeAsyncEnum", "WebhookEventTypeSyncEnum")
        for value in getattr(schema.get_type(enum_name), "values", {})
    }
    events = [re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper() for name in names]
    return [e for e in dict.fromkeys(events) if e in known]


@dataclass
class Attempt:
    """One HTTP request the fake sent to an app, with what came back."""

    delivery_id: int
    event_type: str
    app_id: str
    webhook_name: str
    url: str
    sync: bool
    number: int  # 1 = first try; >1 = a retry
    duplicate: bool  # a second send of the same try (duplicate_deliveries)
    body: bytes
    headers: dict[str, str]
    status: int | None  # None: timeout or connection error
    response_body: bytes
    error: str | None
    sent_at: datetime

    @property
    def payload(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Delivery:
    """One event for one webhook; ``state``: pending, retry, done, dropped or failed."""

    id: int
    event_type: str
    app_pk: int
    webhook: Webhook
    body: bytes
    sync: bool
    request_event_pk: int | None = None
    state: str = "pending"
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class DeliveryOptions:
    shuffle: bool = False  # Celery with several workers delivers out of order
    duplicate: bool = False  # every send happens twice (at-least-once delivery)
    host_without_port: bool = False  # Saleor's IP filter sends Host without the port
    max_retries: int = 5
    sync_retry_empty_body: bool = True  # reproduce 3.23.28's bug; False = resend the body
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(18.0, connect=2.0))
    transport: httpx.AsyncBaseTransport | None = None


class WebhookHub:
    """Builds, queues, signs, sends and records webhook deliveries."""

    def __init__(
        self,
        store: Store,
        schema: GraphQLSchema,
        presenter: Presenter,
        key: Callable[[], SigningKey],
        api_url: Callable[[], str],
        options: DeliveryOptions,
        rng: random.Random,
    ) -> None:
        self.store = store
        self.schema = schema
        self.presenter = presenter
        self.key = key
        self.api_url = api_url
        self.options = options
        self.rng = rng
        self.payments: Payments | None = None  # wired by the fake (they need each other)
        self.deliveries: list[Delivery] = []
        self.attempts: list[Attempt] = []

    # -- building ------------------------------------------------------------------------

    def _payload(self, webhook: Webhook, root: dict[str, Any]) -> bytes | None:
        result = execute(self.schema, webhook.document, root_value={"event": root})
        assert isinstance(result, ExecutionResult)  # every resolver is synchronous
        event = (result.data or {}).get("event")
        if event is None:
            return None
        if result.errors:  # Saleor keeps the partial payload and lists the errors
            event["errors"] = [{"message": e.message, "path": e.path} for e in result.errors]
        return json.dumps(event).encode()

    def _queue(
        self, event_type: str, app: App, webhook: Webhook, body: bytes, request_pk: int | None
    ) -> None:
        self.deliveries.append(
            Delivery(
                id=len(self.deliveries) + 1,
                event_type=event_type,
                app_pk=app.pk,
                webhook=webhook,
                body=body,
                sync=request_pk is not None,
                request_event_pk=request_pk,
            )
        )

    def emit(self, event_type: str, principal: Principal | None, **subjects: Any) -> None:
        """An async event happened: queue one delivery per subscribed webhook."""
        with self.store.lock:
            now = self.store.now()
            permission = _required_permission(event_type)
            for app in list(self.store.apps.values()):
                own = event_type in _OWN_LIFECYCLE and subjects.get("app") is app
                if app.deleted or not (app.is_active or event_type in ("APP_DELETED", "APP_STATUS_CHANGED")):
                    continue
                if permission and permission not in app.permissions and not own:
                    continue
                for webhook in app.webhooks:
                    if webhook.is_active and event_type in webhook.async_events:
                        root = self.presenter.event_root(
                            event_type, recipient=app, principal=principal, issued_at=now, **subjects
                        )
                        body = self._payload(webhook, root)
                        if body is not None:
                            self._queue(event_type, app, webhook, body, None)

    def send_request(
        self,
        event_type: str,
        transaction: Transaction,
        request: TransactionEvent,
        grant: GrantedRefund | None,
    ) -> bool:
        """Queue a sync TRANSACTION_*_REQUESTED to the owner's first webhook for it."""
        with self.store.lock:
            app = self.store.owner_app(transaction)
            if app is None or not app.is_active or "HANDLE_PAYMENTS" not in app.permissions:
                return False
            webhook = next((w for w in app.webhooks if w.is_active and event_type in w.sync_events), None)
            if webhook is None:
                return False
            root = self.presenter.event_root(
                event_type,
                recipient=app,
                principal=None,  # observed: issuingPrincipal is null in these payloads
                issued_at=self.store.now(),
                transaction=transaction,
                request=request,
                grant=grant,
            )
            body = self._payload(webhook, root)
            if body is None:
                return False
            self._queue(event_type, app, webhook, body, request.pk)
            return True

    # -- sending -------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.options.timeout, follow_redirects=False, transport=self.options.transport
        )

    def _headers(self, delivery: Delivery, body: bytes) -> dict[str, str]:
        api_url = self.api_url()
        domain = httpx.URL(api_url).netloc.decode()
        signature = self.key().sign_detached(body)
        event = delivery.event_type.lower()
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            "X-Saleor-Event": event,
            "X-Saleor-Domain": domain,
            "X-Saleor-Signature": signature,
            "Saleor-Event": event,
            "Saleor-Domain": domain,
            "Saleor-Signature": signature,
            "Saleor-Api-Url": api_url,
            **delivery.webhook.custom_headers,
        }
        if self.options.host_without_port:
            headers["Host"] = httpx.URL(delivery.webhook.target_url).host
        return headers

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery, *, duplicate: bool) -> Attempt:
        number = sum(1 for a in delivery.attempts if not a.duplicate) + (0 if duplicate else 1)
        body = delivery.body
        if delivery.sync and number > 1 and self.options.sync_retry_empty_body:
            body = b""
        headers = self._headers(delivery, body)
        status: int | None = None
        response_body = b""
        error = None
        try:
            response = await client.post(delivery.webhook.target_url, content=body, headers=headers)
            status, response_body = response.status_code, response.content
        except httpx.HTTPError as exc:  # timeout, refused connection, ...
            error = f"{type(exc).__name__}: {exc}"
        attempt = Attempt(
            delivery_id=delivery.id,
            event_type=delivery.event_type,
            app_id=to_global_id("App", delivery.app_pk),
            webhook_name=delivery.webhook.name,
            url=delivery.webhook.target_url,
            sync=delivery.sync,
            number=number,
            duplicate=duplicate,
            body=body,
            headers=headers,
            status=status,
            response_body=response_body,
            error=error,
            sent_at=self.store.now(),
        )
        with self.store.lock:
            delivery.attempts.append(attempt)
            self.attempts.append(attempt)
        return attempt

    def _settle(self, delivery: Delivery, attempt: Attempt) -> None:
        """Decide the delivery's state from an answer; apply sync answers to the transaction."""
        retryable = attempt.status is None or attempt.status >= 500
        if attempt.duplicate and retryable:
            return  # the original send already settled the delivery
        with self.store.lock:
            if retryable:
                retries_left = attempt.number <= self.options.max_retries
                delivery.state = "retry" if retries_left else "failed"
                if not retries_left and delivery.sync:
                    self._request_outcome(delivery, None)
            elif delivery.sync:
                delivery.state = "done"
                self._request_outcome(delivery, attempt.response_body)
            else:
                delivery.state = "done" if 200 <= (attempt.status or 0) < 300 else "dropped"

    def _request_outcome(self, delivery: Delivery, body: bytes | None) -> None:
        assert self.payments is not None and delivery.request_event_pk is not None
        request = self.store.events[delivery.request_event_pk]
        if body is None:
            self.payments.delivery_failed(request)
        else:
            self.payments.apply_response(request, self.store.apps[delivery.app_pk], body)

    async def _run(self, deliveries: list[Delivery]) -> list[Attempt]:
        if self.options.shuffle:
            self.rng.shuffle(deliveries)
        made: list[Attempt] = []
        try:
            async with self._client() as client:
                for delivery in deliveries:
                    for copy in range(2 if self.options.duplicate else 1):
                        attempt = await self._send(client, delivery, duplicate=copy > 0)
                        made.append(attempt)
                        self._settle(delivery, attempt)
                        if delivery.state in ("retry", "failed"):
                            break  # a duplicate of a failed send would just be another retry
        finally:
            with self.store.lock:  # interrupted (a bug, a cancelled test): back in the queue
                for delivery in deliveries:
                    if delivery.state == "sending":
                        delivery.state = "pending"
        return made

    async def deliver_pending(self, *, drain: bool = True) -> list[Attempt]:
        """Send queued deliveries (in queue order unless shuffling); with ``drain``, also
        the ones their handling queued (e.g. ORDER_PAID after a sync CHARGE_SUCCESS)."""
        made: list[Attempt] = []
        for _ in range(_MAX_ROUNDS):
            with self.store.lock:
                batch = [d for d in self.deliveries if d.state == "pending"]
                for delivery in batch:
                    delivery.state = "sending"
            if not batch:
                return made
            made += await self._run(batch)
            if not drain:
                return made
        raise RuntimeError(f"webhooks still queue new webhooks after {_MAX_ROUNDS} rounds: a loop?")

    async def retry_failed(self) -> list[Attempt]:
        """One more try for every delivery waiting for a retry (Celery's next backoff step)."""
        with self.store.lock:
            batch = [d for d in self.deliveries if d.state == "retry"]
            for delivery in batch:
                delivery.state = "sending"
        return await self._run(batch)

    def drop_app(self, app_pk: int) -> None:
        """An uninstalled app's queued deliveries vanish with its webhooks (but APP_DELETED)."""
        with self.store.lock:
            for delivery in self.deliveries:
                if (
                    delivery.app_pk == app_pk
                    and delivery.state in ("pending", "retry")
                    and delivery.event_type != "APP_DELETED"
                ):
                    delivery.state = "dropped"
