"""Group commit for the webhook inbox: the web process's hot path.

Each request hands its row to `InboxWriter.submit` and waits on the future it gets. One writer
task takes everything queued, writes it in ONE transaction on its own SQLite connection in its
own thread, commits, and only then resolves each request's future: one fsync serves a whole
batch, and every 2xx is sent after its row is durable. The batch is one call into the thread
(BEGIN … COMMIT together), so a busy event loop never makes a transaction wait on the GIL between
statements, and the writer never queues behind the web process's other queries.

When the worker holds the write lock, the writer's thread waits it out in fine steps (never the
event loop); a request that waits past its own deadline is answered 503 by the receiver.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sync.store.db import utcnow
from sync.store.inbox import (
    DELIVERY_ROW,
    INSERT_DELIVERIES,
    INSERT_HANDSHAKE,
    Item,
    delivery_params,
    handshake_params,
    ids_for,
)

WAL_AUTOCHECKPOINT_PAGES = 10_000  # SQLite's default is 1,000 (what the other connections use)
LOCK_WAIT_S = 2.5  # less than the receiver's deadline: a batch that cannot lock fails, not hangs
SWEEP_S = 0.05  # how often deadlines are checked: a timeout fires up to this much late
Entry = tuple[Item, "asyncio.Future[int]"]
OnCommit = Callable[[Sequence[Item], list[int]], None]
T = TypeVar("T")


def insert_items(conn: sqlite3.Connection, items: Sequence[Item]) -> list[int]:
    """Write a batch in one transaction (blocking; on the writer's thread). Returns the ids."""
    at = utcnow()
    deliveries, handshakes = delivery_params(items, at), handshake_params(items, at)
    if not handshakes:  # the usual batch: ONE statement, which is its own transaction
        return ids_for(items, retry_locked(lambda: _insert_deliveries(conn, deliveries)))
    begin_immediate(conn)
    try:
        conn.executemany(INSERT_HANDSHAKE, handshakes)
        last = _insert_deliveries(conn, deliveries) if deliveries else 0
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # a failed COMMIT too: the next batch must start clean
            conn.execute("ROLLBACK")
        raise
    return ids_for(items, last)


def _insert_deliveries(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> int:
    """Every delivery in ONE multi-row INSERT (rows keep their order); returns the last rowid.

    One statement is one `sqlite3_step`, so the thread gives up and takes back the GIL once per
    batch instead of once per row: under a busy event loop each take-back can wait the interpreter's
    switch interval (5 ms), and costs both threads CPU. Outside BEGIN (autocommit) the statement is
    a transaction of its own: it takes the write lock, inserts every row and commits (fsync under
    `synchronous = FULL`) in that one step; if it cannot lock, nothing was written.
    """
    sql = INSERT_DELIVERIES + ", ".join([DELIVERY_ROW] * len(rows))
    cursor = conn.execute(sql, [value for row in rows for value in row])
    return int(cursor.lastrowid or 0)


def begin_immediate(conn: sqlite3.Connection) -> None:
    """Take the write lock (see `retry_locked`)."""
    retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))


def retry_locked(write: Callable[[], T]) -> T:
    """Run `write` (a statement that takes the write lock first), polling every fraction of a
    millisecond while another process holds the lock. SQLite's own busy handler sleeps 1, 2, 5,
    10, 15, 20, 25… ms between tries, which adds tens of milliseconds to every delivery that meets
    one of the worker's short transactions. Raises sqlite3.OperationalError after LOCK_WAIT_S."""
    deadline = time.monotonic() + LOCK_WAIT_S
    pause = 0.0002
    while True:
        try:
            return write()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.002)


class StoreTimeout(TimeoutError):
    """The row was not committed within the caller's deadline (it may still be, later)."""


class InboxWriter:
    """`await start()` in the lifespan, `submit()` per request, `await close()` at shutdown.

    `on_commit(items, ids)` is called after each committed batch (one log line per batch rather
    than one per request: on the hot path a log line costs as much as the rest of the request).
    Per request there is only a list append and a future: no queue, no timer (one sweep every
    SWEEP_S expires what passed its deadline).
    """

    def __init__(
        self, path: Path, *, max_batch: int = 256, on_commit: OnCommit | None = None
    ) -> None:
        self.path = path
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._pending: list[Entry] = []
        self._wake: asyncio.Future[None] | None = None  # set while the writer waits for work
        self._deadlines: list[tuple[float, asyncio.Future[int]]] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._closing = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-writer")
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._call(self._open)
        self._task = asyncio.create_task(self._run(), name="inbox-writer")

    def submit(self, item: Item, *, timeout_s: float | None = None) -> asyncio.Future[int]:
        """Queue a row. The future resolves to its inbox id once COMMITTED, or raises the write's
        error, or StoreTimeout once `timeout_s` has passed (within SWEEP_S)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((item, future))
        if timeout_s is not None:
            self._deadlines.append((loop.time() + timeout_s, future))
            if self._sweeper is None:
                self._sweeper = loop.call_later(SWEEP_S, self._sweep)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        return future

    async def close(self) -> None:
        """Commit what is queued, then stop and close the connection."""
        if self._task is not None:
            self._closing = True
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)
            await self._task
            self._task = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._thread.shutdown(wait=False)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)  # see retry_locked
        conn.execute("PRAGMA synchronous = FULL")  # per connection: durable before the 2xx
        # Checkpoints (copying the WAL into the database file) are left to the other connections,
        # the worker's above all, which commit often: one run from here would stall a batch of
        # acknowledgements. Past this many pages (~40 MB) this connection checkpoints too, so the
        # WAL stays bounded while the worker is down.
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        self._conn = conn

    async def _call(self, fn: object, *args: object) -> object:
        assert callable(fn)
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _run(self) -> None:
        """Commit whatever is queued, batch after batch; wait when nothing is; after close(),
        stop once the queue is empty."""
        while self._pending or not self._closing:
            if not self._pending:
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
                self._wake = None
                continue
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            await self._commit(batch)

    async def _commit(self, batch: list[Entry]) -> None:
        assert self._conn is not None
        items = [item for item, _ in batch]
        try:
            ids = await self._call(insert_items, self._conn, items)
        except Exception as exc:  # the requests answer 503 and Alegra retries; the writer lives on
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        assert isinstance(ids, list)
        for (_, future), inbox_id in zip(batch, ids, strict=True):
            if not future.done():  # a request whose deadline passed was already answered
                future.set_result(inbox_id)
        if self.on_commit is not None:
            self.on_commit(items, ids)

    def _sweep(self) -> None:
        """Fail the futures whose deadline has passed; forget the settled ones."""
        loop = asyncio.get_running_loop()
        now, waiting = loop.time(), []
        for at, future in self._deadlines:
            if future.done():
                continue
            if at <= now:
                future.set_exception(StoreTimeout("the delivery was not committed in time"))
            else:
                waiting.append((at, future))
        self._deadlines = waiting
        self._sweeper = loop.call_later(SWEEP_S, self._sweep) if waiting else None
