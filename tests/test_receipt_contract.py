"""The receipt's published schema and its validator agree: one declaration, and numbers read
from the raw JSON text without a float in between."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from receiver.app import COMPONENTS
from receiver.openapi import build_spec
from sync.receipt_model import ReceiptInvalid, decode_json, parse_submission

SPEC = build_spec(COMPONENTS)
RECEIPT_SCHEMA = Draft202012Validator(
    {"$ref": "#/components/schemas/ReceiptIn", "components": SPEC["components"]})
TODAY = dt.datetime.now(dt.UTC).date().isoformat()


def body(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "supplier": {"name": "Ochoa SRL"}, "date": "2024-05-01", "category": "Gastos",
        "lines": [{"description": "x", "amount": "10.00"}],
    }
    data.update(changes)
    return data


def line(**changes: Any) -> dict[str, Any]:
    return body(lines=[{"description": "x", "amount": "10.00", **changes}])


def accepted(data: dict[str, Any]) -> bool:
    try:
        parse_submission(data, max_attachment_bytes=1024)
    except ReceiptInvalid:
        return False
    return True


SPELLINGS = [
    # the three the issue found: the validator took them, the spec refused them
    line(tax_rate="18.00"), line(amount="1E+1"), line(quantity="2e0"),
    line(tax_rate=" 016 "), line(tax_rate="１８"), line(tax_rate="0.0"), line(tax_rate="18.5"),
    line(tax_rate="1.8e1"), line(tax_rate=18), line(tax_rate=18.0), line(tax_rate=1.8),
    line(quantity="2"), line(quantity="２.５"), line(quantity=" 3 "), line(quantity="+2"),
    line(amount="１０"), line(amount="𝟏𝟎.𝟓"), line(amount="\u00a010\u3000"), line(amount="\t10"),
    line(amount="١٠"), line(amount="0x10"), line(amount=".5"),
    body(currency="usd", exchange_rate="58.5"), body(currency="ＵＳＤ", exchange_rate="58.5"),
    body(currency=""), body(currency="US$", exchange_rate="58.5"),
    body(date="２０２４-０５-０１"), body(date="2024-5-1"), body(date=" 2024-05-01 "),
    body(due_date="2024-05-31"), body(due_date=None),
]


@pytest.mark.parametrize("data", SPELLINGS, ids=lambda d: json.dumps(d, default=str)[-60:])
def test_the_schema_accepts_exactly_the_spellings_the_validator_reads(data: dict[str, Any]) -> None:
    """Each spelling of a number, rate, date or currency is valid for the published schema
    exactly when the validator accepts it (these bodies break no rule the schema cannot state)."""
    assert RECEIPT_SCHEMA.is_valid(data) == accepted(data)


def test_a_trailing_line_break_is_refused_though_pythons_regex_lets_it_match() -> None:
    """Python's `$` matches before a final line break (ECMA's and pydantic's do not): a schema
    validator in Python may call `"10\n"` valid; the service refuses it, the safe way round."""
    data = line(amount="10\n")
    assert RECEIPT_SCHEMA.is_valid(data)
    assert not accepted(data)


def test_what_the_validator_accepts_the_schema_accepts_in_every_field() -> None:
    """A receipt using every field, accepted, is valid for the published schema."""
    data = body(due_date="2024-05-31", ncf="B0100000001", currency="USD", exchange_rate="58.50",
                total="11.80", supplier={"name": "Ochoa", "tax_id": "1-31-24679-6",
                                         "email": "a@b.do", "phone": "809-555-0101"},
                lines=[{"description": "x", "amount": "10", "quantity": 1, "tax_rate": 18,
                        "category": "Otros"}],
                attachment={"filename": "r.png", "content_type": "image/png",
                            "data_base64": "iVBORw0KGgoAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="})
    assert accepted(data)
    assert RECEIPT_SCHEMA.is_valid(data)


def test_lengths_count_the_characters_as_sent() -> None:
    """maxLength and the validator count alike: surrounding spaces count too."""
    data = body(supplier={"name": " " + "x" * 200})
    assert not RECEIPT_SCHEMA.is_valid(data)
    assert not accepted(data)


@pytest.mark.parametrize("raw", [b"100.000000000000000000001", b"1e400", b"1E+400"])
def test_json_numbers_are_read_exactly_not_through_a_float(raw: bytes) -> None:
    """100.000000000000000000001 keeps its last digit (a float would make it 100.0, accepted)
    and 1e400 is a number too large (a float would make it inf): both refused on the amount."""
    data = decode_json(b'{"supplier": {"name": "Ochoa"}, "date": "2024-05-01", '
                       b'"category": "Gastos", "lines": [{"description": "x", "amount": '
                       + raw + b"}]}")
    assert isinstance(data, dict)
    assert data["lines"][0]["amount"] == Decimal(raw.decode())
    with pytest.raises(ReceiptInvalid) as refused:
        parse_submission(data, max_attachment_bytes=1024)
    assert (refused.value.status, refused.value.field) == (422, "lines[0].amount")


def test_pydantic_json_parsing_would_lose_digits() -> None:
    """Why the body is decoded by `decode_json` and then validated: pydantic's own JSON parser
    reads a number for a Decimal through a float (here 30 digits become 17)."""

    class Amount(BaseModel):
        amount: Decimal

    digits = "123456789012345678901234567890.5"
    parsed = Amount.model_validate_json('{"amount": ' + digits + "}").amount
    assert parsed != Decimal(digits)
    assert decode_json('{"amount": ' + digits + "}") == {"amount": Decimal(digits)}


def test_a_deep_copy_of_the_schema_is_what_is_served() -> None:
    """The document is built from the models each time the same way (no shared mutable state)."""
    assert build_spec(COMPONENTS) == copy.deepcopy(SPEC)


def test_tomorrow_is_the_latest_date() -> None:
    """The schema states the date's spelling; the validator adds today's bound."""
    assert accepted(body(date=TODAY, due_date=None))


FULL = body(due_date="2024-05-31", ncf="B0100000001", currency="USD", exchange_rate="58.50",
            supplier={"name": "Ochoa", "tax_id": "1-31-24679-6", "email": "a@b.do",
                      "phone": "809"},
            lines=[{"description": "x", "amount": "10", "quantity": 1, "tax_rate": 18,
                    "category": "Otros"}])
PATHS = ["supplier", "supplier.name", "supplier.tax_id", "supplier.email", "supplier.phone",
         "date", "due_date", "ncf", "category", "currency", "exchange_rate", "total", "lines",
         "lines[0]", "lines[0].description", "lines[0].amount", "lines[0].quantity",
         "lines[0].tax_rate", "lines[0].category", "attachment"]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**11), st.text(max_size=20),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, max_value=10**11),
    st.text(alphabet="0123456789.-+eE ١٠１𝟏⑩\t", max_size=12),
    st.sampled_from(["", " ", "18.00", "16", "0.0", "2024-05-02", "usd", "B0100000002"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.sampled_from(["name", "x"]),
                                                         st.text(max_size=5), max_size=2),
)


def with_value(data: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node: Any = out
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return out


def as_json(data: dict[str, Any]) -> Any:
    """What a JSON Schema validator sees: the body's JSON, numbers as JSON numbers."""
    return json.loads(json.dumps(data, default=float))


def test_the_base_receipt_is_accepted() -> None:
    """The receipt the property below varies is valid as it stands."""
    assert accepted(FULL)
    assert RECEIPT_SCHEMA.is_valid(as_json(FULL))


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=60, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(value=VALUES)
def test_any_value_the_validator_accepts_the_schema_accepts(path: str, value: object) -> None:
    """Whatever one field of a valid receipt is set to, if the validator accepts the receipt the
    published schema does too (the schema never refuses what the service takes)."""
    data = with_value(FULL, path, value)
    if accepted(data):
        assert RECEIPT_SCHEMA.is_valid(as_json(data)), (path, value)
