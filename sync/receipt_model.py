"""A partner's receipt: the rules between its fields (pure) and the exact shape the worker reads
back. `parse_submission` gives a `Submission` or raises `ReceiptInvalid(field, message, status)`;
each field's own rules are `sync.receipt_contract`'s. The rules and the stored payload's shape:
docs/receipts.md ("The rules between fields, and the stored shape").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sync import attachments, money
from sync.attachments import AttachmentInfo
from sync.dominican import Ncf, TaxId
from sync.receipt_contract import (
    DEFAULT_CURRENCY,
    MAX_MONEY,
    AttachmentIn,
    Filename,
    LineIn,
    ReceiptIn,
    ReceiptInvalid,
    decode_json,
    message,
    refusal,
)

PAYLOAD_VERSION = 1
MAX_DUE_DAYS = 3660  # a due date ten years out is a typo, not a payment term
_FILENAME: TypeAdapter[str] = TypeAdapter(Filename)

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
        """The JSON-able form stored in `receipts.payload` (its shape: docs/receipts.md)."""
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


@dataclass(frozen=True)
class Upload:
    """A multipart file part as it arrived."""

    filename: str | None
    content_type: str | None
    data: bytes


def parse_submission(
    data: object, *, max_attachment_bytes: int, upload: Upload | None = None
) -> Submission:
    """Validate a decoded request body (and a multipart file). Raises ReceiptInvalid."""
    try:
        body = ReceiptIn.model_validate(data)
    except ValidationError as exc:
        raise refusal(exc) from exc
    due = _dates(body)
    rate = _exchange_rate(body)
    lines = tuple(_line(line, body.category) for line in body.lines)
    total = _total(body.total, lines)
    info, blob = _attachment(body.attachment, upload, max_attachment_bytes)
    supplier = Supplier(body.supplier.name, body.supplier.tax_id, body.supplier.email,
                        body.supplier.phone)
    receipt = Receipt(supplier, body.date, due, body.ncf, body.category, body.currency, rate,
                      total, lines, info)
    return Submission(receipt, blob)


def _dates(body: ReceiptIn) -> dt.date:
    """The due date (default: the date), both checked against today and each other."""
    # One day of slack: the partner's clock may be ahead of UTC's date (the DR is UTC-4).
    latest = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    if body.date > latest:
        raise ReceiptInvalid("date", f"must not be after {latest.isoformat()}")
    due = body.due_date or body.date
    if due < body.date:
        raise ReceiptInvalid("due_date", "must be on or after date")
    due_latest = body.date + dt.timedelta(days=MAX_DUE_DAYS)
    if due > due_latest:
        raise ReceiptInvalid("due_date", f"must not be after {due_latest.isoformat()}")
    return due


def _exchange_rate(body: ReceiptIn) -> Decimal | None:
    """Required unless DOP; on DOP only 1 fits, and it is dropped."""
    code, rate = body.currency, body.exchange_rate
    if rate is None:
        if code != DEFAULT_CURRENCY:
            raise ReceiptInvalid("exchange_rate", f"required for {code}: DOP per 1 {code}")
        return None
    if code == DEFAULT_CURRENCY:
        if rate != 1:
            raise ReceiptInvalid("exchange_rate", "only for a currency other than DOP")
        return None
    return rate


def _line(line: LineIn, default_category: str) -> Line:
    quantity = Decimal(1) if line.quantity is None else line.quantity
    return Line(line.description, line.amount, quantity, line.tax_rate,
                line.category or default_category)


def _total(given: Decimal | None, lines: tuple[Line, ...]) -> Decimal:
    expected = money.receipt_total(lines)
    if expected > MAX_MONEY:
        raise ReceiptInvalid("total", f"the lines add up to {expected} with their ITBIS, more "
                             f"than a receipt may total ({MAX_MONEY})")
    if given is not None and given != expected:
        raise ReceiptInvalid(
            "total",
            f"the lines add up to {expected} with their ITBIS, not {given}",
            code="total_mismatch",
            extra={"expected": money.decimal_text(expected), "given": money.decimal_text(given)},
        )
    return expected


def _attachment(
    sent: AttachmentIn | None, upload: Upload | None, max_bytes: int
) -> tuple[AttachmentInfo | None, bytes | None]:
    if sent is not None and upload is not None:
        raise ReceiptInvalid("file", "send the attachment either as the file part or in JSON")
    if upload is not None:
        return _from_upload(upload, max_bytes)
    if sent is None:
        return None, None
    return _from_json(sent, max_bytes)


def _from_json(sent: AttachmentIn, max_bytes: int) -> tuple[AttachmentInfo, bytes]:
    """`{"filename", "content_type", "data_base64"}` → checked info and bytes."""
    filename = _base_name(sent.filename, "attachment.filename")
    encoded = sent.data_base64
    if not encoded.strip():
        raise ReceiptInvalid("attachment.data_base64", "required: the file's bytes in base64")
    _allowed_declared(sent.content_type, "attachment.content_type")
    if attachments.decoded_size_bound(encoded) > max_bytes + 3:
        raise _too_large("attachment.data_base64", max_bytes)
    try:
        blob = attachments.decode_base64(encoded)
    except ValueError as exc:
        raise ReceiptInvalid("attachment.data_base64", "not valid base64") from exc
    return _checked(filename, sent.content_type, blob, max_bytes, "attachment")


def _from_upload(upload: Upload, max_bytes: int) -> tuple[AttachmentInfo, bytes]:
    """The multipart `file` part → checked info and bytes."""
    try:
        filename = _FILENAME.validate_python(upload.filename or "attachment")
    except ValidationError as exc:
        raise ReceiptInvalid("file", message(exc.errors()[0])) from exc
    filename = _base_name(filename, "file")
    _allowed_declared(upload.content_type, "file")
    return _checked(filename, upload.content_type, upload.data, max_bytes, "file")


def _base_name(text: str, field: str) -> str:
    base = re.split(r"[\\/]", text)[-1].strip()
    if not base or base in (".", ".."):
        raise ReceiptInvalid(field, "not a file name")
    return base


def _checked(
    filename: str, declared: str | None, blob: bytes, max_bytes: int, field: str
) -> tuple[AttachmentInfo, bytes]:
    if not blob:
        raise ReceiptInvalid(field, "the file is empty")
    if len(blob) > max_bytes:
        raise _too_large(field, max_bytes)
    media, sniffed = attachments.media_type(declared), attachments.sniff(blob)
    if sniffed is None or (media not in attachments.GENERIC_TYPES and sniffed != media):
        shown = media if media not in attachments.GENERIC_TYPES else "an allowed type"
        raise ReceiptInvalid(
            field, f"the file's content is not {shown}", 415, code="unsupported_media_type"
        )
    return attachments.describe(filename, sniffed, blob), blob


def _allowed_declared(declared: str | None, field: str) -> None:
    media = attachments.media_type(declared)
    if media not in attachments.ALLOWED_TYPES and media not in attachments.GENERIC_TYPES:
        raise ReceiptInvalid(
            field,
            f"type {media!r} not accepted; allowed: {', '.join(attachments.ALLOWED_TYPES)}",
            415,
            code="unsupported_media_type",
        )


def _too_large(field: str, max_bytes: int) -> ReceiptInvalid:
    return ReceiptInvalid(
        field, f"the attachment is larger than {max_bytes} bytes", 413, code="too_large"
    )


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
