"""Which companies a key may reach, as the web process reads it (reads only).

A company is live unless it is `removed`. A partner reaches the live companies it is granted
(`partner_grants`); an admin key every live one. Company CRUD and grant / revoke are
`sync/store/companies.py`'s; these are plain reads, never cached across requests.
"""

from __future__ import annotations

from sync.store.db import Database

REMOVED = "removed"


async def granted_companies(db: Database, partner_id: str) -> list[str]:
    """The live companies the partner is granted, by id."""
    rows = await db.fetchall(
        "SELECT g.company_id FROM partner_grants AS g JOIN companies AS c ON c.id = g.company_id"
        " WHERE g.partner_id = ? AND c.state != ? ORDER BY g.company_id",
        (partner_id, REMOVED),
    )
    return [str(r[0]) for r in rows]


async def live_companies(db: Database) -> list[str]:
    """Every company not removed, by id."""
    return list(await live_company_states(db))


async def live_company_states(db: Database) -> dict[str, str]:
    """Every company not removed, by id, and its state (active, needs_attention)."""
    rows = await db.fetchall(
        "SELECT id, state FROM companies WHERE state != ? ORDER BY id", (REMOVED,)
    )
    return {str(r[0]): str(r[1]) for r in rows}


async def is_granted(db: Database, partner_id: str, company_id: str) -> bool:
    """The partner holds a grant for the company, whatever the company's state (a removed
    company's receipts stay readable by id to the partners still granted it)."""
    found = await db.scalar(
        "SELECT 1 FROM partner_grants WHERE partner_id = ? AND company_id = ?",
        (partner_id, company_id),
    )
    return found is not None


async def receipt_company(db: Database, receipt_id: str) -> str | None:
    """The company a receipt belongs to (receipt ids are unique across companies), or None."""
    value = await db.scalar("SELECT company_id FROM receipts WHERE id = ?", (receipt_id,))
    return None if value is None else str(value)


async def company_state(db: Database, company_id: str) -> tuple[str, str | None] | None:
    """(state, state_reason) of the company, or None when there is no such company."""
    row = await db.fetchone(
        "SELECT state, state_reason FROM companies WHERE id = ?", (company_id,)
    )
    return None if row is None else (str(row["state"]), row["state_reason"])
