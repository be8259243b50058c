"""Money arithmetic: the one rounding rule, and how a Decimal is written down.

A receipt's total is the sum of its lines, each line being `price × quantity` plus the ITBIS on
that amount, computed exactly and rounded once, to the cent, half up.

[unverified] Alegra does not document how it rounds a bill's total (per line or once, half up or
half even; its bills carry a read-only `calculationScale`). This module is the one place to change
the rule: `receipt_total` is used by the partner API's `total` check and by the comparison with the
total in Alegra's answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Protocol

CENT = Decimal("0.01")
ROUNDING = ROUND_HALF_UP  # [unverified] Alegra's rounding mode; change it here only
HUNDRED = Decimal(100)
# Digits kept while summing, far above what bounded amounts × quantities × rates can need, so
# nothing is rounded before the one rounding at the end.
EXACT_PRECISION = 60


class PricedLine(Protocol):
    """What a line needs for the total: unit price before tax, quantity, ITBIS percent or None."""

    @property
    def amount(self) -> Decimal: ...

    @property
    def quantity(self) -> Decimal: ...

    @property
    def tax_rate(self) -> Decimal | None: ...


def round_money(value: Decimal) -> Decimal:
    """Round to the cent with the project's one rounding mode."""
    return value.quantize(CENT, rounding=ROUNDING)


def line_subtotal(line: PricedLine) -> Decimal:
    """`price × quantity`, exact (not rounded)."""
    return line.amount * line.quantity


def line_tax(line: PricedLine) -> Decimal:
    """The ITBIS on a line's subtotal, exact (not rounded); zero when the line has no tax."""
    if line.tax_rate is None:
        return Decimal(0)
    return line_subtotal(line) * line.tax_rate / HUNDRED


def receipt_total(lines: Iterable[PricedLine]) -> Decimal:
    """The total as Alegra is expected to compute it: exact per line, rounded once at the end."""
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION
        exact = sum((line_subtotal(line) + line_tax(line) for line in lines), Decimal(0))
    return round_money(exact)


def decimal_text(value: Decimal) -> str:
    """A Decimal as plain text for JSON and SQLite: never exponent notation (`1E+2` → `100`)."""
    return format(value, "f")


def normalized_text(value: Decimal) -> str:
    """A quantity or rate without trailing zeros or exponent: `2.50` → `2.5`, `1E+2` → `100`."""
    return decimal_text(value.normalize())
