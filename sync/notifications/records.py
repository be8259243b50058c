"""What a notification is, pure: event types, states, the retry schedule and the body.

The body is Standard Webhooks' `{"type", "timestamp", "data"}`, serialised once when the event is
written and sent byte for byte on every attempt (the signature covers those bytes).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    RECEIPT_COMPLETED = "receipt.completed"
    RECEIPT_FAILED = "receipt.failed"
    RECEIPT_DUPLICATE = "receipt.duplicate"
    RECEIPT_WAITING = "receipt.waiting"
    BILL_VOIDED = "bill.voided"
    BILL_DELETED = "bill.deleted"
    BILL_UPDATED = "bill.updated"
    PING = "ping"


# What a partner may subscribe to (`ping` is sent by `POST .../test` whatever the list says).
SUBSCRIBABLE = tuple(t.value for t in EventType if t is not EventType.PING)


class EndpointState(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"  # 410 Gone, or every attempt failed for DISABLE_AFTER_S; a replay
    DELETED = "deleted"  # re-enables it. Deleted by its partner: nothing more is sent.


class DeliveryState(StrEnum):
    PENDING = "pending"  # due at next_attempt_at (first try or a retry)
    DELIVERED = "delivered"  # a 2xx within the timeout
    FAILED = "failed"  # retries used up, or its endpoint disabled: a replay sends it again


# When the retries come, in seconds after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
# 14 h, 20 h, 24 h. A delivery whose 10th attempt fails is given up (`failed`), about a day in.
RETRY_SCHEDULE_S: tuple[float, ...] = (
    5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0,
)
JITTER = (0.8, 1.2)  # each delay is multiplied by uniform(low, high), so retries spread out
ATTEMPT_TIMEOUT_S = 15.0  # a 2xx within this is delivered
DISABLE_AFTER_S = 3 * 24 * 3600.0  # an endpoint failing every attempt this long is disabled
MAX_ANSWER_BYTES = 1024  # of an endpoint's answer, read and kept as the last error
PER_ENDPOINT_CONCURRENCY = 4  # attempts in flight to one endpoint at once


def retry_delay(
    attempts: int, schedule: tuple[float, ...] = RETRY_SCHEDULE_S, *, jitter: bool = True
) -> float | None:
    """Seconds from the failed attempt number `attempts` to the next one (the gap between two
    offsets of `schedule`); None when the retries are used up (1 + len(schedule) attempts in
    all). Pure but for the jitter's randomness."""
    if attempts > len(schedule):
        return None
    n = max(attempts, 1)
    gap = schedule[n - 1] - (schedule[n - 2] if n > 1 else 0.0)
    return gap * random.uniform(*JITTER) if jitter else gap


def event_body(event_type: EventType, timestamp: str, data: dict[str, Any]) -> str:
    """The body as sent: compact JSON, UTF-8 text kept as is."""
    return json.dumps({"type": event_type.value, "timestamp": timestamp, "data": data},
                      ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Endpoint:
    """A partner's endpoint, as its partner may read it: never a secret."""

    id: str
    partner_id: str
    url: str
    events: tuple[str, ...]  # empty: every event type
    state: EndpointState
    state_reason: str | None
    failing_since: str | None
    old_secret_expires_at: str | None
    created_at: str
    updated_at: str

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id, "url": self.url, "events": list(self.events) or list(SUBSCRIBABLE),
            "all_events": not self.events, "state": self.state.value,
            "state_reason": self.state_reason, "failing_since": self.failing_since,
            "previous_secret_expires_at": self.old_secret_expires_at,
            "created_at": self.created_at, "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Delivery:
    """One event to one endpoint: its attempts so far and their outcome."""

    id: str
    event_id: str
    endpoint_id: str
    event_type: str
    receipt_id: str | None
    state: DeliveryState
    attempts: int
    next_attempt_at: str | None
    last_attempt_at: str | None
    last_status: int | None
    last_latency_ms: int | None
    last_error: str | None
    delivered_at: str | None
    created_at: str

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id, "webhook_id": self.event_id, "type": self.event_type,
            "receipt_id": self.receipt_id, "state": self.state.value, "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at if self.state is DeliveryState.PENDING
            else None,
            "last_attempt_at": self.last_attempt_at, "last_status": self.last_status,
            "last_latency_ms": self.last_latency_ms, "last_error": self.last_error,
            "delivered_at": self.delivered_at, "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Outgoing:
    """A due delivery as the notifier sends it: the event's bytes and where they go."""

    delivery_id: str
    event_id: str
    endpoint_id: str
    url: str
    body: str
    attempts: int  # before this one
    secret_enc: str
    old_secret_enc: str | None
    old_secret_expires_at: str | None
