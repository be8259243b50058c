"""Partners and their API keys.

A key is `as_` + 43 url-safe random characters, shown once when created. Only its sha256 (hex)
is stored, with its first characters (`key_prefix`) to tell keys apart in listings. Looking a
key up by its hash means no comparison ever runs on the secret itself. A revoked partner keeps
its row (its receipts point to it) and no longer authenticates.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass

from sync.store.db import Database, utcnow

KEY_PREFIX = "as_"
SHOWN_PREFIX_CHARS = 8  # `as_` + 5 random characters: enough to tell keys apart, useless to guess


class PartnerExists(ValueError):
    """A partner with that name exists already (revoked ones too: names are never reused)."""


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


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_partner(db: Database, name: str, is_admin: bool = False) -> tuple[Partner, str]:
    """Create a partner and its key; the key is returned once and stored nowhere.

    Raises PartnerExists."""
    partner = Partner("ptn_" + secrets.token_hex(12), name, is_admin)
    key = new_key()
    try:
        await db.execute(
            "INSERT INTO partners(id, name, key_hash, key_prefix, is_admin, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (partner.id, name, hash_key(key), key[:SHOWN_PREFIX_CHARS], int(is_admin), utcnow()),
        )
    except sqlite3.IntegrityError as exc:
        raise PartnerExists(f"a partner named {name!r} exists already") from exc
    return partner, key


async def find_partner_by_key(db: Database, key: str) -> Partner | None:
    """The active partner holding this key, or None (unknown or revoked)."""
    digest = hash_key(key)
    row = await db.fetchone(
        "SELECT id, name, is_admin, key_hash FROM partners"
        " WHERE key_hash = ? AND revoked_at IS NULL",
        (digest,),
    )
    if row is None or not hmac.compare_digest(row["key_hash"], digest):
        return None
    return Partner(row["id"], row["name"], bool(row["is_admin"]))


async def list_partners(db: Database) -> list[PartnerListing]:
    rows = await db.fetchall(
        "SELECT id, name, is_admin, key_prefix, created_at, revoked_at FROM partners ORDER BY name"
    )
    return [
        PartnerListing(
            r["id"], r["name"], bool(r["is_admin"]), r["key_prefix"], r["created_at"],
            r["revoked_at"],
        )
        for r in rows
    ]


async def revoke_partner(db: Database, name: str) -> bool:
    """Revoke the partner's key at once. False if no active partner has that name."""
    changed = await db.execute(
        "UPDATE partners SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (utcnow(), name)
    )
    return changed > 0
