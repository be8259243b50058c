"""The companies' Alegra tokens at rest: Fernet (cryptography) under CREDENTIALS_KEY.

CREDENTIALS_KEY holds Fernet keys, comma-separated, newest first (`MultiFernet`): a token is
encrypted with the first and decrypted with whichever made it, so a new key is added in front,
`alegra-sync companies rotate-key` re-encrypts every stored token with it, and the old key can
then be dropped. No token is ever stored, logged or answered in clear: each one decrypted is
registered with `sync.logs.register_secrets`, so a log line that quotes it is masked.

`check_stored_tokens(settings)` runs at every start-up (web, worker, CLI): once any company's
token is stored, a missing key, or one that does not decrypt a stored token, stops the process
with a `SettingsError` naming CREDENTIALS_KEY. With none stored, no key is needed.
The web process imports this module: it imports nothing of the worker side.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from sync.logs import register_secrets
from sync.settings import GENERATE_CREDENTIALS_KEY, Settings, SettingsError
from sync.store import companies
from sync.store.db import BUSY_TIMEOUT_MS, Database


def encrypt(settings: Settings, token: str) -> bytes:
    """`token` encrypted with the newest key. Raises SettingsError when no key is set."""
    register_secrets([token])
    return _cipher(settings).encrypt(token.encode("utf-8"))


def decrypt(settings: Settings, token_enc: bytes | str, company: str | None = None) -> str:
    """The token in clear (and registered as a secret to mask). Raises SettingsError naming
    CREDENTIALS_KEY when no key is set or none of them made this token."""
    sealed = token_enc.encode("ascii") if isinstance(token_enc, str) else token_enc
    try:
        token = _cipher(settings, stored=1).decrypt(sealed).decode("utf-8")
    except InvalidToken:
        raise _undecryptable(company) from None
    register_secrets([token])
    return token


async def rotate(settings: Settings, db: Database) -> int:
    """Re-encrypt every stored token with the newest key; how many were. A token replaced
    while this runs keeps its replacement. Raises SettingsError as `decrypt` does."""
    cipher = _cipher(settings, stored=1)
    done = 0
    for company, sealed in await companies.stored_tokens(db):
        try:
            fresh = cipher.rotate(sealed)
        except InvalidToken:
            raise _undecryptable(company) from None
        done += await companies.write_token(db, company, fresh, replacing=sealed)
    return done


def check_stored_tokens(settings: Settings) -> int:
    """Start-up: every stored token decrypts with CREDENTIALS_KEY (the keys and each token
    registered as secrets); how many are stored. Raises SettingsError naming CREDENTIALS_KEY
    otherwise.

    Reads the database directly (synchronous, brief): a SQLite file that is missing, not a
    database or not migrated yet holds no token (DATABASE_URL's own checks report those); a
    PostgreSQL database not migrated yet holds none either, and one that cannot be reached
    raises DatabaseUnavailable (transient): the check is never skipped for want of a server."""
    register_secrets(str(key) for key in settings.credentials_keys)
    stored = _stored_tokens(settings)
    for company, sealed in stored:
        decrypt(settings, sealed, company)
    return len(stored)


_TOKENS_SQL = "SELECT id, token_enc FROM companies WHERE token_enc IS NOT NULL ORDER BY id"


def _stored_tokens(settings: Settings) -> list[tuple[str, bytes]]:
    if settings.database_url is not None:
        from sync.store.engine_pg import read_now  # noqa: PLC0415 -- psycopg only when used

        rows = read_now(settings.database_url, _TOKENS_SQL)
        return [(str(company), str(sealed).encode("ascii")) for company, sealed in rows]
    return _stored_sqlite_tokens(settings.database_path)


def _stored_sqlite_tokens(path: Path) -> list[tuple[str, bytes]]:
    if not path.is_file():
        return []
    with contextlib.suppress(sqlite3.Error), contextlib.closing(
        sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    ) as conn:
        rows = conn.execute(_TOKENS_SQL).fetchall()
        return [(str(company), str(sealed).encode("ascii")) for company, sealed in rows]
    return []


def _cipher(settings: Settings, stored: int = 0) -> MultiFernet:
    """The keys as one MultiFernet. `stored`: tokens known to exist (for the message)."""
    keys = tuple(str(key) for key in settings.credentials_keys)
    if not keys:
        need = ("company tokens are stored encrypted under it" if stored
                else "it encrypts the companies' Alegra tokens")
        raise SettingsError(
            "CREDENTIALS_KEY", f"not set, and {need}. Generate one with "
            f"{GENERATE_CREDENTIALS_KEY}; keep it with SECRET_KEY (a lost key loses the tokens)",
        )
    return _multi_fernet(keys)


@functools.lru_cache(maxsize=4)  # keys are fixed for a process's life
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _undecryptable(company: str | None) -> SettingsError:
    whose = f"company {company!r}'s stored token" if company else "a stored company token"
    return SettingsError(
        "CREDENTIALS_KEY", f"no key in it decrypts {whose}: add the key it was stored with "
        "after the newest one (drop an old key only after `alegra-sync companies rotate-key`)",
    )
