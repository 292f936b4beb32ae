"""The Dashboard's order mutations over the fake's records, with the webhooks each sends.

Inputs are Saleor global ids (as the mutations take them); outputs are records. Errors a
mutation answers in its ``errors`` list are ``SaleorError``. What fires when follows
``saleor/order/actions.py`` as observed on 3.23.28 (saleor-observed.md):

- ``orderFulfill`` (auto-approved): FULFILLMENT_CREATED, ORDER_UPDATED, and only if the
  order became fully fulfilled also FULFILLMENT_APPROVED and ORDER_FULFILLED;
- ``orderFulfillmentCancel``: FULFILLMENT_CANCELED, ORDER_UPDATED;
- ``orderFulfillmentReturnProducts``: ORDER_UPDATED only;
- ``orderGrantRefundCreate``: nothing;
- ``orderCancel``: ORDER_CANCELLED, ORDER_UPDATED, and no transaction request (the provider
  authorization stays open unless the app acts on ORDER_CANCELLED). Refused with
  CANNOT_CANCEL_ORDER while a fulfillment is not CANCELED / RETURNED / REFUNDED /
  REFUNDED_AND_RETURNED / REPLACED, or the order is already CANCELED, DRAFT or EXPIRED
  (``Order.can_cancel``, ``clean_order_cancel``).

Gift cards used at checkout (``add_gift_cards_to_order``): each card in turn pays what is
left of the total (shipping included) up to its balance; a card with nothing left to pay is
not linked to the order. Each used card gets a USED_IN_ORDER event with its balance before
and after, and the transaction then only has ``total - gift cards`` to authorize.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from .ids import from_global_id
from .money import net_from_gross, split_proportionally, to_minor
from .orders import LineSpec, build_lines, order_status, unit_price
from .state import (
    STAFF_USER_PK,
    Channel,
    Fulfillment,
    FulfillmentLine,
    GiftCard,
    GiftCardEvent,
    GrantedRefund,
    GrantedRefundLine,
    Order,
    OrderLine,
    SaleorError,
    Store,
    Transaction,
)
from .transactions import Emit

__all__ = ["CANCELLABLE_FULFILLMENTS", "STAFF", "OrderActions"]

STAFF = ("User", STAFF_USER_PK)  # the merchant's staff user in the Dashboard
# Order.can_cancel: fulfillments in these states do not block orderCancel.
CANCELLABLE_FULFILLMENTS = ("CANCELED", "REFUNDED", "REPLACED", "REFUNDED_AND_RETURNED", "RETURNED")


class OrderActions:
    def __init__(self, store: Store, emit: Emit, new_uuid: Callable[[], str]) -> None:
        self.store = store
        self.emit = emit
        self.new_uuid = new_uuid

    def _touch(self, order: Order) -> None:
        order.status = order_status(order)
        order.updated_at = self.store.now()

    def _order_line(self, order: Order, line_id: str, field: str) -> OrderLine:
        line = self.store.order_lines.get(from_global_id(line_id, "OrderLine"))
        if line is None or line.order_uuid != order.uuid:
            raise SaleorError("NOT_FOUND", f"Order line {line_id} is not in this order.", field)
        return line

    # -- checkoutComplete ----------------------------------------------------------------

    def create_order(
        self,
        specs: Sequence[LineSpec],
        *,
        channel: str,
        currency: str,
        shipping: tuple[object, object] | None,
        order_discount: object | None,
        shipping_method: str,
        gift_cards: Sequence[tuple[str, object]] = (),
    ) -> Order:
        ch = self.store.channels.get(channel)
        if ch is None:
            ch = Channel(pk=len(self.store.channels) + 1, slug=channel, currency=currency)
            self.store.channels[channel] = ch
        elif ch.currency != currency:
            raise ValueError(f"channel {channel} sells in {ch.currency}, not {currency}")
        order_uuid = self.new_uuid()
        shipping_gross = to_minor(shipping[0], currency) if shipping else 0
        shipping_rate = Decimal(str(shipping[1])) if shipping else Decimal(0)
        discount = to_minor(order_discount, currency) if order_discount is not None else 0
        undiscounted = [to_minor(s.unit_gross, currency) * s.quantity for s in specs]
        # Subtotal and shipping share an order discount in proportion to their size.
        subtotal_discount, shipping_discount = split_proportionally(
            discount, [sum(undiscounted), shipping_gross]
        )
        lines = build_lines(
            order_uuid,
            specs,
            currency,
            subtotal_discount,
            (self.new_uuid() for _ in specs),
            (self.store.next_pk("variant") for _ in specs),
        )
        now = self.store.now()
        order = Order(
            uuid=order_uuid,
            number=self.store.next_pk("order_number"),
            token=order_uuid,
            channel_pk=ch.pk,
            currency=currency,
            created=now,
            updated_at=now,
            lines=lines,
            shipping_gross=shipping_gross - shipping_discount,
            shipping_net=net_from_gross(shipping_gross - shipping_discount, shipping_rate),
            undiscounted_shipping_gross=shipping_gross,
            shipping_tax_rate=shipping_rate,
            shipping_method_name=shipping_method if shipping else None,
            discount=discount,
        )
        self.store.orders[order.uuid] = order
        for line in lines:
            self.store.order_lines[line.uuid] = line
        self._pay_with_gift_cards(order, gift_cards)
        self.emit("ORDER_CREATED", None, order=order)  # observed: issuingPrincipal null
        self.emit("ORDER_CONFIRMED", None, order=order)
        return order

    def _pay_with_gift_cards(self, order: Order, cards: Sequence[tuple[str, object]]) -> None:
        """``add_gift_cards_to_order``: the cards pay the total in turn, up to their balance."""
        left = sum(line.total_gross for line in order.lines) + order.shipping_gross
        now = self.store.now()
        for code, balance in cards:
            initial = to_minor(balance, order.currency)
            if initial <= 0:
                raise ValueError(f"gift card {code} needs a positive balance")
            card = GiftCard(
                pk=self.store.next_pk("gift_card"),
                code=code,
                currency=order.currency,
                initial_balance=initial,
                current_balance=initial,
                created=now,
            )
            card.events.append(GiftCardEvent(self.store.next_pk("gift_card_event"), "ISSUED", now))
            self.store.gift_cards[card.pk] = card
            if left <= 0:
                continue  # Saleor links only the cards that paid something
            used = min(card.current_balance, left)
            old = card.current_balance
            card.current_balance -= used
            left -= used
            card.last_used_on = now
            card.used_by_email = order.user_email
            card.events.append(
                GiftCardEvent(
                    self.store.next_pk("gift_card_event"),
                    "USED_IN_ORDER",
                    now,
                    order_uuid=order.uuid,
                    current_balance=card.current_balance,
                    old_current_balance=old,
                )
            )
            order.gift_card_pks.append(card.pk)

    def gift_card_total(self, order: Order) -> int:
        """What the order's gift cards paid (Σ old − current balance of USED_IN_ORDER events)."""
        return sum(
            (event.old_current_balance or 0) - (event.current_balance or 0)
            for pk in order.gift_card_pks
            for event in self.store.gift_cards[pk].events
            if event.type == "USED_IN_ORDER" and event.order_uuid == order.uuid
        )

    # -- orderCancel ---------------------------------------------------------------------

    def cancel_order(self, order: Order) -> Order:
        blocking = [f for f in order.fulfillments if f.status not in CANCELLABLE_FULFILLMENTS]
        if blocking or order.status in ("CANCELED", "DRAFT", "EXPIRED"):
            raise SaleorError("CANNOT_CANCEL_ORDER", "This order can't be canceled.", "order")
        order.status = "CANCELED"
        order.updated_at = self.store.now()
        self.emit("ORDER_CANCELLED", STAFF, order=order)
        self.emit("ORDER_UPDATED", STAFF, order=order)
        return order

    # -- fulfillments --------------------------------------------------------------------

    def _new_fulfillment(self, order: Order, status: str, tracking_number: str = "") -> Fulfillment:
        fulfillment = Fulfillment(
            pk=self.store.next_pk("fulfillment"),
            order_uuid=order.uuid,
            fulfillment_order=order.next_fulfillment_order,
            status=status,
            created=self.store.now(),
            tracking_number=tracking_number,
        )
        order.next_fulfillment_order += 1
        order.fulfillments.append(fulfillment)
        self.store.fulfillments[fulfillment.pk] = fulfillment
        return fulfillment

    def fulfill(
        self, order: Order, lines: Mapping[str, int], tracking_number: str, notify_customer: bool
    ) -> Fulfillment:
        picked = []
        for line_id, quantity in lines.items():
            line = self._order_line(order, line_id, "orderLineId")
            left = line.quantity - line.quantity_fulfilled
            if quantity <= 0 or quantity > left:
                raise SaleorError("FULFILL_ORDER_LINE", f"Only {left} items left to fulfill.", "orderLineId")
            picked.append((line, quantity))
        if not picked:
            raise SaleorError("REQUIRED", "No lines to fulfill.", "lines")
        fulfillment = self._new_fulfillment(order, "FULFILLED", tracking_number)
        for line, quantity in picked:
            line.quantity_fulfilled += quantity
            fulfillment.lines.append(
                FulfillmentLine(self.store.next_pk("fulfillment_line"), line.uuid, quantity)
            )
        self._touch(order)
        complete = order.status == "FULFILLED"
        subjects = {"order": order, "fulfillment": fulfillment, "notify_customer": notify_customer}
        self.emit("FULFILLMENT_CREATED", STAFF, **subjects)
        if complete:
            self.emit("FULFILLMENT_APPROVED", STAFF, **subjects)
        self.emit("ORDER_UPDATED", STAFF, order=order)
        if complete:
            self.emit("ORDER_FULFILLED", STAFF, order=order)
        return fulfillment

    def cancel_fulfillment(self, fulfillment_id: str) -> Fulfillment:
        fulfillment = self.store.fulfillments.get(int(from_global_id(fulfillment_id, "Fulfillment")))
        if fulfillment is None:
            raise SaleorError("NOT_FOUND", f"Couldn't resolve to a node: {fulfillment_id}", "id")
        if fulfillment.status not in ("FULFILLED", "WAITING_FOR_APPROVAL"):
            raise SaleorError(
                "CANNOT_CANCEL_FULFILLMENT", "This fulfillment can't be canceled", "fulfillment"
            )
        order = self.store.orders[fulfillment.order_uuid]
        for line in fulfillment.lines:
            self.store.order_lines[line.order_line_uuid].quantity_fulfilled -= line.quantity
        fulfillment.status = "CANCELED"
        self._touch(order)
        self.emit("FULFILLMENT_CANCELED", STAFF, order=order, fulfillment=fulfillment)
        self.emit("ORDER_UPDATED", STAFF, order=order)
        return fulfillment

    def return_products(self, order: Order, lines: Mapping[str, int]) -> Fulfillment:
        """Move quantities into a new RETURNED fulfillment; emptied ones are deleted."""
        moves: list[tuple[Fulfillment, FulfillmentLine, int]] = []
        for line_id, quantity in lines.items():
            found = self.store.fulfillment_line(int(from_global_id(line_id, "FulfillmentLine")))
            if found is None or found[0].order_uuid != order.uuid:
                raise SaleorError(
                    "NOT_FOUND", f"Fulfillment line {line_id} is not in this order.", "fulfillmentLineId"
                )
            fulfillment, line = found
            if fulfillment.status != "FULFILLED":
                raise SaleorError("INVALID", "Only fulfilled lines can be returned.", "fulfillmentLineId")
            if quantity <= 0 or quantity > line.quantity:
                raise SaleorError(
                    "INVALID_QUANTITY",
                    f"Only {line.quantity} items can be returned from this line.",
                    "quantity",
                )
            moves.append((fulfillment, line, quantity))
        if not moves:
            raise SaleorError("REQUIRED", "No lines to return.", "fulfillmentLines")
        returned = self._new_fulfillment(order, "RETURNED")
        merged: dict[str, FulfillmentLine] = {}  # one returned line per order line
        for fulfillment, line, quantity in moves:
            target = merged.get(line.order_line_uuid)
            if target is None:
                target = FulfillmentLine(self.store.next_pk("fulfillment_line"), line.order_line_uuid, 0)
                merged[line.order_line_uuid] = target
                returned.lines.append(target)
            target.quantity += quantity
            line.quantity -= quantity
            fulfillment.lines = [fl for fl in fulfillment.lines if fl.quantity > 0]
        for fulfillment in {f.pk: f for f, _, _ in moves}.values():
            if not fulfillment.lines:  # observed: the original fulfillment disappears
                order.fulfillments.remove(fulfillment)
                del self.store.fulfillments[fulfillment.pk]
        self._touch(order)
        self.emit("ORDER_UPDATED", STAFF, order=order)
        return returned

    # -- orderGrantRefundCreate ----------------------------------------------------------

    def grant_refund(
        self,
        order: Order,
        transaction: Transaction,
        lines: Mapping[str, int | tuple[int, str | None]],
        *,
        include_shipping: bool,
        amount: object | None,
        reason: str | None,
    ) -> GrantedRefund:
        if transaction.order_uuid != order.uuid:
            raise SaleorError("INVALID", "The transaction does not belong to the order.", "transactionId")
        grants = [self.store.granted_refunds[pk] for pk in order.granted_refund_pks]
        granted_lines: list[GrantedRefundLine] = []
        computed = 0
        for line_id, value in lines.items():
            quantity, line_reason = value if isinstance(value, tuple) else (value, None)
            line = self._order_line(order, line_id, "lines")
            already = sum(gl.quantity for g in grants for gl in g.lines if gl.order_line_uuid == line.uuid)
            if quantity <= 0 or already + quantity > line.quantity:
                raise SaleorError(
                    "QUANTITY_GREATER_THAN_AVAILABLE",
                    f"Only {line.quantity - already} items can be granted for this line.",
                    "lines",
                )
            pk = self.store.next_pk("grant_line")
            granted_lines.append(GrantedRefundLine(pk, line.uuid, quantity, line_reason))
            computed += unit_price(line)[0] * quantity
        if include_shipping:
            if any(g.shipping_costs_included for g in grants):
                raise SaleorError(
                    "SHIPPING_COSTS_ALREADY_GRANTED",
                    "Shipping costs have already been granted.",
                    "grantRefundForShipping",
                )
            computed += order.shipping_gross
        if amount is not None:
            value_minor = to_minor(amount, order.currency)
            if value_minor > transaction.charged:
                raise SaleorError(
                    "AMOUNT_GREATER_THAN_AVAILABLE",
                    "Amount cannot be greater than the charged amount of the transaction.",
                    "amount",
                )
        elif not granted_lines and not include_shipping:
            raise SaleorError(
                "REQUIRED",
                "You must provide at least one of `amount`, `lines`, `grantRefundForShipping`.",
                "amount",
            )
        else:
            value_minor = min(computed, transaction.charged)  # observed: capped, silently
        now = self.store.now()
        grant = GrantedRefund(
            pk=self.store.next_pk("granted_refund"),
            order_uuid=order.uuid,
            transaction_token=transaction.token,
            amount=value_minor,
            created_at=now,
            updated_at=now,
            reason=reason,
            shipping_costs_included=include_shipping,
            lines=granted_lines,
        )
        self.store.granted_refunds[grant.pk] = grant
        order.granted_refund_pks.append(grant.pk)
        order.updated_at = now
        return grant
