"""`kom reconcile`: runs plugin.service.reconcile on the configured database and renders its
report as an aligned plain-text table or as JSON.

Exit codes: 0 every order checked is in sync; 1 findings (or an installation whose order
list could not be read); 2 the installation or order asked for is unknown, or the database's
schema is not current (run `kom migrate`).
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from plugin.service.reconcile import OrderCheck, Report, Scope, ScopeError, reconcile

DEFAULT_SINCE = timedelta(days=30)
_RELATIVE = re.compile(r"(?P<n>\d+)\s*(?P<unit>[dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_WIDTHS = (18, 24, 64, 52)  # order, finding, detail, suggested action (wrapped beyond these)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30d``, ``12h``, ``90m`` (that long ago), an ISO date or an ISO date-time (UTC if naive)."""
    now = now or datetime.now(UTC)
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        return now - timedelta(**{_UNITS[relative["unit"]]: int(relative["n"])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            day = date.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a duration (30d, 12h) or an ISO date/date-time") from None
        moment = datetime(day.year, day.month, day.day)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def run(scope: Scope, *, as_json: bool) -> tuple[int, str]:
    """Reconcile with the process' settings; (exit code, what to print)."""
    from plugin.composition import Services
    from plugin.observability import http_client
    from plugin.runtime import load_settings, open_store
    from plugin.store.schema import SchemaOutOfDate

    settings = load_settings()
    try:
        store = await open_store(settings)
    except SchemaOutOfDate as exc:
        return 2, f"error: {exc}"
    try:
        async with http_client(settings.provider_timeout_seconds) as http:
            services = Services(settings=settings, store=store, http=http)
            try:
                report = await reconcile(
                    store,
                    services.platform,
                    services.provider,
                    scope,
                    now=datetime.now(UTC),
                    window=timedelta(hours=settings.authorization_warning_hours),
                )
            except ScopeError as exc:
                return 2, f"error: {exc}"
    finally:
        await store.close()
    return (0 if report.clean else 1), (render_json(report) if as_json else render_table(report))


def _label(check: OrderCheck, several: bool) -> str:
    label = f"#{check.order_number}" if check.order_number else check.order_id
    return f"{check.installation_id}:{label}" if several else label


def render_table(report: Report) -> str:
    several = len({c.installation_id for c in report.checks}) > 1
    rows = [(_label(check, several), f.kind, f.detail, f.suggested_action) for check, f in report.findings]
    out: list[str] = []
    if rows:
        out += _table(("order", "finding", "detail", "suggested action"), rows)
        out.append("")
    out.extend(f"problem: {problem}" for problem in report.problems)
    out.append(_summary(report))
    return "\n".join(out)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Aligned columns; each cell wrapped to its column's width, so a row spans several lines."""
    cells = [
        [textwrap.wrap(text, limit) or [""] for text, limit in zip(row, _WIDTHS, strict=True)] for row in rows
    ]
    widths = [max(len(header[i]), *(len(x) for row in cells for x in row[i])) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        for n in range(max(len(cell) for cell in row)):
            parts = [(cell[n] if n < len(cell) else "").ljust(w) for cell, w in zip(row, widths, strict=True)]
            lines.append("  ".join(parts).rstrip())
    return lines


def _summary(report: Report) -> str:
    checked = [c for c in report.checks if c.skipped is None]
    installations = len({c.installation_id for c in report.checks})
    where = f"{len(checked)} order{'s' if len(checked) != 1 else ''} on {installations} installation" + (
        "s" if installations != 1 else ""
    )
    skipped = len(report.checks) - len(checked)
    also = f" ({skipped} without a payment of KOM's skipped)" if skipped else ""
    findings = len(report.findings)
    if not findings:
        return f"Checked {where}{also}: everything in sync."
    orders = len({(c.installation_id, c.order_id) for c, _ in report.findings})
    return (
        f"Checked {where}{also}: {findings} finding{'s' if findings != 1 else ''} on "
        f"{orders} order{'s' if orders != 1 else ''}."
    )


def render_json(report: Report) -> str:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    body: dict[str, Any] = {
        "clean": report.clean,
        "checked": len([c for c in report.checks if c.skipped is None]),
        "findings": [
            {
                "installation": check.installation_id,
                "api_url": check.api_url,
                "order_id": check.order_id,
                "order_number": check.order_number,
                "provider_order_id": check.provider_order_id,
                "kind": f.kind,
                "subject": f.subject,
                "detail": f.detail,
                "suggested_action": f.suggested_action,
            }
            for check, f in report.findings
        ],
        "orders": [
            {
                "installation": check.installation_id,
                "order_id": check.order_id,
                "order_number": check.order_number,
                "provider_order_id": check.provider_order_id,
                "authorization_expires_at": when(check.expires_at),
                "findings": len(check.findings),
                "skipped": check.skipped,
            }
            for check in report.checks
        ],
        "problems": report.problems,
    }
    return json.dumps(body, indent=2, ensure_ascii=False)
