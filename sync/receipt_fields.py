"""Field-level parsing of a partner's receipt (pure): one function per kind of value.

Each function takes the raw JSON value and its path (`lines[2].amount`) and returns the clean
value or raises `ReceiptInvalid` naming that path. `sync.receipt_model` assembles them.

Text is checked by `sync.text_rules`: every text field refuses what could not be stored, read
back, logged or sent to Alegra (lone surrogates, control and bidi control characters) and text
with nothing visible in it; names (supplier, categories) also need a non-empty `names.name_key`.
Numbers, dates and codes are read through `text_rules.ascii_form` (NFKC, then ASCII only).
A number is a JSON number, or a string of ASCII digits with an optional decimal point
(`DECIMAL_PATTERN`, surrounding spaces allowed): no sign, exponent, digit separator (`1_000`,
`1,000`) or other digit set (`١٠`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sync import attachments, money
from sync.attachments import AttachmentInfo
from sync.names import name_key
from sync.text_rules import ascii_form, has_visible, storable_problem

MAX_LINES = 200
MAX_DESCRIPTION = 500
MAX_CATEGORY = 150
MAX_FILENAME = 255
MAX_MONEY = Decimal("9999999999.99")  # also the bound of a receipt's computed total
MAX_QUANTITY = Decimal(10_000_000)
QUANTITY_PLACES = 6
MAX_EXCHANGE_RATE = Decimal(1_000_000)
RATE_PLACES = 6
ITBIS_RATES = (Decimal(0), Decimal(16), Decimal(18))  # percent
DEFAULT_CURRENCY = "DOP"

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A decimal string, as the published spec states it (receiver/receipts_spec.py serves this one).
DECIMAL_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*$"
_DECIMAL_TEXT = re.compile(DECIMAL_PATTERN, re.ASCII)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"[0-9+()\-. /x]+")
_CURRENCY = re.compile(r"[A-Z]{3}")


class ReceiptInvalid(ValueError):
    """The receipt breaks a rule. `field` is the JSON path (None: the whole body), `status` the
    HTTP status it maps to (400 malformed, 413 too large, 415 file type, 422 invalid), `code` the
    error's machine code and `extra` more evidence for the error body."""

    def __init__(
        self,
        field: str | None,
        message: str,
        status: int = 422,
        *,
        code: str = "invalid_field",
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.status = status
        self.code = code
        self.extra = extra or {}


@dataclass(frozen=True)
class Upload:
    """A multipart file part as it arrived."""

    filename: str | None
    content_type: str | None
    data: bytes


def decode_json(raw: bytes | str, field: str | None = None) -> object:
    """Decode JSON (UTF-8, RFC 8259) with numbers as Decimal (never float). Raises
    ReceiptInvalid (400 `malformed_json`), also for nesting too deep to read."""
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except RecursionError as exc:
        raise ReceiptInvalid(
            field, "malformed JSON: nested too deep", 400, code="malformed_json"
        ) from exc
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ReceiptInvalid(field, f"malformed JSON: {exc}", 400, code="malformed_json") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def mapping(value: object, field: str | None, message: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ReceiptInvalid(field, message)
    return value


def text_field(value: object, field: str, max_len: int, *, required: bool) -> str | None:
    """A string, stripped; empty counts as absent. Text that may not be stored
    (`text_rules.storable_problem`) or has nothing visible in it is refused."""
    if value is not None and not isinstance(value, str):
        raise ReceiptInvalid(field, "must be a string")
    text = (value or "").strip()
    if not text:
        if required:
            raise ReceiptInvalid(field, "required")
        return None
    if len(text) > max_len:
        raise ReceiptInvalid(field, f"at most {max_len} characters")
    problem = storable_problem(text)
    if problem is not None:
        raise ReceiptInvalid(field, problem)
    if not has_visible(text):
        raise ReceiptInvalid(field, "only invisible characters")
    return text


def name_field(value: object, field: str, max_len: int, *, required: bool) -> str | None:
    """A supplier or expense account name: text whose `name_key` is not empty (a name of only
    symbols or emoji would match every other such name)."""
    text = text_field(value, field, max_len, required=required)
    if text is not None and not name_key(text):
        raise ReceiptInvalid(field, "a name needs at least one letter or digit")
    return text


def ascii_field(value: object, field: str, max_len: int, *, required: bool) -> str | None:
    """A code or number as text, read after NFKC (`text_rules.ascii_form`); non-ASCII refused."""
    text = text_field(value, field, max_len, required=required)
    if text is None:
        return None
    normal = ascii_form(text)
    if normal is None:
        raise ReceiptInvalid(field, "only ASCII letters, digits and punctuation are allowed")
    return normal


def email_field(value: object, field: str) -> str | None:
    text = text_field(value, field, 254, required=False)
    if text is not None and not _EMAIL.fullmatch(text):
        raise ReceiptInvalid(field, "not an e-mail address")
    return text


def phone_field(value: object, field: str) -> str | None:
    text = text_field(value, field, 40, required=False)
    if text is not None and not _PHONE.fullmatch(text):
        raise ReceiptInvalid(field, "only digits, spaces and + ( ) - . / x are allowed")
    return text


# Fiscal documents older than this are not receipts a partner captures today (and Alegra's
# reports start long after); it also stops year-0069 typos from reaching the books.
EARLIEST_DATE = dt.date(2000, 1, 1)


def date_field(
    value: object, field: str, *, required: bool, latest: dt.date | None = None
) -> dt.date | None:
    """An ISO date between EARLIEST_DATE and `latest` (inclusive) when given."""
    text = ascii_field(value, field, 10, required=required)
    if text is None:
        return None
    problem = ReceiptInvalid(field, "not a date: expected YYYY-MM-DD")
    if not _DATE.fullmatch(text):
        raise problem
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise problem from exc
    if day < EARLIEST_DATE:
        raise ReceiptInvalid(field, f"must not be before {EARLIEST_DATE.isoformat()}")
    if latest is not None and day > latest:
        raise ReceiptInvalid(field, f"must not be after {latest.isoformat()}")
    return day


def decimal_field(value: object, field: str) -> Decimal:
    """A JSON number, or a decimal string (`DECIMAL_PATTERN` after NFKC), as a finite Decimal."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str | float):
        raise ReceiptInvalid(field, "must be a number or a decimal string")
    if isinstance(value, str):
        text = ascii_form(value)
        if text is None or not _DECIMAL_TEXT.fullmatch(text):
            raise ReceiptInvalid(field, "not a decimal number: ASCII digits with an optional "
                                 "decimal point, such as 1000.50 (no sign, exponent or separator)")
        value = text.strip()
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise ReceiptInvalid(field, f"not a decimal number: {str(value)[:40]!r}") from exc
    if not number.is_finite():
        raise ReceiptInvalid(field, "must be a finite number")
    return number


def bounded_decimal(value: object, field: str, places: int, maximum: Decimal) -> Decimal:
    """Greater than zero, at most `maximum`, with at most `places` decimals."""
    number = decimal_field(value, field)
    if number <= 0:
        raise ReceiptInvalid(field, "must be greater than zero")
    if number > maximum:
        raise ReceiptInvalid(field, f"must be at most {maximum}")
    if number != number.quantize(Decimal(1).scaleb(-places)):
        raise ReceiptInvalid(field, f"at most {places} decimals")
    return number


def amount_field(value: object, field: str) -> Decimal:
    """Money: > 0, at most 2 decimals; returned with exactly 2."""
    if value is None:
        raise ReceiptInvalid(field, "required")
    return bounded_decimal(value, field, 2, MAX_MONEY).quantize(money.CENT)


def quantity_field(value: object, field: str) -> Decimal:
    if value is None:
        return Decimal(1)
    return _plain(bounded_decimal(value, field, QUANTITY_PLACES, MAX_QUANTITY))


def _plain(number: Decimal) -> Decimal:
    """Without trailing zeros or exponent: `2.50` → `2.5`, `1E+2` → `100`."""
    return Decimal(money.normalized_text(number))


def tax_rate_field(value: object, field: str) -> Decimal | None:
    if value is None:
        return None
    rate = decimal_field(value, field)
    if rate not in ITBIS_RATES:
        raise ReceiptInvalid(field, "ITBIS rate must be 0, 16 or 18 (percent), or omitted")
    return _plain(rate) if rate else Decimal(0)


def currency_fields(currency: object, rate: object) -> tuple[str, Decimal | None]:
    """ISO 4217 code (default DOP) and its exchange rate: required unless DOP, where only 1 fits."""
    code = (ascii_field(currency, "currency", 3, required=False) or DEFAULT_CURRENCY).upper()
    if not _CURRENCY.fullmatch(code):
        raise ReceiptInvalid("currency", "an ISO 4217 code such as DOP or USD")
    if rate is None:
        if code != DEFAULT_CURRENCY:
            raise ReceiptInvalid("exchange_rate", f"required for {code}: DOP per 1 {code}")
        return code, None
    number = bounded_decimal(rate, "exchange_rate", RATE_PLACES, MAX_EXCHANGE_RATE)
    if code == DEFAULT_CURRENCY:
        if number != 1:
            raise ReceiptInvalid("exchange_rate", "only for a currency other than DOP")
        return code, None
    return code, _plain(number)


def attachment_from_json(value: object, max_bytes: int) -> tuple[AttachmentInfo, bytes]:
    """`{"filename", "content_type", "data_base64"}` → checked info and bytes."""
    data = mapping(value, "attachment", "must be an object: filename, content_type, data_base64")
    filename = _filename(data.get("filename"), "attachment.filename")
    declared = text_field(data.get("content_type"), "attachment.content_type", 100, required=True)
    encoded = data.get("data_base64")
    if not isinstance(encoded, str) or not encoded.strip():
        raise ReceiptInvalid("attachment.data_base64", "required: the file's bytes in base64")
    _allowed_declared(declared, "attachment.content_type")
    if attachments.decoded_size_bound(encoded) > max_bytes + 3:
        raise _too_large("attachment.data_base64", max_bytes)
    try:
        blob = attachments.decode_base64(encoded)
    except ValueError as exc:
        raise ReceiptInvalid("attachment.data_base64", "not valid base64") from exc
    return _checked(filename, declared, blob, max_bytes, "attachment")


def attachment_from_upload(upload: Upload, max_bytes: int) -> tuple[AttachmentInfo, bytes]:
    """The multipart `file` part → checked info and bytes."""
    filename = _filename(upload.filename or "attachment", "file")
    _allowed_declared(upload.content_type, "file")
    return _checked(filename, upload.content_type, upload.data, max_bytes, "file")


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


def _filename(value: object, field: str) -> str:
    text = text_field(value, field, MAX_FILENAME, required=True)
    assert text is not None
    base = re.split(r"[\\/]", text)[-1].strip()
    if not base or base in (".", ".."):
        raise ReceiptInvalid(field, "not a file name")
    return base


def _too_large(field: str, max_bytes: int) -> ReceiptInvalid:
    return ReceiptInvalid(
        field, f"the attachment is larger than {max_bytes} bytes", 413, code="too_large"
    )
