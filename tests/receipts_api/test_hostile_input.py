"""POST /v1/receipts against hostile or careless input: one reading of every identifier and
number, nothing stored that could not be read back, no empty matching keys, and 4xx, never 5xx."""

from __future__ import annotations

import base64
import copy
import json
import re
import sqlite3
import unicodedata
from typing import Any

import httpx
import pytest

from tests.receipts_api.conftest import PDF, PNG, Api, receipt_body

RNC = "131246796"
BOUNDARY = "hostile-boundary"


def digits_in(zero: int, text: str = RNC) -> str:
    """`text` with its ASCII digits written in the digit set whose zero is code point `zero`."""
    return "".join(chr(zero + int(ch)) if ch.isdigit() else ch for ch in text)


def error(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, response.json()["error"].get("field")


def stored_tax_ids(api: Api) -> list[str]:
    with sqlite3.connect(api.db_path) as conn:
        return [r[0] for r in conn.execute("SELECT supplier_tax_id FROM receipts")]


# --- one reading of identifiers and numbers ------------------------------------------------


@pytest.mark.parametrize("zero", [0xFF10, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7F6],
                         ids=["fullwidth", "math-bold", "double-struck", "sans-serif", "monospace"])
def test_compatibility_digits_in_a_tax_id_are_read_as_ascii(api: Api, zero: int) -> None:
    """Fullwidth and mathematical digits are read (NFKC) as the ASCII RNC, and stored so."""
    tax_id = digits_in(zero, "1-31-24679-6")
    response = api.post(receipt_body(supplier={"name": "Ochoa", "tax_id": tax_id}))
    assert response.status_code == 202, response.text
    assert response.json()["supplier"]["tax_id"] == RNC
    assert stored_tax_ids(api) == [RNC]


@pytest.mark.parametrize("zero", [0x0660, 0x06F0, 0x0966, 0x09E6],
                         ids=["arabic-indic", "extended-arabic-indic", "devanagari", "bengali"])
def test_other_digit_sets_in_a_tax_id_are_refused(api: Api, zero: int) -> None:
    """Digits NFKC does not read as ASCII are refused on the field, never stored."""
    for n, tax_id in enumerate([digits_in(zero), "1" + digits_in(zero)[1:]]):
        response = api.post(receipt_body(supplier={"name": "Ochoa", "tax_id": tax_id}),
                            idem=f"k{n}")
        assert error(response) == (422, "supplier.tax_id")
    assert api.count() == 0


@pytest.mark.parametrize(("ncf", "expected"), [
    (digits_in(0xFF10, "B0100000001"), 202),
    ("Ｂ" + digits_in(0xFF10, "01-0000-0001"), 202),
    (digits_in(0x0660, "B0100000001"), 422),
])
def test_ncf_is_read_after_nfkc_or_refused(api: Api, ncf: str, expected: int) -> None:
    """A fullwidth NCF is stored as its ASCII form; one in Arabic-Indic digits is refused."""
    response = api.post(receipt_body(ncf=ncf))
    if expected == 422:
        assert error(response) == (422, "ncf")
        assert api.count() == 0
    else:
        assert (response.status_code, response.json()["ncf"]) == (202, "B0100000001")


def test_dates_are_read_after_nfkc_or_refused(api: Api) -> None:
    """A fullwidth date is the ASCII date; one in Arabic-Indic digits is refused on `date`."""
    fullwidth = api.post(receipt_body(date=digits_in(0xFF10, "2024-05-01")), idem="a")
    arabic = api.post(receipt_body(date=digits_in(0x0660, "2024-05-01")), idem="b")
    assert (fullwidth.status_code, fullwidth.json()["date"]) == (202, "2024-05-01")
    assert error(arabic) == (422, "date")


def _spec_decimal_pattern(api: Api) -> str:
    line = api.client.get("/openapi.json").json()["components"]["schemas"]["LineIn"]
    [pattern] = [s["pattern"] for s in line["properties"]["amount"]["oneOf"] if "pattern" in s]
    return str(pattern)


ACCEPTED_AMOUNTS = ["10", "10.5", " 10.50 ", "0010.00", "１０", "𝟏𝟎.𝟓"]
REFUSED_AMOUNTS = ["1_000", "١٠", "１٠", "1e3", "1E+1", "+10", "-10", ".5", "5.", "10,5",
                   "1 000", "0x10", "Infinity", "NaN", "10\u00a0000", "٫5"]


@pytest.mark.parametrize("amount", ACCEPTED_AMOUNTS + REFUSED_AMOUNTS)
def test_decimal_strings_are_read_as_the_spec_states(api: Api, amount: str) -> None:
    """A decimal string is accepted exactly when its NFKC form matches the published pattern:
    ASCII digits and an optional decimal point; no separator, sign, exponent or other digits."""
    response = api.post(receipt_body(
        lines=[{"description": "x", "amount": amount}], total=None))
    matches = re.fullmatch(_spec_decimal_pattern(api), unicodedata.normalize("NFKC", amount))
    if amount in ACCEPTED_AMOUNTS:
        assert response.status_code == 202, response.text
        assert matches
    else:
        assert error(response) == (422, "lines[0].amount")
        assert not matches
        assert api.count() == 0


@pytest.mark.parametrize(("changes", "field"), [
    ({"lines": [{"description": "x", "amount": "10", "quantity": "1_0"}]}, "lines[0].quantity"),
    ({"lines": [{"description": "x", "amount": "10", "tax_rate": "1_8"}]}, "lines[0].tax_rate"),
    ({"lines": [{"description": "x", "amount": "10", "tax_rate": "١٨"}]}, "lines[0].tax_rate"),
    ({"total": "11_8.00"}, "total"),
    ({"currency": "USD", "exchange_rate": "5_8"}, "exchange_rate"),
    ({"currency": "USD", "exchange_rate": "٥٨"}, "exchange_rate"),
])
def test_every_number_refuses_separators_and_other_digit_sets(
    api: Api, changes: dict[str, Any], field: str
) -> None:
    """Quantities, rates, totals and exchange rates follow the amounts' one spelling."""
    body = receipt_body(**changes)
    if "lines" in changes:
        body["total"] = None
    assert error(api.post(body)) == (422, field)
    assert api.count() == 0


@pytest.mark.parametrize("line", [
    {"description": "x", "amount": "9999999999.99", "quantity": 2},
    {"description": "x", "amount": "1000", "quantity": 10_000_000},
    {"description": "x", "amount": "9999999999.99", "tax_rate": 18},
])
def test_computed_total_is_bounded_not_only_each_line(api: Api, line: dict[str, Any]) -> None:
    """Lines that each pass but add up past the largest total are refused on `total`."""
    response = api.post(receipt_body(lines=[line], total=None))
    assert error(response) == (422, "total")
    assert api.count() == 0


# --- text that could not be read back, listed, logged or sent ------------------------------

UNSTORABLE = ["\ud83d", "\udc00", "\x00", "\x1b", "\x7f", "\x85", "\x9f", "\u2028", "\u2029",
              "\u202e", "\u202a", "\u2066", "\u2069"]
JSON_TEXT_FIELDS = {
    "supplier.name": "Ferretería Ochoa", "supplier.tax_id": "1-31-24679-6",
    "supplier.email": "compras@ochoa.do", "supplier.phone": "809-555-0101",
    "date": "2024-05-01", "due_date": "2024-05-31", "ncf": "B0100000001",
    "category": "Gastos de oficina", "currency": "USD", "exchange_rate": "58.50",
    "total": "118.00", "lines[0].description": "Tornillos", "lines[0].category": "Ferretería",
    "lines[0].amount": "100.00", "lines[0].quantity": "1.0", "lines[0].tax_rate": "18",
}
ATTACHMENT_FIELDS = {
    "attachment.filename": "scan.png", "attachment.content_type": "image/png",
    "attachment.data_base64": base64.b64encode(PNG).decode(),
}


def full_body() -> dict[str, Any]:
    """A valid receipt with every text field present (a USD one, so it has an exchange rate)."""
    body = receipt_body(due_date="2024-05-31", currency="USD", exchange_rate="58.50")
    body["supplier"].update(email="compras@ochoa.do", phone="809-555-0101")
    body["lines"][0].update(category="Ferretería", quantity="1.0")
    return body


def with_value(body: dict[str, Any], path: str, value: str) -> dict[str, Any]:
    """A copy of `body` with the field at `path` (`lines[0].amount`) set to `value`."""
    out = copy.deepcopy(body)
    node: Any = out
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return out


def spoiled(value: str, bad: str) -> str:
    """`value` with `bad` in its middle (where stripping cannot remove it)."""
    middle = max(1, len(value) // 2)
    return value[:middle] + bad + value[middle:]


@pytest.mark.parametrize("path", list(JSON_TEXT_FIELDS) + list(ATTACHMENT_FIELDS))
def test_unstorable_characters_in_any_json_text_field_are_422(api: Api, path: str) -> None:
    """A lone surrogate (JSON `\\ud83d`), a control or a bidi control character in any text
    field is refused naming that field, and nothing is stored."""
    body = full_body()
    body["attachment"] = {k.split(".")[1]: v for k, v in ATTACHMENT_FIELDS.items()}
    valid = {**JSON_TEXT_FIELDS, **ATTACHMENT_FIELDS}[path]
    assert api.post(body, idem="valid-check").status_code == 202  # the base body is fine
    for n, bad in enumerate(UNSTORABLE):
        response = api.post(with_value(body, path, spoiled(valid, bad)), idem=f"k{n}")
        assert error(response) == (422, path), (bad, response.text)
    assert api.count() == 1
    assert api.count("receipt_attachments") == 1


def part(name: str, data: bytes, filename: bytes | None = None,
         content_type: str | None = None) -> bytes:
    disposition = b'form-data; name="' + name.encode() + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    headers = b"Content-Disposition: " + disposition
    if content_type is not None:
        headers += b"\r\nContent-Type: " + content_type.encode()
    return b"--" + BOUNDARY.encode() + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"


def form(*parts: bytes, closed: bool = True) -> bytes:
    return b"".join(parts) + (b"--" + BOUNDARY.encode() + b"--\r\n" if closed else b"")


def post_form(api: Api, body: bytes, idem: str = "mp",
              content_type: str = "multipart/form-data; boundary=" + BOUNDARY) -> httpx.Response:
    return api.client.post("/v1/receipts", content=body,
                           headers={**api.headers(idem=idem), "Content-Type": content_type})


def receipt_part(receipt: Any) -> bytes:
    return part("receipt", json.dumps(receipt).encode())


PDF_PART = part("file", PDF, b"factura.pdf", "application/pdf")


@pytest.mark.parametrize("path", list(JSON_TEXT_FIELDS))
def test_unstorable_characters_in_the_multipart_receipt_part_are_422(api: Api, path: str) -> None:
    """The same refusals apply to the receipt part of a multipart body."""
    body = full_body()
    assert post_form(api, form(receipt_part(body), PDF_PART), idem="valid").status_code == 202
    for n, bad in enumerate(UNSTORABLE):
        receipt = with_value(body, path, spoiled(JSON_TEXT_FIELDS[path], bad))
        response = post_form(api, form(receipt_part(receipt), PDF_PART), idem=f"k{n}")
        assert error(response) == (422, path), (bad, response.text)
    assert api.count() == 1


@pytest.mark.parametrize("filename", [
    "scan\u202egnp.pdf".encode(), "scan\u2066.pdf".encode(), b"scan\x01.pdf", b"scan\x7f.pdf",
    "scan\x85.pdf".encode(), b"caf\xe9.pdf", b"scan\xed\xa0\xbd.pdf", "\u200b".encode(),
], ids=["rlo", "lri", "c0", "del", "c1", "latin-1", "cesu-surrogate", "zero-width"])
def test_file_part_names_that_cannot_be_stored_are_422(api: Api, filename: bytes) -> None:
    """A file name with a bidi or control character, not UTF-8, or invisible is refused."""
    file_part = part("file", PDF, filename, "application/pdf")
    response = post_form(api, form(receipt_part(receipt_body()), file_part))
    assert error(response) == (422, "file")
    assert api.count() == 0


def test_receipt_part_that_is_not_utf8_is_refused(api: Api) -> None:
    """A receipt part in latin-1 is refused, not stored as mojibake."""
    latin1 = json.dumps(receipt_body(), ensure_ascii=False).encode("latin-1")
    response = post_form(api, form(part("receipt", latin1), PDF_PART))
    assert error(response) == (400, "receipt")
    assert response.json()["error"]["code"] == "malformed_json"
    assert api.count() == 0


def test_two_receipt_parts_are_422(api: Api) -> None:
    """A body with two receipt parts is ambiguous: refused on `receipt`."""
    other = receipt_body(ncf="B0100000002")
    response = post_form(api, form(receipt_part(receipt_body()), receipt_part(other), PDF_PART))
    assert error(response) == (422, "receipt")
    assert api.count() == 0


FORM = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.mark.parametrize(("body", "content_type"), [
    (b"garbage", FORM),
    (b"\x00\xff" * 500, FORM),
    (form(receipt_part(receipt_body()), closed=False), FORM),
    (form(b"--" + BOUNDARY.encode() + b"\r\nno header end"), FORM),
    (form(receipt_part(receipt_body())), "multipart/form-data"),
    (form(part("receipt", b"{}").replace(b'name="receipt"', b"")), FORM),
    (form(*[part(f"p{n}", b"x") for n in range(11)], receipt_part(receipt_body())), FORM),
], ids=["garbage", "binary", "truncated", "bad-header", "no-boundary", "no-name", "too-many"])
def test_garbled_multipart_is_400(api: Api, body: bytes, content_type: str) -> None:
    """A multipart body that cannot be read is 400 malformed_multipart and stores nothing."""
    response = post_form(api, body, content_type=content_type)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_multipart"
    assert api.count() == 0


DEPTH = 30_000  # far past Python's recursion limit, inside the test's 70 KiB body bound
DEEP = b"[" * DEPTH + b"]" * DEPTH


@pytest.mark.parametrize("raw", [DEEP, b'{"supplier": ' + DEEP + b"}",
                                 json.dumps(receipt_body()).encode("utf-16")],
                         ids=["deep-array", "deep-field", "utf-16"])
def test_deep_or_non_utf8_json_is_400(api: Api, raw: bytes) -> None:
    """JSON nested 30,000 deep, or not UTF-8 (RFC 8259), is 400 malformed_json."""
    response = api.post(raw)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert api.count() == 0


def test_deep_json_in_the_receipt_part_is_400(api: Api) -> None:
    """The same holds for the multipart receipt part."""
    response = post_form(api, form(part("receipt", DEEP), PDF_PART))
    assert error(response) == (400, "receipt")
    assert api.count() == 0


# --- names that would match every other such name ------------------------------------------

EMPTY_KEY_NAMES = ["☕", "🍕", "***", "¿?", "\u0301\u0301", "\u0308\u0327", "\u200b\u200b",
                   "\u200d", "\ufeff", "\u3164", "\u2800", "☕ 🍕"]


@pytest.mark.parametrize("name", EMPTY_KEY_NAMES)
def test_supplier_names_without_a_letter_or_digit_are_refused(api: Api, name: str) -> None:
    """Emoji, symbols, combining marks or invisible characters alone are no supplier name."""
    for n, supplier in enumerate([{"name": name}, {"name": name, "tax_id": RNC}]):
        response = api.post(receipt_body(supplier=supplier), idem=f"k{n}")
        assert error(response) == (422, "supplier.name")
    assert api.count() == 0


@pytest.mark.parametrize("path", ["category", "lines[0].category"])
def test_categories_without_a_letter_or_digit_are_refused(api: Api, path: str) -> None:
    """`📦` and `🚚` would post to one account: each is refused on its field."""
    for n, name in enumerate(["📦", "🚚", "\u200b"]):
        response = api.post(with_value(receipt_body(), path, name), idem=f"k{n}")
        assert error(response) == (422, path)
    assert api.count() == 0


def test_descriptions_of_only_invisible_characters_are_refused(api: Api) -> None:
    """A line description must show something."""
    response = api.post(with_value(receipt_body(), "lines[0].description", "\u200b\u0301"))
    assert error(response) == (422, "lines[0].description")


def test_names_with_symbols_beside_letters_are_kept_as_given(api: Api) -> None:
    """Emoji and accents next to letters are fine and stored as sent."""
    response = api.post(receipt_body(supplier={"name": "Café ☕ Ñoño"}, category="Envíos 🚚"))
    assert response.status_code == 202
    assert (response.json()["supplier"]["name"], response.json()["category"]) == (
        "Café ☕ Ñoño", "Envíos 🚚")
