"""Three companies end to end: the real web process and worker against one simulator serving
three accounts (the environment's, `default`, and two added with `alegra-sync companies add`).

Each company's backfill fills only its own cache; a receipt is billed in its own company's
account, and one bill per supplier + NCF holds within a company, not across them; a contact typed
in one account reaches only that company's cache through its webhooks; a partner granted one
company can neither read nor write another's; malformed, unknown or foreign `Alegra-Company`
values change nothing; one company's revoked credentials put it in `needs_attention` while the
others keep billing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.simulator.state import SimConfig
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.support.procs import (
    ManagedProcess,
    eventually,
    free_port,
    product_env,
    run_cli,
    start_web,
    start_worker,
)
from tests.support.servers import RunningSimulator, running_simulator

pytestmark = pytest.mark.e2e

HEADER = "Alegra-Company"
ADDED = {"acme-sa": ("Acme SA", "acme@example.com", "tok-acme-5b1e"),
         "globex-sa": ("Globex SA", "globex@example.com", "tok-globex-9c4d")}
COMPANIES = ("default", *ADDED)
GRANTS = {"everyone": COMPANIES, "only-acme": ("acme-sa",)}
SUPPLIER = {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"}
# Contacts typed in each account before the worker starts: its backfill must bring exactly these.
TYPED = {"default": ["Papelería Cibao"], "acme-sa": ["Acme Proveedora", "Acme Transporte"],
         "globex-sa": ["Globex Insumos"]}
FINAL = ("completed", "failed", "duplicate")


def receipt(ncf: str) -> dict[str, Any]:
    return {"supplier": SUPPLIER, "date": "2026-05-01", "ncf": ncf, "category": "Gastos de oficina",
            "lines": [{"description": "Resmas", "amount": "250.00", "quantity": 2,
                       "tax_rate": 18}]}


@dataclass
class Stack:
    """The simulator's accounts by company id, the processes, the database and partner keys."""

    accounts: dict[str, RunningSimulator]
    env: dict[str, str]
    db_path: Path
    keys: dict[str, str] = field(default_factory=dict)
    procs: list[ManagedProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def headers(self, key: str, company: str | None = None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.keys[key]}"}
        return out if company is None else {**out, HEADER: company}

    def post(self, company: str | None, ncf: str, idem: str, key: str = "everyone",
             wait: int | None = 15) -> httpx.Response:
        headers = {**self.headers(key, company), "Idempotency-Key": idem}
        if wait is not None:
            headers["Prefer"] = f"wait={wait}"
        return httpx.post(f"{self.url}/v1/receipts", json=receipt(ncf), headers=headers,
                          timeout=40)

    def receipt(self, receipt_id: str, key: str = "everyone") -> httpx.Response:
        return httpx.get(f"{self.url}/v1/receipts/{receipt_id}", headers=self.headers(key),
                         timeout=10)

    def final(self, receipt_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            body: dict[str, Any] = self.receipt(receipt_id).json()
            return body if body["status"] in FINAL else None

        return eventually(done, 30, f"receipt {receipt_id} to finish")

    def admin_get(self, path: str, company: str | None) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers=self.headers("ops", company), timeout=10)

    def cached_names(self, company: str) -> list[str]:
        answer = self.admin_get("/v1/cache/contacts?limit=200", company)
        assert answer.status_code == 200, answer.text
        return sorted(contact["name"] for contact in answer.json()["data"])

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db_path, timeout=10) as conn:
            rows = conn.execute(sql, params).fetchall()
        conn.close()
        return rows

    def backfilled(self) -> bool:
        done = self.query("SELECT company_id FROM jobs WHERE name = 'backfill'"
                          " AND last_outcome = 'success'")
        return {row[0] for row in done} == set(COMPANIES)

    def bills(self, company: str) -> list[dict[str, Any]]:
        state = self.accounts[company].state
        with state.lock:
            return [dict(bill) for bill in state.bills.values()]

    def billed(self, company: str, receipt_id: str) -> list[dict[str, Any]]:
        return [b for b in self.bills(company) if receipt_id in str(b.get("observations") or "")]

    def cli(self, *args: str) -> str:
        result = run_cli(list(args), self.env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def logs(self) -> str:
        return "\n".join(proc.logs() for proc in self.procs)


def add_companies(stack: Stack, sim: RunningSimulator) -> None:
    """Two more simulator accounts, each added as a company with `companies add`."""
    for company, (name, email, token) in ADDED.items():
        stack.accounts[company] = sim.add_account(email, token)
        out = stack.cli("companies", "add", name, "--email", email, "--token", token,
                        "--base-url", sim.base_url)
        assert out.strip().splitlines()[-1] == company


def add_partners(stack: Stack) -> None:
    async def make() -> None:
        db = await Database.open(stack.db_path)
        try:
            for name, companies in GRANTS.items():
                stack.keys[name] = (await create_partner(db, name, False, companies))[1]
            stack.keys["ops"] = (await create_partner(db, "ops", True))[1]
        finally:
            await db.close()

    asyncio.run(make())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Three companies with contacts typed in each account, partners, then web and worker."""
    config = SimConfig(window_s=1.0, delivery_retry_delays=(0.05, 0.05),
                       handshake_timeout_s=5.0)
    with running_simulator(config) as sim:
        env = product_env(tmp_path / "e2e.db", alegra_base_url=sim.base_url, email=sim.email,
                          token=sim.token, port=free_port(), ALEGRA_RATE_WINDOW_S="1",
                          LOG_LEVEL="info")
        running = Stack({"default": sim}, env, tmp_path / "e2e.db")
        add_companies(running, sim)
        add_partners(running)
        for company, names in TYPED.items():
            for name in names:
                running.accounts[company].state.person_create_contact(name=name,
                                                                      type=["provider"])
        try:
            running.procs.append(start_web(env, tmp_path))
            running.procs.append(start_worker(env, tmp_path))
            yield running
        finally:
            for proc in reversed(running.procs):
                proc.stop()


def test_each_company_backfill_fills_only_its_own_cache(stack: Stack) -> None:
    """Each company's backfill brings its own account's contacts into its own cache only."""
    eventually(stack.backfilled, 30, "every company's backfill")

    assert {company: stack.cached_names(company) for company in COMPANIES} == {
        company: sorted(names) for company, names in TYPED.items()}
    counts = stack.query("SELECT company_id, count(*) FROM contacts GROUP BY company_id")
    assert dict(counts) == {company: len(names) for company, names in TYPED.items()}


def test_receipts_are_billed_in_their_own_company_and_ncf_claims_stay_apart(
    stack: Stack,
) -> None:
    """A receipt for one company is billed in its account only; the same supplier + NCF is
    billed once in each of two companies, and its twin within one company is a duplicate."""
    in_globex = stack.post("globex-sa", "B0100000001", "g1")
    assert in_globex.status_code == 201, in_globex.text
    assert in_globex.json()["status"] == "completed", stack.logs()
    assert len(stack.billed("globex-sa", in_globex.json()["id"])) == 1
    assert (stack.bills("acme-sa"), stack.bills("default")) == ([], [])

    in_acme = stack.post("acme-sa", "B0100000001", "a1").json()
    assert in_acme["status"] == "completed", stack.logs()
    twin = stack.final(stack.post("acme-sa", "B0100000001", "a2", wait=None).json()["id"])

    assert twin["status"] == "duplicate", twin
    assert len(stack.billed("acme-sa", in_acme["id"])) == 1
    assert [len(stack.bills(company)) for company in COMPANIES] == [0, 1, 1]
    assert dict(stack.query("SELECT company_id, count(*) FROM bill_claims GROUP BY company_id")
                ) == {"acme-sa": 1, "globex-sa": 1}


def test_a_contact_typed_in_one_account_reaches_only_its_company_cache(stack: Stack) -> None:
    """With every company's webhooks registered, a contact typed in one account arrives, by its
    own company's URL, in that company's cache alone."""
    eventually(stack.backfilled, 30, "every company's backfill")
    stack.cli("webhooks", "register", "--all")
    urls = {company: {s["url"] for s in stack.accounts[company].state.subscriptions.values()}
            for company in COMPANIES}
    assert all(len(found) == 1 for found in urls.values()), urls
    assert len(set.union(*urls.values())) == len(COMPANIES)  # one URL per company

    stack.accounts["globex-sa"].state.person_create_contact(name="Globex Nuevo",
                                                            type=["provider"])

    eventually(lambda: "Globex Nuevo" in stack.cached_names("globex-sa"), 20,
               "the delivery in globex-sa's cache")
    assert stack.cached_names("acme-sa") == sorted(TYPED["acme-sa"])
    assert stack.cached_names("default") == sorted(TYPED["default"])
    assert {row[0] for row in stack.query("SELECT company_id FROM inbox")} == {"globex-sa"}


def test_a_partner_granted_one_company_can_neither_read_nor_write_another(
    stack: Stack,
) -> None:
    """A key granted only acme-sa gets 404 for globex-sa's receipt and for a POST naming
    globex-sa, and that POST stores nothing."""
    posted = stack.post("globex-sa", "B0100000001", "g1")
    assert posted.status_code == 201, posted.text + stack.logs()[-3000:]
    theirs = posted.json()["id"]
    before = stack.query("SELECT id FROM receipts")

    assert stack.receipt(theirs, key="only-acme").status_code == 404
    for company in ("globex-sa", "default"):
        answer = stack.post(company, "B0100000002", f"x-{company}", key="only-acme")
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "unknown_company")
    assert stack.query("SELECT id FROM receipts") == before
    assert stack.receipt(theirs).status_code == 200  # a key granted globex-sa reads it
    assert [len(stack.bills(company)) for company in COMPANIES] == [0, 0, 1]


# (key, the header's values, the answer's status and code)
BAD_VALUES = [
    ("everyone", ["Acme-SA"], 400, "invalid_company"),
    ("everyone", ["acme sa"], 400, "invalid_company"),
    ("everyone", [""], 400, "invalid_company"),
    ("everyone", ["a" * 64], 400, "invalid_company"),
    ("everyone", ["acme-sa,globex-sa"], 400, "invalid_company"),
    ("everyone", ["acme-sa", "globex-sa"], 400, "invalid_company"),
    ("everyone", [], 400, "missing_company"),
    ("everyone", ["initech"], 404, "unknown_company"),
    ("only-acme", ["globex-sa"], 404, "unknown_company"),
    ("only-acme", ["default"], 404, "unknown_company"),
]


def test_bad_or_foreign_company_values_change_nothing(stack: Stack) -> None:
    """A malformed, missing, unknown or foreign `Alegra-Company` gets its 400 or 404 from the
    receipt API (and from an admin's cache read), and no receipt is stored nor billed."""
    for key, values, status, code in BAD_VALUES:
        company = [(HEADER, value) for value in values]
        headers = [("Authorization", f"Bearer {stack.keys[key]}"), ("Idempotency-Key", "k1"),
                   *company]
        answer = httpx.post(f"{stack.url}/v1/receipts", json=receipt("B0100000001"),
                            headers=headers, timeout=10)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), values
        if key == "everyone":  # the same header on an admin's cache read
            admin = [("Authorization", f"Bearer {stack.keys['ops']}"), *company]
            read = httpx.get(f"{stack.url}/v1/cache/contacts", headers=admin, timeout=10)
            assert read.status_code == status, (values, read.text)

    assert stack.query("SELECT count(*) FROM receipts") == [(0,)]
    assert [stack.bills(company) for company in COMPANIES] == [[], [], []]


def test_revoked_credentials_pause_one_company_while_the_others_keep_billing(
    stack: Stack,
) -> None:
    """Alegra refusing globex-sa's token puts it in needs_attention (status, `companies list`),
    its receipt waits queued, and the other companies' receipts are billed."""
    globex = stack.accounts["globex-sa"]
    revoked = httpx.patch(f"{globex.root_url}{globex.state.control_path}",
                          json={"revoked": True}, timeout=10)
    assert revoked.status_code == 200, revoked.text

    waiting = stack.post("globex-sa", "B0100000001", "g1", wait=None).json()["id"]

    def flagged() -> list[str]:
        reasons = stack.admin_get("/v1/cache/status", "globex-sa").json()["reasons"]
        return [r["code"] for r in reasons if r["code"] == "company_needs_attention"]

    eventually(flagged, 20, "globex-sa in needs_attention")
    listed = {line.split()[0]: line for line in stack.cli("companies", "list").splitlines()[1:]}
    assert "needs_attention" in listed["globex-sa"]
    assert "needs_attention" not in listed["acme-sa"] + listed["default"]
    for company, idem in (("acme-sa", "a1"), ("default", "d1")):
        answer = stack.post(company, "B0100000002", idem).json()
        assert answer["status"] == "completed", stack.logs()
        assert len(stack.billed(company, answer["id"])) == 1
    assert stack.receipt(waiting).json()["status"] == "queued"
    assert globex.state.bills == {}
