"""A stored receipt and its steps → the JSON `GET /v1/receipts/{id}` answers (pure).

Shared by the API (`receiver/`, which then applies the partner view) and `alegra-sync receipts
show --json`, which prints the same document: one renderer, so the two cannot drift, and here
in `sync/` because the CLI never imports `receiver/`. `receiver/receipts_spec.py` documents the
shape. Decimals are strings, as in the payload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sync.names import name_key
from sync.receipt_records import ReceiptRecord, StepRecord
from sync.states import StepState

_STEP_ORDER = {"supplier": 0, "account": 1, "bill": 2, "attachment": 3}


def receipt_resource(receipt: ReceiptRecord, steps: Sequence[StepRecord]) -> dict[str, Any]:
    """The receipt as a partner reads it (before the partner view hides other partners' ids)."""
    payload = receipt.payload
    step_list = sorted((_step(s) for s in steps), key=_step_rank)
    supplier = payload["supplier"]
    return {
        "id": receipt.id,
        "status": receipt.status.value,
        "created_at": receipt.created_at,
        "updated_at": receipt.updated_at,
        "completed_at": receipt.completed_at,
        "idempotency_key": receipt.idempotency_key,
        "supplier": {k: supplier[k] for k in ("name", "tax_id", "tax_id_kind")},
        **{k: payload[k] for k in ("date", "due_date", "ncf", "ncf_type", "category")},
        **{k: payload[k] for k in ("currency", "exchange_rate", "total", "lines")},
        "attachment": _attachment(payload.get("attachment")),
        "attempts": receipt.attempts,
        "next_attempt_at": receipt.next_attempt_at,
        "steps": step_list,
        "alegra": _alegra_ids(receipt, step_list),
        "error": receipt.error,
        "flags": list(receipt.flags),
    }


def _attachment(info: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not info:
        return None
    return {k: info[k] for k in ("filename", "content_type", "size")}


def _step(step: StepRecord) -> dict[str, Any]:
    return {
        "step": step.step,
        "state": step.state.value,
        "outcome": step.outcome,
        "alegra_id": step.alegra_id,
        "detail": dict(step.detail),
        "attempts": step.attempts,
        "updated_at": step.updated_at,
    }


def _step_rank(step: Mapping[str, Any]) -> tuple[int, str]:
    kind = str(step["step"]).split(":", 1)[0]
    return _STEP_ORDER.get(kind, len(_STEP_ORDER)), str(step["step"])


def _alegra_ids(receipt: ReceiptRecord, steps: list[dict[str, Any]]) -> dict[str, Any]:
    by_name = {s["step"]: s for s in steps}
    payload = receipt.payload
    categories = [payload["category"], *(line["category"] for line in payload["lines"])]
    names = {name_key(c): c for c in categories}
    accounts = {
        names.get(name_key(s["step"].split(":", 1)[1]), s["step"].split(":", 1)[1]): s["alegra_id"]
        for s in steps
        if s["step"].startswith("account:") and s["alegra_id"]
    }
    return {
        "contact_id": (by_name.get("supplier") or {}).get("alegra_id"),
        "account_ids": accounts,
        "bill_id": receipt.bill_id or (by_name.get("bill") or {}).get("alegra_id"),
        "attachment": _uploaded(by_name.get("attachment")),
    }


def _uploaded(step: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What Alegra answered for the attachment (`name`, `url`), once the step is done."""
    if step is None or step["state"] != StepState.DONE:
        return None
    detail = step["detail"]
    return {"name": detail.get("name"), "url": detail.get("url")}
