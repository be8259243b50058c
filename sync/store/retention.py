"""Retention's deletes: settled inbox rows and the files of final receipts, one short batch each.

The inbox is walked oldest first through its ids (they grow in arrival order), one window of
rows per batch, up to the first row that arrived after the cut-off: a batch never reads the rows
too recent to be deleted, and what it keeps (rows still waiting, files still needed) costs one
look per run. Stored files are walked in the order of their receipt's id, which says nothing of
age (ids are random; neither engine has an arrival order of its own to walk by): every stored
file is looked at once per run, and those of receipts final before the cut-off are deleted.
Each batch is one transaction of a bounded size, so the write lock is held for milliseconds and
the committer and the worker's lanes get it between batches.

Retention is the deployment's housekeeping, not a company's: a batch prunes the settled rows and
final files of every company alike, whatever `db.company` is (walking the ids of one company
alone would read every other company's rows in between). Run from several companies' job lanes,
the first run of the hour deletes and the others find nothing left to delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from sync.states import InboxState, ReceiptStatus
from sync.store.db import Database, Row
from sync.store.sql_lists import marks

K = TypeVar("K", int, str)

# An inbox row in any other state is kept; a receipt in any other status keeps its file (a
# failed one may be retried, and a retry uploads it).
SETTLED_STATES = (InboxState.APPLIED, InboxState.SKIPPED)
FINAL_STATUSES = (ReceiptStatus.COMPLETED, ReceiptStatus.DUPLICATE)


@dataclass(frozen=True)
class Batch(Generic[K]):
    """One batch's outcome: rows deleted, the key of the last row looked at (an inbox id, a
    receipt id), and whether the walk is over (it reached a row that arrived after the cut-off,
    or the end of the table)."""

    deleted: int
    after: K
    done: bool


async def prune_inbox_batch(
    db: Database, *, before: str, after: int, limit: int
) -> Batch[int]:
    """Of the next `limit` inbox rows after id `after` that arrived before `before`, delete the
    ones settled (applied, or skipped) before `before`. Rows received, failed or parked are kept
    whatever their age. (Ids are never reused: the inbox's id counter keeps counting every
    delivery ever stored.)"""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT id, received_at < ? FROM inbox WHERE id > ? ORDER BY id LIMIT ?",
            (before, after, limit),
        )
        window = list(await cursor.fetchall())
        old = _old_prefix(window)
        if not old:
            return Batch(0, after, True)
        cursor = await conn.execute(
            "DELETE FROM inbox WHERE id > ? AND id <= ? AND state IN (?, ?)"
            " AND COALESCE(applied_at, received_at) < ?",
            (after, old[-1], *SETTLED_STATES, before),
        )
        return Batch(cursor.rowcount, old[-1], _reached_end(window, old, limit))


async def prune_attachments_batch(
    db: Database, *, before: str, after: str, limit: int, max_bytes: int
) -> Batch[str]:
    """Of the next `limit` stored files after receipt id `after`, delete those of receipts that
    reached a final state before `before` (completed: the file is on its bill; duplicate: it
    never will be). A queued, processing or failed receipt keeps its file, which a retry
    uploads. A batch stops once it holds `max_bytes` of files to delete (freeing a file reads
    every page it used). The receipt, its steps, and the file's name and size in its payload
    are kept."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT a.receipt_id, a.size, r.status IN (?, ?) AND r.completed_at < ?"
            " FROM receipt_attachments AS a JOIN receipts AS r ON r.id = a.receipt_id"
            " WHERE a.receipt_id > ? ORDER BY a.receipt_id LIMIT ?",
            (*FINAL_STATUSES, before, after, limit),
        )
        window = list(await cursor.fetchall())
        if not window:
            return Batch(0, after, True)
        looked, doomed, size = [], [], 0
        for receipt_id, file_size, due in window:
            if size >= max_bytes:
                break
            looked.append(str(receipt_id))
            if due:
                doomed.append(str(receipt_id))
                size += int(file_size)
        deleted = 0
        if doomed:
            cursor = await conn.execute(
                f"DELETE FROM receipt_attachments WHERE receipt_id IN ({marks(len(doomed))})",  # noqa: S608
                doomed,
            )
            deleted = cursor.rowcount
        walked_all = len(looked) == len(window)
        return Batch(deleted, looked[-1], walked_all and len(window) < limit)


def _old_prefix(window: list[Row]) -> list[int]:
    """The ids of the window's rows up to the first that arrived after the cut-off."""
    old = []
    for row in window:
        if not row[1]:
            break
        old.append(int(row[0]))
    return old


def _reached_end(window: list[Row], old: list[int], limit: int) -> bool:
    """The walk is over: a row arrived after the cut-off, or the table has no more rows."""
    return len(old) < len(window) or len(window) < limit
