"""The inbox's PostgreSQL channel on a real server: a batch is one INSERT … RETURNING whose ids
are each row's own; a row the server refuses is stored as malformed without failing its
batch-mates; with the database gone the batch fails (the requests answer 503) and the next one,
once it is back, commits through the same pool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from receiver.inbox.pg_channel import PostgresChannel
from receiver.inbox.writer import InboxWriter
from sync.store.db import Database, DatabaseUnavailable
from sync.store.inbox import NewDelivery, NewHandshake
from tests.pg_web.conftest import ScratchDatabase

pytestmark = pytest.mark.anyio


def delivery(n: int, company: str = "default") -> NewDelivery:
    body = json.dumps({"subject": "edit-client", "message": {"client": {"id": f"c{n}"}}})
    return NewDelivery(body.encode(), 0, company)


@pytest.fixture
async def db(pg: ScratchDatabase) -> AsyncIterator[Database]:
    database = await Database.open(pg.url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def writer(db: Database) -> AsyncIterator[InboxWriter]:
    started = InboxWriter(None, channel=PostgresChannel(db))
    await started.start()
    try:
        yield started
    finally:
        await started.close()


async def test_a_batch_gives_each_row_its_own_id(
    writer: InboxWriter, pg: ScratchDatabase
) -> None:
    """Rows submitted together share one commit; each future gets its own row's id; a handshake
    gets 0 and its note."""
    futures = [writer.submit(delivery(n)) for n in range(60)]
    futures.insert(7, writer.submit(NewHandshake(1)))
    ids = await asyncio.gather(*futures)
    assert ids[7] == 0
    stored = dict(pg.rows("SELECT id, resource_id FROM inbox"))
    delivery_ids = [i for i in ids if i]
    assert [stored[i] for i in delivery_ids] == [f"c{n}" for n in range(60)]
    assert pg.rows("SELECT key_index, company_id FROM webhook_handshakes") == [(1, "default")]
    bodies = pg.rows("SELECT body, shape, state FROM inbox WHERE id = %s", (delivery_ids[0],))
    assert bodies == [(delivery(0).body, "ok", "received")]


async def test_a_row_the_server_refuses_is_stored_malformed_and_its_batch_mates_as_they_are(
    writer: InboxWriter, pg: ScratchDatabase
) -> None:
    """PostgreSQL's text cannot hold a NUL character (SQLite's can): the row whose subject has
    one is stored with its body and nothing parsed from it; the others in its batch as usual."""
    nul = json.dumps({"subject": "edit-client\u0000", "message": {"client": {"id": "9"}}})
    futures = [writer.submit(delivery(1)), writer.submit(NewDelivery(nul.encode(), 0)),
               writer.submit(delivery(2))]
    first, refused, last = await asyncio.gather(*futures)
    rows = {r[0]: r[1:] for r in pg.rows("SELECT id, shape, subject, resource_id, body"
                                         " FROM inbox")}
    assert rows[refused] == ("malformed", None, None, nul.encode())
    assert rows[first][0::2] == ("ok", "c1")
    assert rows[last][0::2] == ("ok", "c2")


async def test_with_the_database_gone_the_batch_fails_and_the_next_commits_once_it_is_back(
    writer: InboxWriter, pg: ScratchDatabase
) -> None:
    assert await writer.submit(delivery(1)) > 0
    with pg.down(), pytest.raises(DatabaseUnavailable):
        await writer.submit(delivery(2))
    assert await writer.submit(delivery(3)) > 0
    assert [r[0] for r in pg.rows("SELECT resource_id FROM inbox ORDER BY id")] == ["c1", "c3"]
