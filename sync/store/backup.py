"""A consistent copy of the live database, taken with SQLite's online backup API.

Safe while the web process and the worker run and write: the copy is one read transaction (a
single `backup` step), which in WAL mode blocks no writer and sees every committed row, those
still in the `-wal` file included (a plain `cp` of the `.db` file misses them, and may copy a
torn page). The copy is written next to the target under a temporary name, checked with
`PRAGMA integrity_check`, switched to a single self-contained file (journal mode DELETE), and
only then renamed onto the target: a backup cut short never leaves a half file under its name.
The copy holds receipts and their attachments: it is created readable by its owner only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sync.store.db import BUSY_TIMEOUT_MS


class BackupError(Exception):
    """The backup could not be made; the message says why (the target is left untouched)."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    pages: int
    bytes: int


def _check_target(source: Path, target: Path) -> None:
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    live = source.resolve()
    if target.resolve() in (live, live.with_name(live.name + "-wal"),
                            live.with_name(live.name + "-shm")):
        raise BackupError(f"{target} is the live database itself: back up to another path")
    if target.is_dir():
        raise BackupError(f"{target} is a directory: give a file name")
    if not target.parent.is_dir():
        raise BackupError(f"no directory {target.parent}")


def backup_database(source: Path, target: Path) -> BackupResult:
    """Copy the database at `source` to `target` (replaced if it exists). Raises BackupError."""
    _check_target(source, target)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    partial.touch(mode=0o600)
    try:
        pages = _copy(source, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(target, pages, target.stat().st_size)


def _copy(source: Path, partial: Path) -> int:
    # Read-write, though it only reads: a read-only connection leaves `-wal`/`-shm` files behind
    # when it is the only one (owned by whoever ran the backup); this one removes them on close.
    src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # pages=-1: one step, one consistent snapshot
            dst.execute("PRAGMA journal_mode = DELETE")
            problems = [row[0] for row in dst.execute("PRAGMA integrity_check")]
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite: {exc}") from exc
    finally:
        with contextlib.suppress(sqlite3.Error):
            src.close()
    if problems != ["ok"]:
        raise BackupError("the copy failed its integrity check: " + "; ".join(problems[:5]))
    return pages
