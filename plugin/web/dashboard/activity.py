"""The order list: the orders KOM handled for one installation, newest first, by state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
    counts = {state: 0 for state in STATES}
    counts.update(await store.order_counts(installation_id))
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
    return await store.channels(installation_id)


async def own_settings_exist(store: Store, installation_id: int, channel: str) -> bool:
    return channel in await store.channels(installation_id)


async def delete_channel_settings(store: Store, installation_id: int, channel: str) -> bool:
    """Drop a channel's own settings (it then uses the default)."""
    return await store.delete_settings(installation_id, channel)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
