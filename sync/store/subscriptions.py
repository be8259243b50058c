"""What this service knows of its webhook subscriptions in Alegra, one row per event.

Never the URL (it holds the token): only Alegra's subscription id and which secret key made the
URL. `present` is what the last check found; `missing_since` is when a subscription was found gone
(Alegra deletes one after 10 failed deliveries), kept until it is re-created. Each company has
its own subscriptions: every function reads and writes `db.company`'s rows.
"""

from __future__ import annotations

from sync.store.db import Database, Row, utcnow


async def load_states(db: Database) -> dict[str, Row]:
    rows = await db.fetchall(
        "SELECT * FROM subscriptions WHERE company_id = ? ORDER BY event", (db.company,)
    )
    return {row["event"]: row for row in rows}


async def record_present(
    db: Database, event: str, alegra_id: str, key_index: int, *, created: bool, recreated: bool
) -> None:
    """Alegra has this event's subscription at our current URL (just created, or still there)."""
    now = utcnow()
    await db.execute(
        "INSERT INTO subscriptions(company_id, event, alegra_id, url_key_index, present,"
        " created_at, last_checked_at, recreated_count) VALUES (?, ?, ?, ?, 1, ?, ?, ?)"
        " ON CONFLICT(company_id, event) DO UPDATE SET alegra_id = excluded.alegra_id,"
        " url_key_index = excluded.url_key_index, present = 1,"
        " last_checked_at = excluded.last_checked_at,"
        " created_at = CASE WHEN ? = 1 THEN excluded.created_at ELSE subscriptions.created_at END,"
        " recreated_count = subscriptions.recreated_count + excluded.recreated_count,"
        " missing_since = NULL",
        (db.company, event, alegra_id, key_index, now if created else None, now, int(recreated),
         int(created)),
    )


async def record_missing(db: Database, event: str) -> None:
    """The event has no subscription of ours in Alegra (and could not be re-created now)."""
    now = utcnow()
    await db.execute(
        "INSERT INTO subscriptions(company_id, event, present, last_checked_at, missing_since)"
        " VALUES (?, ?, 0, ?, ?) ON CONFLICT(company_id, event) DO UPDATE SET present = 0,"
        " last_checked_at = excluded.last_checked_at,"
        " missing_since = COALESCE(subscriptions.missing_since, excluded.missing_since)",
        (db.company, event, now, now),
    )


async def record_removed(db: Database, event: str) -> None:
    """The operator removed the subscription on purpose: not missing, just not wanted."""
    await db.execute(
        "UPDATE subscriptions SET present = 0, alegra_id = NULL, url_key_index = NULL,"
        " last_checked_at = ?, missing_since = NULL WHERE company_id = ? AND event = ?",
        (utcnow(), db.company, event),
    )
