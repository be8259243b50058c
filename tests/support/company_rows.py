"""A company row written straight into the store, for tests that need a company to exist
without its credentials (the company store's own commands are tested on their own)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sync.store.db import utcnow


def add_company_row(database: Path, company: str, state: str = "active") -> None:
    """Insert the company `company` (by id) in `state` into the migrated database file."""
    conn = sqlite3.connect(database)
    try:
        with conn:
            conn.execute(
                "INSERT INTO companies(id, name, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)", (company, company, state, utcnow(), utcnow()))
    finally:
        conn.close()


def set_company_state(database: Path, company: str, state: str) -> None:
    """Put the company in `state` (`removed`: it takes nothing more in)."""
    conn = sqlite3.connect(database)
    try:
        with conn:
            conn.execute("UPDATE companies SET state = ? WHERE id = ?", (state, company))
    finally:
        conn.close()
