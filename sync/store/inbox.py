"""The webhook inbox: deliveries committed before the 2xx, then worked by the events lane.

Web side: the rows a delivery and a handshake leave (`NewDelivery`, `NewHandshake`), written in
batches (group commit) by the web side's `receiver/inbox/` (docs/webhooks.md). What a row
records about its body (shape, subject, resource, id) is parsed when the row is written, off the
web process's event loop.

Worker side: rows move received → applied | skipped | failed (retried after `next_attempt_at`)
→ parked. Rows about the same resource are claimed together, so one fetch from Alegra serves
every delivery about it. Reads return typed records (`sync.inbox_records`).

Every row belongs to one company: a delivery or handshake names its own (the company whose URL
token it came in on), and every worker-side function reads and writes `db.company`'s rows only;
`companies_with_due_events` is the one look across companies, for whoever dispatches them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sync.alegra.webhook_body import parse_delivery
from sync.inbox_records import Group, InboxEvent, PendingDelivery, UnusableDelivery
from sync.states import InboxState
from sync.store.db import DEFAULT_COMPANY, Database, Row, utcnow
from sync.store.sql_lists import chunks, marks


@dataclass(frozen=True)
class NewDelivery:
    """A delivery as received: its bytes, which SECRET_KEY's URL it came in on, and the company
    that URL belongs to."""

    body: bytes
    key_index: int
    company_id: str = DEFAULT_COMPANY


@dataclass(frozen=True)
class NewHandshake:
    key_index: int
    company_id: str = DEFAULT_COMPANY


Item = NewDelivery | NewHandshake

INSERT_DELIVERIES = (
    "INSERT INTO inbox(received_at, subject, resource, resource_id, body, shape, state, key_index,"
    " company_id) VALUES "
)
DELIVERY_ROW = f"(?, ?, ?, ?, ?, ?, '{InboxState.RECEIVED}', ?, ?)"
INSERT_DELIVERY = INSERT_DELIVERIES + DELIVERY_ROW + " RETURNING id"
DELIVERIES_PER_INSERT = 500  # 4,000 bound values: below either engine's limit per statement
INSERT_HANDSHAKE = (
    "INSERT INTO webhook_handshakes(received_at, key_index, company_id) VALUES (?, ?, ?)"
)


class DeliveryRow(NamedTuple):
    """One delivery's INSERT parameters, in DELIVERY_ROW's order."""

    received_at: str
    subject: str | None
    resource: str | None
    resource_id: str | None
    body: bytes
    shape: str
    key_index: int
    company_id: str = DEFAULT_COMPANY


def delivery_params(items: Sequence[Item], at: str) -> list[DeliveryRow]:
    """The rows of the deliveries among `items`, in order, each body parsed (pure)."""
    rows = []
    for item in items:
        if isinstance(item, NewDelivery):
            parsed = parse_delivery(item.body)
            rows.append(DeliveryRow(at, parsed.subject, parsed.resource, parsed.resource_id,
                                    item.body, parsed.shape, item.key_index, item.company_id))
    return rows


def handshake_params(items: Sequence[Item], at: str) -> list[tuple[object, ...]]:
    return [(at, i.key_index, i.company_id) for i in items if isinstance(i, NewHandshake)]


def insert_deliveries_sql(count: int) -> str:
    """ONE INSERT of `count` deliveries (rows in order) that answers their ids."""
    return INSERT_DELIVERIES + ", ".join([DELIVERY_ROW] * count) + " RETURNING id"


def ids_in_order(items: Sequence[Item], delivery_ids: Iterable[int]) -> list[int]:
    """Each item's inbox id (0 for a handshake), given the ids its deliveries' INSERTs answered.

    Ids grow in the order the rows are inserted (on both engines), but the order of RETURNING's
    rows is not promised: sorted, they are the deliveries' ids in order."""
    ids = iter(sorted(delivery_ids))
    return [next(ids) if isinstance(i, NewDelivery) else 0 for i in items]


async def write_batch(db: Database, items: Sequence[Item]) -> list[int]:
    """Insert deliveries and handshake notes in ONE transaction (the same rows `InboxWriter`
    writes, through the shared connection), each in its own item's company. Returns each item's
    inbox id, in order."""
    at = utcnow()
    delivery_ids: list[int] = []
    async with db.transaction() as conn:
        await conn.executemany(INSERT_HANDSHAKE, handshake_params(items, at))
        for rows in chunks(delivery_params(items, at), DELIVERIES_PER_INSERT):
            cursor = await conn.execute(insert_deliveries_sql(len(rows)),
                                        [value for row in rows for value in row])
            delivery_ids.extend(int(r[0]) for r in await cursor.fetchall())
    return ids_in_order(items, delivery_ids)


SCAN_PER_GROUP = 25  # due_groups reads at most this many pending rows per group it may return
# How far back (in deliveries of any company) `due_groups` looks for the company's newest one.
QUIET_LOOKBACK = 1000


_DUE_GROUPS = (  # built from constants only; parameters in order: see `due_groups`
    "SELECT resource, resource_id, MIN(id) AS first_id FROM ("  # noqa: S608
    "  SELECT * FROM (SELECT id, resource, resource_id, received_at FROM inbox"
    f"   WHERE company_id = ? AND state = '{InboxState.RECEIVED}'"
    "    AND next_attempt_at IS NULL AND shape = 'ok'"
    "   ORDER BY id LIMIT ?) AS fresh"
    "  UNION ALL"
    "  SELECT * FROM (SELECT id, resource, resource_id, received_at FROM inbox"
    f"   WHERE company_id = ? AND state = '{InboxState.FAILED}'"
    "    AND next_attempt_at <= ? AND shape = 'ok'"
    "   ORDER BY next_attempt_at LIMIT ?) AS retried) AS pending"
    " WHERE COALESCE((SELECT received_at FROM inbox WHERE company_id || '' = ?"
    "   AND id > (SELECT COALESCE(MAX(id), 0) FROM inbox) - ?"
    "   ORDER BY id DESC LIMIT 1), '') <= ?"
    "   OR received_at <= ?"
    " GROUP BY resource, resource_id ORDER BY first_id LIMIT ?"
)
# Per company, one look through `inbox_company_pending` that stops at its first due delivery.
_COMPANIES_DUE = (
    "SELECT id FROM companies WHERE EXISTS (SELECT 1 FROM inbox"  # noqa: S608 -- constants
    f" WHERE company_id = companies.id AND state = '{InboxState.RECEIVED}'"
    "  AND next_attempt_at IS NULL)"
    " OR EXISTS (SELECT 1 FROM inbox"
    f" WHERE company_id = companies.id AND state = '{InboxState.FAILED}'"
    "  AND next_attempt_at <= ?) ORDER BY id"
)


async def due_groups(
    db: Database, *, quiet_before: str, waited_before: str, limit: int
) -> list[tuple[str, str]]:
    """`db.company`'s (resource, id) pairs with work due, oldest first. Work is due once the
    company's deliveries have been quiet (none since `quiet_before`: a burst is over), or once a
    pair's oldest waiting delivery arrived before `waited_before`: a burst settles into one fetch
    per resource, and no delivery waits much longer than that, even under a steady stream.

    Reads only the company's oldest pending rows (through `inbox_company_pending`; a received
    row never has a next attempt time), so a round costs the same with 20 or 20,000 deliveries
    waiting; the company's newest delivery is looked for among the last QUIET_LOOKBACK of every
    company (one row read when it is the newest of all; older than that counts as quiet), so
    another company's burst neither slows this look nor holds this company's work back."""
    scan = limit * SCAN_PER_GROUP
    rows = await db.fetchall(_DUE_GROUPS, (
        db.company, scan, db.company, utcnow(), scan,
        db.company, QUIET_LOOKBACK, quiet_before, waited_before, limit,
    ))
    return [(r["resource"], r["resource_id"]) for r in rows]


async def companies_with_due_events(db: Database) -> list[str]:
    """The companies (by id) with deliveries to work now, whatever the handle's company: one
    received and not yet tried (usable or not), or one failed whose retry time has come. One
    read, two index looks per company; the quiet rule is `due_groups`' own, per company."""
    rows = await db.fetchall(_COMPANIES_DUE, (utcnow(),))
    return [str(r[0]) for r in rows]


def _pending(row: Row) -> PendingDelivery:
    return PendingDelivery(int(row["id"]), row["subject"], int(row["attempts"]),
                           row["received_at"])


async def claim_group(db: Database, resource: str, resource_id: str) -> Group:
    """Every pending delivery of `db.company` about this resource right now (a later one waits
    for its own fetch, since it may report a change made after this fetch)."""
    rows = await db.fetchall(
        "SELECT id, subject, attempts, received_at FROM inbox"  # noqa: S608
        " WHERE resource = ? AND resource_id = ? AND company_id = ? AND shape = 'ok'"
        f" AND state IN ('{InboxState.RECEIVED}', '{InboxState.FAILED}') ORDER BY id",
        (resource, resource_id, db.company),
    )
    return Group(resource, resource_id, tuple(_pending(r) for r in rows))


async def mark_done(
    db: Database, ids: Sequence[int], *, state: InboxState, note: str | None
) -> None:
    """Finish rows as `applied` or `skipped` (with the reason in `last_error` for skipped)."""
    if not ids:
        return
    applied_at = utcnow() if state == InboxState.APPLIED else None
    async with db.transaction() as conn:
        for some in chunks(list(ids)):
            await conn.execute(
                "UPDATE inbox SET state = ?, last_error = ?, next_attempt_at = NULL,"  # noqa: S608
                f" applied_at = ? WHERE id IN ({marks(len(some))}) AND company_id = ?",
                (state, note, applied_at, *some, db.company),
            )


async def mark_retry(
    db: Database, outcomes: Sequence[tuple[int, InboxState, str | None]], *, error: str
) -> None:
    """Count a failed attempt on each row: (id, 'failed' | 'parked', next_attempt_at)."""
    await db.executemany(
        "UPDATE inbox SET state = ?, attempts = attempts + 1, next_attempt_at = ?,"
        " last_error = ? WHERE id = ? AND company_id = ?",
        [(state, next_at, error, inbox_id, db.company) for inbox_id, state, next_at in outcomes],
    )


async def skip_unusable(db: Database, *, limit: int = 500) -> list[UnusableDelivery]:
    """Mark `db.company`'s received rows that are not JSON or not a known shape as skipped;
    returns them. (A read first, through the small `inbox_unusable` index: the common case,
    nothing to skip, takes no write lock and reads no pending row.)"""
    if await db.fetchone(
        f"SELECT 1 FROM inbox WHERE state = '{InboxState.RECEIVED}' AND shape != 'ok'"  # noqa: S608
        " AND company_id || '' = ? LIMIT 1",
        (db.company,),
    ) is None:
        return []
    async with db.transaction() as conn:
        cursor = await conn.execute(
            f"UPDATE inbox SET state = '{InboxState.SKIPPED}', last_error = 'shape ' || shape"  # noqa: S608
            f" WHERE id IN (SELECT id FROM inbox WHERE state = '{InboxState.RECEIVED}'"
            " AND shape != 'ok' AND company_id || '' = ?"
            " LIMIT ?) RETURNING id, shape",
            (db.company, limit),
        )
        return [UnusableDelivery(int(r["id"]), r["shape"]) for r in await cursor.fetchall()]


async def state_counts(db: Database) -> dict[str, int]:
    """`db.company`'s deliveries in each state."""
    rows = await db.fetchall(
        "SELECT state, COUNT(*) FROM inbox WHERE company_id = ? GROUP BY state", (db.company,)
    )
    return {str(r[0]): int(r[1]) for r in rows}


EVENT_COLUMNS = (
    "id, company_id, received_at, subject, resource, resource_id, body, shape, state, attempts,"
    " next_attempt_at, last_error, applied_at, key_index"
)


def event_record(row: Row) -> InboxEvent:
    """A whole inbox row (selected as EVENT_COLUMNS) as its record."""
    values: dict[str, Any] = dict(row)
    return InboxEvent(**{**values, "body": bytes(row["body"]), "state": InboxState(row["state"])})


async def get_row(db: Database, inbox_id: int) -> InboxEvent | None:
    """One of `db.company`'s deliveries, whole."""
    row = await db.fetchone(
        f"SELECT {EVENT_COLUMNS} FROM inbox WHERE id = ? AND company_id = ?",  # noqa: S608
        (inbox_id, db.company),
    )
    return None if row is None else event_record(row)

