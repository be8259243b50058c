"""The webhook inbox: deliveries committed before the 2xx, then worked by the events lane.

Web side: `InboxWriter` is group commit. Each request hands its row to one writer task and waits;
the writer inserts everything queued in one transaction, commits, and only then resolves each
request's future. One fsync serves a whole batch, so every acknowledged delivery is durable
without paying a commit per request.

Worker side: rows move received → applied | skipped | failed (retried after `next_attempt_at`)
→ parked. Rows about the same resource are claimed together, so one fetch from Alegra serves
every delivery about it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sync.store.db import Database, Row, utcnow

PENDING_STATES = ("received", "failed")


@dataclass(frozen=True)
class NewDelivery:
    body: bytes
    shape: str
    subject: str | None
    resource: str | None
    resource_id: str | None
    key_index: int


@dataclass(frozen=True)
class NewHandshake:
    key_index: int


Item = NewDelivery | NewHandshake

_INSERT_DELIVERY = (
    "INSERT INTO inbox(received_at, subject, resource, resource_id, body, shape, state, key_index)"
    " VALUES (?, ?, ?, ?, ?, ?, 'received', ?)"
)


async def write_batch(db: Database, items: Sequence[Item]) -> list[int]:
    """Insert deliveries and handshake notes in ONE transaction. Returns each item's inbox id
    (0 for a handshake), in order."""
    at = utcnow()
    deliveries = [i for i in items if isinstance(i, NewDelivery)]
    async with db.transaction() as conn:
        if deliveries:
            await conn.executemany(_INSERT_DELIVERY, [
                (at, d.subject, d.resource, d.resource_id, d.body, d.shape, d.key_index)
                for d in deliveries
            ])
            cursor = await conn.execute("SELECT last_insert_rowid()")
            row = await cursor.fetchone()
            assert row is not None  # last_insert_rowid() always answers one row
            last = int(row[0])
        await conn.executemany(
            "INSERT INTO webhook_handshakes(received_at, key_index) VALUES (?, ?)",
            [(at, i.key_index) for i in items if isinstance(i, NewHandshake)],
        )
    # AUTOINCREMENT under BEGIN IMMEDIATE (no other writer) numbers one batch consecutively.
    ids = iter(range(last - len(deliveries) + 1, last + 1)) if deliveries else iter(())
    return [next(ids) if isinstance(i, NewDelivery) else 0 for i in items]


class InboxWriter:
    """Group commit for the web process. `start()` in the lifespan, `close()` at shutdown."""

    def __init__(self, db: Database, *, max_batch: int = 256) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[int]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="inbox-writer")

    def submit(self, item: Item) -> asyncio.Future[int]:
        """Queue a row; the future resolves to its inbox id once COMMITTED (or raises)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return future

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch, stop = [first], False
            while len(batch) < self.max_batch and not self._queue.empty():
                entry = self._queue.get_nowait()
                if entry is None:
                    stop = True
                    break
                batch.append(entry)
            await self._commit(batch)
            if stop:
                return

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[int]]]) -> None:
        try:
            ids = await write_batch(self.db, [item for item, _ in batch])
        except Exception as exc:  # the requests answer 503 and Alegra retries; the writer lives on
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), inbox_id in zip(batch, ids, strict=True):
            if not future.done():  # a request that gave up waiting has a cancelled future
                future.set_result(inbox_id)


@dataclass(frozen=True)
class Group:
    """Pending deliveries about one Alegra resource, oldest first."""

    resource: str
    resource_id: str
    rows: tuple[Row, ...]


async def due_groups(
    db: Database, *, quiet_before: str, waited_before: str, limit: int
) -> list[tuple[str, str]]:
    """(resource, id) pairs with work due, oldest first. A pair is due once no delivery about it
    arrived since `quiet_before`, or its oldest waiting one arrived before `waited_before`: a burst
    about one contact settles into one fetch, without holding any delivery back for long."""
    rows = await db.fetchall(
        "SELECT resource, resource_id, MIN(received_at) AS first_at FROM inbox"
        " WHERE shape = 'ok' AND (state = 'received'"
        "   OR (state = 'failed' AND next_attempt_at <= ?))"
        " GROUP BY resource, resource_id"
        " HAVING MAX(received_at) <= ? OR MIN(received_at) <= ?"
        " ORDER BY first_at LIMIT ?",
        (utcnow(), quiet_before, waited_before, limit),
    )
    return [(r["resource"], r["resource_id"]) for r in rows]


async def claim_group(db: Database, resource: str, resource_id: str) -> Group:
    """Every pending delivery about this resource right now (a later one waits for its own fetch,
    since it may report a change made after this fetch)."""
    rows = await db.fetchall(
        "SELECT id, subject, attempts, received_at FROM inbox"
        " WHERE resource = ? AND resource_id = ? AND shape = 'ok'"
        " AND state IN ('received', 'failed') ORDER BY id",
        (resource, resource_id),
    )
    return Group(resource, resource_id, tuple(rows))


async def mark_done(db: Database, ids: Sequence[int], *, state: str, note: str | None) -> None:
    """Finish rows as `applied` or `skipped` (with the reason in `last_error` for skipped)."""
    applied_at = utcnow() if state == "applied" else None
    await db.execute(
        "UPDATE inbox SET state = ?, last_error = ?, next_attempt_at = NULL, applied_at = ?"
        " WHERE id IN (SELECT value FROM json_each(?))",
        (state, note, applied_at, json.dumps(list(ids))),
    )


async def mark_retry(
    db: Database, outcomes: Sequence[tuple[int, str, str | None]], *, error: str
) -> None:
    """Count a failed attempt on each row: (id, 'failed' | 'parked', next_attempt_at)."""
    await db.executemany(
        "UPDATE inbox SET state = ?, attempts = attempts + 1, next_attempt_at = ?,"
        " last_error = ? WHERE id = ?",
        [(state, next_at, error, inbox_id) for inbox_id, state, next_at in outcomes],
    )


async def skip_unusable(db: Database, *, limit: int = 500) -> list[Row]:
    """Mark received rows that are not JSON or not a known shape as skipped; returns them."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE inbox SET state = 'skipped', last_error = 'shape ' || shape"
            " WHERE id IN (SELECT id FROM inbox WHERE state = 'received' AND shape != 'ok'"
            " LIMIT ?) RETURNING id, shape",
            (limit,),
        )
        return list(await cursor.fetchall())


async def requeue(db: Database, ids: Sequence[int]) -> int:
    """Give parked or failed rows a fresh set of attempts, due now. Returns how many."""
    return await db.execute(
        "UPDATE inbox SET state = 'received', attempts = 0, next_attempt_at = NULL"
        " WHERE state IN ('parked', 'failed') AND id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(ids)),),
    )


async def state_counts(db: Database) -> dict[str, int]:
    rows = await db.fetchall("SELECT state, COUNT(*) FROM inbox GROUP BY state")
    return {str(r[0]): int(r[1]) for r in rows}


async def get_row(db: Database, inbox_id: int) -> Row | None:
    return await db.fetchone("SELECT * FROM inbox WHERE id = ?", (inbox_id,))


async def handshake_count(db: Database) -> int:
    return int(await db.scalar("SELECT COUNT(*) FROM webhook_handshakes") or 0)
