"""Receipt → bill end to end: the real web process and worker against the simulator.

New prerequisites are created once and then cost nothing; racing receipts for one new supplier
make one contact; a worker killed while its bill POST hangs resumes with the same single bill;
under 5xx, 429 bursts and slow answers every receipt still gets exactly one bill; a bill Alegra
refuses fails the receipt with Alegra's own evidence.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from sync.commands.run import read_env_file, sample_receipt
from sync.simulator.state import SimConfig
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.support.databases import run_async, url_of
from tests.support.procs import (
    ROOT,
    ManagedProcess,
    eventually,
    free_port,
    product_env,
    start_web,
    start_worker,
)
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.e2e
T = TypeVar("T")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 256
WINDOW_S = 2.0


@pytest.fixture
def sim_config() -> SimConfig:
    """Alegra's 150 requests per window, with the window shortened to 2 s."""
    return SimConfig(window_s=WINDOW_S)


def receipt(ncf: str | None = "B0100000001", *, attachment: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
        "date": "2024-05-01",
        "ncf": ncf,
        "category": "Gastos de ferretería",
        "lines": [{"description": "Tornillos", "amount": "100.00", "quantity": 2,
                   "tax_rate": 18}],
    }
    if attachment:
        body["attachment"] = {"filename": "recibo.png", "content_type": "image/png",
                              "data_base64": base64.b64encode(PNG).decode()}
    return body



def outcomes(resource: dict[str, Any]) -> dict[str, str]:
    return {step["step"].split(":")[0]: step["outcome"] for step in resource["steps"]}


@dataclass
class Stack:
    """The simulator, the web process and the worker on one store (a SQLite file or a
    PostgreSQL database), with a partner key."""

    sim: RunningSimulator
    env: dict[str, str]
    log_dir: Path
    target: Path | str
    key: str
    web: ManagedProcess
    worker: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def post(self, body: dict[str, Any], idem: str, wait: int | None = 15) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": idem}
        if wait is not None:
            headers["Prefer"] = f"wait={wait}"
        return httpx.post(f"{self.url}/v1/receipts", json=body, headers=headers, timeout=40)

    def get(self, receipt_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/v1/receipts/{receipt_id}",
                             headers={"Authorization": f"Bearer {self.key}"}, timeout=10)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def final(self, receipt_id: str, timeout: float = 30.0) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            resource = self.get(receipt_id)
            return resource if resource["status"] in ("completed", "failed") else None

        return eventually(done, timeout, f"receipt {receipt_id} to finish")

    def backfilled(self) -> bool:
        return run_async(_backfill_succeeded(self.target))

    def bills_of(self, receipt_id: str) -> list[dict[str, Any]]:
        with self.sim.state.lock:
            bills = list(self.sim.state.bills.values())
        return [b for b in bills if receipt_id in str(b.get("observations") or "")]

    def logs(self) -> str:
        return "\n".join(p.logs() for p in (self.web, self.worker))


async def _backfill_succeeded(target: Path | str) -> bool:
    db = await Database.open(target, migrate=False)
    try:
        row = await db.fetchone("SELECT last_outcome FROM jobs WHERE name = 'backfill'")
    finally:
        await db.close()
    return bool(row and row[0] == "success")


@pytest.fixture
def stack(tmp_path: Path, simulator: RunningSimulator, database_target: Path | str
          ) -> Iterator[Stack]:
    """A partner in a fresh store of each engine (`engine`), then the real web process and
    worker against the simulator."""

    async def make_partner() -> str:
        db = await Database.open(database_target)
        try:
            return (await create_partner(db, "acme"))[1]
        finally:
            await db.close()

    key = asyncio.run(make_partner())
    env = product_env(tmp_path / "unused.db", alegra_base_url=simulator.base_url,
                      email=simulator.email, token=simulator.token, port=free_port(),
                      DATABASE_URL=url_of(database_target),
                      ALEGRA_RATE_WINDOW_S=str(WINDOW_S), LOG_LEVEL="info")
    web = start_web(env, tmp_path)
    worker = start_worker(env, tmp_path)
    running = Stack(simulator, env, tmp_path, database_target, key, web, worker)
    try:
        yield running
    finally:
        running.worker.stop()
        running.web.stop()


def test_new_prerequisites_are_created_once_then_a_cached_receipt_costs_two_calls(
    stack: Stack,
) -> None:
    """A new supplier and account are created; the next receipts cost the bill (+ attachment)."""
    accounts_before = len(stack.sim.state.categories)
    first = stack.post(receipt("B0100000001"), "r1")
    assert first.status_code == 201, first.text
    resource = first.json()
    assert resource["status"] == "completed"
    assert outcomes(resource) == {
        "supplier": "created", "account": "created", "bill": "created", "attachment": "created"
    }
    assert len(stack.sim.state.contacts) == 1
    assert len(stack.sim.state.categories) == accounts_before + 1
    [bill] = stack.bills_of(resource["id"])
    assert len(bill["attachments"]) == 1
    eventually(stack.backfilled, what="the startup backfill")

    stack.sim.state.clear_log()
    second = stack.post(receipt("B0100000002"), "r2").json()
    assert outcomes(second) == {
        "supplier": "found", "account": "found", "bill": "created", "attachment": "created"
    }
    assert stack.sim.state.calls() == 2

    stack.sim.state.clear_log()
    third = stack.post(receipt("B0100000003", attachment=False), "r3").json()
    assert third["status"] == "completed"
    assert stack.sim.state.calls() == 1


def test_concurrent_receipts_for_one_new_supplier_make_one_contact(stack: Stack) -> None:
    """Ten receipts posted at once for one new supplier and account: one contact, one account."""
    accounts_before = len(stack.sim.state.categories)

    def post(n: int) -> httpx.Response:
        return stack.post(receipt(f"B01000000{n:02d}", attachment=False), f"c{n}", wait=25)

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(post, range(10)))

    assert [a.json()["status"] for a in answers] == ["completed"] * 10, stack.logs()
    assert len(stack.sim.state.contacts) == 1
    assert len(stack.sim.state.categories) == accounts_before + 1
    assert len(stack.sim.state.bills) == 10
    assert stack.sim.state.calls("POST", "/contacts") == 1


def test_worker_killed_during_the_bill_post_resumes_with_one_bill(stack: Stack) -> None:
    """kill -9 while the bill POST hangs after commit; the restarted worker finds that bill."""
    assert stack.post(receipt("B0100000001", attachment=False), "k1").json()["status"] == (
        "completed"
    )
    stack.sim.state.faults.update({"hang_after_commit": 1, "hang_s": 3.0})
    receipt_id = stack.post(receipt("B0100000002"), "k2", wait=None).json()["id"]
    eventually(lambda: stack.bills_of(receipt_id), what="the bill to be committed")

    stack.worker.kill9()
    killed = stack.get(receipt_id)
    assert killed["status"] == "processing"
    assert {s["step"]: s["state"] for s in killed["steps"]}["bill"] == "attempting"
    stack.worker = start_worker(stack.env, stack.log_dir, name="worker-restarted")

    resource = stack.final(receipt_id, timeout=20)
    assert resource["status"] == "completed", stack.logs()
    assert outcomes(resource)["bill"] == "found"
    assert outcomes(resource)["attachment"] == "created"
    assert len(stack.bills_of(receipt_id)) == 1
    assert stack.sim.state.calls("POST", "/bills") == 3  # k1's bill, the hung one, one upload


def test_faults_on_every_receipt_completes_with_exactly_one_bill(stack: Stack) -> None:
    """With 5xx errors, 429 bursts and answers held after commit, each receipt gets one bill."""
    stack.sim.state.faults.update(
        {"error_rate": 0.1, "burst_429": 3, "hang_after_commit": 2, "hang_s": 0.5}
    )
    ids = [stack.post(receipt(f"B01000001{n:02d}"), f"f{n}", wait=None).json()["id"]
           for n in range(5)]

    finals = [stack.final(receipt_id, timeout=45) for receipt_id in ids]

    assert [r["status"] for r in finals] == ["completed"] * 5, stack.logs()
    assert [len(stack.bills_of(receipt_id)) for receipt_id in ids] == [1] * 5
    assert len(stack.sim.state.bills) == 5
    assert len(stack.sim.state.contacts) == 1


def test_rejected_bill_fails_with_alegra_status_code_and_message(stack: Stack) -> None:
    """A bill refused for an inactive provider fails the receipt with Alegra's evidence."""
    stack.post(receipt("B0100000001", attachment=False), "x1")
    [contact_id] = stack.sim.state.contacts
    stack.sim.state.person_edit_contact(contact_id, status="inactive")

    answer = stack.post(receipt("B0100000002", attachment=False), "x2")

    assert answer.status_code == 201
    resource = stack.get(answer.json()["id"])
    assert resource["status"] == "failed"
    error = resource["error"]
    assert (error["step"], error["status"], error["code"]) == ("bill", 400, 2094)
    assert error["message"]
    assert error["retryable"] is False
    assert len(stack.sim.state.bills) == 1


def test_run_without_credentials_bills_the_printed_sample(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    """`alegra-sync run` with no credentials starts the simulator and bills the sample receipt:
    in its own SQLite file, or in DATABASE_URL's PostgreSQL database, where its one lock is a
    file under data/ named for the database and a command on that database acts on the demo."""
    shutil.copy(ROOT / "Procfile", tmp_path / "Procfile")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALEGRA_", "DATABASE_", "SECRET_", "PUBLIC_", "DEMO_"))}
    port, sim_port = free_port(), free_port()
    env.update(PORT=str(port), LOG_FORMAT="json")
    if engine == "postgresql":
        env["DATABASE_URL"] = str(request.getfixturevalue("database_target"))
    out = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync.cli", "run", "--simulator-port", str(sim_port)],
        cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    log = tmp_path / "run.log"
    try:
        eventually(lambda: "worker.started" in log.read_text(), 20, "the worker to start")
        printed = log.read_text()
        assert "built-in Alegra simulator" in printed
        assert "curl -sS -X POST" in printed
        key = read_env_file(tmp_path / ".env")["DEMO_PARTNER_KEY"]
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "demo-1",
                   "Prefer": "wait=15"}
        url = f"http://127.0.0.1:{port}/v1/receipts"
        answer = eventually(lambda: _post_when_up(url, headers), 20, "the web process")
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "completed"
        if engine == "sqlite":
            assert (tmp_path / "data" / "alegra-sync-simulator.db").exists()
        else:
            assert not (tmp_path / "data" / "alegra-sync-simulator.db").exists()
            assert [p.name for p in (tmp_path / "data").glob("postgresql-*.run.lock")]
            status = subprocess.run([sys.executable, "-m", "sync.cli", "status"], cwd=tmp_path,
                                    env=env, capture_output=True, text=True, timeout=60,
                                    check=False)
            assert "acting on the running demo" in status.stderr, status.stderr
            assert "completed 1" in status.stdout, status.stdout
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        out.close()
    assert proc.returncode is not None


def _post_when_up(url: str, headers: dict[str, str]) -> httpx.Response | None:
    try:
        return httpx.post(url, json=sample_receipt(), headers=headers, timeout=20)
    except httpx.TransportError:
        return None
