"""Group commit for the webhook inbox: the web process's hot path.

Each request hands its row to `InboxWriter.submit` and waits on the future it gets. One writer
task takes everything queued and sends it as ONE batch to the committer process
(`committer.py`, through `channel.py`), which parses the bodies, writes the
batch in one transaction and commits before it answers; only then is each request's future
resolved. One fsync serves a whole batch, every 2xx is sent after its row is durable, and the
event loop's share of a batch is one frame out and one answer in: no thread, no GIL hand-off.
On PostgreSQL the batch goes instead to `pg_channel.PostgresChannel`: one statement through the
pool, the same futures and deadlines.

While a batch is being committed the next one gathers. When the worker holds the write lock the
committer waits it out in fine steps; a request that waits past its own deadline is answered 503
by the receiver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from receiver.inbox.channel import CommitterChannel, CommitterOptions
from sync.store.inbox import Item, NewDelivery

MAX_BATCH_BYTES = 4 << 20  # a batch stops growing past this many bytes of bodies (or max_batch)
SWEEP_S = 0.05  # how often deadlines are checked: a timeout fires up to this much late
Entry = tuple[Item, "asyncio.Future[int]"]


class StoreTimeout(TimeoutError):
    """The row was not committed within the caller's deadline (it may still be, later)."""


class Channel(Protocol):
    """Where the batches go: the committer process on SQLite (`CommitterChannel`), the pool on
    PostgreSQL (`pg_channel.PostgresChannel`)."""

    async def commit(self, items: Sequence[Item]) -> list[int]: ...

    async def stop(self) -> None: ...


class InboxWriter:
    """`await start()` in the lifespan, `submit()` per request, `await close()` at shutdown.

    Per request there is only a list append and a future: no queue, no timer (one sweep every
    SWEEP_S expires what passed its deadline).
    """

    def __init__(
        self, path: Path | None, *, max_batch: int = 256,
        options: CommitterOptions | None = None, channel: Channel | None = None,
    ) -> None:
        """Batches go to `channel` if given, else to a committer process writing `path`."""
        self.max_batch = max_batch
        self.channel: Channel = channel or CommitterChannel(_required(path), options)
        self._pending: list[Entry] = []
        self._wake: asyncio.Future[None] | None = None  # set while the writer waits for work
        self._deadlines: list[tuple[float, asyncio.Future[int]]] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
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
        """Commit what is queued, then stop the committer."""
        if self._task is not None:
            self._closing = True
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)
            await self._task
            self._task = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await self.channel.stop()

    async def _run(self) -> None:
        """Commit whatever is queued, batch after batch; wait when nothing is; after close(),
        stop once the queue is empty."""
        while self._pending or not self._closing:
            if not self._pending:
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
                self._wake = None
                continue
            await self._commit(self._take_batch())

    def _take_batch(self) -> list[Entry]:
        """The oldest queued rows: up to max_batch of them and about MAX_BATCH_BYTES of bodies."""
        size, count = 0, 0
        for item, _ in self._pending[: self.max_batch]:
            count += 1
            size += len(item.body) if isinstance(item, NewDelivery) else 0
            if size >= MAX_BATCH_BYTES:
                break
        batch = self._pending[:count]
        del self._pending[:count]
        return batch

    async def _commit(self, batch: list[Entry]) -> None:
        # A request already answered (503 past its deadline) is not stored: Alegra delivers it
        # again, and a row written now would only be a duplicate of that delivery.
        batch = [entry for entry in batch if not entry[1].done()]
        if not batch:
            return
        try:
            ids = await self.channel.commit([item for item, _ in batch])
        except Exception as exc:  # the requests answer 503 and Alegra retries; the writer lives on
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), inbox_id in zip(batch, ids, strict=True):
            if not future.done():  # a request whose deadline passed was already answered
                future.set_result(inbox_id)

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


def _required(path: Path | None) -> Path:
    if path is None:
        raise ValueError("InboxWriter: the SQLite file's path, or a channel")
    return path
