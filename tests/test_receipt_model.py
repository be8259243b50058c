"""The partner receipt's validation rules and its stored payload (pure)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest

from sync.receipt_model import (
    Receipt,
    ReceiptInvalid,
    Submission,
    Upload,
    decode_json,
    parse_submission,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.7\n" + b"x" * 32
MAX = 1024


def body(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "supplier": {"name": "Ferretería Ochoa, S.R.L.", "tax_id": "1-31-24679-6"},
        "date": "2024-05-01",
        "category": "Gastos de oficina",
        "lines": [{"description": "Tornillos", "amount": "100.00", "tax_rate": 18}],
    }
    data.update(changes)
    return data


def parse(data: object, upload: Upload | None = None, max_bytes: int = MAX) -> Submission:
    return parse_submission(data, max_attachment_bytes=max_bytes, upload=upload)


def refused(data: object, upload: Upload | None = None, max_bytes: int = MAX) -> ReceiptInvalid:
    with pytest.raises(ReceiptInvalid) as caught:
        parse(data, upload, max_bytes)
    return caught.value


def with_line(**line: Any) -> dict[str, Any]:
    return body(lines=[{"description": "x", "amount": "10.00", **line}])


def test_minimal_receipt_gets_its_defaults() -> None:
    """Due date, currency, quantity, tax and line category default as documented."""
    receipt = parse(body(lines=[{"description": "x", "amount": 10}])).receipt
    assert receipt.due_date == receipt.date == dt.date(2024, 5, 1)
    assert receipt.currency == "DOP"
    assert receipt.exchange_rate is None
    line = receipt.lines[0]
    assert (line.amount, line.quantity, line.tax_rate) == (Decimal("10.00"), Decimal(1), None)
    assert line.category == "Gastos de oficina"
    assert receipt.total == Decimal("10.00")
    assert receipt.attachment is None


def test_decode_json_reads_numbers_as_decimal_not_float() -> None:
    """0.1 + 0.2 from the raw JSON text stays exactly 0.3."""
    data = decode_json(b'{"a": 0.1, "b": 0.2}')
    assert isinstance(data, dict)
    assert data["a"] + data["b"] == Decimal("0.3")


@pytest.mark.parametrize("raw", [b"{", b'{"a": NaN}', b"\xff\xfe", b""])
def test_malformed_json_is_400(raw: bytes) -> None:
    """Unparseable JSON, NaN and bad UTF-8 are malformed (400), not invalid."""
    with pytest.raises(ReceiptInvalid) as caught:
        decode_json(raw)
    assert (caught.value.status, caught.value.code) == (400, "malformed_json")


def test_body_must_be_an_object() -> None:
    """A JSON array is refused as a whole (no field)."""
    problem = refused([body()])
    assert (problem.status, problem.field) == (422, None)


def test_tax_id_with_dashes_is_normalised() -> None:
    """An RNC with dashes is stored as its digits and its kind."""
    supplier = parse(body()).receipt.supplier
    assert supplier.tax_id is not None
    assert (supplier.tax_id.number, supplier.tax_id.kind) == ("131246796", "RNC")


def test_cedula_is_accepted_with_its_kind() -> None:
    """A valid cédula with dashes is a CEDULA."""
    data = body(supplier={"name": "Juan Pérez", "tax_id": "001-1391820-5"})
    tax_id = parse(data).receipt.supplier.tax_id
    assert tax_id is not None
    assert tax_id.kind == "CEDULA"


@pytest.mark.parametrize("tax_id", [None, "", "   "])
def test_supplier_without_tax_id_is_allowed(tax_id: str | None) -> None:
    """No tax id (absent, null or blank) is allowed: the supplier is matched on its name."""
    receipt = parse(body(supplier={"name": "Colmado La Esquina", "tax_id": tax_id})).receipt
    assert receipt.supplier.tax_id is None


@pytest.mark.parametrize(
    ("tax_id", "reason"),
    [("131246797", "RNC"), ("001-1391820-6", "cédula"), ("12345", "9 digits"), ("13124679A", "")],
)
def test_invalid_tax_id_names_the_field(tax_id: str, reason: str) -> None:
    """A wrong check digit or length is a 422 on supplier.tax_id saying why."""
    problem = refused(body(supplier={"name": "X", "tax_id": tax_id}))
    assert (problem.status, problem.field) == (422, "supplier.tax_id")
    assert reason in problem.message


def test_supplier_name_is_required() -> None:
    """A blank supplier name is refused on supplier.name."""
    assert refused(body(supplier={"name": " ", "tax_id": "131246796"})).field == "supplier.name"


def test_bad_email_is_refused() -> None:
    """A supplier e-mail without @ is refused on supplier.email."""
    data = body(supplier={"name": "X", "email": "nobody"})
    assert refused(data).field == "supplier.email"


@pytest.mark.parametrize(("ncf", "kind"), [("B0100000001", "B01"), ("e31-0000000001", "E31")])
def test_ncf_keeps_its_type(ncf: str, kind: str) -> None:
    """An NCF or e-CF is stored compact and upper case, with its document type."""
    parsed = parse(body(ncf=ncf)).receipt.ncf
    assert parsed is not None
    assert parsed.type_code == kind
    assert parsed.number == ncf.replace("-", "").upper()


@pytest.mark.parametrize("ncf", ["B9900000001", "B010000000", "X0100000001", 12])
def test_invalid_ncf_names_the_field(ncf: object) -> None:
    """An NCF of unknown type, wrong length or wrong letter is refused on ncf."""
    assert refused(body(ncf=ncf)).field == "ncf"


@pytest.mark.parametrize("value", ["2024-02-30", "01/05/2024", "20240501", "2024-5-1", 20240501])
def test_bad_date_is_refused(value: object) -> None:
    """Only real calendar dates written YYYY-MM-DD are accepted."""
    assert refused(body(date=value)).field == "date"


def test_missing_date_is_refused() -> None:
    """date is required."""
    data = body()
    del data["date"]
    assert refused(data).field == "date"


@pytest.mark.parametrize("value", ["0069-09-15", "1999-12-31"])
def test_implausibly_old_date_is_refused(value: str) -> None:
    """A year-0069 typo never reaches the books: dates before 2000 are refused on date."""
    error = refused(body(date=value, due_date=None))
    assert error.field == "date"
    assert "2000-01-01" in error.message


def test_future_date_is_refused_beyond_one_day() -> None:
    """A receipt dated more than a day ahead of today (UTC) is refused; tomorrow is allowed."""
    today = dt.datetime.now(dt.UTC).date()
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    assert parse(body(date=tomorrow, due_date=None)).receipt.date.isoformat() == tomorrow
    later = (today + dt.timedelta(days=3)).isoformat()
    assert refused(body(date=later, due_date=None)).field == "date"


def test_due_date_more_than_ten_years_out_is_refused() -> None:
    """A due date a decade after the receipt is a typo, refused on due_date."""
    assert refused(body(due_date="2099-01-01")).field == "due_date"


def test_due_date_before_date_is_refused() -> None:
    """due_date earlier than date is refused on due_date."""
    assert refused(body(due_date="2024-04-30")).field == "due_date"


def test_category_is_required_and_lines_may_override_it() -> None:
    """Without category the receipt is refused; a line's category replaces the receipt's."""
    assert refused(body(category="")).field == "category"
    receipt = parse(with_line(category="Combustible")).receipt
    assert receipt.lines[0].category == "Combustible"
    assert receipt.categories == ("Gastos de oficina", "Combustible")


@pytest.mark.parametrize("lines", [None, [], "x"])
def test_receipt_needs_lines(lines: object) -> None:
    """No lines, an empty list or a non-list are refused on lines."""
    assert refused(body(lines=lines)).field == "lines"


def test_more_than_200_lines_is_refused() -> None:
    """201 lines are refused on lines; 200 are fine."""
    line = {"description": "x", "amount": 1}
    assert len(parse(body(lines=[line] * 200)).receipt.lines) == 200
    assert refused(body(lines=[line] * 201)).field == "lines"


@pytest.mark.parametrize(
    "amount", [-5, 0, "0.00", "10.001", 10.001, "abc", "NaN", "Infinity", True, None, [1]]
)
def test_bad_amount_names_the_line(amount: object) -> None:
    """Negative, zero, over 2 decimals, non-numeric, non-finite or missing amounts are refused."""
    data = body(lines=[{"description": "ok", "amount": 1}, {"description": "x", "amount": amount}])
    problem = refused(data)
    assert (problem.status, problem.field) == (422, "lines[1].amount")


@pytest.mark.parametrize("amount", [10, "10", "10.5", Decimal("10.50"), " 10.500 "])
def test_amounts_as_numbers_or_strings_are_money(amount: object) -> None:
    """Numbers and decimal strings become Decimal with exactly two places."""
    assert parse(with_line(amount=amount)).receipt.lines[0].amount.as_tuple().exponent == -2


@pytest.mark.parametrize("quantity", [0, -1, "0", "abc"])
def test_quantity_must_be_positive(quantity: object) -> None:
    """A zero, negative or non-numeric quantity is refused on its path."""
    assert refused(with_line(quantity=quantity)).field == "lines[0].quantity"


def test_fractional_quantity_is_kept() -> None:
    """2.50 kg is a quantity of 2.5."""
    assert parse(with_line(quantity="2.50")).receipt.lines[0].quantity == Decimal("2.5")


@pytest.mark.parametrize(
    ("rate", "expected"), [(18, "18"), ("16", "16"), (0, "0"), ("18.00", "18")]
)
def test_itbis_rates(rate: object, expected: str) -> None:
    """18, 16 and 0 (exempt) are the ITBIS rates, as numbers or strings."""
    payload = parse(with_line(tax_rate=rate)).receipt.to_payload()
    assert payload["lines"][0]["tax_rate"] == expected


@pytest.mark.parametrize("rate", [10, -18, "18%", 1.8])
def test_other_tax_rates_are_refused(rate: object) -> None:
    """Any rate but 0, 16, 18 is refused on tax_rate."""
    assert refused(with_line(tax_rate=rate)).field == "lines[0].tax_rate"


def test_usd_without_exchange_rate_is_refused() -> None:
    """A USD receipt must state its exchange rate."""
    problem = refused(body(currency="USD"))
    assert (problem.status, problem.field) == (422, "exchange_rate")


def test_usd_with_exchange_rate_is_kept() -> None:
    """A lower-case currency code is accepted, with its rate as a decimal."""
    receipt = parse(body(currency="usd", exchange_rate="58.50")).receipt
    assert (receipt.currency, receipt.exchange_rate) == ("USD", Decimal("58.5"))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"currency": "USD", "exchange_rate": 0}, "exchange_rate"),
        ({"currency": "USD", "exchange_rate": -58}, "exchange_rate"),
        ({"currency": "DOP", "exchange_rate": 58}, "exchange_rate"),
        ({"currency": "US$"}, "currency"),
    ],
)
def test_bad_currency_or_rate_is_refused(changes: dict[str, Any], field: str) -> None:
    """A rate ≤ 0, a rate other than 1 on DOP, or a malformed code are refused."""
    assert refused(body(**changes)).field == field


def test_dop_with_rate_one_is_plain_dop() -> None:
    """DOP with exchange_rate 1 is stored as DOP without a rate."""
    assert parse(body(exchange_rate=1)).receipt.exchange_rate is None


def test_stated_total_equal_to_lines_with_itbis_is_accepted() -> None:
    """100 + 18 % ITBIS = 118.00, given as a number or a string."""
    assert parse(body(total=118)).receipt.total == Decimal("118.00")
    assert parse(body(total="118.00")).receipt.total == Decimal("118.00")


@pytest.mark.parametrize("given", ["118.01", "117.99"])
def test_total_off_by_one_cent_is_refused_with_both_figures(given: str) -> None:
    """A total one cent off is a 422 total_mismatch carrying expected and given."""
    problem = refused(body(total=given))
    assert (problem.status, problem.code, problem.field) == (422, "total_mismatch", "total")
    assert problem.extra == {"expected": "118.00", "given": given}


def test_total_rounding_at_half_cent_goes_up() -> None:
    """0.05 × 0.5 = 0.025 totals 0.03 (half up), so 0.02 is refused."""
    data = body(lines=[{"description": "x", "amount": "0.05", "quantity": "0.5"}])
    assert parse({**data, "total": "0.03"}).receipt.total == Decimal("0.03")
    assert refused({**data, "total": "0.02"}).extra == {"expected": "0.03", "given": "0.02"}


def test_unknown_fields_are_ignored_and_do_not_change_the_fingerprint() -> None:
    """Extra fields anywhere are accepted and leave the receipt and its hash unchanged."""
    plain = parse(body()).receipt
    extra = body(partner_ref="abc-1", notes={"x": 1})
    extra["supplier"]["website"] = "https://example.com"
    extra["lines"][0]["sku"] = "T-1"
    assert parse(extra).receipt == plain
    assert parse(extra).receipt.fingerprint() == plain.fingerprint()


def test_fingerprint_ignores_notation_but_not_content() -> None:
    """100 and "100.00" hash alike; 100.01 does not."""
    a = parse(with_line(amount=100)).receipt.fingerprint()
    b = parse(with_line(amount="100.00")).receipt.fingerprint()
    c = parse(with_line(amount="100.01")).receipt.fingerprint()
    assert a == b != c


def test_text_limits_and_control_characters() -> None:
    """Over-long names and control characters are refused on their field."""
    assert refused(body(supplier={"name": "x" * 201})).field == "supplier.name"
    assert refused(with_line(description="a\x00b")).field == "lines[0].description"


def test_payload_round_trips_and_is_plain_json() -> None:
    """from_payload(to_payload()) gives back the same receipt, through JSON text."""
    data = body(
        ncf="E310000000001", due_date="2024-05-31", currency="USD", exchange_rate="58.5",
        supplier={"name": "Acme", "tax_id": "001-1391820-5", "email": "a@b.do", "phone": "809"},
        lines=[
            {"description": "a", "amount": "10.5", "quantity": "2.5", "tax_rate": 16},
            {"description": "b", "amount": 3, "category": "Otros"},
        ],
        attachment={"filename": "r.png", "content_type": "image/png",
                    "data_base64": base64.b64encode(PNG).decode()},
    )
    receipt = parse(data).receipt
    payload = json.loads(json.dumps(receipt.to_payload()))
    assert Receipt.from_payload(payload) == receipt
    assert payload["lines"][0] == {"description": "a", "amount": "10.50", "quantity": "2.5",
                                   "tax_rate": "16", "category": "Gastos de oficina"}
    assert (payload["total"], payload["ncf_type"], payload["exchange_rate"]) == (
        "33.45", "E31", "58.5"
    )
    assert payload["supplier"]["tax_id_kind"] == "CEDULA"


def attach(data: bytes, content_type: str = "image/png", filename: str = "r.png") -> dict[str, Any]:
    encoded = base64.b64encode(data).decode()
    return body(attachment={"filename": filename, "content_type": content_type,
                            "data_base64": encoded})


def test_base64_attachment_is_described_by_size_and_hash() -> None:
    """A PNG in base64 is accepted; the payload records its size and sha256, not its bytes."""
    submission = parse(attach(PNG, filename="C:\\scans\\r.png"))
    assert submission.attachment_data == PNG
    info = submission.receipt.attachment
    assert info is not None
    assert (info.filename, info.content_type, info.size) == ("r.png", "image/png", len(PNG))
    assert info.sha256 == hashlib.sha256(PNG).hexdigest()


def test_attachment_bytes_change_the_fingerprint() -> None:
    """Two receipts differing only in the attachment's bytes hash differently."""
    one = parse(attach(PNG)).receipt.fingerprint()
    two = parse(attach(PNG + b"\x01")).receipt.fingerprint()
    assert one != two


@pytest.mark.parametrize(
    ("data", "content_type", "status", "field"),
    [
        (PNG, "text/plain", 415, "attachment.content_type"),
        (PDF, "image/png", 415, "attachment"),
        (b"MZ\x90\x00" * 8, "application/pdf", 415, "attachment"),
        (b"", "image/png", 422, "attachment.data_base64"),
        (PNG + b"\x00" * MAX, "image/png", 413, "attachment.data_base64"),
    ],
)
def test_bad_attachment(data: bytes, content_type: str, status: int, field: str) -> None:
    """Unsupported or spoofed types are 415, empty is 422, oversize is 413."""
    problem = refused(attach(data, content_type))
    assert (problem.status, problem.field) == (status, field)


def test_bad_base64_is_422() -> None:
    """data_base64 that is not base64 is refused on that field."""
    data = body(attachment={"filename": "r.png", "content_type": "image/png",
                            "data_base64": "not base64!"})
    problem = refused(data)
    assert (problem.status, problem.field) == (422, "attachment.data_base64")


def test_oversize_upload_is_413_even_if_exactly_one_byte_over() -> None:
    """A file part one byte over the bound is 413; at the bound it is accepted."""
    exact = PDF + b"x" * (MAX - len(PDF))
    assert parse(body(), Upload("r.pdf", "application/pdf", exact)).attachment_data == exact
    problem = refused(body(), Upload("r.pdf", "application/pdf", exact + b"x"))
    assert (problem.status, problem.field) == (413, "file")


def test_upload_without_specific_type_is_sniffed() -> None:
    """A file sent as application/octet-stream is typed by its magic number."""
    info = parse(body(), Upload("scan", "application/octet-stream", PDF)).receipt.attachment
    assert info is not None
    assert info.content_type == "application/pdf"


def test_upload_of_unknown_bytes_is_415() -> None:
    """An octet-stream that is no allowed type is 415 on file."""
    problem = refused(body(), Upload("x.bin", None, b"\x00\x01\x02" * 10))
    assert (problem.status, problem.field) == (415, "file")


def test_attachment_twice_is_refused() -> None:
    """An attachment both in JSON and as a file part is refused on file."""
    problem = refused(attach(PNG), Upload("r.pdf", "application/pdf", PDF))
    assert (problem.status, problem.field) == (422, "file")


def test_parse_does_not_modify_its_input() -> None:
    """Validation reads the decoded body without changing it."""
    data = body(total="118.00")
    before = copy.deepcopy(data)
    parse(data)
    assert data == before
