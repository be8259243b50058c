"""Webhook inbox rows as typed records (pure): what the store reads back of a delivery."""

from __future__ import annotations

from dataclasses import dataclass

from sync.states import InboxState


@dataclass(frozen=True)
class InboxEvent:
    """One stored delivery, whole: what the operators' endpoints show and replay."""

    id: int
    company_id: str
    received_at: str
    subject: str | None
    resource: str | None
    resource_id: str | None
    body: bytes
    shape: str  # ok | malformed | unknown
    state: InboxState
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    applied_at: str | None
    key_index: int | None  # which SECRET_KEY's URL it came in on


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery waiting to be applied, as the events lane needs it (never its body)."""

    id: int
    subject: str | None
    attempts: int
    received_at: str


@dataclass(frozen=True)
class Group:
    """Pending deliveries about one Alegra resource, oldest first."""

    resource: str
    resource_id: str
    rows: tuple[PendingDelivery, ...]


@dataclass(frozen=True)
class UnusableDelivery:
    """A delivery set aside as `skipped` because its body is not a shape we know."""

    id: int
    shape: str
