"""The cache is per company: two Alegra accounts in one database, with the same Alegra ids and
the same supplier (tax id + NCF), never read, overwrite, block or delete each other's rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sync.alegra.budget import RateBudget
from sync.alegra.client import AlegraClient
from sync.alegra.records import AccountRecord, BillRecord, ContactRecord, TaxRecord
from sync.duplicate_rules import Facts
from sync.flow.context import FlowEnv
from sync.flow.duplicates import Duplicate, NcfInFlight, check
from sync.settings import load_settings
from sync.store import bill_index, bill_status, bills
from sync.store.accounts import (
    count_accounts,
    find_expense_account,
    get_account,
    mark_missing_accounts_deleted,
    root_expense_account,
    upsert_accounts,
)
from sync.store.contacts import (
    find_contacts_by_name_key,
    find_supplier_by_tax_id,
    get_cached_contact,
    live_contacts,
    mark_contact_deleted,
    upsert_contacts,
)
from sync.store.db import Database, utcnow
from sync.store.partners import create_partner
from sync.store.taxes import (
    count_taxes,
    find_tax_id_by_rate,
    mark_missing_taxes_deleted,
    upsert_taxes,
)

pytestmark = pytest.mark.anyio
RNC = "131246796"
NCF = "B0100000001"
DATE = "2024-05-01"
OWNER = "test:1:a"


@dataclass
class Pair:
    """Two companies' handles on one database file, and a partner who may submit to both."""

    a: Database
    b: Database
    partner_id: str
    target: Path | str  # the SQLite file, or the PostgreSQL URL


@pytest.fixture
async def pair(database: Database, database_target: Path | str) -> AsyncIterator[Pair]:
    """The companies `default` and `beta` on one store, on each engine."""
    now = utcnow()
    await database.execute(
        "INSERT INTO companies(id, name, created_at, updated_at) VALUES ('beta', 'Beta', ?, ?)",
        (now, now),
    )
    partner, _ = await create_partner(database, "acme")
    return Pair(database, database.for_company("beta"), partner.id, database_target)


def contact(name: str, *, alegra_id: str = "7", tax_id: str = RNC) -> ContactRecord:
    return ContactRecord(alegra_id, name, name.lower(), tax_id, "RNC", ("provider",), "active",
                         None, None, {"id": alegra_id, "name": name})


def account(alegra_id: str, name: str, parent_id: str | None = None) -> AccountRecord:
    return AccountRecord(alegra_id, parent_id, name, name.lower(), alegra_id, "expense", "debit",
                         "active", False, True, {"id": alegra_id, "name": name})


def tax(percentage: str) -> TaxRecord:
    return TaxRecord("1", f"ITBIS {percentage}", percentage, "ITBIS", "active", {"id": "1"})


def bill(receipt_id: str | None, *, total: str = "236.00", status: str = "open") -> BillRecord:
    return BillRecord("900", "7", RNC, NCF, DATE, total, status, receipt_id, {"id": "900"})


async def add_receipt(db: Database, pair: Pair, receipt_id: str) -> None:
    """A receipt of `db.company` for the shared supplier and NCF, being worked by OWNER."""
    now = utcnow()
    await db.execute(
        "INSERT INTO receipts(id, partner_id, idempotency_key, body_hash, payload, status,"
        " supplier_tax_id, supplier_name, ncf, receipt_date, total, lease_owner, created_at,"
        " updated_at, company_id) VALUES (?, ?, ?, 'h', '{}', 'processing', ?, 'Ochoa', ?, ?,"
        " '236.00', ?, ?, ?, ?)",
        (receipt_id, pair.partner_id, receipt_id, RNC, NCF, DATE, OWNER, now, now, db.company),
    )


async def flags(db: Database, receipt_id: str) -> Any:
    return await db.scalar("SELECT flags FROM receipts WHERE id = ?", (receipt_id,))


async def test_contacts_with_the_same_ids_and_tax_id_stay_each_companys_own(pair: Pair) -> None:
    """Each company's contact lookups find its own row; one company's newer upsert and its
    deletion leave the other's row as it was."""
    await upsert_contacts(pair.a, [contact("Ochoa")], source="backfill",
                          confirmed_at="2024-01-01T00:00:00.000000+00:00")
    await upsert_contacts(pair.b, [contact("Beta Supplies")], source="webhook",
                          confirmed_at="2024-06-01T00:00:00.000000+00:00")

    assert (await find_supplier_by_tax_id(pair.a, RNC) or contact("?")).name == "Ochoa"
    assert (await find_supplier_by_tax_id(pair.b, RNC) or contact("?")).name == "Beta Supplies"
    assert await find_contacts_by_name_key(pair.a, "beta supplies") == []
    assert [c.name for c in await live_contacts(pair.b)] == ["Beta Supplies"]
    kept = await get_cached_contact(pair.a, "7")
    assert kept is not None
    assert (kept["name"], kept["source"]) == ("Ochoa", "backfill")

    assert await mark_contact_deleted(pair.a, "7", source="webhook")
    assert await find_supplier_by_tax_id(pair.a, RNC) is None
    assert (await find_supplier_by_tax_id(pair.b, RNC) or contact("?")).name == "Beta Supplies"


async def test_accounts_and_taxes_with_the_same_ids_stay_each_companys_own(pair: Pair) -> None:
    """Accounts and taxes are looked up, counted, made non-leaf and deleted by a complete scan
    within one company only."""
    await upsert_accounts(pair.b, [account("5", "Viajes"), account("7", "Hotel", "6")],
                          source="poll")
    await upsert_accounts(pair.a, [account("5", "Gastos"), account("6", "Oficina", "5")],
                          source="poll")
    await upsert_taxes(pair.a, [tax("18.00")], source="poll")
    await upsert_taxes(pair.b, [tax("16.00")], source="poll")

    assert (await get_account(pair.b, "5") or account("?", "?")).is_leaf  # a's child is not b's
    assert (await get_account(pair.a, "6") or account("?", "?")).is_leaf  # nor b's child a's
    assert not (await get_account(pair.a, "5") or account("?", "?")).is_leaf
    assert await find_expense_account(pair.b, "oficina") is None
    assert (await root_expense_account(pair.b) or account("?", "?")).name == "Viajes"
    assert await find_tax_id_by_rate(pair.a, Decimal(16)) is None
    assert await find_tax_id_by_rate(pair.b, Decimal(16)) == "1"

    scan = "2999-01-01T00:00:00.000000+00:00"
    assert sorted(await mark_missing_accounts_deleted(pair.b, set(), source="poll",
                                                      scan_started_at=scan)) == ["5", "7"]
    assert await mark_missing_taxes_deleted(pair.b, set(), source="poll",
                                            scan_started_at=scan) == ["1"]
    assert (await count_accounts(pair.a), await count_taxes(pair.a)) == (2, 1)
    assert (await count_accounts(pair.b), await count_taxes(pair.b)) == (0, 0)


async def test_bills_with_the_same_id_and_ncf_stay_each_companys_own(pair: Pair) -> None:
    """A bill stored for one company (by the flow, a look-up or a webhook) never changes or
    answers for the other company's bill with the same Alegra id, supplier and NCF."""
    await add_receipt(pair.a, pair, "rcp_a")
    await bills.record_bill(pair.a, bill("rcp_a"), source="receipt")
    await bill_index.record_looked_up_bills(pair.b, [bill(None, total="99.00")],
                                            source="strict_check")

    mine = await bills.find_live_bill(pair.a, RNC, NCF)
    theirs = await bills.get_bill(pair.b, "900")
    assert mine is not None
    assert theirs is not None
    assert (mine.receipt_id, mine.total) == ("rcp_a", "236.00")
    assert (theirs.receipt_id, theirs.total) == (None, "99.00")
    async with pair.b.transaction() as conn:
        seen = await bill_index.bills_with_ncf(conn, NCF, company=pair.b.company)
    assert [(b.alegra_id, b.total) for b in seen] == [("900", "99.00")]

    await bill_status.record_bill_gone(pair.b, "900", confirmed_at=utcnow())
    assert await bills.live_bill_ids(pair.b, DATE) == []
    assert await bills.live_bill_ids(pair.a, DATE) == ["900"]
    assert await flags(pair.a, "rcp_a") == "[]"  # b's deleted bill is not a's receipt's bill


async def test_a_webhook_for_one_company_flags_only_its_own_receipt(pair: Pair) -> None:
    """A void bill confirmed for one company flags that company's receipt, not the receipt
    the other company's bill with the same id came from."""
    await add_receipt(pair.a, pair, "rcp_a")
    await add_receipt(pair.b, pair, "rcp_b")
    await bills.record_bill(pair.a, bill("rcp_a"), source="receipt")
    await bills.record_bill(pair.b, bill("rcp_b"), source="receipt")

    found = await bill_status.record_confirmed_bill(pair.b, bill(None, status="void"),
                                                    confirmed_at=utcnow())

    assert found == "rcp_b"
    assert await flags(pair.b, "rcp_b") == '["bill_voided"]'
    assert await flags(pair.a, "rcp_a") == "[]"
    assert (await bills.get_bill(pair.b, "900") or bill(None)).receipt_id == "rcp_b"


@pytest.fixture
async def envs(pair: Pair) -> AsyncIterator[tuple[FlowEnv, FlowEnv]]:
    """The duplicate check's environment for each company (no Alegra call is made)."""
    settings = load_settings(env_file=None, environ={
        "SECRET_KEY": "x" * 32, "DATABASE_URL": (
            f"sqlite:///{pair.target}" if isinstance(pair.target, Path) else pair.target),
        "ALEGRA_BASE_URL": "http://127.0.0.1:9", "ALEGRA_EMAIL": "a@example.com",
        "ALEGRA_TOKEN": "t",
    })
    client = AlegraClient("http://127.0.0.1:9", "a@example.com", "t",
                          RateBudget(limit=10, window_s=1.0))
    try:
        stopping = asyncio.Event()
        yield (FlowEnv(settings, pair.a, client, stopping),
               FlowEnv(settings, pair.b, client, stopping))
    finally:
        await client.aclose()


def facts(receipt_id: str) -> Facts:
    return Facts(receipt_id, RNC, "ochoa", NCF, DATE, Decimal("236.00"))


async def test_one_bill_per_supplier_and_ncf_holds_within_a_company_not_across(
    pair: Pair, envs: tuple[FlowEnv, FlowEnv]
) -> None:
    """A company's claim on a supplier's NCF makes its next receipt wait, and its bill makes the
    one after a duplicate; the other company's receipt for the same NCF is blocked by neither."""
    env_a, env_b = envs
    for db, receipt_id in ((pair.a, "ra1"), (pair.a, "ra2"), (pair.a, "ra3"), (pair.b, "rb1"),
                           (pair.b, "rb2")):
        await add_receipt(db, pair, receipt_id)

    await check(env_a, facts("ra1"), OWNER)
    with pytest.raises(NcfInFlight) as waiting:
        await check(env_a, facts("ra2"), OWNER)
    assert waiting.value.holder == "ra1"
    await bills.record_bill(pair.a, bill("ra1"), source="receipt")
    with pytest.raises(Duplicate):
        await check(env_a, facts("ra3"), OWNER)

    await check(env_b, facts("rb1"), OWNER)  # neither a's claim nor a's bill blocks it
    with pytest.raises(NcfInFlight) as waiting:
        await check(env_b, facts("rb2"), OWNER)
    assert waiting.value.holder == "rb1"

    claims = await pair.a.fetchall("SELECT company_id, receipt_id FROM bill_claims ORDER BY 1")
    assert [tuple(r) for r in claims] == [("beta", "rb1"), ("default", "ra1")]
