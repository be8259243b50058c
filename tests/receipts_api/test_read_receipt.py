"""GET /v1/receipts/{id} and `Prefer: wait`: a partner sees its own receipts and their progress."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from tests.receipts_api.conftest import Api, receipt_body


def test_partner_reads_its_own_receipt(api: Api) -> None:
    """The stored receipt reads back as it was answered."""
    created = api.post(receipt_body()).json()
    response = api.get(created["id"])
    assert response.status_code == 200
    assert response.json() == created


def test_partner_cannot_read_another_partners_receipt(api: Api) -> None:
    """Another partner's receipt is 404, as if it did not exist."""
    created = api.post(receipt_body(), key="acme").json()
    response = api.get(created["id"], key="globex")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_admin_key_reads_every_receipt(api: Api) -> None:
    """An admin key reads any partner's receipt."""
    created = api.post(receipt_body(), key="acme").json()
    assert api.get(created["id"], key="ops").status_code == 200


def test_unknown_receipt_is_404_and_unknown_key_401(api: Api) -> None:
    """A missing id is 404; a bad key is 401 before anything is looked up."""
    assert api.get("rcp_000000000000000000000000").status_code == 404
    assert api.get("rcp_000000000000000000000000", key="nope").status_code == 401


def _record_progress(db_path: Path, receipt_id: str) -> None:
    """What the worker writes: steps, ids, completion (a separate connection, like its process)."""
    now = "2024-05-01T12:00:00.000000+00:00"
    with sqlite3.connect(db_path) as conn:
        conn.executemany(
            "INSERT INTO receipt_steps(receipt_id, step, state, outcome, alegra_id, detail,"
            " attempts, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
            [
                (receipt_id, "bill", "done", "created", "901", "{}", now),
                (receipt_id, "attachment", "done", "created", None,
                 json.dumps({"name": "scan.png", "url": "https://files.example/scan.png"}), now),
                (receipt_id, "account:gastos de oficina", "done", "found", "5063", "{}", now),
                (receipt_id, "supplier", "done", "created", "77", "{}", now),
            ],
        )
        conn.execute(
            "UPDATE receipts SET status = 'completed', bill_id = '901', completed_at = ?,"
            " updated_at = ? WHERE id = ?", (now, now, receipt_id),
        )


def test_resource_shows_steps_in_flow_order_and_alegra_ids(api: Api) -> None:
    """Steps read supplier → account → bill → attachment, and the Alegra ids are gathered."""
    receipt_id = api.post(receipt_body()).json()["id"]
    _record_progress(api.db_path, receipt_id)
    resource = api.get(receipt_id).json()
    assert resource["status"] == "completed"
    assert [s["step"] for s in resource["steps"]] == [
        "supplier", "account:gastos de oficina", "bill", "attachment",
    ]
    assert resource["steps"][0]["outcome"] == "created"
    assert resource["alegra"] == {
        "contact_id": "77",
        "account_ids": {"Gastos de oficina": "5063"},
        "bill_id": "901",
        "attachment": {"name": "scan.png", "url": "https://files.example/scan.png"},
    }
    assert resource["error"] is None
    assert resource["flags"] == []


def test_prefer_wait_answers_202_when_nothing_finishes(api: Api) -> None:
    """With nobody working the receipt, `Prefer: wait=1` waits about a second and answers 202."""
    started = time.monotonic()
    response = api.post(receipt_body(), Prefer="wait=1")
    elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert response.headers["preference-applied"] == "wait=1"
    assert 0.9 <= elapsed < 5


def _complete_first_receipt(db_path: Path, after_s: float) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with sqlite3.connect(db_path, timeout=5) as conn:
            row = conn.execute("SELECT id FROM receipts").fetchone()
        if row is not None:
            time.sleep(after_s)
            _record_progress(db_path, row[0])
            return
        time.sleep(0.02)


def test_prefer_wait_answers_201_once_the_worker_completes_it(api: Api) -> None:
    """When the row turns completed during the wait, the answer is 201 with the final resource."""
    worker = threading.Thread(target=_complete_first_receipt, args=(api.db_path, 0.2))
    worker.start()
    started = time.monotonic()
    response = api.post(receipt_body(), Prefer="respond-async, wait=10")
    worker.join()
    assert response.status_code == 201
    assert time.monotonic() - started < 5
    assert response.json()["status"] == "completed"
    assert response.json()["alegra"]["bill_id"] == "901"
    assert response.headers["preference-applied"] == "wait=10"


def test_replay_of_a_final_receipt_is_200(api: Api) -> None:
    """Replaying a completed receipt answers 200 with it, not a new one."""
    receipt_id = api.post(receipt_body()).json()["id"]
    _record_progress(api.db_path, receipt_id)
    again = api.post(receipt_body())
    assert (again.status_code, again.json()["id"]) == (200, receipt_id)


def test_prefer_wait_is_clamped_to_30(api: Api) -> None:
    """A wait over 30 s is applied as 30 (and a final receipt answers at once)."""
    receipt_id = api.post(receipt_body()).json()["id"]
    _record_progress(api.db_path, receipt_id)
    response = api.get(receipt_id, Prefer="wait=3600")
    assert response.headers["preference-applied"] == "wait=30"
    assert response.status_code == 200
