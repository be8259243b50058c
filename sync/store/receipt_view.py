"""A receipt as the partner asking may read it: never another partner's receipt or bill ids.

A receipt's resource can name other receipts and bills: the receipt holding its NCF (`holder`,
and the message, of the errors `ncf_in_flight` / `ncf_held_by_failed_receipt`, on the receipt
and on its `duplicate_check` step), the bill it duplicates (`alegra.bill_id`, and the step's
`alegra_id` and detail), and the bills or receipts it likely duplicates (`flags`). For a
partner key:
- a receipt is named only if it is the partner's own; another partner's is "another partner's
  receipt": `holder` null, and a flag `likely_duplicate` without an id;
- a bill is named unless it was made from another partner's receipt (its `receipt_id` in the
  bills cache, or the receipt marker it carries in Alegra). Then `alegra.bill_id` and the step's
  `alegra_id` are null and the step's detail says `billed_by: another_partner` (no bill id,
  status or source). A bill typed in Alegra belongs to the company, not to a partner, like the
  contacts and accounts every receipt already names: its id is shown, so the partner can point
  the company to the bill that already holds its document.
Admin keys read everything (`viewer=None`). Stored rows are never changed, only the answer.
Only a receipt naming another receipt or bill costs a look-up or two.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sync.alegra.payloads import marked_receipt_id
from sync.duplicate_rules import (
    CHECK_STEP,
    LIKELY,
    NCF_HELD_BY_FAILED,
    ncf_held_message,
)
from sync.states import ReceiptStatus
from sync.store.db import Database, Row
from sync.store.receipts import receipt_resource

ANOTHER_PARTNER = "another_partner"
_RECEIPT_PREFIX = "rcp_"


async def partner_resource(
    db: Database,
    row: Mapping[str, Any] | Row,
    steps: Sequence[Mapping[str, Any] | Row],
    *,
    viewer: str | None,
) -> dict[str, Any]:
    """The receipt resource as partner `viewer` may read it (None: an admin, everything)."""
    resource = receipt_resource(row, steps)
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
        owners = await self._partners_of([receipt_id])
        return owners == {self.viewer}

    async def bill(self, bill_id: str) -> bool:
        """Whether the bill may be named: not made from another partner's receipt."""
        if bill_id not in self._bills:
            makers = await self._makers(bill_id)
            owners = await self._partners_of(makers)
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
        made = await self.db.fetchall(
            "SELECT id FROM receipts WHERE bill_id = ? AND status != ?",
            (bill_id, ReceiptStatus.DUPLICATE))
        makers: set[str | None] = {str(r["id"]) for r in made}
        row = await self.db.fetchone(
            "SELECT receipt_id, raw FROM bills WHERE alegra_id = ?", (bill_id,))
        if row is not None:
            makers |= {row["receipt_id"], marked_receipt_id(json.loads(row["raw"] or "{}"))}
        return sorted(r for r in makers if r)

    async def _partners_of(self, receipt_ids: Sequence[str]) -> set[str]:
        if not receipt_ids:
            return set()
        rows = await self.db.fetchall(
            "SELECT DISTINCT partner_id FROM receipts WHERE id IN"
            " (SELECT value FROM json_each(?))", (json.dumps(list(receipt_ids)),))
        return {str(r["partner_id"]) for r in rows}
