"""The operators' repairs: list and replay inbox events, list every receipt, retry a failed one."""

from __future__ import annotations

import json
from typing import Any

from receiver import query
from sync.store import receipt_work
from sync.store.db import Database
from sync.webhook_tokens import make_token
from tests.ops.conftest import SECRET_KEY, OpsApi

RECEIPT = {
    "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
    "date": "2024-05-01", "category": "Gastos de oficina",
    "lines": [{"description": "Tornillos", "amount": "100.00", "tax_rate": 18}],
}


def _submit(ops: OpsApi, partner: str, key: str, **changes: Any) -> str:
    response = ops.post("/v1/receipts", key=partner, json={**RECEIPT, **changes},
                        headers={"Idempotency-Key": key})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _fail_next(ops: OpsApi) -> str:
    """What the worker does when Alegra refuses a receipt: claim it, then record the failure."""
    async def work(db: Database) -> str:
        claimed = await receipt_work.claim_next(db, owner="w1", lease_s=30)
        assert claimed is not None
        await receipt_work.StepLog(db, claimed.receipt_id, "w1").fail(
            {"step": "bill", "status": 400}, "bill")
        return claimed.receipt_id

    return ops.store.run(work)


def _delivery(subject: str, contact_id: str) -> dict[str, Any]:
    return {"subject": subject, "message": {"client": {"id": contact_id, "name": "Ochoa"}}}


def test_events_are_listed_newest_first_with_the_body_parsed(ops: OpsApi) -> None:
    """Each inbox row shows its state, attempts and its JSON body as an object."""
    ops.store.deliveries(_delivery("new-client", "7"), _delivery("edit-client", "7"))
    data = ops.get("/v1/events").json()["data"]
    assert [e["subject"] for e in data] == ["edit-client", "new-client"]
    assert data[0]["body"] == _delivery("edit-client", "7")
    assert (data[0]["state"], data[0]["attempts"], data[0]["resource_id"]) == ("received", 0, "7")


def test_events_filter_by_state_and_subject_and_page(ops: OpsApi) -> None:
    """State and subject filters narrow the inbox; a cursor walks it without repeats."""
    ids = ops.store.deliveries(*(_delivery("edit-client", str(i)) for i in range(7)),
                               _delivery("delete-client", "99"))
    ops.store.fail_delivery(ids[2])
    failed = ops.get("/v1/events", state="failed").json()["data"]
    assert [e["id"] for e in failed] == [ids[2]]
    assert failed[0]["last_error"] == "boom"
    deletes = ops.get("/v1/events", subject="delete-client").json()["data"]
    assert [e["id"] for e in deletes] == [ids[7]]
    walked, params = [], {"limit": 3, "subject": "edit-client"}
    while True:
        page = ops.get("/v1/events", **params).json()
        walked += [e["id"] for e in page["data"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert walked == sorted(ids[:7], reverse=True)


def test_a_webhook_url_token_in_a_body_is_masked(ops: OpsApi) -> None:
    """Even a body that quotes our webhook URL never shows its token."""
    token = make_token([SECRET_KEY])
    ops.store.deliveries({"subject": "edit-client",
                          "message": {"client": {"id": "7", "note": f"/webhooks/alegra/{token}"}}})
    response = ops.get("/v1/events")
    assert token not in response.text
    assert response.json()["data"][0]["body"]["message"]["client"]["note"] == "/webhooks/alegra/***"


def test_a_non_json_body_is_shown_as_text(ops: OpsApi) -> None:
    """A malformed delivery is listed with its text, not an error."""
    ops.store.sql("INSERT INTO inbox(received_at, body, shape, state)"
                  " VALUES ('2024', ?, 'malformed', 'skipped')", (b"not json \xff",))
    event = ops.get("/v1/events").json()["data"][0]
    assert (event["body"], event["shape"]) == (None, "malformed")
    assert event["body_text"] == "not json \ufffd"


def test_replay_sets_a_failed_row_back_to_received_keeping_attempts(ops: OpsApi) -> None:
    """A replayed row waits to be applied again, with its attempts and last error kept."""
    (inbox_id,) = ops.store.deliveries(_delivery("edit-client", "7"))
    ops.store.fail_delivery(inbox_id, state="parked")
    response = ops.post(f"/v1/events/{inbox_id}/replay")
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["attempts"]) == ("received", 1)
    rows = ops.store.sql("SELECT state, attempts, next_attempt_at FROM inbox")
    assert rows == [("received", 1, None)]


def test_events_cursor_beyond_sqlite_integers_is_400_not_500(ops: OpsApi) -> None:
    """A forged cursor holding an id past 2^63 is refused as a bad cursor, not a server error."""
    huge = query.encode_cursor([2**64])
    response = ops.get("/v1/events", cursor=huge)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "cursor"


def test_replay_of_an_unknown_event_is_404(ops: OpsApi) -> None:
    """No row, non-numeric or absurd ids: 404."""
    for event_id in ("12345", "abc", "99999999999999999999999"):
        assert ops.post(f"/v1/events/{event_id}/replay").status_code == 404


def test_receipts_of_every_partner_are_listed_with_filters(ops: OpsApi) -> None:
    """An admin sees all partners' receipts, filtered by partner, status and the receipt's date."""
    first = _submit(ops, "acme", "a1")
    _submit(ops, "globex", "g1", date="2024-06-10")
    failed = _fail_next(ops)
    assert failed == first
    everything = ops.get("/v1/receipts").json()["data"]
    assert {r["partner_id"] for r in everything} == {
        row[0] for row in ops.store.sql("SELECT id FROM partners WHERE name != 'ops'")}
    assert [r["id"] for r in ops.get("/v1/receipts", status="failed").json()["data"]] == [first]
    by_name = ops.get("/v1/receipts", partner="globex").json()["data"]
    assert [r["date"] for r in by_name] == ["2024-06-10"]
    june = ops.get("/v1/receipts", date_from="2024-06-01", date_to="2024-06-30").json()["data"]
    assert [r["date"] for r in june] == ["2024-06-10"]
    assert ops.get("/v1/receipts", partner="nobody").status_code == 400  # a typo, not "none"
    assert ops.get("/v1/receipts", date_from="2024-13-01").status_code == 400


def test_receipts_listing_pages_with_a_cursor(ops: OpsApi) -> None:
    """limit and next_cursor walk every receipt once, newest first."""
    made = [_submit(ops, "acme", f"k{i}") for i in range(5)]
    walked, params = [], {"limit": 2}
    while True:
        page = ops.get("/v1/receipts", **params).json()
        walked += [r["id"] for r in page["data"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert walked == list(reversed(made))
    assert ops.get("/v1/receipts", cursor="garbage!").status_code == 400


def test_every_listing_pages_with_one_cursor_format(ops: OpsApi) -> None:
    """The receipts listing's cursor is the sort key of the page's last row, in the format of
    every other listing; a cursor of another listing (an inbox id) is a 400."""
    _submit(ops, "acme", "k1")
    _submit(ops, "acme", "k2")
    page = ops.get("/v1/receipts", limit=1).json()
    (created_at, last_id), = ops.store.sql(
        "SELECT created_at, id FROM receipts ORDER BY created_at DESC, id DESC LIMIT 1")
    assert page["next_cursor"] == query.encode_cursor([created_at, last_id])
    events_cursor = query.encode_cursor([7])
    assert ops.get("/v1/receipts", cursor=events_cursor).json()["error"]["field"] == "cursor"


def test_retry_puts_a_failed_receipt_back_in_the_queue(ops: OpsApi) -> None:
    """A failed receipt goes back to queued, due now, keeping its recorded steps."""
    receipt_id = _submit(ops, "acme", "a1")
    _fail_next(ops)
    response = ops.post(f"/v1/receipts/{receipt_id}/retry")
    assert response.status_code == 202
    assert response.headers["location"] == f"/v1/receipts/{receipt_id}"
    body = response.json()
    assert (body["status"], body["completed_at"]) == ("queued", None)
    assert [(s["step"], s["state"]) for s in body["steps"]] == [("bill", "failed")]
    (due,) = ops.store.sql("SELECT next_attempt_at FROM receipts WHERE id = ?", (receipt_id,))
    assert due[0] is not None


def test_retry_of_a_receipt_that_has_not_failed_is_409(ops: OpsApi) -> None:
    """Only failed receipts can be retried; the answer says the current status."""
    receipt_id = _submit(ops, "acme", "a1")
    response = ops.post(f"/v1/receipts/{receipt_id}/retry")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "not_failed", "status": "queued",
        "message": "only a failed receipt can be retried; this one is queued",
    }
    assert ops.post("/v1/receipts/rcp_nope/retry").status_code == 404


def test_admin_listing_shows_the_same_resource_partners_read(ops: OpsApi) -> None:
    """The admin listing's rows are the partner's receipt resource plus partner_id."""
    receipt_id = _submit(ops, "acme", "a1")
    mine = ops.get(f"/v1/receipts/{receipt_id}", key="acme").json()
    (listed,) = ops.get("/v1/receipts").json()["data"]
    assert {k: v for k, v in listed.items() if k != "partner_id"} == mine
    assert json.dumps(listed).count(ops.keys["acme"]) == 0


def test_events_whose_json_has_no_json_answer_are_shown_as_text(ops: OpsApi) -> None:
    """Stored bodies that parse but cannot be answered as JSON again (100,000 nested brackets,
    a lone surrogate, numbers past a float, NaN) are listed and replayed with their text, not
    a 500 for the whole page."""
    bodies = [b"[" * 100_000 + b"]" * 100_000, b'{"subject": "edit-client\\ud83d"}',
              b'{"total": 1e999}', b'{"total": NaN}']
    for body in bodies:
        ops.store.sql("INSERT INTO inbox(received_at, body, shape, state)"
                      " VALUES ('2024', ?, 'malformed', 'skipped')", (body,))
    ops.store.deliveries(_delivery("edit-client", "7"))
    response = ops.get("/v1/events")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data[0]["body"] == _delivery("edit-client", "7")
    assert [(e["body"], e["body_text"]) for e in reversed(data[1:])] == [
        (None, body.decode()[:4096]) for body in bodies]
    replayed = ops.post(f"/v1/events/{data[-1]['id']}/replay")
    assert (replayed.status_code, replayed.json()["body"]) == (200, None)
