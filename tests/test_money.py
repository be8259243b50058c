"""The one rounding rule and how decimals are written."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

import pytest

from sync import money


@dataclass(frozen=True)
class L:
    amount: Decimal
    quantity: Decimal = Decimal(1)
    tax_rate: Decimal | None = None


def test_total_adds_itbis_to_each_line() -> None:
    """100 at 18 % plus 50 × 2 at 16 % plus an untaxed 10 is 118 + 116 + 10."""
    lines = [
        L(Decimal("100.00"), tax_rate=Decimal(18)),
        L(Decimal("50.00"), Decimal(2), Decimal(16)),
        L(Decimal("10.00")),
    ]
    assert money.receipt_total(lines) == Decimal("244.00")


def test_half_cent_rounds_up() -> None:
    """A total that lands exactly on half a cent (0.05 × 0.5 = 0.025) rounds up."""
    assert money.receipt_total([L(Decimal("0.05"), Decimal("0.5"))]) == Decimal("0.03")
    assert money.round_money(Decimal("2.005")) == Decimal("2.01")
    assert money.round_money(Decimal("2.0049")) == Decimal("2.00")


def test_rounding_happens_once_not_per_line() -> None:
    """Three lines of 0.335 each sum to 1.005 → 1.01, where per-line rounding would give 1.02."""
    lines = [L(Decimal("0.67"), Decimal("0.5"))] * 3
    assert money.receipt_total(lines) == Decimal("1.01")


def test_itbis_on_fractional_quantity_is_exact_before_rounding() -> None:
    """1.5 × 33.33 at 18 % is 58.99410 exactly, so the total is 58.99."""
    assert money.receipt_total([L(Decimal("33.33"), Decimal("1.5"), Decimal(18))]) == Decimal(
        "58.99"
    )


def test_large_amounts_keep_every_cent() -> None:
    """Ten lines near the upper bound lose nothing to the decimal context's precision."""
    line = L(Decimal("9999999999.99"), Decimal("9999999.999999"), Decimal(18))
    with localcontext() as ctx:
        ctx.prec = 80
        exact = Decimal("9999999999.99") * Decimal("9999999.999999")
        exact_total = (exact + exact * Decimal("0.18")) * 10
    assert money.receipt_total([line] * 10) == Decimal("1179999999998702000.00")
    assert money.receipt_total([line] * 10) == money.round_money(exact_total)


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("1E+2"), "100"), (Decimal("118.00"), "118.00"), (Decimal("0.10"), "0.10")],
)
def test_decimal_text_never_uses_exponents(value: Decimal, text: str) -> None:
    """Decimals are written in plain notation, keeping their places."""
    assert money.decimal_text(value) == text


def test_normalized_text_drops_trailing_zeros() -> None:
    """Quantities and rates are written without trailing zeros."""
    assert money.normalized_text(Decimal("2.50")) == "2.5"
    assert money.normalized_text(Decimal("18.0")) == "18"
    assert money.normalized_text(Decimal("100")) == "100"
