"""The inbox's channel on PostgreSQL: each batch is ONE `INSERT … SELECT FROM unnest(…) RETURNING
id` (a column's values per array), its own transaction, through the Database's pool (no
committer process).

`InboxWriter` (writer.py) needs only `commit(items) -> ids` and `stop()` from its channel; this
is the PostgreSQL one, `CommitterChannel` (channel.py) the SQLite one. On SQLite a process of its
own writes the file (the single-writer lock, the GIL: docs/webhooks.md); PostgreSQL takes inserts
from any number of connections and does the fsync in the server, so the web process only awaits
a socket. The batching, futures, deadlines and the 503-past-deadline rule stay the writer's.

A batch the server refuses for a reason that is not the database being unreachable (a text it
cannot store, such as a NUL character in a subject) is written again in one transaction, row by
row, each under a savepoint: the row it refuses is stored as `malformed` (its body and nothing
parsed from it), so one body never fails its batch-mates. A database that is unreachable fails
the batch as a whole (`DatabaseUnavailable`; `StoreUnavailable` past COMMIT_DEADLINE_S): those
requests answer 503 and Alegra delivers again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from receiver.inbox.committer import StoredLog, malformed_row
from sync.logs import get_logger
from sync.states import InboxState
from sync.store.db import Connection, Database, DatabaseUnavailable, Row, utcnow
from sync.store.inbox import (
    INSERT_DELIVERY,
    INSERT_HANDSHAKE,
    DeliveryRow,
    Item,
    delivery_params,
    handshake_params,
    ids_in_order,
)

COMMIT_DEADLINE_S = 10.0  # a batch not committed by then is abandoned (its requests have 503)
# Each DeliveryRow column's PostgreSQL type, in DeliveryRow's order: the batch travels as one
# array per column, so the statement is the same text for any batch size, which psycopg parses
# once and prepares. A VALUES list of N rows is a new statement for every N, parsed anew each
# time (psycopg caches no statement past 50 parameters): at 64 a batch it cost the web process
# more CPU per delivery in every paired run (19–43 µs against 35–50 µs, on a loaded machine).
COLUMN_TYPES = {"received_at": "text", "subject": "text", "resource": "text",
                "resource_id": "text", "body": "bytea", "shape": "text", "key_index": "integer",
                "company_id": "text"}
assert tuple(COLUMN_TYPES) == DeliveryRow._fields
_COLUMNS = ", ".join(COLUMN_TYPES)
INSERT_BATCH = (  # built from constants only
    f"INSERT INTO inbox({_COLUMNS}, state) SELECT {_COLUMNS}, '{InboxState.RECEIVED}'"  # noqa: S608
    f" FROM unnest({', '.join(f'?::{t}[]' for t in COLUMN_TYPES.values())})"
    f" WITH ORDINALITY AS batch({_COLUMNS}, position) ORDER BY position RETURNING id"
)


class StoreUnavailable(ConnectionError):
    """The database did not commit the batch in time: it may still be committed (a duplicate
    at worst: Alegra delivers a delivery answered 503 again)."""


class PostgresChannel:
    """`await commit(items)` → ids, through `db`'s pool; `await stop()` has nothing to stop."""

    def __init__(self, db: Database, *, deadline_s: float = COMMIT_DEADLINE_S) -> None:
        self.db = db
        self.deadline_s = deadline_s
        self._log = StoredLog()
        self._flush: asyncio.TimerHandle | None = None

    async def commit(self, items: Sequence[Item]) -> list[int]:
        """Each item's inbox id (0 for a handshake) once the batch is COMMITTED. Raises
        DatabaseUnavailable when the database cannot be reached, StoreUnavailable when it did not
        commit in time (either way the outcome may be unknown; the requests answer 503)."""
        at = utcnow()
        rows, handshakes = delivery_params(items, at), handshake_params(items, at)
        try:
            async with asyncio.timeout(self.deadline_s):
                ids, rows = await self._insert(rows, handshakes)
        except TimeoutError as exc:
            raise StoreUnavailable("the database did not commit the batch in time") from exc
        self._logged(ids, rows)
        return ids_in_order(items, ids)

    async def _insert(
        self, rows: list[DeliveryRow], handshakes: list[tuple[object, ...]]
    ) -> tuple[list[int], list[DeliveryRow]]:
        """The batch in one statement; row by row if the server refuses it for a reason that
        is not the database being unreachable."""
        try:
            return await self._insert_batch(rows, handshakes), rows
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            get_logger(count=len(rows)).warning("webhook.batch_refused", error=type(exc).__name__)
        return await self._insert_row_by_row(rows, handshakes)

    async def stop(self) -> None:
        """The last `webhook.stored` line; the pool is the Database's, closed with it."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._log.flush()

    def _logged(self, ids: list[int], rows: list[DeliveryRow]) -> None:
        """`webhook.stored` at most once a second (the committer's `StoredLog`); a count still
        pending is written when its second is up, even if no batch follows."""
        self._log.add(ids, rows)
        due = self._log.due_in()
        if due is not None and self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(due, self._flush_due)

    def _flush_due(self) -> None:
        self._flush = None
        self._log.flush()

    async def _insert_batch(
        self, rows: list[DeliveryRow], handshakes: list[tuple[object, ...]]
    ) -> list[int]:
        """The usual batch (deliveries only) is ONE statement in autocommit: its own transaction,
        committed before the statement returns, and no company's advisory lock (a plain insert
        needs none, and a batch holds several companies' rows). One with handshakes (a
        subscription being registered: rare) is one transaction."""
        sql, params = INSERT_BATCH, [list(column) for column in zip(*rows, strict=True)]
        found: Iterable[Row] = []
        if not handshakes:
            found = await self.db.fetchall(sql, params)
        else:
            async with self.db.transaction() as conn:
                await conn.executemany(INSERT_HANDSHAKE, handshakes)
                if rows:
                    found = await (await conn.execute(sql, params)).fetchall()
        return [int(r[0]) for r in found]  # `ids_in_order` sorts them

    async def _insert_row_by_row(
        self, rows: list[DeliveryRow], handshakes: list[tuple[object, ...]]
    ) -> tuple[list[int], list[DeliveryRow]]:
        """The batch again in one transaction, a statement (and a savepoint) per delivery."""
        ids, written = [], []
        async with self.db.transaction() as conn:
            if handshakes:
                await conn.executemany(INSERT_HANDSHAKE, handshakes)
            for row in rows:
                inbox_id, stored = await _insert_one(conn, row)
                ids.append(inbox_id)
                written.append(stored)
        return ids, written


async def _insert_one(conn: Connection, row: DeliveryRow) -> tuple[int, DeliveryRow]:
    """One delivery under a savepoint; the row the server refuses goes in as `malformed`."""
    await conn.execute("SAVEPOINT inbox_row")
    try:
        cursor = await conn.execute(INSERT_DELIVERY, row)
    except Exception as exc:
        if isinstance(exc, DatabaseUnavailable):
            raise
        get_logger().warning("webhook.row_refused", error=type(exc).__name__)
        await conn.execute("ROLLBACK TO SAVEPOINT inbox_row")
        row = malformed_row(row)
        cursor = await conn.execute(INSERT_DELIVERY, row)
    found = await cursor.fetchone()
    assert found is not None  # RETURNING answers the row inserted
    await conn.execute("RELEASE SAVEPOINT inbox_row")
    return int(found[0]), row
