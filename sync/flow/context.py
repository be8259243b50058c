"""What every step of the receipt flow gets, and what it gives back.

`FlowEnv` is shared by all receipts the lane runs (one store, one Alegra client, one set of
creation locks). `StepScope` is one step of one receipt: it knows the step's earlier record, if
any, and commits the step as `attempting` right before a write is sent. A step returns a
`StepResult` or raises: an `AlegraError` from the client, or `FlowFailed` when the receipt
cannot succeed however often it is tried (a tax rate Alegra does not have, no parent for a new
account).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sync.alegra.budget import Priority
from sync.alegra.client import AlegraClient
from sync.flow.locks import KeyedLocks
from sync.receipt_records import StepRecord
from sync.settings import Settings
from sync.states import StepState
from sync.store.db import Database
from sync.store.receipt_work import StepLog

PRIORITY = Priority.RECEIPT  # every Alegra call of the receipt flow


@dataclass
class FlowEnv:
    settings: Settings
    db: Database
    alegra: AlegraClient
    stopping: asyncio.Event
    locks: KeyedLocks = field(default_factory=KeyedLocks)


@dataclass(frozen=True)
class StepResult:
    outcome: str  # found | created | updated
    alegra_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)


class FlowFailed(Exception):
    """The receipt cannot succeed as it is: not retryable. `code` is ours, not Alegra's."""

    def __init__(self, code: str, message: str, **evidence: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.evidence = evidence

    def as_record(self) -> dict[str, Any]:
        return {
            "kind": "FlowFailed", "status": None, "code": self.code, "message": self.message,
            "retryable": False, **self.evidence,
        }


@dataclass
class StepScope:
    """One step of one receipt. `prior` is the step's row from an earlier attempt, if any."""

    log: StepLog
    step: str
    prior: StepRecord | None = None

    @property
    def receipt_id(self) -> str:
        return self.log.receipt_id

    @property
    def resumed(self) -> bool:
        """A write of this step may have been sent before: look up before creating again."""
        return self.prior is not None and self.prior.state != StepState.DONE

    async def attempting(self) -> None:
        """Commit that a write is about to be sent (call right before sending it)."""
        await self.log.attempting(self.step)
