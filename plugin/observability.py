"""Operating KOM: error reports (Sentry), structured logs, Prometheus metrics.

* ``init_sentry``: on when KOM_SENTRY_DSN is set; release ``kom@<version>``, environment
  KOM_ENVIRONMENT. Every event passes ``scrub`` first, which removes credentials (tokens,
  API keys, Authorization headers, signatures, cookies, secrets) and shoppers' personal data
  (names, e-mail addresses, phone numbers, postal addresses, IP addresses) wherever they
  appear: request headers and bodies, local variables of stack frames, breadcrumbs, extras.
* ``configure_logging``: text, or one JSON object per line with KOM_LOG_JSON=true. Log calls
  add ``installation``, ``order`` and ``correlation_id`` with ``extra={...}``; they become
  fields of the JSON object.
* Metrics, in Prometheus' text format on ``GET /metrics`` (web) and on ``kom worker
  --metrics-port`` (worker): webhooks received and rejected (by reason), the order queue
  (depth per state, age of the oldest due order), orders processed (by outcome, with
  durations), calls to the provider and the platform (by operation and outcome, with
  latencies), authorizations about to expire (warned, expired, extended, extend_failed).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import start_http_server as _start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plugin import __version__

if TYPE_CHECKING:
    from plugin.service.records import QueueStats
    from plugin.settings import Settings

# -- error reports -------------------------------------------------------------------------

FILTERED = "[Filtered]"

# Key names (lower-cased, "-" as "_") whose values are credentials.
_SECRET_KEY = re.compile(
    r"authorization|token|secret|passw|api_?key|apikey|cookie|signature|credential|dsn|private|session"
    r"|^key$|_key$|^jwt$|^jws$"
)
# Key names whose values are a shopper's personal data.
_PERSONAL_KEY = re.compile(
    r"^(e_?mail|email_address|user_?email|customer_?email|phone|phone_number|mobile|"
    r"first_?name|last_?name|given_?name|family_?name|full_?name|customer_?name|"
    r"street_?address(_?[12])?|street|address|address_?[12]|billing_?address|shipping_?address|"
    r"postal_?code|zip|city|city_?area|country_?area|company_?name|ip|ip_?address|remote_?addr|"
    r"x_forwarded_for|x_real_ip|customer|shopper|user|date_of_birth|national_identification_number)$"
)
# Values that are credentials or personal data whatever their key is called.
_SECRET_VALUES = [
    (re.compile(r"\b(klarna|kco)_(test|live)_(api|client)_[A-Za-z0-9_\-=+/.]+"), FILTERED),
    (re.compile(r"(?i)\b(bearer|basic|jwt)\s+[A-Za-z0-9_\-=+/.~]+"), r"\1 " + FILTERED),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*"), FILTERED),  # JWT / JWS
    (re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"), FILTERED),  # e-mail
    (re.compile(r"(?<![\w/])\+\d[\d ()\-]{6,}\d\b"), FILTERED),  # international phone numbers
    (re.compile(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]+:)[^@\s]+@"), r"\1" + FILTERED + "@"),
]


def _norm(key: str) -> str:
    return key.strip().lower().replace("-", "_").replace(" ", "_")


def _scrub_text(text: str) -> str:
    for pattern, replacement in _SECRET_VALUES:
        text = pattern.sub(replacement, text)
    return text


def scrub_value(value: Any, key: str | None = None, depth: int = 0) -> Any:
    """``value`` with credentials and personal data replaced by ``[Filtered]``."""
    if key is not None:
        name = _norm(key)
        if _SECRET_KEY.search(name) or _PERSONAL_KEY.search(name):
            return FILTERED if value not in (None, "", [], {}) else value
    if depth > 30:
        return FILTERED
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, Mapping):
        return {k: scrub_value(v, str(k), depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        # Header lists in Sentry events are [name, value] pairs.
        if len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], str):
            name = _norm(value[0])
            if _SECRET_KEY.search(name) or _PERSONAL_KEY.search(name):
                return [value[0], FILTERED]
        return [scrub_value(v, None, depth + 1) for v in value]
    return value


# Parts of a Sentry event that are structure, not data: kept as they are.
_STRUCTURE = {"event_id", "timestamp", "level", "platform", "logger", "release", "environment", "sdk"}


def scrub(event: Any, hint: Any = None) -> Any:
    """Sentry's ``before_send``: the event without credentials or shoppers' personal data."""
    if not isinstance(event, dict):
        return event
    event.pop("user", None)
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("cookies", None)
        request.pop("data", None)  # webhook bodies carry addresses and e-mails
        env = request.get("env")
        if isinstance(env, dict):
            env.pop("REMOTE_ADDR", None)
    return {k: (v if k in _STRUCTURE else scrub_value(v, None)) for k, v in event.items()}


def init_sentry(settings: Settings) -> bool:
    """Start error reporting when KOM_SENTRY_DSN is set; returns whether it is on."""
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        release=f"kom@{__version__}",
        environment=settings.environment,
        send_default_pii=False,
        include_local_variables=True,
        max_request_body_size="never",
        before_send=scrub,
        before_send_transaction=scrub,
        before_breadcrumb=lambda crumb, hint: scrub_value(crumb),
        integrations=[StarletteIntegration(), LoggingIntegration(event_level=logging.ERROR)],
        traces_sample_rate=0.0,
    )
    return True


# -- logs ---------------------------------------------------------------------------------

CONTEXT_FIELDS = ("installation", "order", "correlation_id", "worker", "request_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, *, json_logs: bool) -> None:
    """Log to stderr, as JSON lines or as text; replaces handlers set up earlier."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # one format for every line
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def setup(settings: Settings, *, level: str | None = None) -> None:
    """What `kom serve` and `kom worker` run first: logging, then error reporting."""
    configure_logging(level or settings.log_level, json_logs=settings.log_json)
    if init_sentry(settings):
        logging.getLogger("kom").info("error reporting to Sentry is on (%s)", settings.environment)


# -- metrics ------------------------------------------------------------------------------

REGISTRY = CollectorRegistry(auto_describe=True)
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

BUILD = Gauge("kom_build_info", "KOM's version.", ["version"], registry=REGISTRY)
BUILD.labels(__version__).set(1)
WEBHOOKS_RECEIVED = Counter(
    "kom_webhooks_received", "Webhooks answered with 2xx (hint recorded).", ["webhook"], registry=REGISTRY
)
WEBHOOKS_REJECTED = Counter(
    "kom_webhooks_rejected", "Webhooks refused, by reason.", ["webhook", "reason"], registry=REGISTRY
)
WEBHOOK_SECONDS = Histogram(
    "kom_webhook_duration_seconds", "Time to answer a webhook.", ["webhook"], buckets=_LATENCY,
    registry=REGISTRY,
)  # fmt: skip
ORDERS = Gauge("kom_orders", "Orders KOM tracks, by state.", ["state"], registry=REGISTRY)
OLDEST_PENDING = Gauge(
    "kom_oldest_pending_order_age_seconds",
    "How long the longest-waiting due order has waited (0 when none is due).",
    registry=REGISTRY,
)
ORDERS_PROCESSED = Counter(
    "kom_orders_processed",
    "Orders a worker finished, by outcome (in_sync, needs_attention, changed, retry, gave_up).",
    ["outcome"],
    registry=REGISTRY,
)
ORDER_SECONDS = Histogram(
    "kom_order_sync_duration_seconds", "Claim to outcome, per order.", buckets=_LATENCY, registry=REGISTRY
)
PROVIDER_CALLS = Counter(
    "kom_provider_calls",
    "Calls to Klarna/Kustom Order Management, by operation and outcome.",
    ["operation", "outcome"],
    registry=REGISTRY,
)
PROVIDER_SECONDS = Histogram(
    "kom_provider_call_duration_seconds", "Latency of provider calls.", ["operation"], buckets=_LATENCY,
    registry=REGISTRY,
)  # fmt: skip
PLATFORM_CALLS = Counter(
    "kom_platform_calls", "Calls to the shop platform (Saleor GraphQL), by outcome.", ["outcome"],
    registry=REGISTRY,
)  # fmt: skip
PLATFORM_SECONDS = Histogram(
    "kom_platform_call_duration_seconds", "Latency of platform calls.", buckets=_LATENCY, registry=REGISTRY
)

AUTHORIZATION_EVENTS = Counter(
    "kom_authorization_events",
    "Provider authorizations about to expire with goods unshipped, by event (warned, expired, "
    "extended, extend_failed); one warning per order and expiry.",
    ["event"],
    registry=REGISTRY,
)

_STATES = ("pending", "in_sync", "needs_attention")


def observe_queue(stats: QueueStats, now: datetime) -> None:
    for state in {*_STATES, *stats.counts}:
        ORDERS.labels(state).set(stats.counts.get(state, 0))
    OLDEST_PENDING.set(stats.oldest_age(now))


def authorization_event(event: str) -> None:
    """``observe`` for plugin.service.authorization.keep_authorization."""
    AUTHORIZATION_EVENTS.labels(event).inc()


def render() -> bytes:
    """The metrics in Prometheus' text exposition format."""
    return generate_latest(REGISTRY)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def start_metrics_server(port: int, host: str = "0.0.0.0") -> None:
    """Serve /metrics from a background thread (for `kom worker`, which has no web app)."""
    _start_http_server(port, addr=host, registry=REGISTRY)


_REJECT_REASONS = {
    400: "invalid_request",
    401: "unauthenticated",  # unknown installation, missing or bad signature
    403: "wrong_recipient",
    404: "unknown_webhook",
    405: "method_not_allowed",
    411: "length_required",
    413: "too_large",
    415: "unsupported_media_type",
}


def reject_reason(status: int) -> str:
    return _REJECT_REASONS.get(status, "server_error" if status >= 500 else f"http_{status}")


class WebhookMetrics:
    """ASGI middleware: counts and times every request to /api/webhooks/<name>."""

    PREFIX = "/api/webhooks/"

    def __init__(self, app: ASGIApp, known: frozenset[str]) -> None:
        self.app = app
        self.known = known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.PREFIX):
            await self.app(scope, receive, send)
            return
        name = path[len(self.PREFIX) :]
        webhook = name if name in self.known else "unknown"
        status = 500
        started = time.perf_counter()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            WEBHOOK_SECONDS.labels(webhook).observe(time.perf_counter() - started)
            if status < 300:
                WEBHOOKS_RECEIVED.labels(webhook).inc()
            else:
                WEBHOOKS_REJECTED.labels(webhook, reject_reason(status)).inc()


_OM_PATH = re.compile(r"/ordermanagement/v1/orders/[^/]+(?P<rest>/.*)?$")


def provider_operation(method: str, path: str) -> str | None:
    """The Order Management operation a request is, or None when it is not one."""
    match = _OM_PATH.search(path)
    if match is None:
        return None
    rest = (match.group("rest") or "").rstrip("/")
    if rest == "":
        return "get_order" if method == "GET" else f"{method.lower()}_order"
    parts = rest.strip("/").split("/")
    if parts[0] == "captures":
        if len(parts) == 1:
            return "capture" if method == "POST" else "list_captures"
        if len(parts) >= 3:
            return parts[2].replace("-", "_")  # shipping-info, extend-due-date, trigger-send-out
        return "get_capture"
    if parts[0] == "refunds":
        return "refund" if method == "POST" and len(parts) == 1 else "get_refund"
    return parts[0].replace("-", "_")  # cancel, release-remaining-authorization, extend-...


def outcome_of(status: int) -> str:
    if status < 300:
        return "ok"
    if status == 429:
        return "rate_limited"
    return "rejected" if status < 500 else "error"


class MetricsTransport(httpx.AsyncBaseTransport):
    """Wraps the shared HTTP client's transport: counts and times provider and platform calls.

    Outcomes: ok, rejected (4xx), rate_limited (429), error (5xx), not_sent (the connection
    could not be made), unknown (sent, but no answer came: the call may have taken effect).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        operation = provider_operation(request.method, request.url.path)
        platform = operation is None and request.url.path.rstrip("/").endswith("/graphql")
        started = time.perf_counter()
        try:
            response = await self.inner.handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            self._count(operation, platform, "not_sent", started)
            raise
        except httpx.TransportError:
            self._count(operation, platform, "unknown", started)
            raise
        self._count(operation, platform, outcome_of(response.status_code), started)
        return response

    @staticmethod
    def _count(operation: str | None, platform: bool, outcome: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        if operation is not None:
            PROVIDER_CALLS.labels(operation, outcome).inc()
            PROVIDER_SECONDS.labels(operation).observe(elapsed)
        elif platform:
            PLATFORM_CALLS.labels(outcome).inc()
            PLATFORM_SECONDS.observe(elapsed)

    async def aclose(self) -> None:
        await self.inner.aclose()


def http_client(timeout: float) -> httpx.AsyncClient:
    """The process' shared HTTP client, with its calls counted."""
    return httpx.AsyncClient(timeout=timeout, transport=MetricsTransport())
