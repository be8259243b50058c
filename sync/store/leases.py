"""The SQL of company leases and of the workers' registry (tables of migration 1300).

Taking a lease is one compare-and-set UPDATE whose WHERE admits only a free, run-out or already
own lease, its row count saying whether it was taken. That is this store's equivalent of
`SELECT … FOR UPDATE SKIP LOCKED`, correct on both engines: SQLite runs one writer at a time,
and PostgreSQL, under READ COMMITTED, re-checks the WHERE of an UPDATE against the row as the
concurrent winner committed it, so of two workers racing for a lease exactly one changes the
row. Renewing is one UPDATE of every lease the worker holds, returning their keys: one that is
missing was taken by another worker. Every statement is portable SQL (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Collection

from sync.lease_records import LeaseRecord, WorkerRecord
from sync.store.db import Database, Row

_LEASE_COLUMNS = "lease_key, holder, expires_at, acquired_at, companies"


def _lease(row: Row) -> LeaseRecord:
    return LeaseRecord(
        key=row["lease_key"], holder=row["holder"], expires_at=row["expires_at"],
        acquired_at=row["acquired_at"], companies=tuple(json.loads(row["companies"] or "[]")),
    )


def _worker(row: Row) -> WorkerRecord:
    return WorkerRecord(
        id=row["id"], host=row["host"], pid=int(row["pid"]), started_at=row["started_at"],
        beat_at=row["beat_at"], expires_at=row["expires_at"],
    )


async def renew(db: Database, worker: WorkerRecord) -> list[str]:
    """One beat of `worker`: its registry row (live until `worker.expires_at`) and every lease it
    holds, extended to the same time, in one transaction. Returns the keys it still holds.
    Workers that stopped beating are dropped from the registry."""
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO workers(id, host, pid, started_at, beat_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
            " beat_at = excluded.beat_at, expires_at = excluded.expires_at",
            (worker.id, worker.host, worker.pid, worker.started_at, worker.beat_at,
             worker.expires_at),
        )
        await conn.execute(
            "DELETE FROM workers WHERE expires_at < ? AND id != ?", (worker.beat_at, worker.id)
        )
        cursor = await conn.execute(
            "UPDATE company_leases SET expires_at = ? WHERE holder = ? RETURNING lease_key",
            (worker.expires_at, worker.id),
        )
        return [str(row[0]) for row in await cursor.fetchall()]


async def live_workers(db: Database, now: str) -> list[WorkerRecord]:
    """The workers whose last beat has not run out at `now`, by id."""
    rows = await db.fetchall(
        "SELECT id, host, pid, started_at, beat_at, expires_at FROM workers"
        " WHERE expires_at >= ? ORDER BY id",
        (now,),
    )
    return [_worker(row) for row in rows]


async def lease_rows(db: Database) -> list[LeaseRecord]:
    rows = await db.fetchall(
        f"SELECT {_LEASE_COLUMNS} FROM company_leases ORDER BY lease_key"  # noqa: S608 - constant
    )
    return [_lease(row) for row in rows]


async def add_leases(db: Database, keys: Collection[str]) -> None:
    """Free rows for these leases, if they have none yet."""
    await db.executemany(
        "INSERT INTO company_leases(lease_key) VALUES (?) ON CONFLICT(lease_key) DO NOTHING",
        [(key,) for key in keys],
    )


async def take(
    db: Database, key: str, worker: str, *, now: str, expires_at: str, companies: Collection[str],
    dead_holder: str | None = None,
) -> bool:
    """Compare-and-set: the lease becomes `worker`'s until `expires_at` if it is free, ran out
    before `now`, is already its own, or is still held by `dead_holder` (a worker known to have
    died: its process is gone from this host). True when it did."""
    changed = await db.execute(
        "UPDATE company_leases SET holder = ?, expires_at = ?, acquired_at = ?, companies = ?"
        " WHERE lease_key = ? AND (holder = ? OR holder = ? OR holder IS NULL"
        " OR expires_at IS NULL OR expires_at < ?)",
        (worker, expires_at, now, json.dumps(sorted(companies)), key, worker,
         dead_holder or worker, now),
    )
    return changed > 0


async def release(db: Database, key: str, worker: str) -> bool:
    """Hand the lease over (free at once), if `worker` still holds it."""
    changed = await db.execute(
        "UPDATE company_leases SET holder = NULL, expires_at = NULL, companies = '[]'"
        " WHERE lease_key = ? AND holder = ?",
        (key, worker),
    )
    return changed > 0


async def describe(db: Database, key: str, worker: str, companies: Collection[str]) -> None:
    """Record which companies the lease covers now (for the status), if `worker` holds it."""
    await db.execute(
        "UPDATE company_leases SET companies = ? WHERE lease_key = ? AND holder = ?",
        (json.dumps(sorted(companies)), key, worker),
    )


async def retire(db: Database, worker: str) -> None:
    """A worker stopping cleanly: its leases are free at once, and it leaves the registry."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE company_leases SET holder = NULL, expires_at = NULL, companies = '[]'"
            " WHERE holder = ?",
            (worker,),
        )
        await conn.execute("DELETE FROM workers WHERE id = ?", (worker,))


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def lease_of(db: Database, company: str) -> LeaseRecord | None:
    """The lease that names `company` (its holder: the worker running its lanes), if any."""
    row = await db.fetchone(
        f"SELECT {_LEASE_COLUMNS} FROM company_leases"  # noqa: S608 - constant columns
        " WHERE companies LIKE ? ESCAPE '\\'"
        " ORDER BY COALESCE(expires_at, '') DESC LIMIT 1",
        (f'%"{_like_literal(company)}"%',),
    )
    return None if row is None else _lease(row)
