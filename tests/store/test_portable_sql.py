"""The queries that once leaned on SQLite alone, run on each engine: lists bound value by value
(never `json_each`), ids from RETURNING, times computed in Python, NULLs ordered as SQLite
orders them, upserts that add to what is stored, keyset pages, the engine's own counters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from sync.alegra.records import AccountRecord, ContactRecord
from sync.receipt_model import parse_submission
from sync.states import CompanyState, InboxState, ReceiptStatus
from sync.store import companies, contacts, inbox, ops_queries, receipt_work, receipts, retention
from sync.store.accounts import root_expense_account, upsert_accounts
from sync.store.db import Database
from sync.store.partners import create_partner, restore_partners
from tests.receipts_api.conftest import receipt_body

pytestmark = pytest.mark.anyio
T0 = "2024-05-01T12:00:00.000000+00:00"
T1 = "2024-05-01T12:00:02.500000+00:00"
FUTURE = "2999-01-01T00:00:00.000000+00:00"


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    return database


def _contact(alegra_id: str, name: str, *, tax_id: str | None = "101010101",
             types: tuple[str, ...] = ("provider",), status: str | None = "active"
             ) -> ContactRecord:
    return ContactRecord(alegra_id, name, name.lower(), tax_id, "RNC", types, status, None, None,
                         {"id": alegra_id})


def _account(alegra_id: str, code: str | None, *, parent: str | None = None,
             kind: str = "expense") -> AccountRecord:
    return AccountRecord(alegra_id, parent, f"Cuenta {alegra_id}", f"cuenta {alegra_id}", code,
                         kind, "debit", "active", False, True, {"id": alegra_id})


async def _receipt(db: Database, partner_id: str, key: str) -> str:
    submission = parse_submission(receipt_body(), max_attachment_bytes=4096)
    receipt_id, _ = await receipts.insert_receipt(
        db, partner_id=partner_id, idempotency_key=key, submission=submission)
    return receipt_id


async def test_contacts_filter_by_type_and_fragment_and_page_by_keyset(db: Database) -> None:
    """A type is an element of the JSON list (a client is no provider, `provider` no
    `providers`); `%` and `_` in a name fragment are literal; pages follow (name_key, id)."""
    await contacts.upsert_contacts(db, [
        _contact("1", "Alfa 100%", types=("client",)),
        _contact("2", "Beta", types=("client", "provider")),
        _contact("3", "Gamma", types=("providers",)),
        _contact("4", "Alfa 1000", types=("provider",)),
    ], source="backfill")
    providers = await ops_queries.contacts_page(db, contact_type="provider")
    assert [r["alegra_id"] for r in providers] == ["4", "2"]
    percent = await ops_queries.contacts_page(db, name_fragment="100%")
    assert [r["alegra_id"] for r in percent] == ["1"]
    first = await ops_queries.contacts_page(db, limit=2)
    rest = await ops_queries.contacts_page(
        db, after=(first[-1]["name_key"], first[-1]["alegra_id"]), limit=10)
    assert [r["alegra_id"] for r in [*first, *rest]] == ["1", "4", "2", "3"]


async def test_the_best_supplier_is_an_active_provider(db: Database) -> None:
    """Among contacts with one tax id: an active provider before an inactive one or a client
    (`types` compared without regard to case, as SQLite's LIKE did)."""
    await contacts.upsert_contacts(db, [
        _contact("1", "Old", status="inactive"),
        _contact("2", "Client", types=("client",)),
        _contact("3", "Supplier", types=("PROVIDER",)),
    ], source="backfill")
    best = await contacts.find_supplier_by_tax_id(db, "101010101")
    assert best is not None
    assert best.alegra_id == "3"


async def test_accounts_without_a_code_come_first_as_sqlite_orders_nulls(db: Database) -> None:
    await upsert_accounts(db, [
        _account("1", "5100"), _account("2", None), _account("3", "5000", parent="9"),
        _account("9", "1", kind="asset"),
    ], source="poll")
    assert [r["alegra_id"] for r in await ops_queries.all_accounts(db)] == ["2", "9", "3", "1"]
    root = await root_expense_account(db)
    assert root is not None
    assert root.alegra_id == "2"


async def test_metric_counters_add_up_across_flushes(db: Database) -> None:
    await ops_queries.add_to_metric_counters(db, {("jobs_total", "{}"): 2.0}, T0)
    await ops_queries.add_to_metric_counters(db, {("jobs_total", "{}"): 3.5}, T1)
    rows = await ops_queries.metric_counter_rows(db)
    assert [(r["name"], r["value"]) for r in rows] == [("jobs_total", 5.5)]


async def test_webhook_lags_and_the_delivery_counter_survive_pruning(db: Database) -> None:
    """The lag is computed from the stored times; the counter of deliveries ever stored counts
    rows deleted since (the engine's own id counter, not the rows left)."""
    assert await ops_queries.deliveries_stored(db) == 0
    first, handshake, second = await inbox.write_batch(db, [
        inbox.NewDelivery(b"{}", 0), inbox.NewHandshake(0), inbox.NewDelivery(b"{}", 0)])
    assert (handshake, second) == (0, first + 1)
    await db.execute("UPDATE inbox SET state = ?, received_at = ?, applied_at = ? WHERE id = ?",
                     (InboxState.APPLIED, T0, T1, first))
    assert await ops_queries.recent_webhook_lags(db) == [2.5]
    pruned = await retention.prune_inbox_batch(db, before=FUTURE, after=0, limit=10)
    assert pruned.deleted == 1
    assert await ops_queries.deliveries_stored(db) == 2


async def test_marking_many_deliveries_done_binds_them_in_chunks(db: Database) -> None:
    ids = await inbox.write_batch(db, [inbox.NewDelivery(b"{}", 0) for _ in range(1201)])
    assert len(set(ids)) == 1201
    assert ids == sorted(ids)
    await inbox.mark_done(db, ids, state=InboxState.SKIPPED, note="test")
    assert await inbox.state_counts(db) == {InboxState.SKIPPED: 1201}


async def test_a_claim_takes_over_a_dead_holder_but_never_a_running_receipt(db: Database) -> None:
    partner, _ = await create_partner(db, "acme")
    held = await _receipt(db, partner.id, "a")
    claimed = await receipt_work.claim_next(db, owner="w1", lease_s=600)
    assert claimed is not None
    assert claimed.receipt_id == held
    assert await receipt_work.claim_next(db, owner="w2", lease_s=600) is None
    assert await receipt_work.claim_next(
        db, owner="w2", lease_s=600, dead_owners=["w1"], running=[held]) is None
    taken = await receipt_work.claim_next(db, owner="w2", lease_s=600, dead_owners=["w0", "w1"])
    assert taken is not None
    assert (taken.receipt_id, taken.attempts) == (held, 2)
    assert await receipt_work.companies_with_ready_work(db, dead_owners=["w2"]) == ["default"]


async def test_files_of_final_receipts_go_in_batches_whatever_their_ids(db: Database) -> None:
    partner, _ = await create_partner(db, "acme")
    done = [await _receipt(db, partner.id, str(n)) for n in range(3)]
    waiting = await _receipt(db, partner.id, "waiting")
    await db.executemany("UPDATE receipts SET status = ?, completed_at = ? WHERE id = ?",
                         [(ReceiptStatus.COMPLETED, T0, receipt_id) for receipt_id in done])
    await db.execute("INSERT INTO receipt_attachments(receipt_id, filename, content_type, size,"
                     " data) SELECT id, 'r.jpg', 'image/jpeg', 4, ? FROM receipts"
                     " WHERE id NOT IN (SELECT receipt_id FROM receipt_attachments)",
                     (b"\xff\xd8\xff\xe0",))
    after, deleted = "", 0
    for _ in range(10):
        batch = await retention.prune_attachments_batch(
            db, before=FUTURE, after=after, limit=2, max_bytes=1 << 20)
        after, deleted = batch.after, deleted + batch.deleted
        if batch.done:
            break
    assert deleted == 3
    rows = await db.fetchall("SELECT receipt_id FROM receipt_attachments")
    assert [r[0] for r in rows] == [waiting]


async def test_companies_page_by_id_and_change_state_and_token_safely(db: Database) -> None:
    for name in ("Beta", "Gamma", "Delta"):
        await companies.add_company(db, name, f"{name}@example.do", b"sealed-1")
    page = await companies.list_companies(db, limit=2)
    assert [c.id for c in page] == ["beta", "default"]
    rest = await companies.list_companies(db, after=page[-1].id)
    assert [c.id for c in rest] == ["delta", "gamma"]
    assert not await companies.write_token(db, "beta", b"sealed-2", replacing=b"other")
    assert await companies.write_token(db, "beta", b"sealed-2", replacing=b"sealed-1")
    assert await companies.read_token(db, "beta") == b"sealed-2"
    await companies.remove_company(db, "gamma")
    assert not await companies.set_state(db, "gamma", CompanyState.ACTIVE)
    assert await companies.set_state(db, "gamma", CompanyState.REMOVED)
    assert "gamma" not in await companies.live_companies(db)


async def test_a_grant_given_twice_is_one_grant_and_a_purge_takes_every_row(db: Database) -> None:
    await companies.add_company(db, "Beta", "beta@example.do", b"sealed")
    partner, _ = await create_partner(db, "acme", companies=("beta",))
    assert not await companies.grant(db, partner.id, "beta")
    assert await companies.grant(db, partner.id, "default")
    await _receipt(db.for_company("beta"), partner.id, "k")
    await companies.remove_company(db, "beta")
    deleted = await companies.purge_company(db, "beta")
    assert (deleted["receipts"], deleted["partner_grants"], deleted["companies"]) == (1, 1, 1)


async def test_restored_partners_keep_their_keys_and_reach_default(db: Database) -> None:
    saved = [{"id": "ptn_1", "name": "acme", "key_hash": "h" * 64, "key_prefix": "as_abcde",
              "is_admin": 0, "created_at": T0, "revoked_at": None, "gone_column": "x"}]
    assert await restore_partners(db, saved) == 1
    assert await restore_partners(db, saved) == 1  # a second time changes nothing
    rows = await db.fetchall("SELECT partner_id, company_id FROM partner_grants")
    assert [tuple(r) for r in rows] == [("ptn_1", "default")]


async def test_the_operators_figures_read_alike(db: Database) -> None:
    partner, _ = await create_partner(db, "acme")
    failed = await _receipt(db, partner.id, "f")
    await db.execute("UPDATE receipts SET status = ?, error = ? WHERE id = ?",
                     (ReceiptStatus.FAILED, json.dumps({"step": "bill"}), failed))
    assert await ops_queries.receipt_counts(db) == {ReceiptStatus.FAILED: 1}
    assert [r["id"] for r in await ops_queries.recent_failed_receipts(db)] == [failed]
    assert await ops_queries.partner_id_for(db, "acme") == partner.id
    assert await ops_queries.partner_id_for(db, partner.id) == partner.id
    assert await ops_queries.retry_failed_receipt(db, failed)
    await inbox.write_batch(db, [inbox.NewDelivery(b"{}", 0)])
    assert [r["subject"] for r in await ops_queries.last_webhooks(db)] == ["(none)"]
    assert await ops_queries.cache_counts(db) == {
        table: {"live": 0, "deleted": 0} for table in ops_queries.CACHE_TABLES}
