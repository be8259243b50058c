"""The operators' reads and repairs: cache listings, status figures, metrics, replay and retry.

Read-mostly SQL for the admin endpoints and `/metrics`. The two writes (`replay_event`,
`retry_failed_receipt`) only hand a row back to the worker; the worker does the work, so a
replay or retry goes through the same idempotent paths as the first attempt.

Everything about a company's data reads or writes `db.company`'s rows only. The deployment's
own figures are not scoped: the worker's heartbeat, its metric counters, the count of deliveries
ever stored, and partners. Where an unscoped query's plan was already the right one (a walk by
id, the small index of unusable rows), the company is a filter (`company_id || ''`: no index
reads an expression) that leaves it so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sync.inbox_records import InboxEvent
from sync.states import PENDING_INBOX_STATES, InboxState, JobOutcome, ReceiptStatus
from sync.store.db import Database, Row, utcnow
from sync.store.inbox import EVENT_COLUMNS, event_record

CACHE_TABLES = ("contacts", "accounts", "taxes", "bills")


def _like_fragment(text: str) -> str:
    """`%text%` for LIKE … ESCAPE '\\', with the user's own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- cache listings -------------------------------------------------------------------------

async def contacts_page(
    db: Database,
    *,
    tax_id: str | None = None,
    name_fragment: str | None = None,
    contact_type: str | None = None,
    status: str | None = None,
    include_deleted: bool = False,
    after: tuple[str, str] | None = None,
    limit: int = 50,
) -> list[Row]:
    """Cached contacts by (name_key, alegra_id), after the keyset `after`; at most `limit`."""
    wanted: dict[str, Any] = {
        "company_id = ?": db.company,
        "tax_id = ?": tax_id,
        "name_key LIKE ? ESCAPE '\\'": _like_fragment(name_fragment) if name_fragment else None,
        # `types` is a JSON list: the type, quoted as JSON, is one of its elements.
        "REPLACE(types, ?, '') != types": contact_type and json.dumps(contact_type),
        "status = ?": status,
    }
    clauses = [clause for clause, value in wanted.items() if value is not None]
    params = [value for value in wanted.values() if value is not None]
    if not include_deleted:
        clauses.append("deleted = 0")
    if after is not None:
        clauses.append("(name_key, alegra_id) > (?, ?)")
        params.extend(after)
    where = " WHERE " + " AND ".join(clauses)
    return await db.fetchall(
        f"SELECT * FROM contacts{where} ORDER BY name_key, alegra_id LIMIT ?",  # noqa: S608 -- clauses are constants; values are bound
        [*params, limit],
    )


async def all_accounts(db: Database, *, include_deleted: bool = False) -> list[Row]:
    """The whole cached chart of accounts (a chart is hundreds of rows, not millions)."""
    return await db.fetchall(
        "SELECT * FROM accounts WHERE company_id = ? AND (deleted = 0 OR ? = 1)"
        " ORDER BY code NULLS FIRST, name_key, alegra_id",
        (db.company, int(include_deleted)),
    )


async def all_taxes(db: Database, *, include_deleted: bool = False) -> list[Row]:
    return await db.fetchall(
        "SELECT * FROM taxes WHERE company_id = ? AND (deleted = 0 OR ? = 1) ORDER BY alegra_id",
        (db.company, int(include_deleted)),
    )


async def ping(db: Database) -> bool:
    """The database answers a query."""
    return bool(await db.scalar("SELECT 1") == 1)


# --- status ---------------------------------------------------------------------------------

async def cache_counts(db: Database) -> dict[str, dict[str, int]]:
    """Live and deleted rows of each cached Alegra table, each counted through a partial index
    holding only those rows (migration 0700): no table row is read."""
    counts: dict[str, dict[str, int]] = {}
    for table in CACHE_TABLES:
        live = await db.scalar(
            f"SELECT COUNT(*) FROM {table} WHERE company_id = ? AND deleted = 0", (db.company,))  # noqa: S608 -- table names are constants
        deleted = await db.scalar(
            f"SELECT COUNT(*) FROM {table} WHERE company_id = ? AND deleted = 1", (db.company,))  # noqa: S608 -- table names are constants
        counts[table] = {"live": int(live), "deleted": int(deleted)}
    return counts


async def last_webhooks(db: Database) -> list[Row]:
    """Per event subject: deliveries stored and when the last one arrived."""
    return await db.fetchall(
        "SELECT COALESCE(subject, '(none)') AS subject, MAX(received_at) AS last_received_at,"
        " COUNT(*) AS deliveries FROM inbox WHERE company_id = ?"
        " GROUP BY subject ORDER BY subject",
        (db.company,),
    )


async def last_handshake_at(db: Database) -> str | None:
    value = await db.scalar(
        "SELECT MAX(received_at) FROM webhook_handshakes WHERE company_id = ?", (db.company,)
    )
    return None if value is None else str(value)


async def subscription_rows(db: Database) -> list[Row]:
    return await db.fetchall(
        "SELECT * FROM subscriptions WHERE company_id = ? ORDER BY event", (db.company,)
    )


async def oldest_pending_event_at(db: Database) -> str | None:
    """When the oldest delivery still waiting to be applied (received or failed) arrived."""
    value = await db.scalar(
        "SELECT MIN(received_at) FROM inbox WHERE company_id = ? AND state IN (?, ?)",
        (db.company, *PENDING_INBOX_STATES),
    )
    return None if value is None else str(value)


async def parked_events_since(db: Database, since: str | None) -> int:
    """Deliveries given up on (parked) that arrived after `since` (None: ever)."""
    return int(await db.scalar(
        "SELECT COUNT(*) FROM inbox WHERE company_id = ?"  # noqa: S608
        f" AND state = '{InboxState.PARKED}' AND received_at > ?",
        (db.company, since or ""),
    ))


async def count_in_states(
    db: Database, table: str, column: str, states: tuple[str, ...]
) -> dict[str, int]:
    """Rows of `table` in each of `states` of its `column` (inbox.state through
    inbox_company_pending, receipts.status through receipts_company_ready): each is an index
    range as long as the company's rows in that state, so counting the open states costs the
    open work, not the table."""
    return {state: int(await db.scalar(
        f"SELECT COUNT(*) FROM {table} WHERE company_id = ? AND {column} = ?",  # noqa: S608 -- names are constants
        (db.company, state)))
        for state in states}


async def receipt_counts(db: Database) -> dict[str, int]:
    rows = await db.fetchall(
        "SELECT status, COUNT(*) FROM receipts WHERE company_id = ? GROUP BY status",
        (db.company,),
    )
    return {str(r[0]): int(r[1]) for r in rows}


async def oldest_waiting_receipt_at(db: Database) -> str | None:
    """When the oldest receipt not yet final (queued or processing) was received."""
    value = await db.scalar(
        "SELECT MIN(created_at) FROM receipts WHERE company_id = ?"  # noqa: S608
        f" AND status IN ('{ReceiptStatus.QUEUED}', '{ReceiptStatus.PROCESSING}')",
        (db.company,),
    )
    return None if value is None else str(value)


async def recent_failed_receipts(db: Database, limit: int = 10) -> list[Row]:
    return await db.fetchall(
        "SELECT id, partner_id, error, updated_at FROM receipts WHERE company_id = ?"  # noqa: S608
        f" AND status = '{ReceiptStatus.FAILED}'"
        " ORDER BY updated_at DESC LIMIT ?",
        (db.company, limit),
    )


async def last_successes(db: Database) -> dict[str, str]:
    """When each job last finished a run with outcome `success`: per job (every job that ever
    ran has its `jobs` row), its runs newest first through `job_runs_by_name`, up to the first
    success; not a pass over every run ever recorded."""
    rows = await db.fetchall(
        "SELECT name, (SELECT finished_at FROM job_runs AS r"  # noqa: S608
        " WHERE r.company_id = jobs.company_id AND r.name = jobs.name"
        f" AND r.outcome = '{JobOutcome.SUCCESS}' ORDER BY r.id DESC LIMIT 1)"
        " FROM jobs WHERE company_id = ?",
        (db.company,),
    )
    return {str(r[0]): str(r[1]) for r in rows if r[1] is not None}


async def worker_state(db: Database) -> Row | None:
    """The worker's last heartbeat (pid, beat_at, budget snapshot JSON), if it ever ran."""
    return await db.fetchone("SELECT pid, beat_at, budget FROM worker_state WHERE id = 1")


# --- metrics --------------------------------------------------------------------------------

async def add_to_metric_counters(
    db: Database, increments: Mapping[tuple[str, str], float], at: str
) -> None:
    """Add each (series name, labels JSON) increment to its stored value, in one transaction."""
    await db.executemany(
        "INSERT INTO metric_counters(name, labels, value, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(name, labels) DO UPDATE SET value = metric_counters.value + excluded.value,"
        " updated_at = excluded.updated_at",
        [(name, labels, amount, at) for (name, labels), amount in increments.items()],
    )


async def metric_counter_rows(db: Database) -> list[Row]:
    return await db.fetchall("SELECT name, labels, value FROM metric_counters ORDER BY name")


async def recent_webhook_lags(db: Database, window: int = 500) -> list[float]:
    """Seconds from arrival to applied, for the company's applied rows among the last `window`
    deliveries (of every company). (`state || ''`, `company_id || ''`: filters on the id range,
    never a look through the index of every applied row.)"""
    rows = await db.fetchall(
        "SELECT received_at, applied_at FROM inbox"  # noqa: S608
        " WHERE id > (SELECT COALESCE(MAX(id), 0) FROM inbox) - ?"
        f" AND state || '' = '{InboxState.APPLIED}' AND company_id || '' = ?"
        " AND applied_at IS NOT NULL",
        (window, db.company),
    )
    return [max(0.0, _seconds_between(r[0], r[1])) for r in rows]


def _seconds_between(earlier: str, later: str) -> float:
    """Seconds from one store timestamp to another (computed here, not in SQL)."""
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


async def deliveries_stored(db: Database) -> int:
    """Deliveries ever stored (the inbox's id counter; rows pruned later still count): where
    each engine keeps the counter is its own (SQLite: AUTOINCREMENT's `sqlite_sequence`;
    PostgreSQL: the identity column's sequence, NULL before its first value)."""
    if db.engine == "sqlite":
        value = await db.scalar("SELECT seq FROM sqlite_sequence WHERE name = 'inbox'")
    else:
        value = await db.scalar(
            "SELECT pg_sequence_last_value(CAST(pg_get_serial_sequence('inbox', 'id') AS regclass))"
        )
    return int(value or 0)


async def drift_totals(db: Database) -> dict[str, int]:
    """Drift found by every complete reconciliation so far, by kind."""
    row = await db.fetchone(
        "SELECT COALESCE(SUM(missing), 0), COALESCE(SUM(extra), 0), COALESCE(SUM(different), 0)"
        " FROM drift_reports WHERE company_id = ? AND complete = 1",
        (db.company,),
    )
    assert row is not None  # an aggregate always returns a row
    return {"missing": int(row[0]), "extra": int(row[1]), "different": int(row[2])}


# --- admin: events and receipts -------------------------------------------------------------

async def events_page(
    db: Database,
    *,
    state: str | None = None,
    subject: str | None = None,
    resource: str | None = None,
    resource_id: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[InboxEvent]:
    """Inbox rows, newest first, before the keyset `before_id`; at most `limit`. (The company
    is a filter on the walk down the ids, as are the others without an index of their own.)"""
    wanted: dict[str, Any] = {
        "company_id || '' = ?": db.company,
        "state = ?": state, "subject = ?": subject, "resource = ?": resource,
        "resource_id = ?": resource_id,
        "id < ?": before_id,
    }
    clauses = [clause for clause, value in wanted.items() if value is not None]
    where = " WHERE " + " AND ".join(clauses)
    rows = await db.fetchall(
        f"SELECT {EVENT_COLUMNS} FROM inbox{where} ORDER BY id DESC LIMIT ?",  # noqa: S608 -- clauses are constants; values are bound
        [*(v for v in wanted.values() if v is not None), limit],
    )
    return [event_record(row) for row in rows]


async def replay_event(db: Database, event_id: int) -> bool:
    """Hand an inbox row back to the worker (`received`, due now), attempts kept.

    False if the company has no such row."""
    changed = await db.execute(
        f"UPDATE inbox SET state = '{InboxState.RECEIVED}', next_attempt_at = NULL,"  # noqa: S608
        " applied_at = NULL"
        " WHERE id = ? AND company_id = ?",
        (event_id, db.company),
    )
    return changed > 0


async def partner_id_for(db: Database, partner: str) -> str | None:
    """A partner's id from its id or its name."""
    value = await db.scalar(
        "SELECT id FROM partners WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1",
        (partner, partner, partner),
    )
    return None if value is None else str(value)


async def retry_failed_receipt(db: Database, receipt_id: str) -> bool:
    """`failed` → `queued`, due now; the flow resumes from its recorded steps.

    False (nothing changed) unless the receipt exists in `db.company` and is `failed`."""
    now = utcnow()
    changed = await db.execute(
        f"UPDATE receipts SET status = '{ReceiptStatus.QUEUED}', next_attempt_at = ?,"  # noqa: S608
        " completed_at = NULL,"
        " lease_until = NULL, lease_owner = NULL, updated_at = ?, retried_at = ?"
        f" WHERE id = ? AND company_id = ? AND status = '{ReceiptStatus.FAILED}'",
        (now, now, now, receipt_id, db.company),
    )
    return changed > 0
