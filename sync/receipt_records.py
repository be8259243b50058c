"""A stored receipt and its steps as typed records (pure): what the store reads, what the worker,
the API and the CLI take."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sync.states import ReceiptStatus, StepState


@dataclass(frozen=True)
class ReceiptRecord:
    """A stored receipt: its validated payload and where its processing stands. Its id is unique
    across companies; `company_id` is the company (Alegra account) it is billed in."""

    id: str
    partner_id: str
    company_id: str
    idempotency_key: str
    status: ReceiptStatus
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: str | None
    error: dict[str, Any] | None
    flags: tuple[Any, ...]
    bill_id: str | None
    created_at: str
    updated_at: str
    completed_at: str | None


@dataclass(frozen=True)
class StepRecord:
    """One step of a receipt's processing (supplier, account:<name>, bill, attachment…)."""

    step: str
    state: StepState
    outcome: str | None
    alegra_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    updated_at: str | None = None

    @property
    def done(self) -> bool:
        return self.state == StepState.DONE
