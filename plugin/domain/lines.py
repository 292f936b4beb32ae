"""Cutting one line into parts (parcels, returns) whose amounts and taxes add up exactly.

Every part is cut from what is left of the line: ``k`` of the ``n`` units left are worth
``ceil(left * k / n)``, and the part that completes the line takes exactly what is left.
Taxes are cut cumulatively so that each part's tax stays within Klarna's ±1 tolerance and
all parts' taxes add up to the line's tax.
"""

from __future__ import annotations

from plugin.domain.actions import PlannedLine
from plugin.domain.provider import ProviderLine
from plugin.domain.rounding import tax_of_gross, tax_within_tolerance


def value_of_next_units(amount_left: int, quantity_left: int, units: int) -> int:
    """Value of the next ``units`` of a line that has ``amount_left`` over ``quantity_left`` units.

    Rounded up, so a part is worth nothing only when nothing is left of the line (a part
    that is free now stays free, whatever happens to the line later); the part that takes
    the last unit takes exactly what is left. ``n`` units never cost more than ``n`` list
    prices, because what is left never does.
    """
    if units >= quantity_left:
        return amount_left
    if amount_left <= 0:
        return 0
    return -(-amount_left * units // quantity_left)


def clamp_tax(amount: int, tax: int, tax_rate: int) -> int:
    """Nearest tax to ``tax`` that Klarna accepts for ``amount`` at ``tax_rate``."""
    denominator = 10_000 + tax_rate
    low = -((denominator - amount * tax_rate) // denominator)  # ceil((a*r - d) / d)
    high = (amount * tax_rate + denominator) // denominator
    return min(max(tax, low), high)


def part_tax(
    line_total: int, line_tax: int, tax_rate: int, done_amount: int, done_tax: int, amount: int
) -> int:
    """Tax of a part worth ``amount``, after parts worth ``done_amount`` carried ``done_tax``.

    The line's own rounding difference (its tax minus the exact formula) is placed on the
    first part where it still fits Klarna's tolerance; the completing part takes the rest.
    """
    if done_amount + amount == line_total:
        tax = line_tax - done_tax
    else:
        tax = tax_of_gross(done_amount + amount, tax_rate) - tax_of_gross(done_amount, tax_rate)
        pending = (line_tax - tax_of_gross(line_total, tax_rate)) - (
            done_tax - tax_of_gross(done_amount, tax_rate)
        )
        step = (pending > 0) - (pending < 0)
        if step and tax_within_tolerance(amount, tax + step, tax_rate):
            tax += step
    return clamp_tax(amount, tax, tax_rate)


def planned_line(
    *,
    reference: str,
    name: str,
    type: str,
    quantity: int,
    unit_price: int,
    amount: int,
    tax_rate: int,
    tax: int,
    goodwill: bool = False,
) -> PlannedLine:
    """A line that satisfies ``total = quantity*unit_price - total_discount_amount``, discount >= 0."""
    if quantity > 0 and amount > quantity * unit_price:
        unit_price = -(-amount // quantity)  # a part worth more than list price: raise the unit
    if quantity == 0:
        unit_price = 0
    return PlannedLine(
        reference=reference,
        name=name[:255] or "Item",
        type=type,
        quantity=quantity,
        unit_price=unit_price,
        total_discount_amount=quantity * unit_price - amount,
        total_amount=amount,
        tax_rate=tax_rate,
        total_tax_amount=clamp_tax(amount, tax, tax_rate),
        goodwill=goodwill,
    )


def klarna_line_problems(line: PlannedLine) -> list[str]:
    """Klarna's order-line arithmetic, as KOM promises to meet it."""
    problems = []
    if line.total_amount != line.quantity * line.unit_price - line.total_discount_amount:
        problems.append("total_amount != quantity*unit_price - total_discount_amount")
    if line.total_discount_amount < 0 and line.type not in {"discount", "gift_card", "store_credit"}:
        problems.append("negative total_discount_amount")
    if not tax_within_tolerance(line.total_amount, line.total_tax_amount, line.tax_rate):
        problems.append("total_tax_amount outside ±1 of the amount's tax")
    if not 0 < len(line.reference) <= 64:
        problems.append("reference empty or longer than 64")
    return problems


def as_provider_line(line: PlannedLine) -> ProviderLine:
    """How a planned line reads back from the provider once sent."""
    return ProviderLine(
        reference=line.reference,
        name=line.name,
        type=line.type,
        quantity=line.quantity,
        unit_price=line.unit_price,
        total_amount=line.total_amount,
        total_discount_amount=line.total_discount_amount,
        tax_rate=line.tax_rate,
        total_tax_amount=line.total_tax_amount,
        goodwill=line.goodwill,
    )
