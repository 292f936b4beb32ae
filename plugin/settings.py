"""Process configuration: environment variables prefixed ``KOM_``, read once at start.

Every setting is documented in README.md ("Configuration"). Secrets are ``SecretStr`` so
they never show up in reprs or logs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
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
        description="Regex a Saleor API URL must fully match to install KOM. Its host must also resolve "
        "to public addresses (KOM_ALLOWED_PRIVATE_NETWORKS lists exceptions).",
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read from the environment exactly once."""
    return Settings()
