"""Step `attachment`: the receipt's stored file uploaded to its bill (multipart field `file`).

Runs only after the bill step is done, so retrying it never touches the bill. When an earlier
upload may have landed unanswered, the bill is read first: if Alegra lists an attachment with
the same file name ([unverified] whether a bill's read shape lists attachments at all; without
the list the file is sent again — a repeated attachment is harmless, a repeated bill is not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.alegra import resources
from sync.flow.context import PRIORITY, FlowEnv, FlowFailed, StepResult, StepScope
from sync.store import receipts

ATTACHMENTS_FIELD = "attachments"  # [unverified] where a bill read lists its files


async def attach(env: FlowEnv, receipt_id: str, bill_id: str, scope: StepScope) -> StepResult:
    """Upload the receipt's attachment to the bill. Raises AlegraError, FlowFailed."""
    stored = await receipts.get_attachment(env.db, receipt_id)
    if stored is None:
        raise FlowFailed("attachment_missing", "the receipt's attachment is no longer stored")
    if scope.resumed:
        bill = await resources.get_bill(env.alegra, bill_id, priority=PRIORITY)
        earlier = _listed(bill, stored.filename) if bill is not None else None
        if earlier is not None:
            return StepResult("found", bill_id, _detail(earlier, stored.filename))
    await scope.attempting()
    answer = await resources.attach_to_bill(
        env.alegra, bill_id, stored.filename, stored.content_type, stored.data,
        priority=PRIORITY,
    )
    return StepResult("created", bill_id, _detail(answer, stored.filename))


def _listed(bill: Mapping[str, Any], filename: str) -> Mapping[str, Any] | None:
    files = bill.get(ATTACHMENTS_FIELD)
    if not isinstance(files, list):
        return None
    for entry in files:
        if isinstance(entry, Mapping) and entry.get("name") == filename:
            return entry
    return None


def _detail(answer: Mapping[str, Any], filename: str) -> dict[str, Any]:
    return {"name": answer.get("name") or filename, "url": answer.get("url")}
