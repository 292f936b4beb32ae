"""The Store: every read and write KOM makes to its database, as small async methods.

One engine per process (SQLite through aiosqlite by default, PostgreSQL at scale). Work
on orders is claimed with a lease: one UPDATE ... RETURNING picks the next due order whose
lease is free, so two workers never hold the same order (SQLite serialises writers; on
PostgreSQL the inner SELECT skips locked rows).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import URL, and_, delete, event, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from plugin.observability import ORDER_SECONDS, ORDERS_PROCESSED
from plugin.service.ports import OutboxReport, TransactionReport
from plugin.service.records import (
    AuthorizationRecord,
    ChannelSettings,
    FindingRecord,
    Installation,
    OrderJob,
    Outcome,
    QueueStats,
    RequestConflict,
    StoredRequest,
)
from plugin.store import schema
from plugin.store import tables as t
from plugin.store.secrets import SecretBox

__all__ = [
    "ChannelSettings",
    "Installation",
    "OrderJob",
    "QueueStats",
    "RequestConflict",
    "Store",
    "StoredRequest",
    "async_url",
]

Clock = Callable[[], datetime]

# Other processes' changes to an installation (re-install, uninstall) show within this time.
INSTALLATION_CACHE = timedelta(seconds=5)


def system_clock() -> datetime:
    return datetime.now(UTC)


def async_url(url: str) -> str:
    """``sqlite:///x.db`` -> ``sqlite+aiosqlite:///x.db``; PostgreSQL gets an async driver too."""
    for plain, driver in (("sqlite://", "sqlite+aiosqlite://"), ("postgresql://", "postgresql+asyncpg://")):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


class Store:
    def __init__(self, engine: AsyncEngine, box: SecretBox, clock: Clock = system_clock) -> None:
        self.engine = engine
        self.box = box
        self.clock = clock
        # SQLite has one writer at a time; queueing writers here instead of in SQLite's
        # busy handler (which sleeps and retries) keeps write latency short and even.
        self._one_writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._installations: dict[str, tuple[datetime, Installation]] = {}
        self._hints: list[tuple[tuple[int, str, str | None], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._claimed: dict[int, float] = {}  # order id -> when this process claimed it (metrics)
        self._hint_writer = _HintWriter.for_url(engine.url) if engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        if self._one_writer is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._one_writer, self.engine.begin() as conn:
            yield conn

    @classmethod
    async def open(
        cls, url: str, box: SecretBox, clock: Clock = system_clock, *, create: bool = True
    ) -> Store:
        """Connect to ``url``; with ``create`` also bring its schema to the newest migration.

        Without ``create`` the schema is left alone (``schema_status`` tells whether it is
        current: `kom serve --no-worker` and `kom worker` on PostgreSQL refuse an old one).
        """
        engine = create_async_engine(async_url(url), connect_args=_connect_args(url))
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            if create:
                await schema.upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, box, clock)

    async def close(self) -> None:
        if self._hint_writer is not None:
            await self._hint_writer.close()
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    async def schema_status(self) -> schema.SchemaStatus:
        return await schema.status(self.engine)

    async def migrate(self) -> schema.SchemaStatus:
        return await schema.upgrade(self.engine)

    # -- installations -------------------------------------------------------------

    async def save_installation(
        self, *, platform: str, api_url: str, app_id: str, token: str, jwks: dict[str, Any]
    ) -> Installation:
        """Store an installation; re-registering the same platform URL replaces token, app and keys."""
        now = self.clock()
        self._installations.pop(api_url, None)
        sealed = self.box.encrypt(token, context=f"token:{api_url}")
        values = {
            "platform": platform,
            "app_id": app_id,
            "token": sealed,
            "jwks": jwks,
            "jwks_fetched_at": now,
        }
        async with self._write() as conn:
            existing = (
                await conn.execute(select(t.installations.c.id).where(t.installations.c.api_url == api_url))
            ).first()
            if existing:
                await conn.execute(
                    update(t.installations)
                    .where(t.installations.c.id == existing.id)
                    .values(**values, updated_at=now)
                )
            else:
                await conn.execute(
                    insert(t.installations).values(**values, api_url=api_url, created_at=now, updated_at=now)
                )
        found = await self.installation_by_url(api_url)
        assert found is not None
        return found

    async def installation_by_url(self, api_url: str) -> Installation | None:
        """Cached for a few seconds: every webhook looks its installation up."""
        cached = self._installations.get(api_url)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        found = await self._installation(t.installations.c.api_url == api_url)
        if found is not None:
            self._installations[api_url] = (self.clock() + INSTALLATION_CACHE, found)
        return found

    async def installation(self, installation_id: int) -> Installation | None:
        return await self._installation(t.installations.c.id == installation_id)

    async def installations(self) -> list[Installation]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.installations))).all()
        return [self._to_installation(row) for row in rows]

    async def _installation(self, where: Any) -> Installation | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.installations).where(where))).first()
        return self._to_installation(row) if row else None

    def _to_installation(self, row: Any) -> Installation:
        return Installation(
            id=row.id,
            platform=row.platform,
            api_url=row.api_url,
            app_id=row.app_id,
            token=self.box.decrypt(row.token, context=f"token:{row.api_url}"),
            jwks=row.jwks,
            jwks_fetched_at=row.jwks_fetched_at,
        )

    async def update_jwks(self, installation_id: int, jwks: dict[str, Any]) -> None:
        self._installations.clear()
        async with self._write() as conn:
            await conn.execute(
                update(t.installations)
                .where(t.installations.c.id == installation_id)
                .values(jwks=jwks, jwks_fetched_at=self.clock(), updated_at=self.clock())
            )

    async def delete_installation(self, api_url: str) -> bool:
        """Drop an installation with its settings, secrets, orders, requests, outcomes and reports."""
        self._installations.pop(api_url, None)
        async with self._write() as conn:
            row = (
                await conn.execute(select(t.installations.c.id).where(t.installations.c.api_url == api_url))
            ).first()
            if row is None:
                return False
            tables = (
                t.channel_settings,
                t.orders,
                t.requests,
                t.reports,
                t.outcomes,
                t.findings,
                t.authorizations,
            )
            for table in tables:
                await conn.execute(delete(table).where(table.c.installation_id == row.id))
            await conn.execute(delete(t.installations).where(t.installations.c.id == row.id))
        return True

    # -- merchant settings ---------------------------------------------------------

    async def save_settings(self, installation_id: int, settings: ChannelSettings) -> None:
        values = {
            "provider": settings.provider,
            "environment": settings.environment,
            "region": settings.region,
            "api_key": self.box.encrypt(
                settings.api_key, context=f"api_key:{installation_id}:{settings.channel}"
            ),
            "username": settings.username,
            "base_url": settings.base_url,
            "capture_mode": settings.capture_mode,
            "shipping_fee": settings.shipping_fee,
            "unknown_origin": settings.unknown_origin,
            "extend_authorization": settings.extend_authorization,
            "updated_at": self.clock(),
        }
        key = (t.channel_settings.c.installation_id == installation_id) & (
            t.channel_settings.c.channel == settings.channel
        )
        async with self._write() as conn:
            if (await conn.execute(select(t.channel_settings.c.id).where(key))).first():
                await conn.execute(update(t.channel_settings).where(key).values(**values))
            else:
                await conn.execute(
                    insert(t.channel_settings).values(
                        **values, installation_id=installation_id, channel=settings.channel
                    )
                )

    async def delete_settings(self, installation_id: int, channel: str) -> bool:
        """Drop a channel's own settings (it then uses the default). False if it had none."""
        async with self._write() as conn:
            result = await conn.execute(
                delete(t.channel_settings).where(
                    (t.channel_settings.c.installation_id == installation_id)
                    & (t.channel_settings.c.channel == channel)
                )
            )
        return bool(result.rowcount)

    async def channels(self, installation_id: int) -> list[str]:
        """The channels with settings of their own ("" = the default), sorted."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.channel_settings.c.channel)
                .where(t.channel_settings.c.installation_id == installation_id)
                .order_by(t.channel_settings.c.channel)
            )
            return [str(row.channel) for row in rows]

    async def settings_for(self, installation_id: int, channel: str | None) -> ChannelSettings | None:
        """The channel's own settings, else the installation's default ("" channel)."""
        wanted = [channel or "", ""]
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(t.channel_settings).where(
                        (t.channel_settings.c.installation_id == installation_id)
                        & t.channel_settings.c.channel.in_(wanted)
                    )
                )
            ).all()
        row = next((r for c in wanted for r in rows if r.channel == c), None)
        if row is None:
            return None
        return ChannelSettings(
            channel=row.channel,
            provider=row.provider,
            environment=row.environment,
            region=row.region,
            api_key=self.box.decrypt(row.api_key, context=f"api_key:{installation_id}:{row.channel}"),
            username=row.username,
            base_url=row.base_url,
            capture_mode=row.capture_mode,
            shipping_fee=row.shipping_fee,
            unknown_origin=row.unknown_origin,
            extend_authorization=bool(row.extend_authorization),
        )

    # -- the order queue -----------------------------------------------------------

    async def touch_order(
        self, installation_id: int, platform_order_id: str, *, number: str | None = None
    ) -> None:
        """A webhook hinted that this order changed: make it due now (durably, idempotently).

        Returns once the hint is committed. Hints arriving together share one transaction
        (group commit), so ingest is not limited to one commit per webhook.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hints.append(((installation_id, platform_order_id, number), done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_hints())
        await done

    async def _flush_hints(self) -> None:
        while self._hints:
            batch, self._hints = self._hints, []
            try:
                await self._touch_many([key for key, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _touch_many(self, keys: list[tuple[int, str, str | None]]) -> None:
        now = self.clock()
        merged: dict[tuple[int, str], tuple[int, str | None]] = {}
        for installation_id, order_id, number in keys:
            count, known = merged.get((installation_id, order_id), (0, None))
            merged[(installation_id, order_id)] = (count + 1, number or known)
        rows = [
            {
                "installation_id": installation_id,
                "platform_order_id": order_id,
                "order_number": number,
                "state": "pending",
                "attempts": 0,
                "hints": count,
                "due_at": now,
                "created_at": now,
                "updated_at": now,
            }
            # In key order: concurrent batches on PostgreSQL then lock rows in the same order.
            for (installation_id, order_id), (count, number) in sorted(merged.items())
        ]
        if self._hint_writer is not None:
            assert self._one_writer is not None
            async with self._one_writer:
                await self._hint_writer.write(rows)
            return
        async with self._write() as conn:
            await conn.execute(self._upsert_hint, rows)

    @functools.cached_property
    def _upsert_hint(self) -> Any:
        # Built once (and compiled once by SQLAlchemy's cache); executed with many rows.
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        statement = dialect.insert(t.orders)
        return statement.on_conflict_do_update(
            index_elements=["installation_id", "platform_order_id"],
            set_={
                "state": "pending",
                "hints": t.orders.c.hints + statement.excluded.hints,
                "due_at": statement.excluded.due_at,
                "attempts": 0,
                "order_number": func.coalesce(statement.excluded.order_number, t.orders.c.order_number),
                "updated_at": statement.excluded.updated_at,
            },
        )

    async def claim(self, worker_id: str, lease: timedelta) -> OrderJob | None:
        """Lease the next due order to ``worker_id``; None when nothing is due."""
        now = self.clock()
        candidate = (
            select(t.orders.c.id)
            .where(
                (t.orders.c.state == "pending")
                & (t.orders.c.due_at <= now)
                & or_(t.orders.c.lease_expires_at.is_(None), t.orders.c.lease_expires_at < now)
            )
            .order_by(t.orders.c.due_at, t.orders.c.id)
            .limit(1)
        )
        if self.engine.dialect.name == "postgresql":
            candidate = candidate.with_for_update(skip_locked=True)
        statement = (
            update(t.orders)
            .where(t.orders.c.id == candidate.scalar_subquery())
            .values(lease_owner=worker_id, lease_expires_at=now + lease, attempts=t.orders.c.attempts + 1)
            .returning(*t.orders.c)
        )
        async with self._write() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            return None
        self._claimed[row.id] = time.monotonic()
        return _job(row)

    async def renew(self, job: OrderJob, worker_id: str, lease: timedelta) -> bool:
        """The worker's heartbeat: push the lease out while it still holds it."""
        async with self._write() as conn:
            result = await conn.execute(
                update(t.orders)
                .where((t.orders.c.id == job.id) & (t.orders.c.lease_owner == worker_id))
                .values(lease_expires_at=self.clock() + lease)
            )
        return bool(result.rowcount)

    async def finish(
        self,
        job: OrderJob,
        *,
        state: str,
        reason: str | None = None,
        provider_order_id: str | None = None,
        correlation_id: str | None = None,
    ) -> bool:
        """Record the outcome and release the lease. Returns False (and leaves the order
        pending) when a webhook arrived while the order was being worked on."""
        now = self.clock()
        values: dict[str, Any] = {
            "lease_owner": None,
            "lease_expires_at": None,
            "updated_at": now,
            "reason": reason,
            "last_error": None,
            "correlation_id": correlation_id,
            "attempts": 0,
        }
        if provider_order_id:
            values["provider_order_id"] = provider_order_id
        async with self._write() as conn:
            result = await conn.execute(
                update(t.orders)
                .where((t.orders.c.id == job.id) & (t.orders.c.hints == job.hints))
                .values(**values, state=state, synced_at=now)
            )
            if result.rowcount:
                self._observe(job, state)
                return True
            await conn.execute(update(t.orders).where(t.orders.c.id == job.id).values(**values, due_at=now))
        self._observe(job, "changed")
        return False

    def _observe(self, job: OrderJob, outcome: str) -> None:
        ORDERS_PROCESSED.labels(outcome).inc()
        started = self._claimed.pop(job.id, None)
        if started is not None:
            ORDER_SECONDS.observe(time.monotonic() - started)

    async def retry_later(
        self, job: OrderJob, *, error: str, delay: timedelta, give_up: bool, correlation_id: str | None = None
    ) -> None:
        """A transient failure: try again after ``delay``, or park the order for a human."""
        now = self.clock()
        values: dict[str, Any] = {
            "lease_owner": None,
            "lease_expires_at": None,
            "last_error": error,
            "updated_at": now,
            "due_at": now + delay,
            "correlation_id": correlation_id,
        }
        if give_up:
            values.update(state="needs_attention", reason=error)
        async with self._write() as conn:
            await conn.execute(update(t.orders).where(t.orders.c.id == job.id).values(**values))
        self._observe(job, "gave_up" if give_up else "retry")

    async def retry_now(self, installation_id: int, platform_order_id: str) -> bool:
        """An operator asked to retry an order (e.g. after fixing settings): actions the
        provider refused are tried again, and reports the platform refused are sent again."""
        async with self._write() as conn:
            await conn.execute(
                delete(t.outcomes).where(
                    (t.outcomes.c.installation_id == installation_id)
                    & (t.outcomes.c.platform_order_id == platform_order_id)
                    & (t.outcomes.c.status == "failed")
                )
            )
            await conn.execute(
                update(t.reports)
                .where(
                    (t.reports.c.installation_id == installation_id)
                    & (t.reports.c.platform_order_id == platform_order_id)
                    & (t.reports.c.state == "refused")
                )
                .values(state="pending")
            )
            result = await conn.execute(
                update(t.orders)
                .where(
                    (t.orders.c.installation_id == installation_id)
                    & (t.orders.c.platform_order_id == platform_order_id)
                )
                .values(
                    state="pending",
                    due_at=self.clock(),
                    updated_at=self.clock(),
                    attempts=0,
                    hints=t.orders.c.hints + 1,
                )
            )
        return bool(result.rowcount)

    async def order_job(self, installation_id: int, platform_order_id: str) -> OrderJob | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(t.orders).where(
                        and_(
                            t.orders.c.installation_id == installation_id,
                            t.orders.c.platform_order_id == platform_order_id,
                        )
                    )
                )
            ).first()
        return _job(row) if row else None

    async def order_jobs(
        self,
        installation_id: int | None = None,
        *,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[OrderJob]:
        query = (
            select(t.orders)
            .order_by(t.orders.c.updated_at.desc(), t.orders.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        if installation_id is not None:
            query = query.where(t.orders.c.installation_id == installation_id)
        if state is not None:
            query = query.where(t.orders.c.state == state)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_job(row) for row in rows]

    async def order_counts(self, installation_id: int) -> dict[str, int]:
        """How many of the installation's orders are in each state (the dashboard's filters)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.orders.c.state, func.count())
                .where(t.orders.c.installation_id == installation_id)
                .group_by(t.orders.c.state)
            )
            return {str(state): int(count) for state, count in rows}

    async def queue_depth(self) -> int:
        async with self.engine.connect() as conn:
            count = (await conn.execute(select(func.count()).where(t.orders.c.state == "pending"))).scalar()
        return int(count or 0)

    async def queue_stats(self) -> QueueStats:
        """Orders per state and the due time of the oldest pending one (metrics, alerts)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(t.orders.c.state, func.count(), func.min(t.orders.c.due_at)).group_by(
                        t.orders.c.state
                    )
                )
            ).all()
        counts = {row[0]: int(row[1]) for row in rows}
        oldest = next((row[2] for row in rows if row[0] == "pending"), None)
        if isinstance(oldest, str):  # SQLite returns min() of a datetime column as text
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return QueueStats(counts=counts, oldest_due_at=oldest)

    # -- requests from the platform (refund / cancel / charge) ------------------------

    async def record_request(
        self,
        *,
        installation_id: int,
        platform_order_id: str,
        kind: str,
        request_id: str,
        psp_reference: str,
        transaction_id: str,
        body: dict[str, Any],
        created_at: datetime,
    ) -> StoredRequest:
        """Record a platform request once; a duplicate delivery returns the first record.

        The same request is the same ``psp_reference`` (or, for records from before it
        carried the request's time, the same kind, request id and time). A request whose
        pspReference, request id or transaction is on record for another order raises
        ``RequestConflict``: those ids are global on the platform, so merging it would act
        on the wrong order, and overwriting would lose the first one.
        """
        key = _RequestKey(platform_order_id, kind, request_id, psp_reference, transaction_id, created_at)
        try:
            async with self._write() as conn:
                found = key.match(await self._related_requests(conn, installation_id, key))
                if found is None:
                    row = {**key.columns(), "installation_id": installation_id, "body": body, "done": False}
                    await conn.execute(insert(t.requests).values(**row))
        except IntegrityError:
            pass  # recorded meanwhile by another process: read it below
        async with self.engine.connect() as conn:
            found = key.match(await self._related_requests(conn, installation_id, key))
        if found is None:
            raise RuntimeError(f"request {psp_reference} vanished right after it was recorded")
        return found

    @staticmethod
    async def _related_requests(conn: AsyncConnection, installation_id: int, key: _RequestKey) -> list[Any]:
        c = t.requests.c
        query = select(t.requests).where(
            (c.installation_id == installation_id)
            & or_(
                c.psp_reference == key.psp_reference,
                and_(c.kind == key.kind, c.request_id == key.request_id),
                c.transaction_id == key.transaction_id,
            )
        )
        return list((await conn.execute(query)).all())

    async def requests_for(
        self, installation_id: int, platform_order_id: str, *, kind: str | None = None
    ) -> list[StoredRequest]:
        query = (
            select(t.requests)
            .where(
                (t.requests.c.installation_id == installation_id)
                & (t.requests.c.platform_order_id == platform_order_id)
            )
            .order_by(t.requests.c.created_at, t.requests.c.id)
        )
        if kind is not None:
            query = query.where(t.requests.c.kind == kind)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_stored_request(r) for r in rows]

    async def mark_done(self, request_ids: Sequence[int]) -> None:
        if not request_ids:
            return
        async with self._write() as conn:
            await conn.execute(update(t.requests).where(t.requests.c.id.in_(request_ids)).values(done=True))

    # -- outcomes of provider actions, and the outbox of reports ---------------------------

    async def outcomes(self, installation_id: int, provider_order_id: str) -> list[Outcome]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(t.outcomes)
                    .where(
                        (t.outcomes.c.installation_id == installation_id)
                        & (t.outcomes.c.provider_order_id == provider_order_id)
                    )
                    .order_by(t.outcomes.c.id)
                )
            ).all()
        return [
            Outcome(
                key=r.key,
                kind=r.kind,
                status=r.status,
                amount=r.amount,
                provider_id=r.provider_id,
                request_id=r.request_id,
                parcel=r.parcel,
                capture=r.capture,
                automatic=r.automatic,
                message=r.message,
                correlation_id=r.correlation_id,
            )
            for r in rows
        ]

    async def record_outcome(
        self, installation_id: int, platform_order_id: str, provider_order_id: str, outcome: Outcome
    ) -> None:
        """Record one action's outcome. A ``done`` record stays as it is (the provider's first
        answer is the truth), and ``started`` never replaces an answer already recorded."""
        now = self.clock()
        values = {
            "platform_order_id": platform_order_id,
            "kind": outcome.kind,
            "status": outcome.status,
            "amount": outcome.amount,
            "provider_id": outcome.provider_id,
            "request_id": outcome.request_id,
            "parcel": outcome.parcel,
            "capture": outcome.capture,
            "automatic": outcome.automatic,
            "message": outcome.message,
            "correlation_id": outcome.correlation_id,
            "updated_at": now,
        }
        key = (
            (t.outcomes.c.installation_id == installation_id)
            & (t.outcomes.c.provider_order_id == provider_order_id)
            & (t.outcomes.c.key == outcome.key)
        )
        async with self._write() as conn:
            existing = (await conn.execute(select(t.outcomes.c.status).where(key))).first()
            if existing is None:
                await conn.execute(
                    insert(t.outcomes).values(
                        **values,
                        installation_id=installation_id,
                        provider_order_id=provider_order_id,
                        key=outcome.key,
                        created_at=now,
                    )
                )
            elif existing.status != "done" and not (
                outcome.status == "started" and existing.status != "started"
            ):
                await conn.execute(update(t.outcomes).where(key).values(**values))

    async def queue_reports(
        self,
        installation_id: int,
        platform_order_id: str,
        reports: Sequence[OutboxReport],
        done_request_ids: Sequence[int],
    ) -> None:
        """Put reports in the outbox and mark the requests they answer done, atomically.

        A report already in the outbox (same pspReference and type) keeps its first
        wording: the platform then sees one outcome, said one way, however often it is sent.
        """
        now = self.clock()
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        async with self._write() as conn:
            for queued in reports:
                report = queued.report
                statement = dialect.insert(t.reports).values(
                    installation_id=installation_id,
                    platform_order_id=platform_order_id,
                    transaction_id=queued.transaction_id,
                    psp_reference=report.psp_reference,
                    type=report.type,
                    amount=report.amount,
                    currency=report.currency,
                    message=report.message,
                    external_url=report.external_url,
                    state="pending",
                    created_at=now,
                )
                await conn.execute(
                    statement.on_conflict_do_nothing(
                        index_elements=["installation_id", "psp_reference", "type"]
                    )
                )
            if done_request_ids:
                await conn.execute(
                    update(t.requests).where(t.requests.c.id.in_(done_request_ids)).values(done=True)
                )

    async def order_reports(self, installation_id: int, platform_order_id: str) -> list[OutboxReport]:
        """The order's reports in the outbox, oldest first (reports from before the outbox: none)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(t.reports)
                    .where(
                        (t.reports.c.installation_id == installation_id)
                        & (t.reports.c.platform_order_id == platform_order_id)
                    )
                    .order_by(t.reports.c.id)
                )
            ).all()
        return [
            OutboxReport(
                transaction_id=r.transaction_id or "",
                report=TransactionReport(
                    r.type, r.psp_reference, r.amount, r.currency or "", r.message or "", r.external_url
                ),
                id=r.id,
                state=r.state,
                error=r.error,
            )
            for r in rows
        ]

    async def report_sent(self, report_id: int) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(t.reports)
                .where(t.reports.c.id == report_id)
                .values(state="sent", error=None, sent_at=self.clock())
            )

    async def report_refused(self, report_id: int, error: str) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(t.reports).where(t.reports.c.id == report_id).values(state="refused", error=error)
            )

    # -- needs-attention findings and authorization expiry (kom reconcile, the clock) ------

    async def replace_findings(
        self, installation_id: int, platform_order_id: str, source: str, findings: Sequence[FindingRecord]
    ) -> None:
        """The order's current findings from ``source``; the ones it no longer reports go away.
        A finding reported again keeps the time it was first found."""
        now = self.clock()
        where = (
            (t.findings.c.installation_id == installation_id)
            & (t.findings.c.platform_order_id == platform_order_id)
            & (t.findings.c.source == source)
        )
        async with self.engine.connect() as conn:
            known = await conn.execute(
                select(t.findings.c.kind, t.findings.c.subject, t.findings.c.found_at).where(where)
            )
            first_found = {(r.kind, r.subject): r.found_at for r in known}
        rows = [
            {
                "installation_id": installation_id,
                "platform_order_id": platform_order_id,
                "order_number": f.order_number,
                "source": source,
                "kind": f.kind,
                "subject": f.subject,
                "detail": f.detail,
                "suggested_action": f.suggested_action,
                "found_at": f.found_at or first_found.get((f.kind, f.subject)) or now,
            }
            for f in findings
        ]
        async with self._write() as conn:
            await conn.execute(delete(t.findings).where(where))
            if rows:
                await conn.execute(insert(t.findings), rows)

    async def findings(
        self, installation_id: int, platform_order_id: str | None = None, *, limit: int = 200
    ) -> list[FindingRecord]:
        """Current findings, newest first (one order's, or the installation's)."""
        query = (
            select(t.findings)
            .where(t.findings.c.installation_id == installation_id)
            .order_by(t.findings.c.found_at.desc(), t.findings.c.id)
            .limit(limit)
        )
        if platform_order_id is not None:
            query = query.where(t.findings.c.platform_order_id == platform_order_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            FindingRecord(
                platform_order_id=r.platform_order_id,
                kind=r.kind,
                detail=r.detail,
                suggested_action=r.suggested_action,
                source=r.source,
                order_number=r.order_number,
                subject=r.subject,
                found_at=r.found_at,
            )
            for r in rows
        ]

    async def save_authorization(self, installation_id: int, record: AuthorizationRecord) -> None:
        values = {
            "provider_order_id": record.provider_order_id,
            "state": record.state,
            "expires_at": record.expires_at,
            "unshipped_units": record.unshipped_units,
            "remaining_amount": record.remaining_amount,
            "currency": record.currency,
            "message": record.message,
            "checked_at": record.checked_at or self.clock(),
            "warned_for": record.warned_for,
            "extended_at": record.extended_at,
            "extensions": record.extensions,
        }
        key = (t.authorizations.c.installation_id == installation_id) & (
            t.authorizations.c.platform_order_id == record.platform_order_id
        )
        for _ in range(2):  # a concurrent first insert: the second round updates it
            try:
                async with self._write() as conn:
                    if (await conn.execute(update(t.authorizations).where(key).values(**values))).rowcount:
                        return
                    ids = {"installation_id": installation_id, "platform_order_id": record.platform_order_id}
                    await conn.execute(insert(t.authorizations).values(**values, **ids))
                return
            except IntegrityError:
                continue

    async def authorizations(
        self, installation_id: int, platform_order_ids: Sequence[str]
    ) -> dict[str, AuthorizationRecord]:
        if not platform_order_ids:
            return {}
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(t.authorizations).where(
                        (t.authorizations.c.installation_id == installation_id)
                        & t.authorizations.c.platform_order_id.in_(list(platform_order_ids))
                    )
                )
            ).all()
        return {r.platform_order_id: _authorization(r) for r in rows}

    async def authorizations_due(self, *, warn_before: datetime, now: datetime) -> list[tuple[int, str]]:
        """Orders whose authorization needs another look: goods unshipped and the expiry inside
        the warning window (not warned yet), or a warned one that has now expired."""
        c = t.authorizations.c
        query = (
            select(c.installation_id, c.platform_order_id)
            .where(
                (c.unshipped_units > 0)
                & c.expires_at.is_not(None)
                & (
                    ((c.state == "ok") & (c.expires_at <= warn_before))
                    | ((c.state == "warning") & (c.expires_at <= now))
                )
            )
            .order_by(c.expires_at)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(int(r.installation_id), str(r.platform_order_id)) for r in rows]


def _authorization(row: Any) -> AuthorizationRecord:
    return AuthorizationRecord(
        platform_order_id=row.platform_order_id,
        provider_order_id=row.provider_order_id,
        state=row.state,
        expires_at=row.expires_at,
        unshipped_units=row.unshipped_units,
        remaining_amount=row.remaining_amount,
        currency=row.currency,
        message=row.message,
        checked_at=row.checked_at,
        warned_for=row.warned_for,
        extended_at=row.extended_at,
        extensions=row.extensions,
    )


def _stored_request(r: Any) -> StoredRequest:
    return StoredRequest(
        r.id, r.kind, r.request_id, r.psp_reference, r.transaction_id, r.body, r.created_at, r.done
    )


@dataclass(frozen=True)
class _RequestKey:
    """What identifies a platform request, and which records it may not contradict."""

    platform_order_id: str
    kind: str
    request_id: str
    psp_reference: str
    transaction_id: str
    created_at: datetime

    def columns(self) -> dict[str, Any]:
        return {
            "platform_order_id": self.platform_order_id,
            "kind": self.kind,
            "request_id": self.request_id,
            "psp_reference": self.psp_reference,
            "transaction_id": self.transaction_id,
            "created_at": self.created_at,
        }

    def match(self, related: Sequence[Any]) -> StoredRequest | None:
        """The record of this same request, if any; RequestConflict if one names another order."""
        for r in related:
            if r.platform_order_id != self.platform_order_id:
                raise RequestConflict(self._clash(r))
        for r in related:
            same_time = (
                r.kind == self.kind and r.request_id == self.request_id and r.created_at == self.created_at
            )
            if r.psp_reference == self.psp_reference or same_time:
                return _stored_request(r)
        return None

    def _clash(self, r: Any) -> str:
        if r.psp_reference == self.psp_reference:
            what = f"this same {self.kind} request ({self.psp_reference})"
        elif r.transaction_id == self.transaction_id:
            what = f"its transaction {self.transaction_id}"
        else:
            what = f"its {self.kind} {self.request_id}"
        return (
            f"KOM has {what} on record for order {r.platform_order_id}, not for order "
            f"{self.platform_order_id}: refused, so that neither order is acted on by mistake."
        )


class _HintWriter:
    """SQLite: webhook hints written by one thread with its own connection, one statement a batch.

    Through aiosqlite every statement of a transaction is its own hand-off to a thread and
    back (begin, execute, commit, the pool's reset), each contending for the GIL with the
    event loop. Here a batch is one hand-off and one multi-row ``INSERT ... ON CONFLICT``
    run in autocommit mode: one atomic, fully synchronous SQLite commit (WAL synced before
    it returns), which callers wait for before they answer. ``_touch_many`` and the Store's
    upsert (``_upsert_hint``, used on PostgreSQL) write the same rows; tests/store checks it.
    """

    INSERT = (
        "INSERT INTO orders (installation_id, platform_order_id, order_number, state, attempts, hints, "
        "due_at, created_at, updated_at) VALUES "
    )
    ROW = "(?, ?, ?, 'pending', 0, ?, ?, ?, ?)"
    ON_CONFLICT = (
        " ON CONFLICT (installation_id, platform_order_id) DO UPDATE SET state = 'pending', "
        "hints = orders.hints + excluded.hints, due_at = excluded.due_at, attempts = 0, "
        "order_number = coalesce(excluded.order_number, orders.order_number), "
        "updated_at = excluded.updated_at"
    )
    MAX_ROWS = 500  # per statement: SQLite allows 32766 parameters

    def __init__(self, path: str) -> None:
        self.path = path
        self.connection: sqlite3.Connection | None = None
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kom-hints")

    @classmethod
    def for_url(cls, url: URL) -> _HintWriter | None:
        database = url.database or ""
        if not database or database == ":memory:" or database.startswith("file:") or url.query:
            return None  # in-memory or URI databases: leave them to the one engine
        return cls(database)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        _sqlite_pragmas(connection, None)
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    def _run(self, rows: list[tuple[Any, ...]]) -> None:
        if self.connection is None:
            self.connection = self._connect()
        for start in range(0, len(rows), self.MAX_ROWS):
            chunk = rows[start : start + self.MAX_ROWS]
            sql = self.INSERT + ", ".join([self.ROW] * len(chunk)) + self.ON_CONFLICT
            self.connection.execute(sql, [value for row in chunk for value in row])

    async def write(self, rows: list[dict[str, Any]]) -> None:
        def stamp(moment: datetime) -> str:  # SQLAlchemy's SQLite DATETIME text, in UTC
            return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

        values = [
            (
                r["installation_id"],
                r["platform_order_id"],
                r["order_number"],
                r["hints"],
                stamp(r["due_at"]),
                stamp(r["created_at"]),
                stamp(r["updated_at"]),
            )
            for r in rows
        ]
        await asyncio.get_running_loop().run_in_executor(self.thread, self._run, values)

    def _close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.thread, self._close)
        self.thread.shutdown(wait=True)


def _job(row: Any) -> OrderJob:
    return OrderJob(
        id=row.id,
        installation_id=row.installation_id,
        platform_order_id=row.platform_order_id,
        state=row.state,
        attempts=row.attempts,
        hints=row.hints,
        reason=row.reason,
        provider_order_id=row.provider_order_id,
        order_number=row.order_number,
        due_at=row.due_at,
        updated_at=row.updated_at,
        correlation_id=row.correlation_id,
    )


def _connect_args(url: str) -> dict[str, Any]:
    # SQLite: wait for the writer lock instead of failing at once when two writers meet.
    return {"timeout": 30} if url.startswith("sqlite") else {}


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    # WAL: readers (the web process) never block the writer (the worker), and vice versa.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
