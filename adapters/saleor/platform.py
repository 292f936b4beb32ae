"""The Platform port over one Saleor installation (GraphQL with the app token)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import httpx

from adapters.saleor.client import SaleorClient
from adapters.saleor.snapshot import order_snapshot
from plugin.domain.money import to_major
from plugin.service.ports import PlatformOrder, ReportRefused, TransactionReport
from plugin.service.records import Installation

_REPORT_WORDS = {
    "CHARGE_SUCCESS": "capture",
    "CHARGE_FAILURE": "answer to the capture request",
    "REFUND_SUCCESS": "refund",
    "REFUND_FAILURE": "refused refund",
    "CANCEL_SUCCESS": "cancellation",
    "CANCEL_FAILURE": "refused cancellation",
}


class SaleorPlatform:
    def __init__(self, client: SaleorClient, app_id: str) -> None:
        self._client = client
        self._app_id = app_id

    @classmethod
    def for_installation(cls, installation: Installation, http: httpx.AsyncClient) -> SaleorPlatform:
        return cls(SaleorClient(installation.api_url, installation.token, http), installation.app_id)

    async def fetch_order(self, order_id: str) -> PlatformOrder:
        saleor = order_snapshot(await self._client.order(order_id), app_id=self._app_id)
        charged = saleor.charged if saleor.transaction_id is not None else None
        return PlatformOrder(
            saleor.order, saleor.channel, saleor.transaction_id, saleor.provider_order_id, charged
        )

    async def report(
        self, transaction_id: str, report: TransactionReport, actions: Sequence[str] | None = None
    ) -> None:
        # Failures carry no amount: Saleor then takes the amount of the request they close.
        failure = report.type.endswith("_FAILURE")
        result = await self._client.report_transaction_event(
            transaction_id=transaction_id,
            type=report.type,
            psp_reference=report.psp_reference,
            amount=None if failure else to_major(report.amount, report.currency),
            message=report.message,
            external_url=report.external_url,
            available_actions=actions,
        )
        if result.errors and not result.already_processed:
            problems = "; ".join(str(e.message or e.code).rstrip(".") for e in result.errors)
            what = _REPORT_WORDS.get(report.type, "outcome")
            raise ReportRefused(f"Saleor did not record the {what} {report.psp_reference}: {problems}.")

    async def recent_orders(self, since: datetime) -> list[str]:
        return await self._client.recent_orders(since)
