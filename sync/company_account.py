"""As whom to call Alegra for one company: `account_for(settings, company, token)`, and every
live company's account for the worker (`live_accounts`).

`default` is the environment's account (or the simulator's, without credentials: the deployment
settings guard that one from the real Alegra); any other company its stored e-mail, its token
(decrypted by the caller with `sync.credentials`) and its base URL, or the deployment's
ALEGRA_BASE_URL when it has none of its own.
"""

from __future__ import annotations

from sync import credentials
from sync.alegra.client import AlegraAccount, settings_account
from sync.fleet import CompanyAccount
from sync.logs import get_logger
from sync.settings import Settings, SettingsError
from sync.states import CompanyState
from sync.store import companies
from sync.store.companies import CompanyRecord
from sync.store.db import Database


class NoToken(ValueError):
    """A stored company was given without its token."""


def account_for(
    settings: Settings, company: CompanyRecord | None, token: str | None
) -> AlegraAccount:
    """The account of `company` (None or `default`: the environment's). Raises NoToken for
    another company without `token`."""
    if company is None or company.is_default:
        return settings_account(settings)
    if token is None or company.email is None:
        raise NoToken(f"company {company.id!r} has no stored e-mail and token")
    return AlegraAccount(company.base_url or settings.alegra_base_url, company.email, token)


async def stored_account(
    settings: Settings, db: Database, record: CompanyRecord
) -> AlegraAccount:
    """The account of a stored company, its token decrypted here. Raises NoToken, or
    SettingsError naming CREDENTIALS_KEY when the token cannot be decrypted."""
    token = None
    if not record.is_default:
        sealed = await companies.read_token(db, record.id)
        token = None if sealed is None else credentials.decrypt(settings, sealed, record.id)
    return account_for(settings, record, token)


async def live_accounts(settings: Settings, db: Database) -> list[CompanyAccount]:
    """Every company not removed, with the account the worker calls Alegra as for it. A company
    whose token cannot be read (none stored, or no CREDENTIALS_KEY decrypts it) is left out and
    logged: its work waits, the other companies' goes on."""
    found = []
    for record in await companies.list_companies(db):
        if record.state == CompanyState.REMOVED:
            continue
        try:
            account = await stored_account(settings, db, record)
        except (NoToken, SettingsError) as exc:
            get_logger(company=record.id).error("company.credentials_unreadable", error=str(exc))
            continue
        found.append(CompanyAccount(record.id, record.state, account))
    return found
