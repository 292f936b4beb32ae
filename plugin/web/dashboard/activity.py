"""The order list: the orders KOM handled for one installation, newest first, by state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from plugin.store import tables as t
from plugin.store.store import OrderJob, Store

STATES = ("needs_attention", "pending", "in_sync")
PAGE_SIZE = 20


def job_view(job: OrderJob) -> dict[str, Any]:
    return {
        "id": job.platform_order_id,
        "number": job.order_number,
        "state": job.state,
        "reason": job.reason,
        "correlation_id": job.correlation_id,
        "provider_order_id": job.provider_order_id,
        "attempts": job.attempts,
        "updated_at": _iso(job.updated_at),
    }


async def state_counts(store: Store, installation_id: int) -> dict[str, int]:
    # Store has no counting method yet; a read straight from the tables is cheap and safe.
    query = (
        select(t.orders.c.state, func.count())
        .where(t.orders.c.installation_id == installation_id)
        .group_by(t.orders.c.state)
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    counts = {state: 0 for state in STATES}
    for state, count in rows:
        counts[str(state)] = int(count)
    return counts


async def order_page(store: Store, installation_id: int, state: str | None, page: int) -> dict[str, Any]:
    counts = await state_counts(store, installation_id)
    total = counts.get(state, 0) if state else sum(counts.values())
    jobs = await store.order_jobs(
        installation_id, state=state, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    return {
        "orders": [job_view(job) for job in jobs[:PAGE_SIZE]],
        "page": page,
        "page_size": PAGE_SIZE,
        "has_next": len(jobs) > PAGE_SIZE,
        "total": total,
        "counts": counts,
        "state": state,
    }


async def configured_channels(store: Store, installation_id: int) -> list[str]:
    query = (
        select(t.channel_settings.c.channel)
        .where(t.channel_settings.c.installation_id == installation_id)
        .order_by(t.channel_settings.c.channel)
    )
    async with store.engine.connect() as conn:
        return [str(row.channel) for row in (await conn.execute(query)).all()]


async def own_settings_exist(store: Store, installation_id: int, channel: str) -> bool:
    return channel in await configured_channels(store, installation_id)


async def delete_channel_settings(store: Store, installation_id: int, channel: str) -> bool:
    """Drop a channel's own settings (it then uses the default). Store has no method for this yet."""
    statement = delete(t.channel_settings).where(
        (t.channel_settings.c.installation_id == installation_id) & (t.channel_settings.c.channel == channel)
    )
    async with store.engine.begin() as conn:
        result = await conn.execute(statement)
    return bool(result.rowcount)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
