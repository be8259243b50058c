"""The states of a receipt, of a receipt's step, of an inbox row, of a job run and of a company:
one place.

Each is stored in the database and shown in the API as exactly these strings (a `StrEnum`
member is its value), so the store's SQL writes them by these members too. The migrations, being
SQL of their time, keep the plain words.
"""

from __future__ import annotations

from enum import StrEnum


class ReceiptStatus(StrEnum):
    QUEUED = "queued"  # waiting for the worker: new, rescheduled, retried, or handed back
    PROCESSING = "processing"  # a worker holds its lease
    COMPLETED = "completed"  # billed in Alegra
    FAILED = "failed"  # given up on; its error says why
    DUPLICATE = "duplicate"  # its fiscal document was billed already: no bill made for it


FINAL_RECEIPT_STATUSES = frozenset(
    {ReceiptStatus.COMPLETED, ReceiptStatus.FAILED, ReceiptStatus.DUPLICATE}
)


class StepState(StrEnum):
    """A step is written `attempting` before its write is sent, then `done` or `failed`."""

    ATTEMPTING = "attempting"  # a write may have been sent; its outcome not known yet
    DONE = "done"
    FAILED = "failed"


class InboxState(StrEnum):
    RECEIVED = "received"  # stored, not yet worked (also: replayed by an operator)
    APPLIED = "applied"  # Alegra's current version of the resource is in the cache
    SKIPPED = "skipped"  # an event not used, or a body we cannot read
    FAILED = "failed"  # the confirmation failed; tried again after next_attempt_at
    PARKED = "parked"  # attempts used up; waits for an operator's replay


PENDING_INBOX_STATES = (InboxState.RECEIVED, InboxState.FAILED)


class JobOutcome(StrEnum):
    SUCCESS = "success"
    INCOMPLETE = "incomplete"  # stopped, or Alegra's list could not be read to its end
    FAILED = "failed"


class CompanyState(StrEnum):
    """A company's standing: `needs_attention` when Alegra refuses its credentials (its work
    waits); `removed` when an operator removed it (its receipts stay readable)."""

    ACTIVE = "active"
    NEEDS_ATTENTION = "needs_attention"
    REMOVED = "removed"
