"""Companies (one Alegra account each) and which partners may reach them.

The row `default` is the account configured in the environment (ALEGRA_EMAIL / ALEGRA_TOKEN, or
the simulator): the migration inserted it, and its credentials are never stored. Every other
company keeps its Alegra token encrypted (`token_enc`, a Fernet token from `sync.credentials`);
a `CompanyRecord` never carries it, and only `read_token` / `stored_tokens` hand it out.

These functions address companies by id and are not scoped by `db.company`. Grants are plain
rows: whether a granted company is removed is the caller's concern (its receipts stay readable).
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.company_contract import company_id
from sync.states import CompanyState
from sync.store.db import DEFAULT_COMPANY, Connection, Database, IntegrityError, Row, utcnow


class CompanyExists(ValueError):
    """The name's id is taken (by a removed company too, until it is purged)."""


class CompanyNotFound(LookupError):
    """No company has that id (or, where a live one is needed, it is removed)."""


class DefaultCompany(ValueError):
    """`default` is the environment's account: it cannot be removed or given a token."""


@dataclass(frozen=True)
class CompanyRecord:
    """A company as stored, without its token. `email` and `base_url` are None for `default`
    (the environment's); `base_url` None elsewhere means the deployment's ALEGRA_BASE_URL."""

    id: str
    name: str
    email: str | None
    base_url: str | None
    state: CompanyState
    state_reason: str | None
    created_at: str

    @property
    def is_default(self) -> bool:
        return self.id == DEFAULT_COMPANY


_COLUMNS = "id, name, email, base_url, state, state_reason, created_at"


def _record(row: Row) -> CompanyRecord:
    return CompanyRecord(row["id"], row["name"], row["email"], row["base_url"],
                         CompanyState(row["state"]), row["state_reason"], row["created_at"])


async def add_company(
    db: Database, name: str, email: str, token_enc: bytes, base_url: str | None = None
) -> CompanyRecord:
    """Store a new company under the slug of `name`. Raises CompanyIdInvalid (from the slug) or
    CompanyExists naming the id."""
    new_id = company_id(name)
    now = utcnow()
    try:
        await db.execute(
            "INSERT INTO companies(id, name, email, token_enc, base_url, state, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (new_id, name, email, token_enc.decode("ascii"), base_url, CompanyState.ACTIVE, now,
             now),
        )
    except IntegrityError as exc:
        raise await _exists(db, new_id) from exc
    return CompanyRecord(new_id, name, email, base_url, CompanyState.ACTIVE, None, now)


async def _exists(db: Database, taken: str) -> CompanyExists:
    state = await db.scalar("SELECT state FROM companies WHERE id = ?", (taken,))
    if state == CompanyState.REMOVED:
        return CompanyExists(
            f"a removed company has the id {taken!r}: purge it first "
            f"(`alegra-sync companies remove {taken} --purge`), or choose another name")
    return CompanyExists(f"a company with the id {taken!r} exists already")


async def get_company(db: Database, company: str) -> CompanyRecord | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM companies WHERE id = ?", (company,))  # noqa: S608
    return None if row is None else _record(row)


async def list_companies(
    db: Database, *, after: str | None = None, limit: int | None = None
) -> list[CompanyRecord]:
    """Every company (removed ones too) by id; keyset-paged: those after `after`."""
    limited = "" if limit is None else " LIMIT ?"
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM companies WHERE id > ? ORDER BY id{limited}",  # noqa: S608
        (after or "", *(() if limit is None else (limit,))),
    )
    return [_record(row) for row in rows]


async def set_state(
    db: Database, company: str, state: CompanyState, reason: str | None = None
) -> bool:
    """Put a company in `state` (with why); False when there is no such company. A removed
    company stays removed: only `remove_company` leads there, and nothing leads back."""
    changed = await db.execute(
        "UPDATE companies SET state = ?, state_reason = ?, updated_at = ?"
        " WHERE id = ? AND (state != ? OR ? = 1)",
        (state, reason, utcnow(), company, CompanyState.REMOVED,
         int(state == CompanyState.REMOVED)),
    )
    return changed > 0


async def remove_company(db: Database, company: str) -> CompanyRecord:
    """Mark the company removed: its work stops, its rows stay. Raises DefaultCompany or
    CompanyNotFound."""
    _refuse_default(company, "removed")
    await set_state(db, company, CompanyState.REMOVED, None)
    record = await get_company(db, company)
    if record is None:
        raise CompanyNotFound(f"no company {company!r}")
    return record


# Every row of one company, children before the rows they reference, the company last.
_PURGE = (
    ("notification_deliveries", "DELETE FROM notification_deliveries WHERE company_id = ?"),
    ("notification_events", "DELETE FROM notification_events WHERE company_id = ?"),
    ("bill_claims", "DELETE FROM bill_claims WHERE company_id = ? OR receipt_id IN"
                    " (SELECT id FROM receipts WHERE company_id = ?)"),
    ("receipt_steps", "DELETE FROM receipt_steps WHERE receipt_id IN"
                      " (SELECT id FROM receipts WHERE company_id = ?)"),
    ("receipt_attachments", "DELETE FROM receipt_attachments WHERE receipt_id IN"
                            " (SELECT id FROM receipts WHERE company_id = ?)"),
    ("receipts", "DELETE FROM receipts WHERE company_id = ?"),
    ("drift_reports", "DELETE FROM drift_reports WHERE company_id = ? OR job_run_id IN"
                      " (SELECT id FROM job_runs WHERE company_id = ?)"),
    ("job_runs", "DELETE FROM job_runs WHERE company_id = ?"),
    ("jobs", "DELETE FROM jobs WHERE company_id = ?"),
    ("inbox", "DELETE FROM inbox WHERE company_id = ?"),
    ("webhook_handshakes", "DELETE FROM webhook_handshakes WHERE company_id = ?"),
    ("subscriptions", "DELETE FROM subscriptions WHERE company_id = ?"),
    ("contacts", "DELETE FROM contacts WHERE company_id = ?"),
    ("accounts", "DELETE FROM accounts WHERE company_id = ?"),
    ("taxes", "DELETE FROM taxes WHERE company_id = ?"),
    ("bills", "DELETE FROM bills WHERE company_id = ?"),
    ("doctor_findings", "DELETE FROM doctor_findings WHERE company_id = ?"),
    ("doctor_learned", "DELETE FROM doctor_learned WHERE company_id = ?"),
    ("partner_grants", "DELETE FROM partner_grants WHERE company_id = ?"),
    ("companies", "DELETE FROM companies WHERE id = ?"),
)


async def purge_company(db: Database, company: str) -> dict[str, int]:
    """Delete the company and every row it owns, in one transaction; rows deleted by table.
    Raises DefaultCompany or CompanyNotFound."""
    _refuse_default(company, "purged")
    deleted: dict[str, int] = {}
    async with db.transaction() as conn:
        for table, statement in _PURGE:
            cursor = await conn.execute(statement, (company,) * statement.count("?"))
            deleted[table] = cursor.rowcount
        if not deleted["companies"]:
            raise CompanyNotFound(f"no company {company!r}")
    return deleted


def _refuse_default(company: str, what: str) -> None:
    if company == DEFAULT_COMPANY:
        raise DefaultCompany(
            f"{DEFAULT_COMPANY!r} is the account configured in the environment (ALEGRA_EMAIL): "
            f"it cannot be {what}")


async def read_token(db: Database, company: str) -> bytes | None:
    """The company's encrypted token (None for `default`, or no such company)."""
    value = await db.scalar("SELECT token_enc FROM companies WHERE id = ?", (company,))
    return None if value is None else str(value).encode("ascii")


async def write_token(db: Database, company: str, token_enc: bytes, *,
                      replacing: bytes | None = None) -> bool:
    """Store a company's encrypted token; with `replacing`, only if that is still the one
    stored (a rotation never overwrites a token written meanwhile). Raises DefaultCompany."""
    _refuse_default(company, "given a stored token")
    still = "" if replacing is None else " AND token_enc = ?"
    changed = await db.execute(
        f"UPDATE companies SET token_enc = ?, updated_at = ? WHERE id = ?{still}",  # noqa: S608
        (token_enc.decode("ascii"), utcnow(), company,
         *(() if replacing is None else (replacing.decode("ascii"),))),
    )
    return changed > 0


async def stored_tokens(db: Database) -> list[tuple[str, bytes]]:
    """(company id, encrypted token) of every company holding one, removed ones included."""
    rows = await db.fetchall(
        "SELECT id, token_enc FROM companies WHERE token_enc IS NOT NULL ORDER BY id"
    )
    return [(row["id"], str(row["token_enc"]).encode("ascii")) for row in rows]


async def is_multi_company(db: Database) -> bool:
    """Whether a company other than `default` was ever added (or a grant names one)."""
    return bool(await db.scalar(
        "SELECT EXISTS (SELECT 1 FROM companies WHERE id != ?)"
        " OR EXISTS (SELECT 1 FROM partner_grants WHERE company_id != ?)",
        (DEFAULT_COMPANY, DEFAULT_COMPANY),
    ))


# --- grants: which companies a partner key may reach (an admin key reaches every one) ------


async def grant(db: Database, partner_id: str, company: str) -> bool:
    """Let the partner reach the company; False if it could already. Raises CompanyNotFound
    for a company that does not exist or is removed."""
    async with db.transaction() as conn:
        await require_live(conn, company)
        cursor = await conn.execute(
            "INSERT INTO partner_grants(partner_id, company_id, granted_at) VALUES (?, ?, ?)"
            " ON CONFLICT(partner_id, company_id) DO NOTHING",
            (partner_id, company, utcnow()),
        )
        return cursor.rowcount > 0


async def require_live(conn: Connection, company: str) -> None:
    """Raise CompanyNotFound unless `company` exists and is not removed (inside a
    transaction: `conn` is the one `db.transaction()` yields)."""
    cursor = await conn.execute("SELECT state FROM companies WHERE id = ?", (company,))
    row = await cursor.fetchone()
    if row is None:
        raise CompanyNotFound(f"no company {company!r} (`alegra-sync companies list`)")
    if row["state"] == CompanyState.REMOVED:
        raise CompanyNotFound(f"the company {company!r} is removed")


async def revoke_grant(db: Database, partner_id: str, company: str) -> bool:
    """The partner no longer reaches the company; False if it did not."""
    changed = await db.execute(
        "DELETE FROM partner_grants WHERE partner_id = ? AND company_id = ?",
        (partner_id, company),
    )
    return changed > 0


async def granted_companies(db: Database, partner_id: str) -> list[str]:
    """The live (not removed) companies the partner is granted, by id."""
    rows = await db.fetchall(
        "SELECT g.company_id FROM partner_grants AS g JOIN companies AS c ON c.id = g.company_id"
        " WHERE g.partner_id = ? AND c.state != ? ORDER BY g.company_id",
        (partner_id, CompanyState.REMOVED),
    )
    return [str(row[0]) for row in rows]


async def is_granted(db: Database, partner_id: str, company: str) -> bool:
    """The partner holds a grant for the company, whatever its state (a removed company's
    receipts stay readable by id to the partners still granted it)."""
    return bool(await db.scalar(
        "SELECT EXISTS (SELECT 1 FROM partner_grants WHERE partner_id = ? AND company_id = ?)",
        (partner_id, company),
    ))


async def live_company_states(db: Database) -> dict[str, str]:
    """Every company not removed, by id, and its state (active, needs_attention)."""
    rows = await db.fetchall(
        "SELECT id, state FROM companies WHERE state != ? ORDER BY id", (CompanyState.REMOVED,)
    )
    return {str(r[0]): str(r[1]) for r in rows}


async def live_companies(db: Database) -> list[str]:
    """Every company not removed, by id."""
    return list(await live_company_states(db))


async def receipt_company(db: Database, receipt_id: str) -> str | None:
    """The company a receipt belongs to (receipt ids are unique across companies), or None."""
    value = await db.scalar("SELECT company_id FROM receipts WHERE id = ?", (receipt_id,))
    return None if value is None else str(value)


async def company_state(db: Database, company: str) -> tuple[str, str | None] | None:
    """(state, state_reason) of the company, or None when there is no such company."""
    row = await db.fetchone("SELECT state, state_reason FROM companies WHERE id = ?", (company,))
    return None if row is None else (str(row["state"]), row["state_reason"])


async def grants_by_partner(db: Database) -> dict[str, list[str]]:
    """Every partner's granted company ids (for listings)."""
    found: dict[str, list[str]] = {}
    for row in await db.fetchall(
        "SELECT partner_id, company_id FROM partner_grants ORDER BY partner_id, company_id"
    ):
        found.setdefault(row["partner_id"], []).append(row["company_id"])
    return found
