"""Scheduled jobs' state: schedule, owner, checkpoints, runs and drift reports.

A job's checkpoint is written in the same transaction as the page it follows
(`save_contacts_page`), so a crash or kill -9 resumes after the last stored page, never before it
and never after one that was lost. Timestamps are `db.utcnow()` text; JSON columns are decoded
here, so callers get plain dicts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import aiosqlite

from sync.alegra.records import BillRecord, ContactRecord
from sync.store import bill_status, bills, cache, contacts
from sync.store.db import Database, Row, utcnow

_STATE_COLUMNS = (
    "name, checkpoint, last_started_at, last_finished_at, last_outcome, last_duration_s,"
    " last_error, next_run_at, owner, lease_until"
)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _state(row: Row) -> dict[str, Any]:
    state = dict(row)
    state["checkpoint"] = _loads(row["checkpoint"])
    state["running"] = row["owner"] is not None
    return state


async def ensure_jobs(db: Database, first_runs: dict[str, str | None]) -> list[str]:
    """Create the rows of jobs not seen before, due at the given times; existing rows are kept.
    Returns the names created now."""
    existing = {str(r[0]) for r in await db.fetchall("SELECT name FROM jobs")}
    new = {name: at for name, at in first_runs.items() if name not in existing}
    await db.executemany(
        "INSERT INTO jobs(name, next_run_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING",
        list(new.items()),
    )
    return list(new)


async def job_states(db: Database) -> list[dict[str, Any]]:
    """Every job's schedule and last run (outcome: success | incomplete | failed), for the
    scheduler and the operators' status endpoint. `running` is True while a process holds it."""
    rows = await db.fetchall(f"SELECT {_STATE_COLUMNS} FROM jobs ORDER BY name")  # noqa: S608
    return [_state(r) for r in rows]


async def job_state(db: Database, name: str) -> dict[str, Any] | None:
    row = await db.fetchone(
        f"SELECT {_STATE_COLUMNS} FROM jobs WHERE name = ?", (name,)  # noqa: S608
    )
    return _state(row) if row else None


async def set_next_run(db: Database, name: str, at: str | None) -> None:
    await db.execute("UPDATE jobs SET next_run_at = ? WHERE name = ?", (at, name))


async def request_run(db: Database, name: str, at: str | None = None) -> None:
    """Make the job due by `at` (now by default), keeping an earlier time already set."""
    at = at or utcnow()
    await db.execute(
        "UPDATE jobs SET next_run_at = ? WHERE name = ?"
        " AND (next_run_at IS NULL OR next_run_at > ?)",
        (at, name, at),
    )


async def claim_job(
    db: Database, name: str, *, owner: str, lease_until: str, holder_gone: Callable[[str], bool]
) -> str | None:
    """Take the job for `owner`. Returns None when taken, or the live holder that has it.

    A holder is replaced when its lease has passed or `holder_gone(holder)` says it died.
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT owner, lease_until FROM jobs WHERE name = ?", (name,)
        )
        row = await cursor.fetchone()
        holder, lease = (row["owner"], row["lease_until"]) if row else (None, None)
        if holder and holder != owner and (lease or "") > utcnow() and not holder_gone(holder):
            return str(holder)
        await conn.execute(
            "INSERT INTO jobs(name, owner, lease_until) VALUES (?, ?, ?) ON CONFLICT(name)"
            " DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until",
            (name, owner, lease_until),
        )
    return None


async def start_run(db: Database, name: str) -> int:
    """Record that a run of `name` started now; returns the run's id."""
    now = utcnow()
    async with db.transaction() as conn:
        await conn.execute("UPDATE jobs SET last_started_at = ? WHERE name = ?", (now, name))
        cursor = await conn.execute(
            "INSERT INTO job_runs(name, started_at) VALUES (?, ?)", (name, now)
        )
        return int(cursor.lastrowid or 0)


async def finish_run(
    db: Database,
    run_id: int,
    name: str,
    *,
    owner: str,
    outcome: str,
    duration_s: float,
    error: str | None,
    next_run_at: str | None,
    detail: dict[str, Any],
) -> None:
    """Record a run's outcome on the run and on the job, schedule the next, release the job."""
    now = utcnow()
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE job_runs SET finished_at = ?, outcome = ?, duration_s = ?, error = ?,"
            " detail = ? WHERE id = ?",
            (now, outcome, duration_s, error, json.dumps(detail), run_id),
        )
        await conn.execute(
            "UPDATE jobs SET last_finished_at = ?, last_outcome = ?, last_duration_s = ?,"
            " last_error = ?, next_run_at = ?,"
            " owner = CASE WHEN owner = ? THEN NULL ELSE owner END,"
            " lease_until = CASE WHEN owner = ? THEN NULL ELSE lease_until END WHERE name = ?",
            (now, outcome, duration_s, error, next_run_at, owner, owner, name),
        )


async def recent_runs(db: Database, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The job's latest runs, newest first."""
    rows = await db.fetchall(
        "SELECT * FROM job_runs WHERE name = ? ORDER BY id DESC LIMIT ?", (name, limit)
    )
    return [{**dict(r), "detail": _loads(r["detail"])} for r in rows]


async def save_checkpoint(db: Database, name: str, checkpoint: dict[str, Any] | None) -> None:
    """Store a checkpoint on its own (a phase boundary; None clears it)."""
    async with db.transaction() as conn:
        await _write_checkpoint(conn, name, checkpoint)


async def save_contacts_page(
    db: Database,
    name: str,
    records: Iterable[ContactRecord],
    *,
    source: str,
    confirmed_at: str,
    checkpoint: dict[str, Any],
) -> int:
    """Upsert one page of contacts and the job's checkpoint after it, in one transaction."""
    rows = [contacts._row(r) for r in records]  # the contacts module's own record → row mapping
    async with db.transaction() as conn:
        count = await cache.upsert(
            conn, contacts.TABLE, contacts.COLUMNS, rows, source=source, confirmed_at=confirmed_at
        )
        await _write_checkpoint(conn, name, checkpoint)
        return count


async def save_bills_page(
    db: Database,
    name: str,
    known: Iterable[BillRecord],
    *,
    source: str,
    confirmed_at: str,
    checkpoint: dict[str, Any] | None,
) -> int:
    """Upsert one page of known bills and the job's checkpoint after it, in one transaction.
    A bill's `receipt_id` is never overwritten (a bill the flow just recorded keeps its receipt);
    the receipt a stored bill came from gets its bill-fate flag as a webhook would set it."""
    known = list(known)
    async with db.transaction() as conn:
        count = await bills.record_seen_bills_in(
            conn, known, source=source, confirmed_at=confirmed_at
        )
        await bill_status.flag_receipts_in(conn, known, confirmed_at=confirmed_at)
        await _write_checkpoint(conn, name, checkpoint)
        return count


async def _write_checkpoint(
    conn: aiosqlite.Connection, name: str, checkpoint: dict[str, Any] | None
) -> None:
    await conn.execute(
        "UPDATE jobs SET checkpoint = ? WHERE name = ?",
        (json.dumps(checkpoint) if checkpoint is not None else None, name),
    )


async def save_drift_report(db: Database, run_id: int | None, report: dict[str, Any]) -> int:
    """Store a reconciliation's drift report (see `sync.jobs.drift`); returns its id."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO drift_reports(job_run_id, created_at, complete, missing, extra,"
            " different, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, utcnow(), int(report["complete"]), report["missing"], report["extra"],
             report["different"], json.dumps(report, ensure_ascii=False)),
        )
        return int(cursor.lastrowid or 0)


async def last_drift_report(db: Database) -> dict[str, Any] | None:
    """The latest drift report: counts, whether the scan was complete, ids and field diffs."""
    row = await db.fetchone("SELECT * FROM drift_reports ORDER BY id DESC LIMIT 1")
    return _report(row) if row else None


async def get_drift_report(db: Database, report_id: int) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM drift_reports WHERE id = ?", (report_id,))
    return _report(row) if row else None


def _report(row: Row) -> dict[str, Any]:
    detail = _loads(row["detail"]) or {}
    return {
        **detail,
        "id": row["id"],
        "job_run_id": row["job_run_id"],
        "created_at": row["created_at"],
        "complete": bool(row["complete"]),
        "missing": row["missing"],
        "extra": row["extra"],
        "different": row["different"],
    }
