"""Process configuration: environment variables prefixed ``KOM_``, read once at start.

Every setting is documented in README.md ("Configuration"). Secrets are ``SecretStr`` so
they never show up in reprs or logs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ALLOWED_SALEOR_URLS = r"https://.+"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOM_", env_file=None, extra="ignore", frozen=True)

    database_url: str = Field(
        "sqlite:///./kom.db", description="SQLAlchemy URL of KOM's database (SQLite by default)."
    )
    secret_key: SecretStr | None = Field(
        None, description="Key that encrypts credentials and tokens at rest. Required by `kom serve`."
    )
    public_url: str = Field(
        "http://localhost:8000", description="Public base URL of this KOM (manifest and webhook URLs)."
    )
    allowed_saleor_urls: str = Field(
        DEFAULT_ALLOWED_SALEOR_URLS,
        description="Regex a Saleor API URL must fully match to install KOM. Its host must also resolve "
        "to public addresses (KOM_ALLOWED_PRIVATE_NETWORKS lists exceptions).",
    )
    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN; error reporting is off without it.")
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token that /metrics on the web port asks for. Without it, /metrics is "
        "served on the web port only in development; elsewhere scrape `kom worker --metrics-port`.",
    )
    environment: str = Field("development", description="Deployment name reported to Sentry and logs.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log verbosity.")
    log_json: bool = Field(False, description="Structured JSON logs (one object per line) instead of text.")
    provider_timeout_seconds: float = Field(
        15.0, gt=0, le=120, description="Timeout of one HTTP call to Klarna/Kustom."
    )
    provider_max_attempts: int = Field(
        4, ge=1, le=10, description="Attempts per provider call (retries on 429, 5xx, timeouts)."
    )
    provider_rate_limit: float | None = Field(
        None,
        gt=0,
        description="Order Management requests per second this process sends per merchant credentials "
        "(a token bucket shared by all its passes). Unset: Klarna's documented limit, 50 in the "
        "playground and 200 in production. With several worker processes on one merchant, set it to "
        "the limit divided by the number of processes (429s are still waited out).",
    )
    provider_rate_limit_patience_seconds: float = Field(
        60.0,
        ge=0,
        le=600,
        description="How long one provider call waits out 429 answers (per X-Ratelimit-Reset / "
        "Retry-After) before the order is retried later; 429s within it use up no attempt.",
    )
    lease_seconds: float = Field(
        20.0,
        gt=0,
        le=600,
        description="How long a worker's claim on an order lasts unless renewed (it is renewed every "
        "third of it while the worker works on the order): a crashed worker's orders are taken over "
        "after at most this long.",
    )
    worker_concurrency: int = Field(
        8,
        ge=1,
        le=256,
        description="Orders one worker process works on at once (never one order twice: each pass "
        "holds the order's lease). Provider calls stay paced by KOM_PROVIDER_RATE_LIMIT.",
    )
    sweep_interval_seconds: float = Field(
        600.0,
        gt=0,
        description="How often each worker re-plans every order the platform changed since its last "
        "sweep: the bound on how long a lost webhook delays work.",
    )
    retry_base_seconds: float = Field(
        5.0, gt=0, description="First backoff after a transient failure; doubles per attempt."
    )
    retry_max_seconds: float = Field(1800.0, gt=0, description="Longest backoff between two attempts.")
    authorization_warning_hours: float = Field(
        48.0,
        gt=0,
        le=24 * 90,
        description="Warn this many hours before a provider authorization expires with goods unshipped "
        "(and extend it then, on channels that enabled automatic extension).",
    )

    # -- outbound address policy (docs/security.md) --
    allowed_private_networks: str = Field(
        "",
        description="Comma-separated networks (CIDR) KOM may connect to although they are not public, "
        "e.g. 127.0.0.0/8 for a local Saleor or sandbox. Empty: Saleor URLs and provider base-URL "
        "overrides must resolve to public addresses only, and overrides must use https.",
    )

    @field_validator("allowed_private_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        from plugin.web.egress import parse_networks

        parse_networks(value)  # a typo fails at start, not at the first install
        return value

    # -- checks: each raises a sentence naming what is wrong (plugin/preflight.py prints one
    # line per problem); values that mean the same thing are normalised instead of refused.

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, value: Any) -> Any:
        return database_url(value) if isinstance(value, str) else value

    @field_validator("secret_key", mode="before")
    @classmethod
    def _secret_key(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            return value
        if not raw.strip():
            return None  # `KOM_SECRET_KEY=` (an empty line in an env file) means "not set"
        if raw.strip() == PLACEHOLDER_SECRET:
            raise ValueError(
                "is the placeholder from deploy/.env.example: generate one with "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        from plugin.store.secrets import SecretBox, SecretError

        try:
            SecretBox(raw)  # the rule that encrypts them is the rule that checks them
        except SecretError as exc:
            raise ValueError(str(exc).removeprefix("KOM_SECRET_KEY ")) from None
        return raw

    @field_validator("public_url", mode="before")
    @classmethod
    def _public_url(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(
                "must be the absolute http(s) URL Saleor reaches this KOM at, e.g. https://kom.example.com"
            )
        return value.strip().rstrip("/")

    @field_validator("allowed_saleor_urls", mode="before")
    @classmethod
    def _allowed_saleor_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a valid regular expression ({exc})") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        level = value.strip().upper()
        level = {"WARN": "WARNING"}.get(level, level)
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)} (in any case)")
        return level

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name this deployment, e.g. production or staging")
        return value.strip() if isinstance(value, str) else value

    def is_development(self) -> bool:
        """Development allows a generated secret key (./kom.secret); nothing else does."""
        return self.environment.lower() == "development"


PLACEHOLDER_SECRET = "change-me-to-32-random-characters"  # deploy/.env.example

_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql",
    "postgresql+asyncpg": "postgresql+asyncpg",
    # Heroku, Render, Fly and libpq all hand out postgres:// URLs: the same database.
    "postgres": "postgresql",
    "postgres+asyncpg": "postgresql+asyncpg",
}


def database_url(value: str) -> str:
    """``value`` as a URL KOM can open (``postgres://`` becomes ``postgresql://``), or ValueError."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    value = value.strip()
    scheme, sep, rest = value.partition("://")
    if not sep or not scheme:
        raise ValueError(
            "is not a database URL: use sqlite:///./kom.db or postgresql://user:password@host/db"
        )
    backend = scheme.lower().split("+")[0]
    if scheme.lower() not in _DRIVERS:
        if backend in ("sqlite", "postgresql", "postgres"):
            plain = "sqlite" if backend == "sqlite" else "postgresql"
            raise ValueError(
                f"names the driver {scheme.split('+', 1)[1]!r}, which KOM does not use: "
                f"write {plain}:// (KOM brings its own: aiosqlite, asyncpg)"
            )
        raise ValueError(
            f"names the database {backend!r}, which KOM does not support: "
            "use SQLite (sqlite:///./kom.db) or PostgreSQL (postgresql://user:password@host:5432/db)"
        )
    normalised = f"{_DRIVERS[scheme.lower()]}://{rest}"
    try:
        url = make_url(normalised)
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"cannot be parsed as a database URL ({exc})") from None
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("needs a file: an in-memory SQLite database loses everything at exit")
    elif not url.host:
        raise ValueError("names no PostgreSQL host: postgresql://user:password@host:5432/db")
    return normalised


def masked_database_url(value: str) -> str:
    """The URL as it may be printed: the password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(value).render_as_string(hide_password=True)
    except Exception:  # unparsable: cut the password out by hand
        scheme, _, rest = value.partition("://")
        userinfo, at, host = rest.rpartition("@")
        if not at or ":" not in userinfo:
            return value
        return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read from the environment exactly once."""
    return Settings()
