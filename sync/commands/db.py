"""`alegra-sync db backup PATH`: a consistent copy of the running database (`store/backup.py`).

Safe while the service runs and writes; the copy is checked (`PRAGMA integrity_check`) before it
replaces PATH. To restore: stop the web process and the worker, move the database file and its
`-wal` / `-shm` files aside, copy the backup to the database path, start the service (the README's
"Running it on a server" has the commands).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sync.commands.store import missing_database
from sync.deployment import command_settings
from sync.store.backup import BackupError, backup_database


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db", help="the SQLite database: online backup")
    actions = parser.add_subparsers(dest="db_command", required=True)
    backup = actions.add_parser(
        "backup", help="copy the database to PATH while the service runs (replaces PATH)"
    )
    backup.add_argument("path", type=Path)
    backup.set_defaults(handler=backup_command)


def backup_command(args: argparse.Namespace) -> int:
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
