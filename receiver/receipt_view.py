"""A receipt as the partner asking may read it: never another partner's receipt or bill ids
(admin keys, `viewer=None`, read everything). Stored rows are never changed, only the answer.
The rules: docs/receipts.md ("What a partner may read").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sync.alegra.payloads import marked_receipt_id
from sync.duplicate_rules import (
    CHECK_STEP,
    LIKELY,
    NCF_HELD_BY_FAILED,
    ncf_held_message,
)
from sync.receipt_records import ReceiptRecord, StepRecord
from sync.receipt_resource import receipt_resource
from sync.states import ReceiptStatus
from sync.store.bills import get_bill
from sync.store.db import Database
from sync.store.receipts import partners_of, receipts_that_made

ANOTHER_PARTNER = "another_partner"
_RECEIPT_PREFIX = "rcp_"


async def partner_resource(
    db: Database,
    receipt: ReceiptRecord,
    steps: Sequence[StepRecord],
    *,
    viewer: str | None,
) -> dict[str, Any]:
    """The receipt resource as partner `viewer` may read it (None: an admin, everything)."""
    resource = receipt_resource(receipt, steps)
    if viewer is None:
        return resource
    seen = _Visibility(db, viewer)
    resource["error"] = await seen.error(resource["error"])
    for step in resource["steps"]:
        await seen.step(step)
    bill_id = resource["alegra"]["bill_id"]
    if resource["status"] == ReceiptStatus.DUPLICATE and bill_id and not await seen.bill(bill_id):
        resource["alegra"]["bill_id"] = None
    resource["flags"] = await seen.flags(resource["flags"])
    return resource


class _Visibility:
    """What `viewer` may see, asked of the store once per id."""

    def __init__(self, db: Database, viewer: str) -> None:
        self.db, self.viewer = db, viewer
        self._bills: dict[str, bool] = {}

    async def receipt(self, receipt_id: str) -> bool:
        """Whether the receipt is the viewer's own."""
        owners = await partners_of(self.db, [receipt_id])
        return owners == {self.viewer}

    async def bill(self, bill_id: str) -> bool:
        """Whether the bill may be named: not made from another partner's receipt."""
        if bill_id not in self._bills:
            makers = await self._makers(bill_id)
            owners = await partners_of(self.db, makers)
            self._bills[bill_id] = not owners or self.viewer in owners
        return self._bills[bill_id]

    async def error(self, error: dict[str, Any] | None) -> dict[str, Any] | None:
        holder = None if error is None else error.get("holder")
        if error is None or not holder or await self.receipt(str(holder)):
            return error
        failed = error.get("code") == NCF_HELD_BY_FAILED
        return {**error, "holder": None,
                "message": ncf_held_message(None, holder_failed=failed)}

    async def step(self, step: dict[str, Any]) -> None:
        detail = step["detail"]
        if isinstance(detail.get("error"), dict):
            detail["error"] = await self.error(detail["error"])
        if step["step"] != CHECK_STEP or not step["alegra_id"]:
            return
        if not await self.bill(str(step["alegra_id"])):
            step["alegra_id"] = None
            step["detail"] = {"reason": detail.get("reason"), "ncf": detail.get("ncf"),
                              "bill_id": None, "billed_by": ANOTHER_PARTNER}

    async def flags(self, flags: list[Any]) -> list[Any]:
        shown: list[Any] = []
        for flag in flags:
            shown.append(flag if await self._flag_visible(flag) else LIKELY)
        return list(dict.fromkeys(shown))

    async def _flag_visible(self, flag: Any) -> bool:
        kind, _, target = str(flag).partition(":")
        if kind != LIKELY or not target:
            return True
        if target.startswith(_RECEIPT_PREFIX):
            return await self.receipt(target)
        return await self.bill(target)

    async def _makers(self, bill_id: str) -> list[str]:
        """The receipts a bill was made from: as the bills cache knows them, and the receipts
        that say they made it (the cache may have learned the bill from Alegra without them)."""
        makers = set(await receipts_that_made(self.db, bill_id))
        bill = await get_bill(self.db, bill_id)
        if bill is not None:
            makers |= {r for r in (bill.receipt_id, marked_receipt_id(bill.raw)) if r}
        return sorted(makers)
