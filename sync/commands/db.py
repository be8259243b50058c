"""`alegra-sync db …`: the database's own commands.

`db backup PATH`: a consistent copy of the running SQLite database (`store/backup.py`).

Safe while the service runs and writes; the copy is checked (`PRAGMA integrity_check`) before it
replaces PATH. To restore: stop the web process and the worker, move the database file and its
`-wal` / `-shm` files aside, copy the backup to the database path, start the service (the README's
"Running it on a server" has the commands).

`db migrate [--url URL]`: apply the pending migrations to DATABASE_URL's database (or URL's),
the service stopped or not; start-up does the same.

`db copy --from URL --to URL`: every row of one database into another, empty one, checked by
counts (`store/copy.py`): how a single-machine deployment moves to PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sync.commands.store import missing_database
from sync.deployment import command_settings
from sync.settings import load_settings, shown_url
from sync.store.backup import BackupError, backup_database
from sync.store.copy import CopyFailed, CopyRefused, TableCount, copy_database, open_database
from sync.store.db import Database


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db", help="the database: backup, migrate, copy")
    actions = parser.add_subparsers(dest="db_command", required=True)
    backup = actions.add_parser(
        "backup", help="copy the database to PATH while the service runs (replaces PATH)"
    )
    backup.add_argument("path", type=Path)
    backup.set_defaults(handler=backup_command)
    migrate = actions.add_parser("migrate", help="apply the pending migrations")
    migrate.add_argument("--url", help="the database (sqlite:///… or postgresql://…); "
                         "default: DATABASE_URL")
    migrate.set_defaults(handler=migrate_command)
    copy = actions.add_parser(
        "copy", help="copy every row into another, empty database (to move to PostgreSQL)")
    copy.add_argument("--from", dest="source", required=True, metavar="URL",
                      help="the database copied (sqlite:///…); the service must be stopped")
    copy.add_argument("--to", dest="target", required=True, metavar="URL",
                      help="the empty database filled (postgresql://…), migrated first")
    copy.set_defaults(handler=copy_command)


def backup_command(args: argparse.Namespace) -> int:
    if load_settings().database_url:  # said before anything connects: the server may be down
        print("alegra-sync: db backup copies a SQLite database; DATABASE_URL is PostgreSQL: back it"
              " up with pg_dump (or the provider's backups)", file=sys.stderr)
        return 2
    settings = command_settings(needs_alegra=False)
    complaint = missing_database(settings)
    if complaint is not None:
        print(complaint, file=sys.stderr)
        return 2
    try:
        result = backup_database(settings.database_path, args.path)
    except BackupError as exc:
        print(f"alegra-sync: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"Backed up {settings.database_path} to {result.path} ({result.bytes} bytes, "
          "integrity ok).")
    return 0


def migrate_command(args: argparse.Namespace) -> int:
    target = args.url or command_settings(needs_alegra=False).database_target
    shown = shown_url(str(target))
    try:
        applied = asyncio.run(_migrate(str(target) if args.url else target))
    except CopyRefused as exc:
        print(f"alegra-sync: {exc}", file=sys.stderr)
        return 2
    if applied:
        print(f"Applied migrations {', '.join(f'{v:04d}' for v in applied)} to {shown}.")
    else:
        print(f"{shown} is up to date: no migration pending.")
    return 0


async def _migrate(target: Path | str) -> list[int]:
    """Apply the pending migrations to a URL's database (`--url`) or the settings' own."""
    if isinstance(target, str):
        db = await open_database(target)
    else:
        db = await Database.open(target, migrate=False)
    try:
        return await db.migrate()
    finally:
        await db.close()


def copy_command(args: argparse.Namespace) -> int:
    print(f"Copying {shown_url(args.source)} to {shown_url(args.target)} …", file=sys.stderr)
    started = time.monotonic()
    try:
        counts = asyncio.run(copy_database(args.source, args.target, _Progress()))
    except CopyRefused as exc:
        print(f"alegra-sync: copy refused: {exc}", file=sys.stderr)
        return 1
    except CopyFailed as exc:
        print(f"alegra-sync: copy failed, rolled back: {exc}", file=sys.stderr)
        return 1
    print(count_table(sorted(counts, key=lambda count: count.table)))
    rows = sum(count.target for count in counts)
    if not all(count.ok for count in counts):
        print("alegra-sync: the counts differ (above): do not use the target", file=sys.stderr)
        return 1
    print(f"Copied {rows} rows in {len(counts)} tables in {time.monotonic() - started:.1f} s; "
          "every count matches.")
    return 0


def count_table(counts: list[TableCount]) -> str:
    """One line per table: its rows in the source and in the target, and whether they agree."""
    width = max([len("table"), *(len(count.table) for count in counts)])
    lines = [f"{'table':<{width}}  {'source':>9}  {'target':>9}  check"]
    lines += [f"{c.table:<{width}}  {c.source:>9}  {c.target:>9}  {'OK' if c.ok else 'DIFFERS'}"
              for c in counts]
    return "\n".join(lines)


@dataclass
class _Progress:
    """On stderr: each table as its copy starts, then every 50,000 rows."""

    table: str = ""
    shown: int = 0

    def __call__(self, table: str, rows: int) -> None:
        if table != self.table:
            print(f"  {table} …", file=sys.stderr)
            self.table, self.shown = table, 0
        if rows - self.shown >= 50_000:
            print(f"  {table}: {rows} rows", file=sys.stderr)
            self.shown = rows
