"""GET and POST answers name no other partner's receipt or bill; an admin's name everything."""

from __future__ import annotations

import json
import sqlite3

from tests.receipts_api.conftest import Api, receipt_body

NOW = "2024-05-01T12:00:00.000000+00:00"


def _waiting_behind(api: Api, receipt_id: str, holder: str) -> None:
    """What the worker writes when the receipt waits for `holder`'s bill (ncf_in_flight)."""
    error = {"step": "duplicate_check", "kind": "NcfInFlight", "status": None,
             "code": "ncf_in_flight", "retryable": True, "holder": holder,
             "message": f"receipt {holder} holds this supplier's NCF and may still bill it"}
    with sqlite3.connect(api.db_path) as conn:
        conn.execute("UPDATE receipts SET error = ? WHERE id = ?", (json.dumps(error), receipt_id))


def _duplicate_of(api: Api, receipt_id: str, bill_id: str, maker: str) -> None:
    """What the worker writes for a twin of the bill `maker`'s receipt made."""
    detail = {"reason": "same_ncf", "ncf": "B0100000001", "bill_id": bill_id,
              "bill_status": "open", "known_from": "receipt"}
    with sqlite3.connect(api.db_path) as conn:
        conn.execute(
            "INSERT INTO bills(alegra_id, ncf_key, status, receipt_id, raw, source, confirmed_at,"
            " updated_at) VALUES (?, 'B0100000001', 'open', ?, '{}', 'receipt', ?, ?)",
            (bill_id, maker, NOW, NOW))
        conn.execute(
            "INSERT INTO receipt_steps(receipt_id, step, state, outcome, alegra_id, detail,"
            " attempts, updated_at) VALUES (?, 'duplicate_check', 'done', 'found', ?, ?, 1, ?)",
            (receipt_id, bill_id, json.dumps(detail), NOW))
        conn.execute("UPDATE receipts SET status = 'duplicate', bill_id = ?, completed_at = ?"
                     " WHERE id = ?", (bill_id, NOW, receipt_id))


def test_the_holder_of_another_partner_is_not_named_in_get_or_replay(api: Api) -> None:
    """Globex's receipt waiting behind acme's: GET and the POST replay say "another partner's
    receipt" with holder null; the admin's GET names acme's receipt."""
    acme = api.post(receipt_body(), key="acme", idem="a").json()["id"]
    globex = api.post(receipt_body(), key="globex", idem="g").json()["id"]
    _waiting_behind(api, globex, acme)

    answers = [api.get(globex, key="globex").json(),
               api.post(receipt_body(), key="globex", idem="g").json()]
    admin = api.get(globex, key="ops").json()

    for seen in answers:
        assert (seen["error"]["code"], seen["error"]["holder"]) == ("ncf_in_flight", None)
        assert acme not in json.dumps(seen)
    assert admin["error"]["holder"] == acme


def test_a_duplicate_of_another_partners_bill_is_answered_without_its_id(api: Api) -> None:
    """Globex's twin of the bill acme's receipt made: no bill id; the admin sees it."""
    acme = api.post(receipt_body(), key="acme", idem="a").json()["id"]
    globex = api.post(receipt_body(), key="globex", idem="g").json()["id"]
    _duplicate_of(api, globex, "bill-acme-901", acme)

    seen = api.get(globex, key="globex").json()
    admin = api.get(globex, key="ops").json()

    assert (seen["status"], seen["alegra"]["bill_id"]) == ("duplicate", None)
    assert seen["steps"][0]["detail"]["billed_by"] == "another_partner"
    assert "bill-acme-901" not in json.dumps(seen)
    assert admin["alegra"]["bill_id"] == "bill-acme-901"


def test_a_bill_the_cache_does_not_tie_to_its_receipt_is_still_not_named(api: Api) -> None:
    """The bills cache may hold acme's bill without its receipt id or marker (learned first from
    Alegra, whose copy was edited): acme's receipt itself says it made the bill, so globex's
    twin still gets no bill id."""
    acme = api.post(receipt_body(), key="acme", idem="a").json()["id"]
    globex = api.post(receipt_body(), key="globex", idem="g").json()["id"]
    _duplicate_of(api, globex, "bill-acme-902", acme)
    with sqlite3.connect(api.db_path) as conn:
        conn.execute("UPDATE bills SET receipt_id = NULL WHERE alegra_id = 'bill-acme-902'")
        conn.execute("UPDATE receipts SET status = 'completed', bill_id = 'bill-acme-902',"
                     " completed_at = ? WHERE id = ?", (NOW, acme))

    seen = api.get(globex, key="globex").json()

    assert (seen["status"], seen["alegra"]["bill_id"]) == ("duplicate", None)
    assert "bill-acme-902" not in json.dumps(seen)
    assert api.get(globex, key="ops").json()["alegra"]["bill_id"] == "bill-acme-902"
