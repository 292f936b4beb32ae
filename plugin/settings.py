"""Process configuration: environment variables prefixed ``KOM_``, read once at start.

Every setting is documented in README.md ("Configuration"). Secrets are ``SecretStr`` so
they never show up in reprs or logs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ALLOWED_SALEOR_URLS = r"https://.+"


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
        description="Regex a Saleor API URL must fully match to install KOM. Loopback and private "
        "addresses are refused unless you set this pattern yourself and it matches them.",
    )
    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN; error reporting is off without it.")
    environment: str = Field("development", description="Deployment name reported to Sentry and logs.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log verbosity.")
    log_json: bool = Field(False, description="Structured JSON logs (one object per line) instead of text.")
    provider_timeout_seconds: float = Field(
        15.0, gt=0, le=120, description="Timeout of one HTTP call to Klarna/Kustom."
    )
    provider_max_attempts: int = Field(
        4, ge=1, le=10, description="Attempts per provider call (retries on 429, 5xx, timeouts)."
    )
    lease_seconds: float = Field(
        20.0,
        gt=0,
        le=600,
        description="How long a worker's claim on an order lasts unless renewed (it is renewed every "
        "third of it while the worker works on the order): a crashed worker's orders are taken over "
        "after at most this long.",
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read from the environment exactly once."""
    return Settings()
