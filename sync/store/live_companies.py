"""Which companies exist and are not removed: what the webhook receiver and `--all` ask.

Reads the `companies` table only (the company store writes it); a removed company's rows stay,
but nothing more is taken in for it and no work runs for it.
"""

from __future__ import annotations

from sync.store.db import Database

REMOVED = "removed"  # companies.state of a removed company


async def live_company_ids(db: Database) -> set[str]:
    """The ids of every company that is not removed."""
    rows = await db.fetchall("SELECT id FROM companies WHERE state != ?", (REMOVED,))
    return {str(row["id"]) for row in rows}


async def is_live(db: Database, company: str) -> bool:
    """Whether the company exists and is not removed."""
    return bool(await db.scalar(
        "SELECT EXISTS (SELECT 1 FROM companies WHERE id = ? AND state != ?)", (company, REMOVED)
    ))
