"""As whom to call Alegra for one company: `account_for(settings, company, token)`.

`default` is the environment's account (or the simulator's, without credentials: the deployment
settings guard that one from the real Alegra); any other company its stored e-mail, its token
(decrypted by the caller with `sync.credentials`) and its base URL, or the deployment's
ALEGRA_BASE_URL when it has none of its own.
"""

from __future__ import annotations

from sync.alegra.client import AlegraAccount, settings_account
from sync.settings import Settings
from sync.store.companies import CompanyRecord


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
