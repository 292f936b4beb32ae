"""``kom demo``: the seed scenario, end to end over real HTTP, printed as invoices.

Starts the Order Management sandbox on a free loopback port and drives it through KOM's
real planner, sync use case and Klarna client. Each capture is an invoice for the shopper;
each refund shows the invoice the sandbox's allocation ledger booked it on (the ledger
applies the three conditions of Klarna's "Refund allocation" article).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx

from adapters.klarna.client import OrderManagementClient
from adapters.klarna.models import Order as KlarnaOrder
from adapters.klarna.provider import KlarnaProvider
from adapters.klarna.sandbox.app import create_app
from adapters.klarna.sandbox.auth import DEMO_API_KEY
from adapters.klarna.sandbox.server import serve_in_thread
from plugin.domain.money import format_money
from plugin.domain.rounding import tax_of_gross
from plugin.domain.snapshot import (
    Order,
    OrderLine,
    RefundLine,
    RefundRequest,
    Shipment,
    ShipmentLine,
    Shipping,
    Tracking,
)
from plugin.service.sync import sync_order

_T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _line(line_id: str, sku: str, name: str, quantity: int, unit_price: int) -> OrderLine:
    total = quantity * unit_price
    return OrderLine(
        id=line_id,
        sku=sku,
        name=name,
        quantity=quantity,
        unit_price=unit_price,
        total_amount=total,
        tax_rate=2500,
        total_tax_amount=tax_of_gross(total, 2500),
    )


def seed_order(with_shipping: bool = False) -> Order:
    """The article's order: T-shirt and jeans in parcel A, sneakers in parcel B."""
    return Order(
        id="demo-1001",
        number="1001",
        currency="EUR",
        lines=(
            _line("line-tshirt", "TSHIRT-M-BLUE", "T-shirt", 1, 3000),
            _line("line-jeans", "JEANS-32-32", "Jeans", 1, 7000),
            _line("line-sneakers", "SNEAKERS-42", "Sneakers", 1, 10000),
        ),
        shipping=Shipping("Home delivery", 495, 2500, 99) if with_shipping else None,
        shipments=(
            Shipment(
                "parcel-A",
                _T0,
                (ShipmentLine("line-tshirt", 1), ShipmentLine("line-jeans", 1)),
                Tracking("PostNord", "PN-1001-A"),
            ),
            Shipment(
                "parcel-B",
                _T0 + timedelta(days=1),
                (ShipmentLine("line-sneakers", 1),),
                Tracking("DHL", "DHL-77"),
            ),
        ),
    )


class _Printer:
    def __init__(self, color: bool) -> None:
        self.color = color

    def heading(self, text: str) -> None:
        print()
        print(f"\033[1m{text}\033[0m" if self.color else text)
        print("=" * len(text))

    def table(self, rows: list[list[str]], header: list[str]) -> None:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        fmt = "  ".join(f"{{:{'>' if i in self._numeric(header) else '<'}{w}}}" for i, w in enumerate(widths))
        print(("  " + fmt.format(*header)).rstrip())
        print("  " + "  ".join("-" * w for w in widths))
        for row in rows:
            print(("  " + fmt.format(*row)).rstrip())

    @staticmethod
    def _numeric(header: list[str]) -> set[int]:
        return {i for i, h in enumerate(header) if h in {"qty", "amount", "tax", "left", "refunded"}}


async def _create_order(http: httpx.AsyncClient, base_url: str, order: Order) -> str:
    amount = sum(line.total_amount for line in order.lines) + (order.shipping.amount if order.shipping else 0)
    response = await http.post(
        f"{base_url}/_sandbox/orders", json={"purchase_currency": order.currency, "order_amount": amount}
    )
    response.raise_for_status()
    return str(response.json()["order_id"])


def _print_invoices(out: _Printer, state: KlarnaOrder, currency: str) -> None:
    for capture in state.captures:
        left = capture.captured_amount - (capture.refunded_amount or 0)
        print(
            f"\n  Invoice {capture.klarna_reference}  ({capture.description})  captured "
            f"{format_money(capture.captured_amount, currency)}, refunded "
            f"{format_money(capture.refunded_amount or 0, currency)}, left {format_money(left, currency)}"
        )
        out.table(
            [
                [
                    line.reference or "",
                    line.name,
                    str(line.quantity),
                    format_money(line.total_amount, currency),
                    format_money(line.total_tax_amount or 0, currency),
                ]
                for line in capture.order_lines or []
            ],
            ["reference", "item", "qty", "amount", "tax"],
        )


async def _print_refunds(
    out: _Printer, http: httpx.AsyncClient, base_url: str, state: KlarnaOrder, currency: str
) -> bool:
    ledger = (await http.get(f"{base_url}/_sandbox/orders/{state.order_id}/ledger")).json()
    booked = {entry["refund_id"]: entry for entry in ledger["refunds"]}
    rows = []
    all_allocated = True
    for refund in state.refunds:
        entry = booked[refund.refund_id]
        all_allocated &= bool(entry["allocated"])
        where = (
            entry["capture_klarna_reference"] if entry["allocated"] else f"NOT ALLOCATED: {entry['reason']}"
        )
        refs = ", ".join(f"{line.reference} ×{line.quantity}" for line in refund.order_lines or [])
        rows.append([refund.description or "", refs, format_money(refund.refunded_amount, currency), where])
    out.table(rows, ["refund", "lines", "amount", "booked on invoice"])
    return all_allocated


def two_shirts_order() -> Order:
    """The same item in two parcels: one T-shirt (with jeans) in parcel A, one alone in parcel B."""
    return Order(
        id="demo-1003",
        number="1003",
        currency="EUR",
        lines=(
            _line("line-tshirt", "TSHIRT-M-BLUE", "T-shirt", 2, 3000),
            _line("line-jeans", "JEANS-32-32", "Jeans", 1, 7000),
        ),
        shipments=(
            Shipment(
                "parcel-A",
                _T0,
                (ShipmentLine("line-tshirt", 1), ShipmentLine("line-jeans", 1)),
                Tracking("PostNord", "PN-1003-A"),
            ),
            Shipment(
                "parcel-B",
                _T0 + timedelta(days=1),
                (ShipmentLine("line-tshirt", 1),),
                Tracking("DHL", "DHL-78"),
            ),
        ),
    )


def _return_parcel(order: Order, shipment_id: str) -> Order:
    """What the platform shows after every unit of one parcel came back (Saleor drops the parcel)."""
    gone = next(s for s in order.shipments if s.id == shipment_id)
    return replace(
        order,
        shipments=tuple(s for s in order.shipments if s.id != shipment_id),
        returned=(*order.returned, *gone.lines),
    )


async def _scenario(
    out: _Printer,
    http: httpx.AsyncClient,
    base_url: str,
    title: str,
    order: Order,
    returns: RefundRequest,
    returned_parcel: str | None = None,
) -> bool:
    client = OrderManagementClient(base_url=base_url, api_key=DEMO_API_KEY, http_client=http)
    provider = KlarnaProvider(client)
    klarna_id = await _create_order(http, base_url, order)
    out.heading(f"{title}: two parcels, two captures")
    result = await sync_order(order, klarna_id, provider)
    print(f"  KOM made {len(result.done)} captures on Klarna order {klarna_id}")
    state = await client.get_order(klarna_id)
    _print_invoices(out, state, order.currency)

    if returned_parcel is not None:
        order = _return_parcel(order, returned_parcel)
    order = replace(order, refunds=(returns,))
    out.heading(f"{title}: {returns.reason}")
    result = await sync_order(order, klarna_id, provider)
    for refusal in result.refusals:
        print(f"  refused: {refusal.message}")
    state = await client.get_order(klarna_id)
    ok = await _print_refunds(out, http, base_url, state, order.currency)
    _print_invoices(out, state, order.currency)
    again = await sync_order(order, klarna_id, provider)
    print(f"\n  Running the sync again changes nothing: {len(again.done)} new provider calls.")
    return ok and not again.done


async def _through_saleor(out: _Printer) -> bool | None:
    """The same story driven by Saleor events: fake Saleor -> KOM under uvicorn -> sandbox.

    Needs the Saleor schema (``../shared`` or ``$KOM_SHARED_DIR``) and the repository's
    test fakes; returns None (skipped) when they are not there.
    """
    try:
        from tests.e2e.harness import world
        from tests.fakes.saleor.schema import schema_path
    except ImportError as exc:
        print(f"\n(Saleor part skipped: the repository's test fakes are not importable here: {exc})")
        return None
    if not schema_path().is_file():
        print(f"\n(Saleor part skipped: no Saleor schema at {schema_path()}; set KOM_SHARED_DIR)")
        return None
    import tempfile
    from pathlib import Path

    out.heading("Through Saleor: webhooks in, captures and refunds out, outcomes reported back")
    with tempfile.TemporaryDirectory() as tmp:
        async with world(Path(tmp)) as w:
            await w.install()
            print(f"  KOM installed in a local Saleor ({w.saleor.api_url}) from {w.kom_url}/api/manifest")
            lines = [
                ("TSHIRT-M-BLUE", "T-shirt", 1, "30.00", "0.25"),
                ("JEANS-32-32", "Jeans", 1, "70.00", "0.25"),
                ("SNEAKERS-42", "Sneakers", 1, "100.00", "0.25"),
            ]
            order = await w.new_order(lines, shipping=("4.95", "0.25"))
            w.saleor.fulfill(order.id, {order.lines[0]: 1, order.lines[1]: 1}, tracking_number="PN-1001-A")
            await w.settle()
            w.saleor.fulfill(order.id, {order.lines[2]: 1}, tracking_number="DHL-77")
            await w.settle()
            grant = w.saleor.grant_refund(order.id, order.transaction, {order.lines[0]: 1, order.lines[2]: 1})
            w.saleor.request_refund_for_granted_refund(grant)
            await w.settle()
            transaction = w.saleor.transaction(order.transaction)
            rows = [
                [event.type, event.psp_reference[:36], str(event.amount), event.message]
                for event in transaction.events
                if event.type.endswith("_SUCCESS") or event.type.endswith("_FAILURE")
            ]
            print(f"  Saleor order #{order.number}, transaction events KOM reported:")
            out.table(rows, ["event", "pspReference", "amount", "message"])
            ledger = await w.ledger(order)
            ok = all(entry["allocated"] for entry in ledger["refunds"]) and len(ledger["refunds"]) == 2

            # The same item in two parcels; the shopper sends back the T-shirt of parcel 2.
            two = await w.new_order([(*lines[0][:2], 2, *lines[0][3:]), lines[1]])
            w.saleor.fulfill(two.id, {two.lines[0]: 1, two.lines[1]: 1}, tracking_number="PN-1004-A")
            await w.settle()
            second = w.saleor.fulfill(two.id, {two.lines[0]: 1}, tracking_number="DHL-79")
            await w.settle()
            w.saleor.return_products(two.id, {second.line_ids[two.lines[0]]: 1})
            grant = w.saleor.grant_refund(two.id, two.transaction, {two.lines[0]: 1})
            w.saleor.request_refund_for_granted_refund(grant)
            await w.settle()
            invoices = {c.capture_id: c.klarna_reference for c in w.klarna(two).captures}
            booked = [entry for entry in (await w.ledger(two))["refunds"]]
            print(
                f"\n  Saleor order #{two.number}: two T-shirts shipped in two parcels "
                f"(invoices {', '.join(invoices.values())}); the T-shirt of parcel 2 came back"
            )
            out.table(
                [
                    [
                        entry["refund_id"][:36],
                        format_money(entry["refunded_amount"], "EUR"),
                        invoices.get(entry["capture_id"] or "", "NOT ALLOCATED"),
                    ]
                    for entry in booked
                ],
                ["refund", "amount", "booked on invoice"],
            )
            second_invoice = list(invoices)[1]
            return ok and [entry["capture_id"] for entry in booked] == [second_invoice]


async def run_demo(color: bool = True) -> int:
    out = _Printer(color)
    with serve_in_thread(create_app()) as base_url:
        print(f"Order Management sandbox listening on {base_url}")
        async with httpx.AsyncClient() as http:
            seed = seed_order()
            ok = await _scenario(
                out,
                http,
                base_url,
                "Seed order",
                seed,
                RefundRequest(
                    "refund-1",
                    _T0 + timedelta(days=5),
                    (RefundLine("line-sneakers", 1),),
                    reason="Returning the sneakers",
                ),
            )
            harder = replace(seed_order(with_shipping=True), id="demo-1002", number="1002")
            ok &= await _scenario(
                out,
                http,
                base_url,
                "Harder case",
                harder,
                RefundRequest(
                    "refund-2",
                    _T0 + timedelta(days=5),
                    (RefundLine("line-tshirt", 1), RefundLine("line-sneakers", 1)),
                    include_shipping=True,
                    reason="Return spanning both parcels, shipping refunded",
                ),
            )
            ok &= await _scenario(
                out,
                http,
                base_url,
                "Same item in two parcels",
                two_shirts_order(),
                RefundRequest(
                    "refund-3",
                    _T0 + timedelta(days=5),
                    (RefundLine("line-tshirt", 1),),
                    reason="The T-shirt of parcel B comes back (the platform does not say which one)",
                ),
                returned_parcel="parcel-B",
            )
    through_saleor = await _through_saleor(out)
    ok &= through_saleor is not False
    print()
    print("Every refund was booked on the invoice that shipped its goods." if ok else "ALLOCATION FAILED")
    return 0 if ok else 1
