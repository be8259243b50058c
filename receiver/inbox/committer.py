"""The inbox committer: the web process's child that writes the webhook inbox.

    python -m receiver.inbox.committer FD DATABASE [--lock-wait S] [--log-format F]
                                       [--log-level L]

It reads batches from its end (FD) of a socket pair (`channel.py` holds the other), writes each in
one transaction with `synchronous = FULL` and answers the ids; it exits at end of file. The
protocol and why it is a process: docs/webhooks.md.
"""

from __future__ import annotations

import argparse
import pickle
import select
import socket
import sqlite3
import struct
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sync.logs import configure_logging, get_logger
from sync.store.db import utcnow
from sync.store.inbox import (
    INSERT_DELIVERY,
    INSERT_HANDSHAKE,
    DeliveryRow,
    Item,
    NewHandshake,
    delivery_params,
    handshake_params,
    ids_in_order,
    insert_deliveries_sql,
)

LOCK_WAIT_S = 2.5  # less than the receiver's deadline: a batch that cannot lock fails, not hangs
LOG_EVERY_S = 1.0  # at most one `webhook.stored` line a second
CHECKPOINT_EVERY_S = 0.1  # the committer's own WAL checkpoints, between batches
HEAD = struct.Struct("!I")
T = TypeVar("T")


# --- the wire format (both ends) --------------------------------------------------------------

def frame(value: object) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return HEAD.pack(len(data)) + data


def read_frame(sock: socket.socket) -> Any | None:
    """The next frame's value, or None at end of file."""
    head = _read_exactly(sock, HEAD.size)
    if head is None:
        return None
    body = _read_exactly(sock, HEAD.unpack(head)[0])
    return None if body is None else pickle.loads(body)  # noqa: S301 — our own parent's batch


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# --- writing ----------------------------------------------------------------------------------

def open_connection(path: Path) -> sqlite3.Connection:
    """The committer's connection: its own lock waiting (`retry_locked`), FULL sync, and no
    checkpoint inside a commit: `checkpoint_if_due` runs them between batches."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.execute("PRAGMA synchronous = FULL")  # per connection: durable before the 2xx
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    return conn


def checkpoint_if_due(conn: sqlite3.Connection, last_at: float) -> float:
    """Copy the WAL into the database file (PASSIVE: it neither waits for nor blocks another
    connection) if CHECKPOINT_EVERY_S has passed since `last_at`; returns when the last one ran.

    Run after a batch's answer, so no acknowledgement waits inside a commit for one. Once a
    checkpoint has caught up, the next commit writes the WAL again from its start: a few MB
    rewritten in place, whose fsync costs less than that of a file that grows with every commit.
    Another connection's checkpoint catches up only if no batch lands while it runs
    (docs/webhooks.md, "Checkpoints")."""
    now = time.monotonic()
    if now - last_at < CHECKPOINT_EVERY_S:
        return last_at
    try:  # another connection's checkpoint under way is no error: this one is skipped
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error as exc:  # the disk: the batches will say so; the next one tries again
        get_logger().warning("webhook.checkpoint_failed", error=type(exc).__name__)
    return now


def insert_items(
    conn: sqlite3.Connection, items: Sequence[Item], lock_wait_s: float = LOCK_WAIT_S
) -> tuple[list[int], list[DeliveryRow]]:
    """Write a batch in one transaction. Returns each item's id and the delivery rows written.

    If the batch's statement fails for any reason but the write lock (which every row would
    meet alike: the batch fails, answered 503), the batch is written again row by row, so that
    one row SQLite refuses cannot fail its batch-mates (`insert_row_by_row`)."""
    at = utcnow()
    deliveries, handshakes = delivery_params(items, at), handshake_params(items, at)
    try:
        return _insert_batch(conn, items, deliveries, handshakes, lock_wait_s), deliveries
    except Exception as exc:
        if _is_locked(exc):
            raise
        get_logger(count=len(items)).warning("webhook.batch_refused", error=type(exc).__name__)
    return insert_row_by_row(conn, items, at, lock_wait_s)


def _insert_batch(
    conn: sqlite3.Connection, items: Sequence[Item], deliveries: list[DeliveryRow],
    handshakes: list[tuple[object, ...]], lock_wait_s: float,
) -> list[int]:
    if not handshakes:  # the usual batch: ONE statement, which is its own transaction
        ids = retry_locked(lambda: _insert_deliveries(conn, deliveries), lock_wait_s)
        return ids_in_order(items, ids)
    with _transaction(conn, lock_wait_s):
        conn.executemany(INSERT_HANDSHAKE, handshakes)
        ids = _insert_deliveries(conn, deliveries) if deliveries else []
    return ids_in_order(items, ids)


def insert_row_by_row(
    conn: sqlite3.Connection, items: Sequence[Item], at: str, lock_wait_s: float = LOCK_WAIT_S
) -> tuple[list[int], list[DeliveryRow]]:
    """The batch again, in one transaction, one statement per row: a delivery whose row SQLite
    refuses is stored as `malformed` instead (its body, which is bytes, and nothing parsed from
    it), so it still gets its 2xx and its batch-mates theirs. If even that row is refused, the
    fault is not the row's (the disk, the database): the batch fails as a whole, as before."""
    ids: list[int] = []
    rows: list[DeliveryRow] = []
    with _transaction(conn, lock_wait_s):
        for item in items:
            if isinstance(item, NewHandshake):
                conn.execute(INSERT_HANDSHAKE, *handshake_params([item], at))
                ids.append(0)
                continue
            [row] = delivery_params([item], at)
            try:
                [(new_id,)] = conn.execute(INSERT_DELIVERY, row).fetchall()
            except Exception as exc:
                if _is_locked(exc) or not conn.in_transaction:
                    raise
                get_logger().warning("webhook.row_refused", error=type(exc).__name__)
                row = malformed_row(row)
                [(new_id,)] = conn.execute(INSERT_DELIVERY, row).fetchall()
            ids.append(int(new_id))
            rows.append(row)
    return ids, rows


def malformed_row(row: DeliveryRow) -> DeliveryRow:
    """The row without what was parsed from its body: what any body can be stored as."""
    return row._replace(subject=None, resource=None, resource_id=None, shape="malformed")


@contextmanager
def _transaction(conn: sqlite3.Connection, lock_wait_s: float) -> Iterator[None]:
    retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), lock_wait_s)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # a failed COMMIT too: the next batch must start clean
            conn.execute("ROLLBACK")
        raise


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _insert_deliveries(conn: sqlite3.Connection, rows: list[DeliveryRow]) -> list[int]:
    """Every delivery in ONE multi-row INSERT (rows keep their order); returns their ids.
    Outside BEGIN (autocommit) the statement is a transaction of its own: it takes the write
    lock, inserts every row and commits in that one step; if it cannot lock, nothing was written.
    """
    values = [value for row in rows for value in row]
    cursor = conn.execute(insert_deliveries_sql(len(rows)), values)
    return [int(row[0]) for row in cursor.fetchall()]


def retry_locked(write: Callable[[], T], lock_wait_s: float) -> T:
    """Run `write` (a statement that takes the write lock first), polling every half millisecond
    at most while another process holds the lock. SQLite's own busy handler sleeps 1, 2, 5, 10,
    15, 20, 25… ms between tries, which adds tens of milliseconds to every delivery that meets one
    of the worker's short transactions. Raises sqlite3.OperationalError after `lock_wait_s`."""
    deadline = time.monotonic() + lock_wait_s
    pause = 0.0002
    while True:
        try:
            return write()
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.0005)


# --- the process --------------------------------------------------------------------------------

def serve(sock: socket.socket, conn: sqlite3.Connection, lock_wait_s: float) -> None:
    """Answer batches until end of file. Each answer goes out before the batch's log lines:
    the requests are waiting for it."""
    log = StoredLog()
    checkpointed_at = time.monotonic()
    ready = select.poll()  # not select.select(): the fd may be past FD_SETSIZE (1024)
    ready.register(sock, select.POLLIN)
    while True:
        due = log.due_in()
        if not ready.poll(None if due is None else due * 1000):
            log.flush()  # quiet: the last deliveries' line is due
            continue
        try:
            batch = read_frame(sock)
        except OSError:  # a reset: the web process died with an answer unread
            batch = None
        if batch is None:
            break
        items: list[Item] = batch
        try:
            ids, rows = insert_items(conn, items, lock_wait_s)
        except Exception as exc:  # the batch is answered 503 and Alegra delivers it again
            if not _answer(sock, ("error", f"{type(exc).__name__}: {exc}")):
                break
            get_logger(count=len(items)).error("webhook.store_failed", error=type(exc).__name__)
            continue
        if not _answer(sock, ("ok", ids)):
            break
        log.add(ids, rows)
        checkpointed_at = checkpoint_if_due(conn, checkpointed_at)
    log.flush()


def _answer(sock: socket.socket, reply: tuple[str, Any]) -> bool:
    """Send the answer; False if the web process is gone."""
    try:
        sock.sendall(frame(reply))
    except OSError:
        return False
    return True


class StoredLog:
    """`webhook.stored` at most once per LOG_EVERY_S: how many deliveries were committed since
    the last line, and the first and last of their ids (ids only grow). A delivery is logged at
    once if no line was written in the last second, else within the second; a burst of thousands
    is a line a second, not a line a batch (which would cost the committer as much as the
    batch). A delivery whose body is not a shape we know gets its own `webhook.unusable` line at
    once."""

    def __init__(self) -> None:
        self.count, self.first_id, self.last_id = 0, 0, 0
        self.logged_at = float("-inf")

    def add(self, ids: list[int], rows: list[DeliveryRow]) -> None:
        stored = [i for i in ids if i]
        for inbox_id, row in zip(stored, rows, strict=True):
            if row.shape != "ok":
                get_logger(inbox_id=inbox_id).warning(
                    "webhook.unusable", shape=row.shape, subject=row.subject)
        if stored:
            self.first_id = self.first_id or stored[0]
            self.last_id, self.count = stored[-1], self.count + len(stored)
        if self.due_in() == 0:
            self.flush()

    def due_in(self) -> float | None:
        """Seconds until the pending line is due (0: now); None with nothing pending."""
        if not self.count:
            return None
        return max(0.0, LOG_EVERY_S - (time.monotonic() - self.logged_at))

    def flush(self) -> None:
        if self.count:
            get_logger(first_id=self.first_id, last_id=self.last_id).info(
                "webhook.stored", count=self.count)
        self.count, self.first_id, self.last_id = 0, 0, 0
        self.logged_at = time.monotonic()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("fd", type=int)
    parser.add_argument("database", type=Path)
    parser.add_argument("--lock-wait", type=float, default=LOCK_WAIT_S)
    parser.add_argument("--log-format", default="auto")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    sock = socket.socket(fileno=args.fd)
    conn = open_connection(args.database)
    try:
        serve(sock, conn, args.lock_wait)
    finally:
        conn.close()
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
