"""A partner's endpoints as rows: registered, listed, rotated, deleted; disabled and enabled
again by the notifier and replays.

Every read and write names the partner: a partner reaches only its own endpoints (another's id
is the same "not found" as one that does not exist). Secrets are stored encrypted under
CREDENTIALS_KEY (`sync.credentials`) and returned in clear only by the call that made them.
"""

from __future__ import annotations

import json
import secrets as random_ids
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sync import credentials
from sync.notifications.records import DeliveryState, Endpoint, EndpointState
from sync.notifications.signer import new_secret
from sync.settings import Settings
from sync.store.db import Connection, Database, Row, utcnow

ROTATION_OVERLAP_S = 24 * 3600.0  # the replaced secret keeps signing beside the new one


@dataclass(frozen=True)
class WithSecret:
    """An endpoint and its signing secret in clear: answered once, never stored so."""

    endpoint: Endpoint
    secret: str


def new_endpoint_id() -> str:
    return "whe_" + random_ids.token_hex(12)


def endpoint_from_row(row: Row) -> Endpoint:
    return Endpoint(
        id=row["id"], partner_id=row["partner_id"], url=row["url"],
        events=tuple(json.loads(row["events"])), state=EndpointState(row["state"]),
        state_reason=row["state_reason"], failing_since=row["failing_since"],
        old_secret_expires_at=row["old_secret_expires_at"], created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def create_endpoint(
    db: Database, settings: Settings, *, partner_id: str, url: str, events: list[str]
) -> WithSecret:
    """Store a new endpoint, enabled, with a fresh secret. Raises SettingsError (no
    CREDENTIALS_KEY) before anything is written."""
    secret = new_secret()
    sealed = credentials.encrypt(settings, secret).decode("ascii")
    endpoint_id, now = new_endpoint_id(), utcnow()
    await db.execute(
        "INSERT INTO webhook_endpoints(id, partner_id, url, events, secret_enc, state,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (endpoint_id, partner_id, url, json.dumps(sorted(set(events))), sealed,
         EndpointState.ENABLED, now, now),
    )
    endpoint = await get_endpoint(db, partner_id, endpoint_id)
    assert endpoint is not None  # just written
    return WithSecret(endpoint, secret)


async def list_endpoints(db: Database, partner_id: str) -> list[Endpoint]:
    """The partner's endpoints that are not deleted, oldest first."""
    rows = await db.fetchall(
        "SELECT * FROM webhook_endpoints WHERE partner_id = ? AND state != ?"
        " ORDER BY created_at, id",
        (partner_id, EndpointState.DELETED),
    )
    return [endpoint_from_row(row) for row in rows]


async def get_endpoint(db: Database, partner_id: str, endpoint_id: str) -> Endpoint | None:
    """The partner's endpoint (None: another partner's, deleted, or none)."""
    row = await db.fetchone(
        "SELECT * FROM webhook_endpoints WHERE id = ? AND partner_id = ? AND state != ?",
        (endpoint_id, partner_id, EndpointState.DELETED),
    )
    return None if row is None else endpoint_from_row(row)


async def delete_endpoint(db: Database, partner_id: str, endpoint_id: str) -> Endpoint | None:
    """State `deleted`: nothing more is sent to it (its pending deliveries end `failed`)."""
    async with db.transaction() as conn:
        changed = await _set_state(conn, endpoint_id, EndpointState.DELETED, "deleted by its "
                                   "partner", partner_id=partner_id)
    if not changed:
        return None
    row = await db.fetchone("SELECT * FROM webhook_endpoints WHERE id = ?", (endpoint_id,))
    return None if row is None else endpoint_from_row(row)


async def rotate_secret(
    db: Database, settings: Settings, partner_id: str, endpoint_id: str,
    *, overlap_s: float = ROTATION_OVERLAP_S,
) -> WithSecret | None:
    """A new secret; the current one keeps signing beside it for `overlap_s` (a second rotation
    ends the first one's overlap at once). None: no such endpoint of this partner."""
    secret = new_secret()
    sealed = credentials.encrypt(settings, secret).decode("ascii")
    until = (datetime.now(UTC) + timedelta(seconds=overlap_s)).isoformat(timespec="microseconds")
    changed = await db.execute(
        "UPDATE webhook_endpoints SET old_secret_enc = secret_enc, old_secret_expires_at = ?,"
        " secret_enc = ?, updated_at = ? WHERE id = ? AND partner_id = ? AND state != ?",
        (until, sealed, utcnow(), endpoint_id, partner_id, EndpointState.DELETED),
    )
    if not changed:
        return None
    endpoint = await get_endpoint(db, partner_id, endpoint_id)
    assert endpoint is not None
    return WithSecret(endpoint, secret)


async def disable_in(conn: Connection, endpoint_id: str, reason: str) -> bool:
    """Disable an enabled endpoint (inside the caller's transaction); its pending deliveries
    end `failed` (a replay sends them again). True if it was enabled."""
    return await _set_state(conn, endpoint_id, EndpointState.DISABLED, reason)


async def enable_in(conn: Connection, endpoint_id: str) -> None:
    """A disabled endpoint enabled again (a replay asked for it), its failure streak reset."""
    await conn.execute(
        "UPDATE webhook_endpoints SET state = ?, state_reason = NULL, failing_since = NULL,"
        " updated_at = ? WHERE id = ? AND state = ?",
        (EndpointState.ENABLED, utcnow(), endpoint_id, EndpointState.DISABLED),
    )


async def _set_state(
    conn: Connection, endpoint_id: str, state: EndpointState, reason: str,
    *, partner_id: str | None = None,
) -> bool:
    now = utcnow()
    sql = ("UPDATE webhook_endpoints SET state = ?, state_reason = ?, updated_at = ?"
           " WHERE id = ? AND state != ?")
    params: list[object] = [state, reason, now, endpoint_id, EndpointState.DELETED]
    if state is EndpointState.DISABLED:
        sql += " AND state = ?"
        params.append(EndpointState.ENABLED)
    if partner_id is not None:
        sql += " AND partner_id = ?"
        params.append(partner_id)
    cursor = await conn.execute(sql, params)
    if cursor.rowcount == 0:
        return False
    await conn.execute(
        "UPDATE notification_deliveries SET state = ?, last_error = ?, updated_at = ?"
        " WHERE endpoint_id = ? AND state = ?",
        (DeliveryState.FAILED, f"endpoint {state.value}: {reason}", now, endpoint_id,
         DeliveryState.PENDING),
    )
    return True


async def endpoint_counts(db: Database) -> dict[str, int]:
    """Endpoints by state (deleted ones left out), for status and /metrics."""
    rows = await db.fetchall(
        "SELECT state, COUNT(*) FROM webhook_endpoints WHERE state != ? GROUP BY state",
        (EndpointState.DELETED,),
    )
    counts = {state.value: 0 for state in EndpointState if state is not EndpointState.DELETED}
    counts.update({str(r[0]): int(r[1]) for r in rows})
    return counts


async def disabled_endpoints(db: Database) -> list[dict[str, str | None]]:
    """The disabled endpoints, newest first: id, partner name, why and since when."""
    rows = await db.fetchall(
        "SELECT e.id, p.name, e.state_reason, e.updated_at FROM webhook_endpoints AS e"
        " JOIN partners AS p ON p.id = e.partner_id WHERE e.state = ?"
        " ORDER BY e.updated_at DESC LIMIT 50", (EndpointState.DISABLED,))
    return [{"id": r[0], "partner": r[1], "reason": r[2], "since": r[3]} for r in rows]
