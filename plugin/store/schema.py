"""The database schema's version, managed by Alembic (migrations live in ``migrations/``).

``upgrade`` brings a database to the newest revision; ``status`` tells whether a database
is current, so that `kom serve`/`kom worker` can refuse to run on an old schema and
``/readyz`` can report it. Everything runs on the Store's own async engine: Alembic gets a
synchronous view of one of its connections (``run_sync``), so no second driver is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")
LEGACY_REVISION = "0001"
VERSION_TABLE = "alembic_version"


class SchemaOutOfDate(RuntimeError):
    """The database's schema is not the one this KOM needs."""


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # the database's revision (None: empty database)
    head: str  # the revision this KOM needs

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        if self.up_to_date:
            return f"schema at revision {self.head}"
        have = f"revision {self.current}" if self.current else "no KOM schema"
        return (
            f"the database has {have}, this KOM needs revision {self.head}: "
            "run `kom migrate` (with the same KOM_DATABASE_URL) first"
        )


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@cache
def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def _current(connection: Connection) -> str | None:
    # Read directly (MigrationContext logs at INFO each time, and /readyz asks often).
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    revisions = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(revisions) > 1:
        raise SchemaOutOfDate(f"the database has several schema heads ({', '.join(revisions)})")
    return revisions[0] if revisions else None


async def status(engine: AsyncEngine) -> SchemaStatus:
    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    return SchemaStatus(current=current, head=head())


async def upgrade(engine: AsyncEngine, revision: str = "head") -> SchemaStatus:
    """Apply every pending migration, in one transaction (PostgreSQL: DDL is transactional)."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        if _current(connection) is None and inspect(connection).has_table("installations"):
            # Made by a KOM from before migrations (metadata.create_all): that is revision 0001.
            command.stamp(config, LEGACY_REVISION)
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)
    return await status(engine)


async def require_current(engine: AsyncEngine) -> SchemaStatus:
    found = await status(engine)
    if not found.up_to_date:
        raise SchemaOutOfDate(found.describe())
    return found


def compare(connection: Connection) -> list[Any]:
    """Differences between the database and ``tables.py`` (empty when they match; tests)."""
    from alembic.autogenerate import compare_metadata

    from plugin.store.tables import metadata

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))
