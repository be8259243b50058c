"""Our data → Alegra write bodies (contact, category, bill), and reading our marks back. Pure.

Every guess about a field name Alegra does not document settles here, once, marked
[unverified]: the identification type codes, where a bill's NCF goes, the currency shape, the
free-text field that carries our receipt marker. Change a guess here and nowhere else.

Money leaves as JSON numbers: `json_number` turns a Decimal into an int or a float only at the
edge, never for arithmetic. A float's shortest repr round-trips every decimal of up to 15
significant digits, and `sync.receipt_contract` bounds amounts (12), quantities (14) and rates (13).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sync.dominican import TaxId, compact_ncf
from sync.receipt_model import Receipt

# [unverified] Alegra DR's identification type codes: "RNC" for a 9-digit company number and
# "CED" for an 11-digit cédula. The built-in guess: `alegra-sync doctor` replaces it per company
# when the company's own contacts show other codes (sync/learned.py, `id_types` below).
IDENTIFICATION_TYPES = {"RNC": "RNC", "CEDULA": "CED"}

# [unverified] Where Alegra DR keeps a supplier bill's NCF: sent as `numberTemplate.number`
# (seen in public clients), unless `doctor` learned the company's own field (`ncf_field` below);
# read back from every shape a bill is known to come in (`bill_number`).
NCF_FIELD = ("numberTemplate", "number")

# The bill's free-text field that carries our receipt id, so a bill whose POST answer was lost
# can be found again even without an NCF. `observations` is documented on bills.
MARKER_FIELD = "observations"
MARKER_PREFIX = "alegra-sync receipt "

DEFAULT_CURRENCY = "DOP"


@dataclass(frozen=True)
class BillLine:
    """One bill line resolved to Alegra ids: the expense account and the tax (None: untaxed)."""

    account_id: str
    tax_id: str | None
    price: Decimal
    quantity: Decimal
    description: str


def json_number(value: Decimal) -> int | float:
    """A Decimal as a JSON number (an int when integral). Only for serialising, never for sums."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def contact_payload(
    name: str, tax_id: TaxId | None, email: str | None = None, phone: str | None = None,
    *, id_types: Mapping[str, str] = IDENTIFICATION_TYPES,
) -> dict[str, Any]:
    """A new supplier. `identification` is written as an object (reads return a string);
    `id_types`: the company's codes when `alegra-sync doctor` learned them (sync.learned)."""
    body: dict[str, Any] = {"name": name, "type": ["provider"]}
    if tax_id is not None:
        body["identification"] = {
            "type": id_types[tax_id.kind],
            "number": tax_id.number,
        }
    if email:
        body["email"] = email
    if phone:
        body["phonePrimary"] = phone
    return body


def provider_types(types: Iterable[str]) -> list[str]:
    """A contact's `type` list with `provider` added: a client becomes `["client","provider"]`."""
    return sorted({*types, "provider"})


def make_provider_payload(types: Iterable[str]) -> dict[str, Any]:
    """The PUT body that makes an existing contact a supplier too, keeping what it already is."""
    return {"type": provider_types(types)}


def category_payload(name: str, parent_id: str) -> dict[str, Any]:
    """A new expense account under `parent_id` ([unverified] whether `nature` is required)."""
    return {"idParent": parent_id, "name": name, "type": "expense"}


def receipt_marker(receipt_id: str) -> str:
    return f"{MARKER_PREFIX}{receipt_id}"


def bill_payload(
    receipt: Receipt, receipt_id: str, provider_id: str, lines: Sequence[BillLine],
    *, ncf_field: Sequence[str] = NCF_FIELD,
) -> dict[str, Any]:
    """The POST /bills body for a receipt whose supplier, accounts and taxes are resolved.
    `ncf_field`: where the NCF goes (a path), the company's own when `doctor` learned it."""
    body: dict[str, Any] = {
        "date": receipt.date.isoformat(),
        "dueDate": receipt.due_date.isoformat(),
        "provider": {"id": provider_id},
        "purchases": {"categories": [_line(line) for line in lines]},
        MARKER_FIELD: receipt_marker(receipt_id),
    }
    if receipt.ncf is not None:
        body.update(nested(ncf_field, receipt.ncf.number))
    if receipt.currency != DEFAULT_CURRENCY:
        body["currency"] = currency_field(receipt.currency, receipt.exchange_rate)
    return body


def nested(path: Sequence[str], value: Any) -> dict[str, Any]:
    """`("numberTemplate", "number")`, v → `{"numberTemplate": {"number": v}}`."""
    body: Any = value
    for key in reversed(path):
        body = {key: body}
    return dict(body)


def currency_field(code: str, exchange_rate: Decimal | None) -> dict[str, Any]:
    """[unverified] A foreign-currency bill's `currency`: `{code, exchangeRate}`, DOP per unit,
    the shape Alegra's `/currencies` and invoice responses show."""
    field: dict[str, Any] = {"code": code}
    if exchange_rate is not None:
        field["exchangeRate"] = json_number(exchange_rate)
    return field


def _line(line: BillLine) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": line.account_id,
        "price": json_number(line.price),
        "quantity": json_number(line.quantity),
        "observations": line.description,
    }
    if line.tax_id is not None:
        body["tax"] = [{"id": line.tax_id}]
    return body


def bill_number(bill: Mapping[str, Any]) -> str | None:
    """The NCF / number a bill read from Alegra carries, compact and upper case, or None.

    `numberTemplate` comes back as an object or as a list of objects, depending on the record
    (facts sheet). Each template is read the way Alegra's own duplicate-bill template reads a
    bill: `fullNumber`, then `billNumber`, then its `number` (with its `prefix`); then the
    bill's root `billNumber` and `number`. The first value found wins."""
    for value in _number_candidates(bill):
        if value not in (None, ""):
            text = str(value)  # read like a partner's NCF; a non-ASCII one kept, compacted
            return compact_ncf(text) or "".join(text.split()).replace("-", "").upper()
    return None


def _number_candidates(bill: Mapping[str, Any]) -> Iterator[Any]:
    outer, inner = NCF_FIELD
    template = bill.get(outer)
    for each in template if isinstance(template, list) else [template]:
        if isinstance(each, Mapping):
            yield each.get("fullNumber")
            yield each.get("billNumber")
            yield _with_prefix(each.get("prefix"), each.get(inner))
    yield bill.get("billNumber")
    yield bill.get("number")


def _with_prefix(prefix: Any, number: Any) -> Any:
    """[unverified] A bill typed in Alegra's web app may keep the NCF split as a template's
    `prefix` ("B01") and `number` ("00000001"): put them back together unless already joined."""
    if prefix in (None, "") or number in (None, ""):
        return number
    if str(number).strip().upper().startswith(str(prefix).strip().upper()):
        return number
    return f"{prefix}{number}"


def bill_has_marker(bill: Mapping[str, Any], receipt_id: str) -> bool:
    """True when the bill carries this receipt's marker (we wrote it; the bill is ours)."""
    pattern = re.escape(receipt_marker(receipt_id)) + r"(?!\w)"
    return re.search(pattern, str(bill.get(MARKER_FIELD) or "")) is not None


def marked_receipt_id(bill: Mapping[str, Any]) -> str | None:
    """The receipt whose marker the bill carries (a bill this service made), or None."""
    pattern = re.escape(MARKER_PREFIX) + r"(rcp_[A-Za-z0-9]+)"
    found = re.search(pattern, str(bill.get(MARKER_FIELD) or ""))
    return None if found is None else found.group(1)


def bill_provider_id(bill: Mapping[str, Any]) -> str | None:
    provider = bill.get("provider")
    if isinstance(provider, Mapping) and provider.get("id") is not None:
        return str(provider["id"])
    return None

