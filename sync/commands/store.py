"""The database a read-and-repair command works on, opened from the settings.

Commands that only read or hand a row back to the worker (`status`, `receipts`, `db backup`)
open the database directly: no web process is needed. On SQLite they refuse a file that does not
exist rather than create an empty one, so a wrong DATABASE_URL is named instead of answered
"nothing"; on PostgreSQL the database must exist already (DatabaseUnavailable names it if not).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from sync.deployment import command_settings
from sync.settings import Settings
from sync.store.db import Database

Action = Callable[[Settings, Database], Awaitable[int]]


def missing_database(settings: Settings) -> str | None:
    """The one-line complaint when the configured SQLite file does not exist, else None."""
    if settings.database_url is not None or settings.database_path.is_file():
        return None
    return (f"alegra-sync: no database at {settings.database_path} (DATABASE_URL): start the "
            "service once, or point DATABASE_URL at its file")


def run_on_store(action: Action) -> int:
    """Load the settings, open the existing store, run `action`, close it; its exit code."""
    settings = command_settings(needs_alegra=False)
    complaint = missing_database(settings)
    if complaint is not None:
        print(complaint, file=sys.stderr)
        return 2

    async def main() -> int:
        db = await Database.open(settings.database_target)
        try:
            return await action(settings, db)
        finally:
            await db.close()

    return asyncio.run(main())
