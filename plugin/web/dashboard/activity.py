"""The order list: the orders KOM handled for one installation, newest first, by state, each with
its authorization's expiry; and the needs-attention findings (`kom reconcile`, the authorization
clock) of the installation's orders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plugin.service.records import AuthorizationRecord, FindingRecord
from plugin.store.store import OrderJob, Store

STATES = ("needs_attention", "pending", "in_sync")
MISALLOCATED = "refund_misallocated"  # a refund broke the provider's allocation (FindingKind)
PAGE_SIZE = 20
MAX_FINDINGS = 100


def job_view(job: OrderJob, authorization: AuthorizationRecord | None = None) -> dict[str, Any]:
    return {
        "id": job.platform_order_id,
        "number": job.order_number,
        "state": job.state,
        "reason": job.reason,
        "correlation_id": job.correlation_id,
        "provider_order_id": job.provider_order_id,
        "attempts": job.attempts,
        "updated_at": _iso(job.updated_at),
        "authorization": authorization_view(authorization),
        "fix_in_settings": job.state == "needs_attention" and fixed_in_settings(job.reason),
    }


def fixed_in_settings(reason: str | None) -> bool:
    """Wrong credentials (HTTP 401) or no settings for the channel: the page links to Settings."""
    text = reason or ""
    return "credentials (HTTP 401)" in text or text.startswith("KOM is not configured for channel")


def authorization_view(record: AuthorizationRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "state": record.state,
        "expires_at": _iso(record.expires_at),
        "unshipped_units": record.unshipped_units,
        "message": record.message,
        "extended_at": _iso(record.extended_at),
        "extensions": record.extensions,
    }


def finding_view(finding: FindingRecord, tracked: bool | None = None) -> dict[str, Any]:
    return {
        "order_id": finding.platform_order_id,
        "order_number": finding.order_number,
        "kind": finding.kind,
        "source": finding.source,
        "subject": finding.subject,
        "detail": finding.detail,
        "suggested_action": finding.suggested_action,
        "found_at": _iso(finding.found_at),
        "tracked": tracked,
    }


async def current_findings(
    store: Store, installation_id: int, order_id: str | None = None
) -> list[FindingRecord]:
    """The findings to show: reconcile and the clock may both report an expiry; show it once."""
    seen: set[tuple[str, str, str | None]] = set()
    kept = []
    for finding in await store.findings(installation_id, order_id, limit=MAX_FINDINGS):
        key = (finding.platform_order_id, finding.kind, finding.subject)
        if key not in seen:
            seen.add(key)
            kept.append(finding)
    return kept


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
    shown = jobs[:PAGE_SIZE]
    clocks = await store.authorizations(installation_id, [job.platform_order_id for job in shown])
    findings = await current_findings(store, installation_id)
    tracked = {
        order_id: await store.order_job(installation_id, order_id) is not None
        for order_id in {f.platform_order_id for f in findings}
    }
    per_order: dict[str, int] = {}
    for finding in findings:
        per_order[finding.platform_order_id] = per_order.get(finding.platform_order_id, 0) + 1
    broken = {f.platform_order_id for f in findings if f.kind == MISALLOCATED}
    return {
        "orders": [
            {
                **job_view(job, clocks.get(job.platform_order_id)),
                "findings": per_order.get(job.platform_order_id, 0),
                "allocation_broken": job.platform_order_id in broken,
            }
            for job in shown
        ],
        "page": page,
        "page_size": PAGE_SIZE,
        "has_next": len(jobs) > PAGE_SIZE,
        "total": total,
        "counts": counts,
        "state": state,
        "findings": [finding_view(f, tracked[f.platform_order_id]) for f in findings],
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
