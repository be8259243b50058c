"""The safeguards end to end: the real web and worker processes against the simulator.

One stack serves the module (each test uses its own supplier): a bill typed into Alegra before
the service was connected (found by the backfill), bills typed while it runs (found through
their webhooks), two partners sending one paper receipt, totals that do not add up, and dollars.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from sync.simulator.state import SimConfig
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
T = TypeVar("T")
TODAY = datetime.now(UTC).date().isoformat()  # inside the bills backfill window
WRITES = ("POST", "PUT", "DELETE")
BACKFILLED_RNC, TWIN_RNC, TYPED_RNC, USD_RNC = "101000015", "130000018", "130000026", "130000034"



def receipt(tax_id: str, ncf: str | None = "B0100000001", **changes: Any) -> dict[str, Any]:
    """Two × 100.00 at 18 % ITBIS: 236.00, dated today."""
    body: dict[str, Any] = {
        "supplier": {"name": f"Suplidor {tax_id}", "tax_id": tax_id}, "date": TODAY, "ncf": ncf,
        "category": "Gastos de ferretería",
        "lines": [{"description": "Tornillos", "amount": "100.00", "quantity": 2, "tax_rate": 18}],
    }
    return {**body, **changes}


def type_bill(sim: RunningSimulator, tax_id: str, ncf: str) -> dict[str, Any]:
    """A supplier and its bill for receipt(tax_id, ncf), typed by a person in Alegra."""
    state = sim.state
    contact = state.person_create_contact(name=f"Suplidor {tax_id}", identification=tax_id,
                                          type=["provider"])
    account = next(c for c in state.categories.values() if c["name"] == "Combustible y lubricantes")
    return state.person_create_bill(
        date=TODAY, dueDate=TODAY, provider={"id": contact["id"]}, numberTemplate={"number": ncf},
        purchases={"categories": [{"id": account["id"], "price": 100, "quantity": 2,
                                   "tax": [{"id": "1"}]}]},
    )


@dataclass
class Stack:
    sim: RunningSimulator
    env: dict[str, str]
    url: str
    db_path: Path
    keys: dict[str, str]
    backfilled_bill: dict[str, Any]

    def submit(self, body: dict[str, Any], key: str, partner: str = "acme") -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[partner]}", "Idempotency-Key": key,
                   "Prefer": "wait=20"}
        return httpx.post(f"{self.url}/v1/receipts", json=body, headers=headers, timeout=30)

    def writes(self) -> int:
        return sum(self.sim.state.calls(method) for method in WRITES)

    def cached_bill_status(self, bill_id: str) -> str | None:
        """The bill's status in the service's cache ('deleted' if gone), None if unknown."""
        with sqlite3.connect(self.db_path) as conn:
            row = conn.execute("SELECT status, deleted FROM bills WHERE alegra_id = ?",
                               (bill_id,)).fetchone()
        if row is None:
            return None
        return "deleted" if row[1] else str(row[0])


def _add_partner(env: dict[str, str], name: str) -> str:
    result = run_cli(["partners", "add", name], env)
    assert result.returncode == 0, result.stderr
    return str(re.findall(r"^as_\S+$", result.stdout, re.MULTILINE)[0])


def _backfill_done(db_path: Path) -> bool:
    with sqlite3.connect(db_path) as conn:
        row = conn.execute("SELECT last_outcome FROM jobs WHERE name = 'backfill'").fetchone()
    return row is not None and row[0] == "success"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Simulator with a bill typed before connecting; web, worker, webhooks; backfill done."""
    tmp = tmp_path_factory.mktemp("safeguards-e2e")
    config = SimConfig(window_s=1.0, delivery_retry_delays=(0.05, 0.05), handshake_timeout_s=5.0)
    with running_simulator(config) as sim:
        backfilled = type_bill(sim, BACKFILLED_RNC, "B0100000050")
        port, db_path = free_port(), tmp / "safeguards.db"
        env = product_env(db_path, alegra_base_url=sim.base_url, email=sim.email,
                          token=sim.token, port=port, ALEGRA_RATE_WINDOW_S="1")
        keys = {name: _add_partner(env, name) for name in ("acme", "beta")}
        procs: list[ManagedProcess] = []
        try:
            procs.append(start_web(env, tmp))
            procs.append(start_worker(env, tmp))
            registered = run_cli(["webhooks", "register"], env)
            assert registered.returncode == 0, registered.stderr
            eventually(lambda: _backfill_done(db_path), what="the first backfill")
            yield Stack(sim, env, f"http://127.0.0.1:{port}", db_path, keys, backfilled)
        finally:
            for proc in reversed(procs):
                proc.stop()


def test_bill_typed_before_connecting_is_found_by_the_backfill(stack: Stack) -> None:
    """The receipt for a bill the backfill brought in answers `duplicate` at once, no write."""
    writes = stack.writes()

    answer = stack.submit(receipt(BACKFILLED_RNC, "B01-0000-0050"), "backfilled")

    body = answer.json()
    assert (answer.status_code, body["status"]) == (201, "duplicate")
    assert body["alegra"]["bill_id"] == stack.backfilled_bill["id"]
    assert stack.writes() == writes


def test_two_partners_sending_one_paper_receipt_get_one_bill(stack: Stack) -> None:
    """Two partners, one receipt, at the same time: one bill, one `duplicate` of it, which does
    not name the other partner's bill."""
    body = receipt(TWIN_RNC)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda p: stack.submit(body, "same-paper", p), ["acme", "beta"]))

    resources = [a.json() for a in answers]
    assert [a.status_code for a in answers] == [201, 201]
    assert sorted(r["status"] for r in resources) == ["completed", "duplicate"]
    [billed] = [r for r in resources if r["status"] == "completed"]
    [twin] = [r for r in resources if r["status"] == "duplicate"]
    bill_id = billed["alegra"]["bill_id"]
    assert twin["alegra"]["bill_id"] is None
    assert twin["steps"][0]["detail"]["billed_by"] == "another_partner"
    twins = [b for b in stack.sim.state.bills.values()
             if b["provider"]["identification"] == TWIN_RNC]
    assert [b["id"] for b in twins] == [bill_id]


def test_bill_typed_in_alegra_blocks_its_receipt_until_voided(stack: Stack) -> None:
    """A bill learned through its webhook makes the receipt `duplicate`; voided, it is billed."""
    typed = type_bill(stack.sim, TYPED_RNC, "B0100000070")
    eventually(lambda: stack.cached_bill_status(typed["id"]), what="the new-bill webhook")
    writes = stack.writes()

    duplicate = stack.submit(receipt(TYPED_RNC, "B0100000070"), "typed-1").json()

    assert (duplicate["status"], duplicate["alegra"]["bill_id"]) == ("duplicate", typed["id"])
    assert stack.writes() == writes
    stack.sim.state.person_void_bill(typed["id"])
    eventually(
        lambda: stack.cached_bill_status(typed["id"]) == "void", what="the edit-bill webhook"
    )
    billed = stack.submit(receipt(TYPED_RNC, "B0100000070"), "typed-2").json()
    assert billed["status"] == "completed"
    assert billed["alegra"]["bill_id"] not in (None, typed["id"])


@pytest.mark.parametrize(("lines", "given", "expected"), [
    ([{"description": "Tornillos", "amount": "100.00", "quantity": 2, "tax_rate": 18}],
     "236.01", "236.00"),
    ([{"description": "Grapas", "amount": "0.75", "tax_rate": 18}], "0.88", "0.89"),
])
def test_total_that_does_not_add_up_is_refused_with_both_figures(
    stack: Stack, lines: list[dict[str, Any]], given: str, expected: str
) -> None:
    """One cent off, or rounded the other way (0.885 → 0.89 half up): 422 naming both."""
    answer = stack.submit(receipt(TWIN_RNC, None, lines=lines, total=given), f"total-{given}")

    error = answer.json()["error"]
    assert answer.status_code == 422
    assert (error["code"], error["field"]) == ("total_mismatch", "total")
    assert (error["expected"], error["given"]) == (expected, given)


def test_dollar_receipt_reaches_the_bill_with_its_currency_and_rate(stack: Stack) -> None:
    """A USD receipt with its exchange rate makes a bill in USD at that rate."""
    answer = stack.submit(receipt(USD_RNC, currency="USD", exchange_rate="58.45"), "usd")

    body = answer.json()
    assert body["status"] == "completed"
    bill = stack.sim.state.bills[body["alegra"]["bill_id"]]
    assert bill["currency"] == {"code": "USD", "exchangeRate": 58.45}
    assert bill["total"] == 236.0
