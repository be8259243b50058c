"""Partners and their API keys.

A key is `as_` + 43 url-safe random characters, shown once when created. Only its sha256 (hex)
is stored, with its first characters (`key_prefix`) to tell keys apart in listings. Looking a
key up by its hash means no comparison ever runs on the secret itself. A revoked partner keeps
its row (its receipts point to it) and no longer authenticates.

A partner reaches the companies it is granted (`sync.store.companies.grant`); one created
without a list of companies is granted `default`, the environment's account.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync.store.companies import require_live
from sync.store.db import DEFAULT_COMPANY, Database, IntegrityError, utcnow

KEY_PREFIX = "as_"
SHOWN_PREFIX_CHARS = 8  # `as_` + 5 random characters: enough to tell keys apart, useless to guess


class PartnerExists(ValueError):
    """A partner with that name exists already (revoked ones too: names are never reused)."""


class PartnerNotFound(LookupError):
    """No partner has that name."""


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    is_admin: bool


@dataclass(frozen=True)
class PartnerListing:
    """A partner as an operator sees it: never the key, only its first characters."""

    id: str
    name: str
    is_admin: bool
    key_prefix: str
    created_at: str
    revoked_at: str | None
    old_key_prefix: str | None = None  # the replaced key, while its grace period lasts
    old_key_expires_at: str | None = None


@dataclass(frozen=True)
class Rotation:
    """What `rotate_partner` did: the new key (shown once) and what became of the old one."""

    partner: Partner
    key: str
    old_key_prefix: str
    old_key_valid_until: str | None  # None: the old key stopped at once
    reactivated: bool  # the partner had been revoked


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _stamp(now: dt.datetime | None) -> str:
    """`utcnow()`'s format for a given instant (injected clocks in tests)."""
    return utcnow() if now is None else now.astimezone(dt.UTC).isoformat(timespec="microseconds")


async def create_partner(
    db: Database, name: str, is_admin: bool = False,
    companies: Sequence[str] = (DEFAULT_COMPANY,),
) -> tuple[Partner, str]:
    """Create a partner and its key, granted `companies`; the key is returned once and stored
    nowhere.

    Raises PartnerExists (saying how to re-key it when the name is a revoked partner's), or
    CompanyNotFound for a company that does not exist or is removed (nothing is stored)."""
    partner = Partner("ptn_" + secrets.token_hex(12), name, is_admin)
    key = new_key()
    now = utcnow()
    try:
        async with db.transaction() as conn:
            for company in dict.fromkeys(companies):
                await require_live(conn, company)
            await conn.execute(
                "INSERT INTO partners(id, name, key_hash, key_prefix, is_admin, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (partner.id, name, hash_key(key), key[:SHOWN_PREFIX_CHARS], int(is_admin), now),
            )
            await conn.executemany(
                "INSERT INTO partner_grants(partner_id, company_id, granted_at) VALUES (?, ?, ?)",
                [(partner.id, company, now) for company in dict.fromkeys(companies)],
            )
    except IntegrityError as exc:
        raise await _name_taken(db, name) from exc
    return partner, key


async def _name_taken(db: Database, name: str) -> PartnerExists:
    revoked = await db.scalar("SELECT revoked_at FROM partners WHERE name = ?", (name,))
    if revoked:
        return PartnerExists(
            f"a revoked partner named {name!r} exists (revoked {revoked}): "
            f"`alegra-sync partners rotate {name!r}` gives it a new key"
        )
    return PartnerExists(f"a partner named {name!r} exists already")


async def partner_named(db: Database, name: str) -> Partner | None:
    """The partner with this name (revoked ones too), or None."""
    row = await db.fetchone("SELECT id, name, is_admin FROM partners WHERE name = ?", (name,))
    return None if row is None else Partner(row["id"], row["name"], bool(row["is_admin"]))


async def find_partner_by_key(
    db: Database, key: str, now: dt.datetime | None = None
) -> Partner | None:
    """The active partner holding this key (its current one, or the one it replaced while the
    grace period lasts), or None (unknown, expired or revoked)."""
    digest = hash_key(key)
    row = await db.fetchone(
        "SELECT id, name, is_admin, key_hash, old_key_hash FROM partners"
        " WHERE revoked_at IS NULL"
        " AND (key_hash = ? OR (old_key_hash = ? AND old_key_expires_at > ?))",
        (digest, digest, _stamp(now)),
    )
    if row is None:
        return None
    matched = row["key_hash"] if row["key_hash"] == digest else row["old_key_hash"]
    if not hmac.compare_digest(matched, digest):
        return None
    return Partner(row["id"], row["name"], bool(row["is_admin"]))


async def list_partners(db: Database, now: dt.datetime | None = None) -> list[PartnerListing]:
    rows = await db.fetchall(
        "SELECT id, name, is_admin, key_prefix, created_at, revoked_at, old_key_prefix,"
        " CASE WHEN old_key_expires_at > ? THEN old_key_expires_at END AS old_until"
        " FROM partners ORDER BY name",
        (_stamp(now),),
    )
    return [
        PartnerListing(
            r["id"], r["name"], bool(r["is_admin"]), r["key_prefix"], r["created_at"],
            r["revoked_at"], r["old_key_prefix"] if r["old_until"] else None, r["old_until"],
        )
        for r in rows
    ]


async def revoke_partner(db: Database, name: str) -> bool:
    """Revoke the partner's key (and a replaced one still in its grace period) at once.
    False if no active partner has that name."""
    changed = await db.execute(
        "UPDATE partners SET revoked_at = ?, old_key_hash = NULL, old_key_prefix = NULL,"
        " old_key_expires_at = NULL WHERE name = ? AND revoked_at IS NULL",
        (utcnow(), name),
    )
    return changed > 0


async def rotate_partner(
    db: Database, name: str, grace: dt.timedelta, now: dt.datetime | None = None
) -> Rotation:
    """Give the partner a new key. An active partner's current key stays valid for `grace`
    (zero: it stops now); a revoked partner becomes active again with only the new key.

    Raises PartnerNotFound."""
    at = now or dt.datetime.now(dt.UTC)
    key = new_key()
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "SELECT id, is_admin, key_hash, key_prefix, revoked_at FROM partners WHERE name = ?",
            (name,),
        )
        row = await cursor.fetchone()
        if row is None:
            raise PartnerNotFound(f"no partner named {name!r}")
        keeps_old = row["revoked_at"] is None and grace > dt.timedelta(0)
        until = _stamp(at + grace) if keeps_old else None
        await conn.execute(
            "UPDATE partners SET key_hash = ?, key_prefix = ?, revoked_at = NULL, rotated_at = ?,"
            " old_key_hash = ?, old_key_prefix = ?, old_key_expires_at = ? WHERE id = ?",
            (hash_key(key), key[:SHOWN_PREFIX_CHARS], _stamp(at),
             row["key_hash"] if keeps_old else None, row["key_prefix"] if keeps_old else None,
             until, row["id"]),
        )
    return Rotation(Partner(row["id"], name, bool(row["is_admin"])), key, row["key_prefix"],
                    until, reactivated=row["revoked_at"] is not None)


def saved_partners(path: Path) -> list[dict[str, Any]]:
    """Every partner row of the SQLite file at `path` (hashes, never keys), to carry over to a
    fresh store; [] when there is no file or no readable partners table."""
    if not path.is_file():
        return []
    with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM partners")]
    return []


async def restore_partners(db: Database, rows: list[dict[str, Any]]) -> int:
    """Put `saved_partners` rows back (the columns this schema has); returns how many."""
    if not rows:
        return 0
    kept = [c for c in await _partner_columns(db) if c in rows[0]]
    await db.executemany(
        f"INSERT INTO partners({', '.join(kept)})"  # noqa: S608 - column names from the schema
        f" VALUES ({', '.join('?' for _ in kept)}) ON CONFLICT DO NOTHING",
        [[row[c] for c in kept] for row in rows],
    )
    await db.execute(  # the fresh store has only `default`: each partner reaches it, as before
        "INSERT INTO partner_grants(partner_id, company_id, granted_at)"
        " SELECT id, ?, ? FROM partners"
        " WHERE id NOT IN (SELECT partner_id FROM partner_grants)"
        " ON CONFLICT(partner_id, company_id) DO NOTHING",
        (DEFAULT_COMPANY, utcnow()),
    )
    return len(rows)


async def _partner_columns(db: Database) -> list[str]:
    """The partners table's columns in this store's schema (each engine describes its own)."""
    if db.engine == "sqlite":
        return [r["name"] for r in await db.fetchall("PRAGMA table_info(partners)")]
    rows = await db.fetchall(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'partners'"
        " ORDER BY ordinal_position"
    )
    return [str(r[0]) for r in rows]
