"""``database_url``: a fresh, empty SQLite file or PostgreSQL database per test, so the
tests that take it run on both (postgres.py says where the server comes from)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.store.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database(request.param, tmp_path) as url:
        yield url
