"""The worker's view of the companies table: who is live, and as whom to call Alegra for each.

`default` calls Alegra with the environment's account (or the simulator's); every other company
with the e-mail, token and base URL stored for it, the token decrypted under CREDENTIALS_KEY.
"""

from __future__ import annotations

from sync import credentials
from sync.alegra.client import AlegraAccount, settings_account
from sync.fleet import CompanyAccount
from sync.logs import register_secrets
from sync.settings import Settings
from sync.states import CompanyState
from sync.store.db import DEFAULT_COMPANY, Database, utcnow


async def live(settings: Settings, db: Database) -> list[CompanyAccount]:
    """Every company not removed, with its account; default first."""
    rows = await db.fetchall(
        "SELECT id, email, token_enc, base_url, state FROM companies WHERE state != ?"
        " ORDER BY id != ?, id",
        (CompanyState.REMOVED, DEFAULT_COMPANY),
    )
    found = []
    for row in rows:
        if row["id"] == DEFAULT_COMPANY:
            account = settings_account(settings)
        else:
            token = credentials.decrypt(settings, row["token_enc"])
            register_secrets([token])
            base_url = row["base_url"] or settings.alegra_base_url
            account = AlegraAccount(base_url, row["email"], token)
        found.append(CompanyAccount(row["id"], CompanyState(row["state"]), account))
    return found


async def set_state(db: Database, company: str, state: CompanyState, reason: str | None) -> None:
    await db.execute(
        "UPDATE companies SET state = ?, state_reason = ?, updated_at = ? WHERE id = ?"
        " AND state != ?",
        (state, reason, utcnow(), company, CompanyState.REMOVED),
    )
