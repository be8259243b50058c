"""The worker's live companies: each with the account it calls Alegra as; one whose token
cannot be decrypted is left out, never taking the others down with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from sync import credentials
from sync.company_account import live_accounts
from sync.settings import load_settings
from sync.store.companies import add_company, remove_company
from sync.store.db import Database
from tests.support.procs import TEST_SECRET_KEY

pytestmark = pytest.mark.anyio


async def test_live_accounts_decrypt_tokens_and_leave_out_an_unreadable_one(
    tmp_path: Path,
) -> None:
    """North's token (sealed under the current key) is decrypted; South's, sealed under a key
    the deployment no longer has, leaves South out; a removed company is not live."""
    key = Fernet.generate_key().decode()
    settings = load_settings(env_file=None, environ={
        "DATABASE_URL": f"sqlite:///{tmp_path / 'live.db'}", "SECRET_KEY": TEST_SECRET_KEY,
        "CREDENTIALS_KEY": key,
    })
    db = await Database.open(settings.database_path)
    try:
        await add_company(db, "North", "n@example.do", credentials.encrypt(settings, "north-tok3n"))
        lost = Fernet(Fernet.generate_key()).encrypt(b"south-tok3n")
        await add_company(db, "South", "s@example.do", lost)
        await add_company(db, "Gone", "g@example.do", credentials.encrypt(settings, "gone-tok3n"))
        await remove_company(db, "gone")

        live = {entry.company: entry.account for entry in await live_accounts(settings, db)}
    finally:
        await db.close()
    assert set(live) == {"default", "north"}
    assert (live["north"].email, live["north"].token) == ("n@example.do", "north-tok3n")
