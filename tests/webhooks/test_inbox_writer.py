"""The group-commit writer: rows committed in batches, each future resolved only after commit."""

from __future__ import annotations

import asyncio
import threading

import pytest

from receiver.inbox.channel import CommitterOptions
from receiver.inbox.writer import InboxWriter, StoreTimeout
from sync.settings import Settings
from sync.store.db import Database
from sync.store.inbox import NewDelivery, NewHandshake
from tests.webhooks.conftest import read_db
from tests.webhooks.test_receiver import hold_write_lock

pytestmark = pytest.mark.anyio


def item(n: int) -> NewDelivery:
    return NewDelivery(f'{{"n": {n}}}'.encode(), 0)


async def test_queued_rows_share_one_commit_and_keep_their_ids(
    db: Database, settings: Settings
) -> None:
    """Rows submitted together land in one batch; each future gets the id of its own row."""
    writer = InboxWriter(settings.database_path)
    await writer.start()
    futures = [writer.submit(item(n)) for n in range(50)]
    futures.insert(10, writer.submit(NewHandshake(1)))
    ids = await asyncio.gather(*futures)
    await writer.close()
    rows = {r["id"]: r["body"] for r in read_db(settings.database_path,
                                                 "SELECT id, body FROM inbox")}
    delivery_ids = [i for i in ids if i]
    assert ids[10] == 0
    assert [rows[i] for i in delivery_ids] == [item(n).body for n in range(50)]
    handshakes = read_db(settings.database_path, "SELECT key_index FROM webhook_handshakes")
    assert [h["key_index"] for h in handshakes] == [1]


async def test_a_batch_that_cannot_lock_fails_and_the_writer_goes_on(
    db: Database, settings: Settings
) -> None:
    """Past the lock wait the batch's futures raise (the requests answer 503); the next batch,
    once the lock is free, commits."""
    writer = InboxWriter(settings.database_path, options=CommitterOptions(lock_wait_s=0.1))
    await writer.start()
    release = threading.Event()  # held until the batch has failed, however slow the machine
    holder = hold_write_lock(settings.database_path, seconds=30, release=release)
    try:
        with pytest.raises(Exception, match="locked"):
            await writer.submit(item(1))
    finally:
        release.set()
    await asyncio.to_thread(holder.join)
    assert await writer.submit(item(2)) > 0
    await writer.close()
    assert [r["body"] for r in read_db(settings.database_path,
                                       "SELECT body FROM inbox")] == [item(2).body]


async def test_a_delivery_answered_503_while_queued_is_not_stored(
    db: Database, settings: Settings
) -> None:
    """A row whose deadline passes while it waits behind a batch stuck on the lock is answered
    503 and not written afterwards (Alegra delivers it again: no duplicate row)."""
    writer = InboxWriter(settings.database_path)
    await writer.start()
    await writer.submit(item(0))
    holder = hold_write_lock(settings.database_path, seconds=0.6)
    stuck = writer.submit(item(1))
    await asyncio.sleep(0.05)  # item 1 is in flight, waiting for the lock
    late = writer.submit(item(2), timeout_s=0.1)
    with pytest.raises(StoreTimeout):
        await late
    assert await stuck > 0
    await asyncio.to_thread(holder.join)
    await writer.close()
    bodies = [r["body"] for r in read_db(settings.database_path, "SELECT body FROM inbox")]
    assert bodies == [item(0).body, item(1).body]
