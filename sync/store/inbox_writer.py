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
Entry = tuple[Item, "asyncio.Future[int]"]
OnCommit = Callable[[Sequence[Item], list[int]], None]


def insert_items(conn: sqlite3.Connection, items: Sequence[Item]) -> list[int]:
    """Write a batch in one transaction (blocking; on the writer's thread). Returns the ids."""
    at = utcnow()
    deliveries, handshakes = delivery_params(items, at), handshake_params(items, at)
    begin_immediate(conn)
    try:
        if handshakes:
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
    switch interval (5 ms), which is what made per-row inserts slow.
    """
    sql = INSERT_DELIVERIES + ", ".join([DELIVERY_ROW] * len(rows))
    cursor = conn.execute(sql, [value for row in rows for value in row])
    return int(cursor.lastrowid or 0)


def begin_immediate(conn: sqlite3.Connection) -> None:
    """Take the write lock, polling every fraction of a millisecond while another process holds
    it. SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25… ms between tries, which adds
    tens of milliseconds to every delivery that meets one of the worker's short transactions.
    Raises sqlite3.OperationalError after LOCK_WAIT_S."""
    deadline = time.monotonic() + LOCK_WAIT_S
    pause = 0.0002
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        else:
            return
        time.sleep(pause)
        pause = min(pause * 2, 0.002)


class StoreTimeout(TimeoutError):
    """The row was not committed within the caller's deadline (it may still be, later)."""


class InboxWriter:
    """`await start()` in the lifespan, `submit()` per request, `await close()` at shutdown.

    `on_commit(items, ids)` is called after each committed batch (one log line per batch rather
    than one per request: on the hot path a log line costs as much as the rest of the request).
    """

    def __init__(
        self, path: Path, *, max_batch: int = 256, on_commit: OnCommit | None = None
    ) -> None:
        self.path = path
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._queue: asyncio.Queue[Entry | None] = asyncio.Queue()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-writer")
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._call(self._open)
        self._task = asyncio.create_task(self._run(), name="inbox-writer")

    def submit(self, item: Item, *, timeout_s: float | None = None) -> asyncio.Future[int]:
        """Queue a row. The future resolves to its inbox id once COMMITTED, or raises the write's
        error, or StoreTimeout after `timeout_s`."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        if timeout_s is not None:
            timer = loop.call_later(timeout_s, _expire, future)
            future.add_done_callback(lambda _: timer.cancel())
        self._queue.put_nowait((item, future))
        return future

    async def close(self) -> None:
        """Commit what is queued, then stop and close the connection."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._thread.shutdown(wait=False)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)  # see begin_immediate
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


def _expire(future: asyncio.Future[int]) -> None:
    if not future.done():
        future.set_exception(StoreTimeout("the delivery was not committed in time"))
