"""Every refused API request is logged once, as `http.refused`: the partner, status, code and
field, so an operator sees receipts being turned away; never the key or the body."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from tests.receipts_api.conftest import Api, receipt_body


def _refusals(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "http.refused"]


def test_a_422_is_logged_once_with_partner_and_field_and_no_key(api: Api) -> None:
    """An invalid tax id: one line naming acme, 422, the code and the field; no key, no body."""
    body = receipt_body(supplier={"name": "Ochoa", "tax_id": "123"})
    with capture_logs() as logs:
        response = api.post(body)
    assert response.status_code == 422
    refused = _refusals(logs)
    assert len(refused) == 1
    entry = refused[0]
    assert (entry["partner"], entry["status"], entry["field"]) == ("acme", 422, "supplier.tax_id")
    assert entry["code"] == response.json()["error"]["code"]
    assert (entry["method"], entry["path"]) == ("POST", "/v1/receipts")
    printed = repr(logs)
    assert api.keys["acme"] not in printed
    assert "Ochoa" not in printed  # the body stays out of the logs


def test_an_unknown_key_is_logged_without_the_key(api: Api) -> None:
    """A 401 is logged with no partner (none is known) and without the key it carried."""
    with capture_logs() as logs:
        response = api.post(receipt_body(), key="as_not-a-real-key-0123456789")
    assert response.status_code == 401
    [entry] = _refusals(logs)
    assert (entry["partner"], entry["status"], entry["code"]) == (None, 401, "unauthorized")
    assert "as_not-a-real-key-0123456789" not in repr(logs)


def test_each_kind_of_refusal_is_logged(api: Api) -> None:
    """400, 403, 404 and 415 each give exactly one line, with the partner that was refused."""
    with capture_logs() as logs:
        statuses = [
            api.post(receipt_body(), idem=None).status_code,  # no Idempotency-Key
            api.client.get("/v1/events", headers=api.headers(idem=None)).status_code,
            api.get("rcp_000000000000000000000000").status_code,
            api.post(b"x", **{"Content-Type": "text/plain"}).status_code,
        ]
    assert statuses == [400, 403, 404, 415]
    refused = _refusals(logs)
    assert [(e["status"], e["partner"]) for e in refused] == [
        (400, "acme"), (403, "acme"), (404, "acme"), (415, "acme")]
    assert refused[0]["field"] == "Idempotency-Key"
