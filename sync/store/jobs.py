"""Scheduled jobs' state: schedule, owner, checkpoints, runs and drift reports.

A job's checkpoint is written in the same transaction as the page it follows
(`save_contacts_page`), so a crash or kill -9 resumes after the last stored page, never before it
and never after one that was lost. Jobs, their runs and drift reports belong to one company: every
function reads and writes `db.company`'s. Timestamps are written as `db.utcnow()` text; a job's
state and runs are read back as typed records (`sync.job_records`), drift reports as the JSON
documents they are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sync.alegra.records import BillRecord, ContactRecord
from sync.job_records import JobRunRecord, JobState
from sync.notifications import outbox
from sync.states import JobOutcome
from sync.store import bill_status, bills, cache, contacts
from sync.store.db import Connection, Cursor, Database, Row, utcnow

_STATE_COLUMNS = (
    "name, checkpoint, last_started_at, last_finished_at, last_outcome, last_duration_s,"
    " last_error, next_run_at, owner, lease_until"
)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _outcome(text: str | None) -> JobOutcome | None:
    return JobOutcome(text) if text else None


def _state(row: Row) -> JobState:
    return JobState(
        name=row["name"],
        next_run_at=_time(row["next_run_at"]),
        last_outcome=_outcome(row["last_outcome"]),
        checkpoint=_loads(row["checkpoint"]),
        last_started_at=_time(row["last_started_at"]),
        last_finished_at=_time(row["last_finished_at"]),
        last_duration_s=row["last_duration_s"],
        last_error=row["last_error"],
        owner=row["owner"],
        lease_until=_time(row["lease_until"]),
    )


async def ensure_jobs(db: Database, first_runs: dict[str, str | None]) -> list[str]:
    """Create the rows of jobs not seen before, due at the given times; existing rows are kept.
    Returns the names created now."""
    rows = await db.fetchall("SELECT name FROM jobs WHERE company_id = ?", (db.company,))
    existing = {str(r[0]) for r in rows}
    new = {name: at for name, at in first_runs.items() if name not in existing}
    await db.executemany(
        "INSERT INTO jobs(company_id, name, next_run_at) VALUES (?, ?, ?)"
        " ON CONFLICT(company_id, name) DO NOTHING",
        [(db.company, name, at) for name, at in new.items()],
    )
    return list(new)


async def job_states(db: Database) -> list[JobState]:
    """Every job's schedule and last run, for the scheduler and the operators' status
    endpoint."""
    rows = await db.fetchall(
        f"SELECT {_STATE_COLUMNS} FROM jobs WHERE company_id = ? ORDER BY name",  # noqa: S608
        (db.company,),
    )
    return [_state(r) for r in rows]


async def job_state(db: Database, name: str) -> JobState | None:
    row = await db.fetchone(
        f"SELECT {_STATE_COLUMNS} FROM jobs WHERE company_id = ? AND name = ?",  # noqa: S608
        (db.company, name),
    )
    return _state(row) if row else None


async def set_next_run(db: Database, name: str, at: str | None) -> None:
    await db.execute(
        "UPDATE jobs SET next_run_at = ? WHERE company_id = ? AND name = ?",
        (at, db.company, name),
    )


async def request_run(db: Database, name: str, at: str | None = None) -> None:
    """Make the job due by `at` (now by default), keeping an earlier time already set."""
    at = at or utcnow()
    await db.execute(
        "UPDATE jobs SET next_run_at = ? WHERE company_id = ? AND name = ?"
        " AND (next_run_at IS NULL OR next_run_at > ?)",
        (at, db.company, name, at),
    )


async def claim_job(
    db: Database, name: str, *, owner: str, lease_until: str, holder_gone: Callable[[str], bool]
) -> str | None:
    """Take the job for `owner`. Returns None when taken, or the live holder that has it.

    A holder is replaced when its lease has passed or `holder_gone(holder)` says it died.
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT owner, lease_until FROM jobs WHERE company_id = ? AND name = ?",
            (db.company, name),
        )
        row = await cursor.fetchone()
        holder, lease = (row["owner"], row["lease_until"]) if row else (None, None)
        if holder and holder != owner and (lease or "") > utcnow() and not holder_gone(holder):
            return str(holder)
        await conn.execute(
            "INSERT INTO jobs(company_id, name, owner, lease_until) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(company_id, name)"
            " DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until",
            (db.company, name, owner, lease_until),
        )
    return None


async def release_job(db: Database, name: str, *, owner: str) -> None:
    """Give the job back without recording a run (an operator's command held it)."""
    await db.execute(
        "UPDATE jobs SET owner = NULL, lease_until = NULL"
        " WHERE company_id = ? AND name = ? AND owner = ?",
        (db.company, name, owner),
    )


async def start_run(db: Database, name: str) -> int:
    """Record that a run of `name` started now; returns the run's id."""
    now = utcnow()
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE jobs SET last_started_at = ? WHERE company_id = ? AND name = ?",
            (now, db.company, name),
        )
        cursor = await conn.execute(
            "INSERT INTO job_runs(company_id, name, started_at) VALUES (?, ?, ?) RETURNING id",
            (db.company, name, now),
        )
        return await _new_id(cursor)


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
            " detail = ? WHERE id = ? AND company_id = ?",
            (now, outcome, duration_s, error, json.dumps(detail), run_id, db.company),
        )
        await conn.execute(
            "UPDATE jobs SET last_finished_at = ?, last_outcome = ?, last_duration_s = ?,"
            " last_error = ?, next_run_at = ?,"
            " owner = CASE WHEN owner = ? THEN NULL ELSE owner END,"
            " lease_until = CASE WHEN owner = ? THEN NULL ELSE lease_until END"
            " WHERE company_id = ? AND name = ?",
            (now, outcome, duration_s, error, next_run_at, owner, owner, db.company, name),
        )


def _run(row: Row) -> JobRunRecord:
    return JobRunRecord(
        id=int(row["id"]),
        name=row["name"],
        started_at=datetime.fromisoformat(row["started_at"]),
        finished_at=_time(row["finished_at"]),
        outcome=_outcome(row["outcome"]),
        duration_s=row["duration_s"],
        error=row["error"],
        detail=_loads(row["detail"]) or {},
    )


async def recent_runs(db: Database, name: str, limit: int = 20) -> list[JobRunRecord]:
    """The job's latest runs, newest first."""
    rows = await db.fetchall(
        "SELECT * FROM job_runs WHERE company_id = ? AND name = ? ORDER BY id DESC LIMIT ?",
        (db.company, name, limit),
    )
    return [_run(r) for r in rows]


async def save_checkpoint(db: Database, name: str, checkpoint: dict[str, Any] | None) -> None:
    """Store a checkpoint on its own (a phase boundary; None clears it)."""
    async with db.transaction() as conn:
        await _write_checkpoint(conn, name, checkpoint, company=db.company)


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
            conn, contacts.TABLE, contacts.COLUMNS, rows, company=db.company, source=source,
            confirmed_at=confirmed_at,
        )
        await _write_checkpoint(conn, name, checkpoint, company=db.company)
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
    ids = [bill.alegra_id for bill in known]
    async with db.transaction() as conn:
        before = await outbox.bill_snapshot(conn, db.company, ids)
        count = await bills.record_seen_bills_in(
            conn, known, company=db.company, source=source, confirmed_at=confirmed_at
        )
        await bill_status.flag_receipts_in(
            conn, known, company=db.company, confirmed_at=confirmed_at
        )
        await outbox.bills_changed(conn, db.company, before, ids)
        await _write_checkpoint(conn, name, checkpoint, company=db.company)
        return count


async def _write_checkpoint(
    conn: Connection, name: str, checkpoint: dict[str, Any] | None, *, company: str
) -> None:
    await conn.execute(
        "UPDATE jobs SET checkpoint = ? WHERE company_id = ? AND name = ?",
        (json.dumps(checkpoint) if checkpoint is not None else None, company, name),
    )


async def save_drift_report(db: Database, run_id: int | None, report: dict[str, Any]) -> int:
    """Store a reconciliation's drift report (see `sync.jobs.drift`); returns its id."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO drift_reports(company_id, job_run_id, created_at, complete, missing,"
            " extra, different, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (db.company, run_id, utcnow(), int(report["complete"]), report["missing"],
             report["extra"], report["different"], json.dumps(report, ensure_ascii=False)),
        )
        return await _new_id(cursor)


async def _new_id(cursor: Cursor) -> int:
    """The id an `INSERT … RETURNING id` gave its row."""
    [row] = await cursor.fetchall()  # to the end: the statement is done before COMMIT
    return int(row[0])


async def last_drift_report(db: Database) -> dict[str, Any] | None:
    """The latest drift report: counts, whether the scan was complete, ids and field diffs.
    (Newest first by id: one row read when the newest report is the company's.)"""
    row = await db.fetchone(
        "SELECT * FROM drift_reports WHERE company_id || '' = ? ORDER BY id DESC LIMIT 1",
        (db.company,),
    )
    return _report(row) if row else None


async def get_drift_report(db: Database, report_id: int) -> dict[str, Any] | None:
    row = await db.fetchone(
        "SELECT * FROM drift_reports WHERE id = ? AND company_id = ?", (report_id, db.company)
    )
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
