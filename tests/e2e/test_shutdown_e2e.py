"""SIGTERM with the rate budget spent: the worker stops at once and hands its receipt back.

The worker's budget is two requests a minute, so a receipt soon waits for the next window
(~a minute away). SIGTERM must not wait it out: the worker exits within seconds (honcho kills it
after 5), leaving the receipt `queued` with no lease, and the next worker bills it exactly once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.simulator.state import SimConfig
from sync.store.db import Database
from sync.store.partners import create_partner
from tests.support.procs import eventually, free_port, product_env, start_web, start_worker
from tests.support.servers import RunningSimulator

pytestmark = pytest.mark.e2e
STOP_BOUND_S = 10.0  # generous; a worker waiting for the window instead takes about a minute


@pytest.fixture
def sim_config() -> SimConfig:
    """Alegra's own 150 requests a minute: the window the spent budget waits for is a minute."""
    return SimConfig(window_s=60.0)


def receipt() -> dict[str, Any]:
    return {
        "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
        "date": "2024-05-01", "ncf": "B0100000001", "category": "Gastos de ferretería",
        "lines": [{"description": "Tornillos", "amount": "100.00", "quantity": 2,
                   "tax_rate": 18}],
    }


def _row(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> Any:
    with sqlite3.connect(db_path, timeout=10) as conn:
        return conn.execute(sql, params).fetchone()


def receipt_waits_for_budget(db_path: Path) -> bool:
    """The worker's last heartbeat shows a receipt request waiting for the rate budget."""
    row = _row(db_path, "SELECT budget FROM worker_state WHERE id = 1")
    return row is not None and json.loads(row[0])["waiting"]["RECEIPT"] >= 1


def test_sigterm_with_the_budget_spent_stops_at_once_and_the_next_worker_bills_once(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """SIGTERM while a receipt waits for a spent window: exit within seconds, the receipt back
    in the queue without a lease; a new worker completes it with one contact and one bill."""
    db_path = tmp_path / "shutdown.db"

    async def make_partner() -> str:
        db = await Database.open(db_path)
        try:
            return (await create_partner(db, "acme"))[1]
        finally:
            await db.close()

    key = asyncio.run(make_partner())
    env = product_env(db_path, alegra_base_url=simulator.base_url, email=simulator.email,
                      token=simulator.token, port=free_port(), LOG_LEVEL="info")
    web = start_web(env, tmp_path)
    worker = start_worker({**env, "ALEGRA_RATE_LIMIT": "2"}, tmp_path)
    restarted = None
    try:
        answer = httpx.post(
            f"http://127.0.0.1:{env['PORT']}/v1/receipts", json=receipt(), timeout=10,
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "r1"})
        assert answer.status_code == 202, answer.text
        receipt_id = answer.json()["id"]
        eventually(lambda: receipt_waits_for_budget(db_path), 30, "the receipt to wait")

        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(timeout=STOP_BOUND_S) == 0, worker.logs()

        status, lease = _row(db_path, "SELECT status, lease_owner FROM receipts WHERE id = ?",
                             (receipt_id,))
        assert (status, lease) == ("queued", None)
        assert "receipt.released" in worker.logs()
        restarted = start_worker(env, tmp_path, name="worker-restarted")

        def final() -> str | None:
            row = _row(db_path, "SELECT status FROM receipts WHERE id = ?", (receipt_id,))
            return row[0] if row[0] in ("completed", "failed", "duplicate") else None

        assert eventually(final, 30, "the receipt to finish") == "completed", restarted.logs()
        with simulator.state.lock:
            bills = [b for b in simulator.state.bills.values()
                     if receipt_id in str(b.get("observations") or "")]
        assert len(bills) == 1
        assert len(simulator.state.contacts) == 1
        assert simulator.state.calls("POST", "/bills") == 1
    finally:
        for proc in (restarted, worker, web):
            if proc is not None:
                proc.stop()
