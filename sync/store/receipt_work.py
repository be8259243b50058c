"""The worker's SQL on receipts and their steps: claim with a lease, record each step, finish.

A receipt is claimed when it is `queued`, or `processing` under a lease that expired or whose
holder is known dead, and its `next_attempt_at` has come. Claiming is one UPDATE … RETURNING in a
BEGIN IMMEDIATE transaction, so two workers (or two coroutines) never get the same receipt.
Every function works on `db.company`'s receipts only (a receipt's steps follow their receipt);
`companies_with_ready_work` is the one look across companies, for whoever dispatches them.
Steps move `attempting` (a write may have been sent) → `done` | `failed`; a step is never moved
back from `done`. `StepLog` is how the flow records them with few transactions (see its docstring).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.notifications import outbox
from sync.notifications.records import EventType
from sync.receipt_records import StepRecord
from sync.states import ReceiptStatus, StepState
from sync.store.db import Connection, Database, Row, utcnow
from sync.store.sql_lists import marks

Write = Callable[[Connection], Awaitable[int]]
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})


class LeaseLost(Exception):
    """The receipt is no longer held by this owner: another worker took it over."""


@dataclass(frozen=True)
class Claimed:
    """A receipt this worker now holds: its stored payload and how many times it was taken up."""

    receipt_id: str
    payload: dict[str, Any]
    attempts: int
    created_at: str
    retried_at: str | None = None  # an operator's last retry: the retry window restarts there

    @property
    def window_start(self) -> str:
        """Where the worker's retry window counts from: arrival, or the operator's last retry."""
        return max(self.created_at, self.retried_at or self.created_at)


def timestamp_in(seconds: float) -> str:
    """`utcnow()` plus `seconds`, in the store's timestamp format."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


_DUE = " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"


@dataclass(frozen=True)
class _Ready:
    """The two kinds of ready receipt, as WHERE conditions with their parameters in order:
    queued, and processing under a lease that ran out or whose holder is dead; either one only
    once its next attempt is due. `company` is `?` (then `company_params` holds the id) or a
    column of an outer query. Each kind is one range of `receipts_company_ready` (company_id,
    status, next_attempt_at), so they are asked apart."""

    now: str
    dead: tuple[str, ...]
    company: str = "?"
    company_params: tuple[str, ...] = ()

    def queued(self) -> tuple[str, list[Any]]:
        return (f"company_id = {self.company} AND status = '{ReceiptStatus.QUEUED}'" + _DUE,
                [*self.company_params, self.now])

    def taken_over(self) -> tuple[str, list[Any]]:
        dead = f" OR lease_owner IN ({marks(len(self.dead))})" if self.dead else ""
        return (
            f"company_id = {self.company} AND status = '{ReceiptStatus.PROCESSING}'"
            f" AND (lease_until IS NULL OR lease_until < ?{dead})" + _DUE,
            [*self.company_params, self.now, *self.dead, self.now],
        )

    def exists_either(self) -> tuple[str, list[Any]]:
        """`EXISTS (a queued one) OR EXISTS (one to take over)`: each stops at its first row."""
        (queued, first), (taken_over, second) = self.queued(), self.taken_over()
        return (f"EXISTS (SELECT 1 FROM receipts WHERE {queued})"  # noqa: S608 -- constants
                f" OR EXISTS (SELECT 1 FROM receipts WHERE {taken_over})", [*first, *second])


def _claim_sql(
    ready: _Ready, running: Sequence[str], lease_until: str, owner: str
) -> tuple[str, list[Any]]:
    """One UPDATE … RETURNING that takes the first ready receipt not in `running`."""
    (queued, first), (taken_over, second) = ready.queued(), ready.taken_over()
    not_running = f" WHERE id NOT IN ({marks(len(running))})" if running else ""
    sql = (  # built from constants only; every value is bound
        f"UPDATE receipts SET status = '{ReceiptStatus.PROCESSING}', lease_until = ?,"  # noqa: S608
        " lease_owner = ?, attempts = attempts + 1, updated_at = ?"
        " WHERE id = (SELECT id FROM ("
        f"   SELECT id, next_attempt_at, created_at FROM receipts WHERE {queued}"
        "   UNION ALL"
        f"   SELECT id, next_attempt_at, created_at FROM receipts WHERE {taken_over}) AS ready"
        f"{not_running}"
        "   ORDER BY COALESCE(next_attempt_at, created_at), created_at LIMIT 1)"
        " RETURNING id, payload, attempts, created_at, retried_at"
    )
    return sql, [lease_until, owner, ready.now, *first, *second, *running]


async def claim_next(
    db: Database,
    *,
    owner: str,
    lease_s: float,
    dead_owners: list[str] | None = None,
    running: Iterable[str] = (),
) -> Claimed | None:
    """Take `db.company`'s next ready receipt under a lease of `lease_s` seconds, or None if none
    is ready. `running`: receipts this worker is still working on — never claimed twice, even
    when their lease ran out because renewals kept failing."""
    sql, params = _claim_sql(_ready(db, dead_owners), list(running), timestamp_in(lease_s), owner)
    async with db.transaction() as conn:
        cursor = await conn.execute(sql, params)
        row = await cursor.fetchone()
    if row is None:
        return None
    return Claimed(
        row["id"], json.loads(row["payload"]), int(row["attempts"]), row["created_at"],
        row["retried_at"],
    )


def _ready(db: Database, dead_owners: list[str] | None, company: str = "?") -> _Ready:
    scoped = (db.company,) if company == "?" else ()
    return _Ready(utcnow(), tuple(dead_owners or ()), company, scoped)


async def any_ready(db: Database, *, dead_owners: list[str] | None = None) -> bool:
    """Whether `claim_next` would find a receipt: a plain read, so an idle worker polling it
    never takes the write lock the web process needs."""
    either, params = _ready(db, dead_owners).exists_either()
    return bool(await db.scalar(f"SELECT {either}", params))


async def companies_with_ready_work(
    db: Database, *, dead_owners: list[str] | None = None
) -> list[str]:
    """The companies (by id) that have a receipt `claim_next` would take now, whatever the
    handle's company: one read, one index look per company (two looks through
    `receipts_company_ready` that stop at the first ready receipt). Whether a company's work may
    run (removed, or waiting on its credentials) is the dispatcher's call."""
    either, params = _ready(db, dead_owners, company="companies.id").exists_either()
    rows = await db.fetchall(f"SELECT id FROM companies WHERE {either} ORDER BY id", params)  # noqa: S608
    return [str(r[0]) for r in rows]


async def foreign_lease_owners(db: Database, owner: str) -> list[str]:
    """Holders, other than `owner`, of the leases on `db.company`'s receipts in `processing`."""
    rows = await db.fetchall(
        "SELECT DISTINCT lease_owner FROM receipts WHERE company_id = ?"  # noqa: S608
        f" AND status = '{ReceiptStatus.PROCESSING}'"
        " AND lease_owner IS NOT NULL AND lease_owner != ?",
        (db.company, owner),
    )
    return [str(r[0]) for r in rows]


async def renew_lease(db: Database, receipt_id: str, *, owner: str, lease_s: float) -> bool:
    """Extend our lease. False when the receipt is no longer ours (the lease was taken over)."""
    changed = await db.execute(
        "UPDATE receipts SET lease_until = ? WHERE id = ? AND company_id = ?"  # noqa: S608
        f" AND status = '{ReceiptStatus.PROCESSING}' AND lease_owner = ?",
        (timestamp_in(lease_s), receipt_id, db.company, owner),
    )
    return changed > 0


async def load_steps(db: Database, receipt_id: str) -> dict[str, StepRecord]:
    """The steps of `db.company`'s receipt, by name (none for another company's receipt)."""
    rows = await db.fetchall(
        "SELECT s.* FROM receipt_steps AS s JOIN receipts AS r ON r.id = s.receipt_id"
        " WHERE s.receipt_id = ? AND r.company_id = ?",
        (receipt_id, db.company),
    )
    return {row["step"]: _step(row) for row in rows}


def _step(row: Row) -> StepRecord:
    return StepRecord(
        step=row["step"],
        state=StepState(row["state"]),
        outcome=row["outcome"],
        alegra_id=row["alegra_id"],
        detail=json.loads(row["detail"] or "{}"),
        attempts=int(row["attempts"]),
        updated_at=row["updated_at"],
    )


def _attempting_sql(receipt_id: str, step: str) -> tuple[str, tuple[Any, ...]]:
    now = utcnow()
    return (
        "INSERT INTO receipt_steps(receipt_id, step, state, attempts, started_at, updated_at)"  # noqa: S608
        f" VALUES (?, ?, '{StepState.ATTEMPTING}', 1, ?, ?)"
        f" ON CONFLICT(receipt_id, step) DO UPDATE SET state = '{StepState.ATTEMPTING}',"
        " attempts = receipt_steps.attempts + 1, updated_at = excluded.updated_at"
        f" WHERE receipt_steps.state != '{StepState.DONE}'",
        (receipt_id, step, now, now),
    )


def _finish_step_sql(
    receipt_id: str, step: str, outcome: str, alegra_id: str | None, detail: dict[str, Any] | None
) -> tuple[str, tuple[Any, ...]]:
    now = utcnow()
    return (
        "INSERT INTO receipt_steps(receipt_id, step, state, outcome, alegra_id, detail,"  # noqa: S608
        f" started_at, updated_at) VALUES (?, ?, '{StepState.DONE}', ?, ?, ?, ?, ?)"
        f" ON CONFLICT(receipt_id, step) DO UPDATE SET state = '{StepState.DONE}',"
        " outcome = excluded.outcome,"
        " alegra_id = excluded.alegra_id, detail = excluded.detail,"
        " updated_at = excluded.updated_at",
        (receipt_id, step, outcome, alegra_id, json.dumps(detail or {}), now, now),
    )


def _fail_step_sql(
    receipt_id: str, step: str, error: dict[str, Any]
) -> tuple[str, tuple[Any, ...]]:
    """The step ends `failed` with the error, except a step left `attempting` by an error that
    said nothing of the write's outcome: it stays `attempting`, because the write may have
    happened in Alegra and nobody ever found out. Only Alegra refusing the write itself (a
    non-retryable answer to the POST/PUT/DELETE) settles it; a retryable error (timeout, 5xx,
    outage), or any error of the lookup a resumed step makes first, does not."""
    now = utcnow()
    unknown = bool(error.get("retryable")) or error.get("method") not in WRITE_METHODS
    return (
        "INSERT INTO receipt_steps(receipt_id, step, state, detail, started_at, updated_at)"  # noqa: S608
        f" VALUES (?, ?, '{StepState.FAILED}', ?, ?, ?)"
        " ON CONFLICT(receipt_id, step) DO UPDATE SET state = CASE"
        f"   WHEN receipt_steps.state = '{StepState.ATTEMPTING}' AND ? = 1"
        f" THEN '{StepState.ATTEMPTING}' ELSE '{StepState.FAILED}' END,"
        " detail = excluded.detail, updated_at = excluded.updated_at"
        f" WHERE receipt_steps.state != '{StepState.DONE}'",
        (receipt_id, step, json.dumps({"error": error}), now, now, int(unknown)),
    )


def _bill_id_sql(company: str, receipt_id: str, bill_id: str) -> tuple[str, tuple[Any, ...]]:
    return (
        "UPDATE receipts SET bill_id = ?, updated_at = ? WHERE id = ? AND company_id = ?",
        (bill_id, utcnow(), receipt_id, company),
    )


_COMPLETE = (
    f"status = '{ReceiptStatus.COMPLETED}', completed_at = ?, error = NULL, next_attempt_at = NULL"
)
_FAIL = f"status = '{ReceiptStatus.FAILED}', completed_at = ?, error = ?"
_RESCHEDULE = f"status = '{ReceiptStatus.QUEUED}', next_attempt_at = ?, error = ?"
_RELEASE = f"status = '{ReceiptStatus.QUEUED}', next_attempt_at = NULL"


def _final_sql(
    company: str, receipt_id: str, owner: str, assignments: str, params: tuple[Any, ...]
) -> tuple[str, tuple[Any, ...]]:
    """End our hold on the receipt; changes nothing if the receipt is no longer ours."""
    return (
        f"UPDATE receipts SET {assignments}, lease_until = NULL, lease_owner = NULL,"  # noqa: S608
        f" updated_at = ? WHERE id = ? AND company_id = ? AND status = '{ReceiptStatus.PROCESSING}'"
        " AND lease_owner = ?",
        (*params, utcnow(), receipt_id, company, owner),
    )


async def _held(conn: Connection, company: str, receipt_id: str, owner: str) -> bool:
    cursor = await conn.execute(
        "SELECT 1 FROM receipts WHERE id = ? AND company_id = ?"  # noqa: S608
        f" AND status = '{ReceiptStatus.PROCESSING}' AND lease_owner = ?",
        (receipt_id, company, owner),
    )
    return await cursor.fetchone() is not None


def statement(sql: str, params: tuple[Any, ...]) -> Write:
    """One SQL statement as a deferred write; it returns the number of rows it changed."""

    async def write(conn: Connection) -> int:
        cursor = await conn.execute(sql, params)
        return int(cursor.rowcount)

    return write


class StepLog:
    """One receipt's step records, written in as few transactions as safety allows.

    A step that must be durable before Alegra is called (`attempting`) and the receipt's outcome
    are commit points. Everything else — a `done` step, the bill id, a row for the bills table —
    waits in memory and is committed in the same transaction as the next commit point. That is
    safe: a write to Alegra is always preceded by its committed `attempting` mark, so a crash that
    loses a pending `done` costs a look-up on resume (or a cache hit), never a second record.
    """

    def __init__(self, db: Database, receipt_id: str, owner: str) -> None:
        self.db, self.receipt_id, self.owner = db, receipt_id, owner
        self._pending: list[Write] = []

    def done(
        self, step: str, *, outcome: str, alegra_id: str | None, detail: dict[str, Any] | None
    ) -> None:
        self._pending.append(
            statement(*_finish_step_sql(self.receipt_id, step, outcome, alegra_id, detail))
        )

    def bill(self, bill_id: str) -> None:
        self._pending.append(statement(*_bill_id_sql(self.db.company, self.receipt_id, bill_id)))

    def also(self, write: Write) -> None:
        """Another table's write (e.g. the bills cache) to commit with the next commit point."""
        self._pending.append(write)

    async def attempting(self, step: str) -> None:
        """Commit point: the step's write is about to be sent. Raises LeaseLost (nothing is
        committed) when the receipt is no longer ours: only its new holder may write for it."""
        await self._commit(statement(*_attempting_sql(self.receipt_id, step)), fence=True)

    async def complete(self) -> bool:
        return await self._final(_COMPLETE, (utcnow(),), EventType.RECEIPT_COMPLETED)

    async def fail(self, error: dict[str, Any], step: str | None) -> bool:
        """`failed`, with the error also kept on `step` (None: the error belongs to no step)."""
        if step is not None:
            self._pending.append(statement(*_fail_step_sql(self.receipt_id, step, error)))
        return await self._final(_FAIL, (utcnow(), json.dumps(error)), EventType.RECEIPT_FAILED)

    async def reschedule(self, error: dict[str, Any], delay_s: float) -> bool:
        waits = outbox.waiting_reason(error) is not None
        return await self._final(_RESCHEDULE, (timestamp_in(delay_s), json.dumps(error)),
                                 EventType.RECEIPT_WAITING if waits else None)

    async def release(self) -> bool:
        return await self._final(_RELEASE, ())

    async def _final(
        self, assignments: str, params: tuple[Any, ...], event: EventType | None = None
    ) -> bool:
        """End the hold; the partner's notification (`event`) commits with it, if it landed."""
        sql = _final_sql(self.db.company, self.receipt_id, self.owner, assignments, params)
        company, receipt_id = self.db.company, self.receipt_id

        async def notify(conn: Connection) -> int:
            assert event is not None
            return int(await outbox.receipt_settled(conn, company, receipt_id, event))

        return await self._commit(statement(*sql), then=None if event is None else notify) > 0

    async def _commit(self, last: Write, *, fence: bool = False, then: Write | None = None) -> int:
        """The pending writes and `last` in one transaction; `then` too when `last` changed a
        row."""
        writes, self._pending = [*self._pending, last], []
        async with self.db.transaction() as conn:
            if fence and not await _held(conn, self.db.company, self.receipt_id, self.owner):
                raise LeaseLost(self.receipt_id)
            for write in writes[:-1]:
                await write(conn)
            changed = await last(conn)
            if changed > 0 and then is not None:
                await then(conn)
            return changed


async def free_claims(db: Database) -> int:
    """Let `db.company`'s receipts in `processing` be claimed at once, whoever claimed them: for
    a worker that has just taken the company's lease from a worker known dead (sync/fleet.py).
    The dead holder sends nothing more to Alegra, and its own records are fenced by `lease_owner`
    (`StepLog`), so its receipts resume without waiting out their claims; their steps left
    `attempting` look their write up first. Returns how many were freed."""
    return await db.execute(
        "UPDATE receipts SET lease_until = NULL WHERE company_id = ?"  # noqa: S608
        f" AND status = '{ReceiptStatus.PROCESSING}' AND lease_until IS NOT NULL",
        (db.company,),
    )
