"""The deliveries as a queue: what is due (in each receipt's order), read for an attempt,
settled after each attempt; listed and replayed for the endpoint's partner.

A delivery is `pending` until a 2xx (`delivered`) or until its retries are used up or its
endpoint is disabled (`failed`). While an attempt runs the row is left as it is, pending and
due: the one worker that sends it (see `Scope`) knows it is in flight; killed mid-attempt, the
next worker sends it again, with the same event and so the same `webhook-id` (at least once).
A delivery waits
while an earlier event of the same receipt to the same endpoint is still pending: per receipt,
in order; across receipts, none.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sync.notifications.endpoints import disable_in, enable_in
from sync.notifications.outbox import write_event
from sync.notifications.records import (
    DISABLE_AFTER_S,
    RETRY_SCHEDULE_S,
    Delivery,
    DeliveryState,
    Endpoint,
    EndpointState,
    EventType,
    Outgoing,
    retry_delay,
)
from sync.store.db import Connection, Database, Row, utcnow
from sync.store.sql_lists import marks

_PENDING, _FAILED, _DELIVERED = DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.DELIVERED


def at(seconds: float, now: datetime | None = None) -> str:
    return ((now or datetime.now(UTC)) + timedelta(seconds=seconds)).isoformat(
        timespec="microseconds")


_DUE = (
    "SELECT d.id, d.endpoint_id FROM notification_deliveries AS d"
    " JOIN webhook_endpoints AS w ON w.id = d.endpoint_id"
    " WHERE d.state = ? AND d.next_attempt_at <= ? AND w.state = ?{exclude}{scope}"
    " AND NOT EXISTS (SELECT 1 FROM notification_deliveries AS p"
    "   WHERE p.endpoint_id = d.endpoint_id AND p.receipt_id = d.receipt_id AND p.seq < d.seq"
    "   AND p.state = ?)"
    " ORDER BY d.next_attempt_at LIMIT ?"
)


@dataclass(frozen=True)
class Scope:
    """The deliveries one worker sends (many workers: each its leased companies' ones). `held`:
    the companies whose leases it holds; `rest`: it also sends those of no company (pings) or of
    a company not in `live` (removed since): the holder of the company `default` does."""

    held: tuple[str, ...]
    live: tuple[str, ...]
    rest: bool

    def sql(self) -> tuple[str, list[str]]:
        parts, params = [], list(self.held)
        if self.held:
            parts.append(f"d.company_id IN ({marks(len(self.held))})")
        if self.rest:
            others = f" OR d.company_id NOT IN ({marks(len(self.live))})" if self.live else ""
            parts.append(f"(d.company_id IS NULL{others})")
            params += self.live if self.live else []
        if not parts:
            return " AND 1 = 0", []
        return f" AND ({' OR '.join(parts)})", params


async def due(
    db: Database, *, limit: int, busy: Collection[str] = (), now: str | None = None,
    scope: Scope | None = None,
) -> list[tuple[str, str]]:
    """(delivery id, endpoint id) of deliveries due now, oldest due first, none behind an
    earlier pending event of its receipt; endpoints in `busy` left out (their slots are full);
    only those of `scope` (None: every one)."""
    exclude = f" AND d.endpoint_id NOT IN ({marks(len(busy))})" if busy else ""
    scoped, scope_params = scope.sql() if scope is not None else ("", [])
    rows = await db.fetchall(
        _DUE.format(exclude=exclude, scope=scoped),
        (_PENDING, now or utcnow(), EndpointState.ENABLED, *busy, *scope_params, _PENDING,
         limit),
    )
    return [(str(r[0]), str(r[1])) for r in rows]


_OUTGOING = (
    "SELECT d.id, d.event_id, d.endpoint_id, d.attempts, e.body, w.url, w.secret_enc,"
    " w.old_secret_enc, w.old_secret_expires_at FROM notification_deliveries AS d"
    " JOIN notification_events AS e ON e.id = d.event_id"
    " JOIN webhook_endpoints AS w ON w.id = d.endpoint_id"
    " WHERE d.state = ? AND w.state = ? AND d.id IN ({ids})"
)


async def take(db: Database, delivery_ids: Collection[str]) -> list[Outgoing]:
    """What to send for these deliveries, those still pending (one read, no write: while an
    attempt runs, the row stays `pending` and due, known to be in flight to this worker only;
    a worker killed meanwhile leaves it due, to be sent again with the same `webhook-id`)."""
    if not delivery_ids:
        return []
    ids = list(delivery_ids)
    rows = await db.fetchall(_OUTGOING.format(ids=marks(len(ids))),
                             (_PENDING, EndpointState.ENABLED, *ids))
    return [Outgoing(
        delivery_id=row["id"], event_id=row["event_id"], endpoint_id=row["endpoint_id"],
        url=row["url"], body=row["body"], attempts=int(row["attempts"]),
        secret_enc=row["secret_enc"], old_secret_enc=row["old_secret_enc"],
        old_secret_expires_at=row["old_secret_expires_at"],
    ) for row in rows]


@dataclass(frozen=True)
class Attempt:
    """How one attempt went: the endpoint's status (None: no answer) and what it said."""

    status: int | None
    latency_ms: int
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status == 410


@dataclass(frozen=True)
class Settled:
    """What an attempt left: the delivery's state, and the endpoint disabled by it, if so."""

    state: DeliveryState
    next_attempt_at: str | None = None
    disabled: str | None = None  # why


async def settle(
    db: Database, outgoing: Outgoing, attempt: Attempt, *,
    schedule: tuple[float, ...] = RETRY_SCHEDULE_S, disable_after_s: float = DISABLE_AFTER_S,
) -> Settled:
    """Record one attempt (see `settle_many`)."""
    [settled] = await settle_many(db, [(outgoing, attempt)], schedule=schedule,
                                  disable_after_s=disable_after_s)
    return settled


async def settle_many(
    db: Database, attempts: Sequence[tuple[Outgoing, Attempt]], *,
    schedule: tuple[float, ...] = RETRY_SCHEDULE_S, disable_after_s: float = DISABLE_AFTER_S,
) -> list[Settled]:
    """Record attempts on their deliveries (and their endpoints' failure streaks), all in one
    transaction: one commit for however many attempts ended meanwhile."""
    async with db.transaction() as conn:
        return [await _settle_in(conn, outgoing, attempt, schedule, disable_after_s)
                for outgoing, attempt in attempts]


async def _settle_in(
    conn: Connection, outgoing: Outgoing, attempt: Attempt,
    schedule: tuple[float, ...], disable_after_s: float,
) -> Settled:
    now_dt = datetime.now(UTC)
    now = now_dt.isoformat(timespec="microseconds")
    attempts = outgoing.attempts + 1
    delay = None if attempt.delivered or attempt.gone else retry_delay(attempts, schedule)
    if attempt.delivered:
        state, next_at = _DELIVERED, None
    else:
        state, next_at = (_FAILED, None) if delay is None else (_PENDING, at(delay, now_dt))
    await conn.execute(
        "UPDATE notification_deliveries SET state = ?, attempts = ?, next_attempt_at = ?,"
        " last_attempt_at = ?, last_status = ?, last_latency_ms = ?, last_error = ?,"
        " delivered_at = ?, updated_at = ? WHERE id = ? AND state = ?",
        (state, attempts, next_at, now, attempt.status, attempt.latency_ms, attempt.error,
         now if attempt.delivered else None, now, outgoing.delivery_id, _PENDING),
    )
    if attempt.delivered:
        await conn.execute("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ?"
                           " AND failing_since IS NOT NULL", (outgoing.endpoint_id,))
        return Settled(state)
    reason = await _failing(conn, outgoing.endpoint_id, attempt, now_dt, disable_after_s)
    if reason is not None and await disable_in(conn, outgoing.endpoint_id, reason):
        return Settled(_FAILED, None, reason)
    return Settled(state, next_at)


async def _failing(conn: Connection, endpoint_id: str, attempt: Attempt,
                   now: datetime, disable_after_s: float) -> str | None:
    """Extend the endpoint's failure streak; why it must be disabled, if it must."""
    stamp = now.isoformat(timespec="microseconds")
    await conn.execute("UPDATE webhook_endpoints SET failing_since = ? WHERE id = ?"
                       " AND failing_since IS NULL", (stamp, endpoint_id))
    if attempt.gone:
        return "the endpoint answered 410 Gone"
    cursor = await conn.execute("SELECT failing_since FROM webhook_endpoints WHERE id = ?",
                                (endpoint_id,))
    row = await cursor.fetchone()
    since = datetime.fromisoformat(str(row[0])) if row is not None and row[0] else now
    if (now - since).total_seconds() >= disable_after_s:
        return f"every attempt failed since {since.isoformat(timespec='seconds')}"
    return None


# --- what the partner reads and asks for ------------------------------------------------------

_DELIVERY = (
    "SELECT d.*, e.type AS event_type FROM notification_deliveries AS d"
    " JOIN notification_events AS e ON e.id = d.event_id"
)


def _delivery(row: Row) -> Delivery:
    return Delivery(
        id=row["id"], event_id=row["event_id"], endpoint_id=row["endpoint_id"],
        event_type=row["event_type"], receipt_id=row["receipt_id"],
        state=DeliveryState(row["state"]), attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"], last_attempt_at=row["last_attempt_at"],
        last_status=row["last_status"], last_latency_ms=row["last_latency_ms"],
        last_error=row["last_error"], delivered_at=row["delivered_at"],
        created_at=row["created_at"],
    )


async def list_deliveries(
    db: Database, endpoint_id: str, *, state: str | None = None, limit: int = 50,
    after: tuple[str, str] | None = None,
) -> list[Delivery]:
    """The endpoint's deliveries, newest first, after the row (created_at, id) `after`."""
    sql, params = _DELIVERY + " WHERE d.endpoint_id = ?", [endpoint_id]
    if state is not None:
        sql += " AND d.state = ?"
        params.append(state)
    if after is not None:
        sql += " AND (d.created_at < ? OR (d.created_at = ? AND d.id < ?))"
        params += [after[0], after[0], after[1]]
    rows = await db.fetchall(sql + " ORDER BY d.created_at DESC, d.id DESC LIMIT ?",
                             [*params, limit])
    return [_delivery(row) for row in rows]


async def get_delivery(db: Database, endpoint_id: str, delivery_id: str) -> Delivery | None:
    row = await db.fetchone(_DELIVERY + " WHERE d.id = ? AND d.endpoint_id = ?",
                            (delivery_id, endpoint_id))
    return None if row is None else _delivery(row)


_REPLAY = (
    "UPDATE notification_deliveries SET state = ?, attempts = 0, next_attempt_at = ?,"
    " updated_at = ? WHERE endpoint_id = ? AND state = ?"
)


async def replay_one(db: Database, endpoint_id: str, delivery_id: str) -> bool:
    """A `failed` delivery back to `pending`, due now, its attempts counted afresh (the same
    event, so the same `webhook-id`); its endpoint enabled again if disabled. False: not
    failed (or not this endpoint's)."""
    now = utcnow()
    async with db.transaction() as conn:
        cursor = await conn.execute(_REPLAY + " AND id = ?",
                                    (_PENDING, now, now, endpoint_id, _FAILED, delivery_id))
        if cursor.rowcount:
            await enable_in(conn, endpoint_id)
        return bool(cursor.rowcount)


async def replay_failed_since(db: Database, endpoint_id: str, since: str) -> int:
    """Every `failed` delivery of the endpoint whose event is from `since` on, as `replay_one`;
    how many."""
    now = utcnow()
    async with db.transaction() as conn:
        cursor = await conn.execute(_REPLAY + " AND created_at >= ?",
                                    (_PENDING, now, now, endpoint_id, _FAILED, since))
        if cursor.rowcount:
            await enable_in(conn, endpoint_id)
        return int(cursor.rowcount)


async def ping(db: Database, endpoint: Endpoint) -> Delivery:
    """A `ping` event to this endpoint only, due now."""
    async with db.transaction() as conn:
        event_id = await write_event(
            conn, partner_id=endpoint.partner_id, endpoint_ids=[endpoint.id],
            event_type=EventType.PING, data={"endpoint_id": endpoint.id},
        )
    row = await db.fetchone(_DELIVERY + " WHERE d.event_id = ?", (event_id,))
    assert row is not None
    return _delivery(row)


async def pending_figures(db: Database) -> dict[str, float | int]:
    """Deliveries pending and the age in seconds of the oldest due one (status, /metrics)."""
    row = await db.fetchone(
        "SELECT COUNT(*), MIN(created_at) FROM notification_deliveries WHERE state = ?",
        (_PENDING,))
    count = int(row[0]) if row is not None else 0
    oldest = row[1] if row is not None else None
    age = 0.0 if not oldest else (datetime.now(UTC) - datetime.fromisoformat(oldest)
                                  ).total_seconds()
    return {"pending": count, "oldest_pending_age_s": round(age, 3)}


async def prune_delivered_batch(db: Database, *, before: str, limit: int) -> int:
    """Retention: delete up to `limit` deliveries `delivered` before `before`, then up to
    `limit` events from before then that no delivery points at any more; how many deliveries.
    Pending and failed ones are kept whatever their age (a failed one may be replayed)."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM notification_deliveries WHERE id IN (SELECT id FROM"
            " notification_deliveries WHERE state = ? AND updated_at < ? LIMIT ?)",
            (_DELIVERED, before, limit))
        deleted = int(cursor.rowcount)
        await conn.execute(
            "DELETE FROM notification_events WHERE id IN (SELECT e.id FROM notification_events"
            " AS e WHERE e.created_at < ? AND NOT EXISTS (SELECT 1 FROM notification_deliveries"
            " AS d WHERE d.event_id = e.id) LIMIT ?)", (before, limit))
    return deleted
