"""POST /v1/receipts: stored before the answer, idempotent per partner, nothing kept if refused."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from tests.receipts_api.conftest import MAX_ATTACHMENT, PDF, PNG, Api, receipt_body


def test_receipt_is_stored_and_answered_202_with_location(api: Api) -> None:
    """A valid receipt answers 202 with its resource and Location, and its row is committed."""
    response = api.post(receipt_body())
    assert response.status_code == 202
    resource = response.json()
    assert response.headers["location"] == f"/v1/receipts/{resource['id']}"
    assert resource["id"].startswith("rcp_")
    assert len(resource["id"]) == 28
    assert resource["status"] == "queued"
    assert resource["total"] == "118.00"
    assert resource["supplier"] == {
        "name": "Ferretería Ochoa, S.R.L.", "tax_id": "131246796", "tax_id_kind": "RNC",
    }
    assert (resource["ncf"], resource["ncf_type"]) == ("B0100000001", "B01")
    with sqlite3.connect(api.db_path) as conn:
        row = conn.execute(
            "SELECT status, supplier_tax_id, ncf, ncf_type, receipt_date, total, currency, payload"
            " FROM receipts WHERE id = ?", (resource["id"],),
        ).fetchone()
    assert row[:7] == ("queued", "131246796", "B0100000001", "B01", "2024-05-01", "118.00", "DOP")
    assert json.loads(row[7])["lines"][0]["amount"] == "100.00"


def test_same_key_same_body_returns_the_same_receipt(api: Api) -> None:
    """A replay answers the first receipt's id and writes no second row."""
    first = api.post(receipt_body())
    again = api.post(receipt_body(total=118))  # same receipt, other notation
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert api.count() == 1


def test_same_key_different_body_is_422(api: Api) -> None:
    """Reusing a key for another receipt is refused with idempotency_key_reused."""
    first = api.post(receipt_body())
    other = api.post(receipt_body(date="2024-05-02"))
    assert other.status_code == 422
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert error["receipt_id"] == first.json()["id"]
    assert api.count() == 1


def test_idempotency_keys_are_scoped_per_partner(api: Api) -> None:
    """Two partners using the same key get two receipts."""
    one = api.post(receipt_body(), key="acme")
    two = api.post(receipt_body(), key="globex")
    assert one.json()["id"] != two.json()["id"]
    assert api.count() == 2


@pytest.mark.parametrize(("idem", "status"), [(None, 400), ("x" * 256, 400), ("", 400)])
def test_idempotency_key_is_required(api: Api, idem: str | None, status: int) -> None:
    """A missing, empty or over-long Idempotency-Key is a 400 naming the header."""
    response = api.post(receipt_body(), idem=idem)
    assert response.status_code == status
    assert response.json()["error"]["field"] == "Idempotency-Key"
    assert api.count() == 0


@pytest.mark.parametrize("key", ["as_not-a-real-key", ""])
def test_unknown_key_is_401_with_challenge(api: Api, key: str) -> None:
    """An unknown or empty key is 401 with WWW-Authenticate: Bearer and stores nothing."""
    response = api.post(receipt_body(), key=key)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"
    assert api.count() == 0


def test_error_bodies_never_echo_the_key(api: Api) -> None:
    """A refused key does not appear in the response."""
    response = api.post(receipt_body(), key="as_secret-looking-key-123")
    assert "as_secret-looking-key-123" not in response.text


def _line(**changes: Any) -> dict[str, Any]:
    return {"description": "x", "amount": "10.00", **changes}


BAD_INPUTS = [
    ({"supplier": {"name": "X", "tax_id": "131246797"}}, 422, "supplier.tax_id"),
    ({"supplier": {"name": "X", "tax_id": "001-1391820-6"}}, 422, "supplier.tax_id"),
    ({"ncf": "B9900000001"}, 422, "ncf"),
    ({"date": "2024-02-30"}, 422, "date"),
    ({"due_date": "2024-04-01"}, 422, "due_date"),
    ({"lines": [], "total": None}, 422, "lines"),
    ({"lines": [_line(), _line(amount="-5")], "total": None}, 422, "lines[1].amount"),
    ({"lines": [_line(quantity=0)], "total": None}, 422, "lines[0].quantity"),
    ({"currency": "USD"}, 422, "exchange_rate"),
    ({"total": "118.01"}, 422, "total"),
]


@pytest.mark.parametrize(("changes", "status", "field"), BAD_INPUTS)
def test_bad_input_names_the_field_and_stores_nothing(
    api: Api, changes: dict[str, Any], status: int, field: str
) -> None:
    """Each invalid field is refused with its path and no row is written."""
    response = api.post(receipt_body(**changes))
    assert response.status_code == status
    assert response.json()["error"]["field"] == field
    assert api.count() == 0


def test_total_mismatch_carries_both_figures(api: Api) -> None:
    """A total one cent off answers the expected and given totals."""
    error = api.post(receipt_body(total="118.01")).json()["error"]
    assert error["code"] == "total_mismatch"
    assert (error["expected"], error["given"]) == ("118.00", "118.01")


@pytest.mark.parametrize("raw", [b"{not json", b'{"a": NaN}', b"\xff"])
def test_malformed_json_is_400(api: Api, raw: bytes) -> None:
    """A body that is not JSON is 400 malformed_json and stores nothing."""
    response = api.post(raw)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert api.count() == 0


def test_other_content_types_are_415(api: Api) -> None:
    """A form-urlencoded body is refused before it is read."""
    response = api.client.post(
        "/v1/receipts", content=b"a=1",
        headers={**api.headers(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415


def _attached(data: bytes, content_type: str) -> dict[str, Any]:
    return receipt_body(attachment={
        "filename": "scan.png", "content_type": content_type,
        "data_base64": base64.b64encode(data).decode(),
    })


@pytest.mark.parametrize(
    ("data", "content_type", "status", "field"),
    [
        (PNG, "text/plain", 415, "attachment.content_type"),
        (PDF, "image/png", 415, "attachment"),
        (PNG + b"\x00" * MAX_ATTACHMENT, "image/png", 413, "attachment.data_base64"),
    ],
)
def test_bad_attachment_is_refused(
    api: Api, data: bytes, content_type: str, status: int, field: str
) -> None:
    """Unsupported and spoofed types are 415, oversize 413, and nothing is stored."""
    response = api.post(_attached(data, content_type))
    assert response.status_code == status
    assert response.json()["error"]["field"] == field
    assert api.count() == 0
    assert api.count("receipt_attachments") == 0


def test_oversized_body_is_413_before_parsing(api: Api) -> None:
    """A body past the bound is 413 even when it is not JSON at all."""
    response = api.post(b"x" * (int(MAX_ATTACHMENT * 1.4) + 64 * 1024 + 1))
    assert response.status_code == 413
    assert api.count() == 0


def test_oversized_chunked_body_is_413_while_streaming(api: Api) -> None:
    """A body without Content-Length is cut off with 413 once it passes the bound."""
    chunk = b"x" * 16384

    def chunks() -> Iterator[bytes]:
        for _ in range(20):  # 320 KiB, past the ~70 KiB bound
            yield chunk

    response = api.client.post(
        "/v1/receipts", content=chunks(),
        headers={**api.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert api.count() == 0


def test_base64_attachment_is_stored_with_the_receipt(api: Api) -> None:
    """The attachment's bytes are stored beside the receipt, its metadata on the resource."""
    resource = api.post(_attached(PNG, "image/png")).json()
    assert resource["attachment"] == {
        "filename": "scan.png", "content_type": "image/png", "size": len(PNG),
    }
    with sqlite3.connect(api.db_path) as conn:
        stored = conn.execute(
            "SELECT data FROM receipt_attachments WHERE receipt_id = ?", (resource["id"],)
        ).fetchone()[0]
    assert stored == PNG


def _multipart(api: Api, receipt: Any, files: dict[str, Any], idem: str = "mp-1") -> Any:
    data = {"receipt": json.dumps(receipt)} if receipt is not None else {}
    return api.client.post("/v1/receipts", data=data, files=files, headers=api.headers(idem=idem))


def test_multipart_receipt_with_file_part(api: Api) -> None:
    """A receipt part and a PDF file part make one stored receipt with its attachment."""
    response = _multipart(api, receipt_body(), {"file": ("factura.pdf", PDF, "application/pdf")})
    assert response.status_code == 202
    assert response.json()["attachment"] == {
        "filename": "factura.pdf", "content_type": "application/pdf", "size": len(PDF),
    }
    assert api.count("receipt_attachments") == 1


def test_multipart_and_json_forms_of_one_receipt_are_the_same_request(api: Api) -> None:
    """The same receipt and file sent as JSON+base64 or multipart is one idempotent request."""
    first = api.post(_attached(PNG, "image/png"), idem="same")
    again = _multipart(api, receipt_body(), {"file": ("scan.png", PNG, "image/png")}, idem="same")
    assert again.json()["id"] == first.json()["id"]
    assert api.count() == 1


@pytest.mark.parametrize(
    ("files", "status", "field"),
    [
        ({"file": ("x.png", PDF, "image/png")}, 415, "file"),
        ({"file": ("x.txt", b"hello", "text/plain")}, 415, "file"),
        ({"file": ("x.pdf", PDF + b"x" * MAX_ATTACHMENT, "application/pdf")}, 413, "file"),
    ],
)
def test_multipart_bad_file_is_refused(
    api: Api, files: dict[str, Any], status: int, field: str
) -> None:
    """A spoofed, unsupported or oversize file part is refused and nothing is stored."""
    response = _multipart(api, receipt_body(), files)
    assert (response.status_code, response.json()["error"]["field"]) == (status, field)
    assert api.count() == 0


def test_multipart_without_receipt_part_is_422(api: Api) -> None:
    """A multipart body must carry the receipt part."""
    response = _multipart(api, None, {"file": ("x.pdf", PDF, "application/pdf")})
    assert (response.status_code, response.json()["error"]["field"]) == (422, "receipt")


def test_multipart_receipt_part_must_be_json(api: Api) -> None:
    """A receipt part that is not JSON is 400 naming the part."""
    response = api.client.post(
        "/v1/receipts", data={"receipt": "{oops"},
        files={"file": ("x.pdf", PDF, "application/pdf")}, headers=api.headers(),
    )
    assert (response.status_code, response.json()["error"]["field"]) == (400, "receipt")
    assert api.count() == 0
