"""A partner's receipt: parse and validate it (pure), and the exact shape the worker reads back.

`parse_submission(data, max_attachment_bytes=..., upload=None)` turns the decoded request body
into a `Submission` (the validated `Receipt` and the attachment's bytes) or raises
`ReceiptInvalid(field, message, status)`, `field` being the JSON path at fault
(`supplier.tax_id`, `lines[2].amount`). The rules:

- Text: no lone surrogates, control or bidi control characters, not only invisible characters;
  names (`supplier.name`, `category`, a line's `category`) need a letter or digit
  (`sync.receipt_fields`, `sync.text_rules`).
- `supplier.name` required; `supplier.tax_id` optional (RNC or cédula, dashes and spaces allowed,
  check digit verified); without it the supplier is matched on its normalised name.
- `date` required and `due_date` optional (default: `date`), both `YYYY-MM-DD`, `due_date >= date`.
- `ncf` optional, an NCF or e-CF; its type (B01, E31, ...) is kept.
- `category` required: the expense account's name. A line's `category` overrides it.
- `currency` defaults to DOP; any other currency needs `exchange_rate` > 0 (DOP per unit).
- `lines`: 1 to 200. `amount` is the line's unit price before ITBIS (Alegra's `price`), > 0 with
  at most 2 decimals; `quantity` defaults to 1, > 0; `tax_rate` is the ITBIS percent, 0, 16 or 18
  (0 marks an exempt line; omitted or null means no tax on the line).
- `total` optional; when given it must equal `money.receipt_total(lines)` (code `total_mismatch`,
  with `expected` and `given`). The computed total is at most `MAX_MONEY`, as each amount is.
- Amounts are JSON numbers or decimal strings (ASCII digits, optional decimal point, after NFKC),
  Decimal throughout. Identifiers (tax id, NCF), dates and the currency are read after NFKC and
  must then be ASCII. Unknown fields are ignored.
- `attachment` (or the multipart `file`): see `sync.attachments`; over the size bound → 413,
  a type not allowed or bytes that are not the declared type → 415, bad base64 → 422.

`Receipt.to_payload()` is what `receipts.payload` holds and `Receipt.from_payload()` reads back
(they round-trip). Decimals are strings; money has exactly two decimals:

    {"version": 1,
     "supplier": {"name": str, "tax_id": "131246796" | null (digits only),
                  "tax_id_kind": "RNC" | "CEDULA" | null, "email": str | null, "phone": str | null},
     "date": "2024-05-01", "due_date": "2024-05-31",
     "ncf": "B0100000001" | null (compact, upper case), "ncf_type": "B01" | null,
     "category": str, "currency": "DOP", "exchange_rate": "58.5" | null (always null for DOP),
     "total": "118.00" (the lines' total by money.receipt_total; equals the partner's if given),
     "lines": [{"description": str, "amount": "100.00", "quantity": "1",
                "tax_rate": "18" | "16" | "0" | null,
                "category": str (the effective account: the line's own, else the receipt's)}],
     "attachment": null | {"filename": str, "content_type": str, "size": int, "sha256": hex}}
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sync import money
from sync.attachments import AttachmentInfo
from sync.dominican import InvalidNcf, InvalidTaxId, Ncf, TaxId, normalize_ncf, normalize_tax_id
from sync.receipt_fields import (
    MAX_CATEGORY,
    MAX_DESCRIPTION,
    MAX_LINES,
    MAX_MONEY,
    ReceiptInvalid,
    Upload,
    amount_field,
    attachment_from_json,
    attachment_from_upload,
    currency_fields,
    date_field,
    decode_json,
    email_field,
    mapping,
    name_field,
    phone_field,
    quantity_field,
    tax_rate_field,
    text_field,
)

PAYLOAD_VERSION = 1
MAX_DUE_DAYS = 3660  # a due date ten years out is a typo, not a payment term

__all__ = [
    "Line",
    "Receipt",
    "ReceiptInvalid",
    "Submission",
    "Supplier",
    "Upload",
    "decode_json",
    "parse_submission",
]


@dataclass(frozen=True)
class Supplier:
    name: str
    tax_id: TaxId | None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Line:
    description: str
    amount: Decimal  # unit price before ITBIS
    quantity: Decimal
    tax_rate: Decimal | None  # ITBIS percent; None = no tax
    category: str  # effective expense account name


@dataclass(frozen=True)
class Receipt:
    supplier: Supplier
    date: dt.date
    due_date: dt.date
    ncf: Ncf | None
    category: str
    currency: str
    exchange_rate: Decimal | None
    total: Decimal
    lines: tuple[Line, ...]
    attachment: AttachmentInfo | None = None

    @property
    def categories(self) -> tuple[str, ...]:
        """Every expense account the receipt posts to, the receipt's own first, without repeats."""
        return tuple(dict.fromkeys([self.category, *(line.category for line in self.lines)]))

    def to_payload(self) -> dict[str, Any]:
        """The JSON-able form stored in `receipts.payload` (shape in the module docstring)."""
        return _payload(self)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Receipt:
        """Read back what `to_payload` wrote (trusted: it was validated before it was stored)."""
        return _from_payload(payload)

    def fingerprint(self) -> str:
        """sha256 of the canonical payload: equal for requests that mean the same receipt."""
        canonical = json.dumps(self.to_payload(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Submission:
    """A validated receipt and its attachment's bytes (None without an attachment)."""

    receipt: Receipt
    attachment_data: bytes | None


def parse_submission(
    data: object, *, max_attachment_bytes: int, upload: Upload | None = None
) -> Submission:
    """Validate a decoded request body (and a multipart file). Raises ReceiptInvalid."""
    body = mapping(data, None, "the receipt must be a JSON object")
    category = name_field(body.get("category"), "category", MAX_CATEGORY, required=True)
    assert category is not None
    # One day of slack: the partner's clock may be ahead of UTC's date (the DR is UTC-4).
    latest = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    day = date_field(body.get("date"), "date", required=True, latest=latest)
    assert day is not None
    due_latest = day + dt.timedelta(days=MAX_DUE_DAYS)
    due = date_field(body.get("due_date"), "due_date", required=False, latest=due_latest) or day
    if due < day:
        raise ReceiptInvalid("due_date", "must be on or after date")
    currency, rate = currency_fields(body.get("currency"), body.get("exchange_rate"))
    lines = _lines(body.get("lines"), category)
    total = _total(body.get("total"), lines)
    info, blob = _attachment(body.get("attachment"), upload, max_attachment_bytes)
    receipt = Receipt(
        _supplier(body.get("supplier")), day, due, _ncf(body.get("ncf")),
        category, currency, rate, total, lines, info,
    )
    return Submission(receipt, blob)


def _supplier(value: object) -> Supplier:
    data = mapping(value, "supplier", "required: an object with at least name")
    name = name_field(data.get("name"), "supplier.name", 200, required=True)
    assert name is not None
    raw_tax_id = text_field(data.get("tax_id"), "supplier.tax_id", 40, required=False)
    tax_id = None
    if raw_tax_id is not None:
        try:
            tax_id = normalize_tax_id(raw_tax_id)
        except InvalidTaxId as exc:
            raise ReceiptInvalid("supplier.tax_id", exc.reason) from exc
    email = email_field(data.get("email"), "supplier.email")
    return Supplier(name, tax_id, email, phone_field(data.get("phone"), "supplier.phone"))


def _ncf(value: object) -> Ncf | None:
    raw = text_field(value, "ncf", 40, required=False)
    if raw is None:
        return None
    try:
        return normalize_ncf(raw)
    except InvalidNcf as exc:
        raise ReceiptInvalid("ncf", exc.reason) from exc


def _lines(value: object, default_category: str) -> tuple[Line, ...]:
    if not isinstance(value, list) or not value:
        raise ReceiptInvalid("lines", "required: a list of at least one line")
    if len(value) > MAX_LINES:
        raise ReceiptInvalid("lines", f"at most {MAX_LINES} lines per receipt")
    return tuple(_line(item, f"lines[{i}]", default_category) for i, item in enumerate(value))


def _line(value: object, path: str, default_category: str) -> Line:
    data = mapping(value, path, "each line must be an object")
    description = text_field(
        data.get("description"), f"{path}.description", MAX_DESCRIPTION, required=True
    )
    assert description is not None
    category = name_field(data.get("category"), f"{path}.category", MAX_CATEGORY, required=False)
    return Line(
        description,
        amount_field(data.get("amount"), f"{path}.amount"),
        quantity_field(data.get("quantity"), f"{path}.quantity"),
        tax_rate_field(data.get("tax_rate"), f"{path}.tax_rate"),
        category or default_category,
    )


def _total(value: object, lines: tuple[Line, ...]) -> Decimal:
    expected = money.receipt_total(lines)
    if expected > MAX_MONEY:
        raise ReceiptInvalid("total", f"the lines add up to {expected} with their ITBIS, more "
                             f"than a receipt may total ({MAX_MONEY})")
    if value is None:
        return expected
    given = amount_field(value, "total")
    if given != expected:
        raise ReceiptInvalid(
            "total",
            f"the lines add up to {expected} with their ITBIS, not {given}",
            code="total_mismatch",
            extra={"expected": money.decimal_text(expected), "given": money.decimal_text(given)},
        )
    return expected


def _attachment(
    value: object, upload: Upload | None, max_bytes: int
) -> tuple[AttachmentInfo | None, bytes | None]:
    if value is not None and upload is not None:
        raise ReceiptInvalid("file", "send the attachment either as the file part or in JSON")
    if upload is not None:
        return attachment_from_upload(upload, max_bytes)
    if value is None:
        return None, None
    return attachment_from_json(value, max_bytes)


def _payload(receipt: Receipt) -> dict[str, Any]:
    supplier, ncf, att = receipt.supplier, receipt.ncf, receipt.attachment
    return {
        "version": PAYLOAD_VERSION,
        "supplier": {
            "name": supplier.name,
            "tax_id": supplier.tax_id.number if supplier.tax_id else None,
            "tax_id_kind": supplier.tax_id.kind if supplier.tax_id else None,
            "email": supplier.email,
            "phone": supplier.phone,
        },
        "date": receipt.date.isoformat(),
        "due_date": receipt.due_date.isoformat(),
        "ncf": ncf.number if ncf else None,
        "ncf_type": ncf.type_code if ncf else None,
        "category": receipt.category,
        "currency": receipt.currency,
        "exchange_rate": _opt_text(receipt.exchange_rate),
        "total": money.decimal_text(receipt.total),
        "lines": [_line_payload(line) for line in receipt.lines],
        "attachment": None if att is None else {
            "filename": att.filename, "content_type": att.content_type,
            "size": att.size, "sha256": att.sha256,
        },
    }


def _line_payload(line: Line) -> dict[str, Any]:
    return {
        "description": line.description,
        "amount": money.decimal_text(line.amount),
        "quantity": money.normalized_text(line.quantity),
        "tax_rate": _opt_text(line.tax_rate),
        "category": line.category,
    }


def _opt_text(value: Decimal | None) -> str | None:
    return None if value is None else money.normalized_text(value)


def _opt_decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _from_payload(p: Mapping[str, Any]) -> Receipt:
    s, att = p["supplier"], p.get("attachment")
    tax_id = TaxId(s["tax_id"], s["tax_id_kind"]) if s.get("tax_id") else None
    return Receipt(
        supplier=Supplier(s["name"], tax_id, s.get("email"), s.get("phone")),
        date=dt.date.fromisoformat(p["date"]),
        due_date=dt.date.fromisoformat(p["due_date"]),
        ncf=Ncf(p["ncf"], p["ncf_type"]) if p.get("ncf") else None,
        category=p["category"],
        currency=p["currency"],
        exchange_rate=_opt_decimal(p.get("exchange_rate")),
        total=Decimal(p["total"]),
        lines=tuple(
            Line(x["description"], Decimal(x["amount"]), Decimal(x["quantity"]),
                 _opt_decimal(x.get("tax_rate")), x["category"])
            for x in p["lines"]
        ),
        attachment=AttachmentInfo(**att) if att else None,
    )
