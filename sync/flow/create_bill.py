"""Step `bill`: exactly one supplier bill per receipt.

The bill carries the receipt id in `observations` (`payloads.MARKER_FIELD`). When an earlier
attempt may have reached Alegra unanswered, the supplier's bills on that date are listed first
and one with our marker — or, for a live bill, the receipt's NCF — is taken as ours (`found`)
instead of creating another. After a 201 the bill is recorded in `bills` (committed with the
step's `done`), and Alegra's total is compared with the receipt's: a difference is kept on the
step's detail and logged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from sync import money
from sync.alegra import payloads, records, resources
from sync.alegra.errors import OutcomeUnknown, Rejected
from sync.flow.context import PRIORITY, FlowEnv, StepResult, StepScope
from sync.logs import get_logger
from sync.receipt_model import Receipt
from sync.store import bills
from sync.store.doctor import company_write_shape

SOURCE = "receipt"
# Alegra codes of a refused bill that may exist anyway: stamping failed (3051). Treated as an
# unknown outcome, so the next attempt looks the bill up before sending it again.
MAY_EXIST_CODES = frozenset({3051, "3051"})


async def create_bill(
    env: FlowEnv,
    scope: StepScope,
    receipt: Receipt,
    *,
    provider_id: str,
    lines: Sequence[payloads.BillLine],
) -> StepResult:
    """Create (or, after an unknown outcome, find) the receipt's bill. Raises AlegraError."""
    receipt_id = scope.receipt_id
    if scope.resumed:
        existing = await find_our_bill(env, receipt_id, receipt, provider_id)
        if existing is not None:
            return _record(scope, receipt, existing, "found")
    shape = await company_write_shape(env.db)
    body = payloads.bill_payload(receipt, receipt_id, provider_id, lines,
                                 ncf_field=shape.ncf_field)
    await scope.attempting()
    try:
        created = await resources.create_bill(env.alegra, body, priority=PRIORITY)
    except Rejected as exc:
        if exc.code in MAY_EXIST_CODES:
            raise OutcomeUnknown(exc.message, status=exc.status, code=exc.code,
                                 method=exc.method, path=exc.path) from exc
        raise
    return _record(scope, receipt, created, "created")


async def find_our_bill(
    env: FlowEnv, receipt_id: str, receipt: Receipt, provider_id: str
) -> dict[str, Any] | None:
    """The supplier's bill on the receipt's date that carries our marker or, live, its NCF."""
    rows = await resources.find_bills(
        env.alegra, provider_id, receipt.date.isoformat(), priority=PRIORITY
    )
    for row in rows:
        if payloads.bill_has_marker(row, receipt_id):
            return row
    if receipt.ncf is None:
        return None
    for row in rows:
        if row.get("status") != "void" and payloads.bill_number(row) == receipt.ncf.number:
            return row
    return None


def _record(
    scope: StepScope, receipt: Receipt, bill: Mapping[str, Any], outcome: str
) -> StepResult:
    """The bill's row for the bills table is committed with the step's `done` (StepLog)."""
    receipt_id = scope.receipt_id
    tax_id = receipt.supplier.tax_id.number if receipt.supplier.tax_id else None
    known = records.bill_from_alegra(bill, provider_tax_id=tax_id, receipt_id=receipt_id)
    company = scope.log.db.company
    scope.log.also(
        lambda conn: bills.record_bill_in(conn, known, company=company, source=SOURCE)
    )
    detail = total_check(receipt.total, bill.get("total"))
    if "total_difference" in detail:
        get_logger(receipt_id=receipt_id).warning("receipt.total_differs", **detail)
    return StepResult(outcome, known.alegra_id, {**detail, "status": known.status})


def total_check(expected: Decimal, alegra_total: Any) -> dict[str, str]:
    """The receipt's total beside Alegra's, and their difference when they differ (pure)."""
    detail = {"total": money.decimal_text(expected)}
    try:
        theirs = money.round_money(Decimal(str(alegra_total)))
    except (InvalidOperation, ValueError):
        return detail
    detail["alegra_total"] = money.decimal_text(theirs)
    if theirs != expected:
        detail["total_difference"] = money.decimal_text(theirs - expected)
    return detail
