"""The partner's receipt as it is sent, declared once (pydantic): what is validated and what
/openapi.json publishes (`receiver.openapi` generates the schemas from these models). Each
field type is a gate the schema states, then readings that only narrow or convert, so what is
accepted matches the schema by construction. Design: docs/receipts.md ("The declared contract").
"""

from __future__ import annotations

import datetime as dt
import json
import re
import string
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    Strict,
    StringConstraints,
    Tag,
    ValidationError,
    WrapValidator,
)
from pydantic_core import CoreSchema, ErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from sync import money
from sync.dominican import InvalidNcf, InvalidTaxId, Ncf, TaxId, normalize_ncf, normalize_tax_id
from sync.names import name_key
from sync.text_rules import ascii_form, has_visible, nfkc_class, storable_problem

MAX_LINES = 200
MAX_DESCRIPTION = 500
MAX_NAME = 200
MAX_CATEGORY = 150
MAX_FILENAME = 255
MAX_MONEY = Decimal("9999999999.99")  # also the bound of a receipt's computed total
MAX_QUANTITY = Decimal(10_000_000)
QUANTITY_PLACES = 6
MAX_EXCHANGE_RATE = Decimal(1_000_000)
RATE_PLACES = 6
DEFAULT_CURRENCY = "DOP"
# Fiscal documents older than this are not receipts a partner captures today (and Alegra's
# reports start long after); it also stops year-0069 typos from reaching the books.
EARLIEST_DATE = dt.date(2000, 1, 1)

_SPACE, _DIGIT, _POINT = nfkc_class(" "), nfkc_class("0123456789"), nfkc_class(".")
_ZERO, _ONE, _SIX, _EIGHT = (nfkc_class(d) for d in "0168")
_DASH, _LETTER = nfkc_class("-"), nfkc_class(string.ascii_letters)
DECIMAL_PATTERN = f"^{_SPACE}*{_DIGIT}+({_POINT}{_DIGIT}+)?{_SPACE}*$"
_ITBIS = f"({_ZERO}|{_ONE}{_SIX}|{_ONE}{_EIGHT})"  # 0, 16, 18
RATE_PATTERN = f"^{_SPACE}*{_ZERO}*{_ITBIS}({_POINT}{_ZERO}+)?{_SPACE}*$"
DATE_PATTERN = f"^{_SPACE}*{_DIGIT}{{4}}{_DASH}{_DIGIT}{{2}}{_DASH}{_DIGIT}{{2}}{_SPACE}*$"
CURRENCY_PATTERN = f"^{_SPACE}*({_LETTER}{{3}})?{_SPACE}*$"
EMAIL_PATTERN = r"^[^@]+@[^@]+\.[^@]+$"  # the gate; `_EMAIL` is the reading after stripping
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"[0-9+()\-. /x]+")
_DECIMAL_HINT = ("not a decimal number: a JSON number, or digits with an optional decimal point "
                 "such as 1000.50 (no sign, exponent or separator)")
_RATE_HINT = "ITBIS rate must be 0, 16 or 18 (percent), or omitted"
_DATE_HINT = "not a date: expected YYYY-MM-DD"


def invalid(message: str) -> PydanticCustomError:
    """The error a reading raises: 422 `invalid_field` on the field, with `message`."""
    return PydanticCustomError("invalid_field", "{message}", {"message": message})


class Shape:
    """Annotated metadata: validate (and publish) the value as `shape`; the validators after it
    turn it into the annotated type."""

    def __init__(self, shape: Any) -> None:
        self.shape = shape

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return handler.generate_schema(self.shape)


# Our sentences for pydantic's own errors. `_SPECIFIC` ones say more than a field's hint does.
_SPECIFIC = {
    "string_too_short": "required",
    "string_too_long": "at most {max_length} characters",
    "greater_than": "must be greater than zero",
    "less_than_equal": "must be at most {le}",
    "finite_number": "must be a finite number",
}
_GENERAL = {
    "string_type": "must be a string",
    "model_type": "must be an object",
    "list_type": "must be a list",
    "too_short": "at least {min_length} required",
    "too_long": "at most {max_length} allowed",
}


def message(error: ErrorDetails, hint: str | None = None) -> str:
    """Our sentence for a pydantic error: a reading's own, else by type, else `hint`."""
    kind = error["type"]
    if kind == "invalid_field":
        return error["msg"]
    if kind == "missing" or error["input"] is None:
        return "required"
    template = _SPECIFIC.get(kind) or (None if hint else _GENERAL.get(kind))
    if template is None:
        return hint or error["msg"]
    return template.format(**error.get("ctx", {}))


def gate(hint: str) -> WrapValidator:
    """One error, in our words, for whatever the gate before it refuses (also the company
    body's, `sync.company_contract`)."""
    def wrap(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ValidationError as exc:
            raise invalid(message(exc.errors()[0], hint)) from None

    return WrapValidator(wrap)


# --- text --------------------------------------------------------------------------------


def _text(value: str | None) -> str | None:
    """Stripped; empty is None. Text that may not be stored or shows nothing is refused."""
    text = (value or "").strip()
    if not text:
        return None
    problem = storable_problem(text)
    if problem is not None:
        raise invalid(problem)
    if not has_visible(text):
        raise invalid("only invisible characters")
    return text


def _required(value: str) -> str:
    text = _text(value)
    if text is None:
        raise invalid("required")
    return text


def _name(value: str | None) -> str | None:
    """A supplier or expense account name: a name of only symbols or emoji would match every
    other such name, so its `name_key` must not be empty."""
    text = _text(value)
    if text is not None and not name_key(text):
        raise invalid("a name needs at least one letter or digit")
    return text


def _required_name(value: str) -> str:
    text = _name(_required(value))
    assert text is not None
    return text


_STRING = gate("must be a string")
_Str = Annotated[str, Strict()]
Description = Annotated[_Str, StringConstraints(min_length=1, max_length=MAX_DESCRIPTION),
                        _STRING, AfterValidator(_required)]
SupplierName = Annotated[_Str, StringConstraints(min_length=1, max_length=MAX_NAME), _STRING,
                         AfterValidator(_required_name)]
Category = Annotated[_Str, StringConstraints(min_length=1, max_length=MAX_CATEGORY), _STRING,
                     AfterValidator(_required_name)]
LineCategory = Annotated[Annotated[_Str, StringConstraints(max_length=MAX_CATEGORY), _STRING]
                         | None, AfterValidator(_name)]
_Upto40 = Annotated[_Str, StringConstraints(max_length=40), _STRING] | None


def _tax_id(value: str | None) -> TaxId | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return normalize_tax_id(text)
    except InvalidTaxId as exc:
        raise invalid(exc.reason) from exc


def _ncf(value: str | None) -> Ncf | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return normalize_ncf(text)
    except InvalidNcf as exc:
        raise invalid(exc.reason) from exc


def _email(value: str | None) -> str | None:
    text = _text(value)
    if text is not None and not _EMAIL.fullmatch(text):
        raise invalid("not an e-mail address")
    return text


def _phone(value: str | None) -> str | None:
    text = _text(value)
    if text is not None and not _PHONE.fullmatch(text):
        raise invalid("only digits, spaces and + ( ) - . / x are allowed")
    return text


TaxIdIn = Annotated[TaxId | None, Shape(_Upto40), AfterValidator(_tax_id)]
NcfIn = Annotated[Ncf | None, Shape(_Upto40), AfterValidator(_ncf)]
Email = Annotated[Annotated[_Str, StringConstraints(max_length=254, pattern=EMAIL_PATTERN),
                            gate("not an e-mail address")] | None, AfterValidator(_email)]
Phone = Annotated[_Upto40, AfterValidator(_phone)]


# --- numbers, dates, codes ------------------------------------------------------------------


def _json_kind(value: object) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | Decimal | float) and not isinstance(value, bool):
        return "number"
    return None


def _read(value: Decimal | int | str) -> Decimal:
    """A gated number as a Decimal: a decimal string is read after NFKC (the gate let only
    characters through that NFKC reads as ASCII)."""
    if not isinstance(value, str):
        return Decimal(value)
    text = ascii_form(value)
    assert text is not None
    return Decimal(text.strip())


def _number_shape(maximum: Decimal) -> Any:
    return Annotated[
        Annotated[Decimal, Field(gt=0, le=maximum, allow_inf_nan=False), Tag("number")]
        | Annotated[_Str, StringConstraints(pattern=DECIMAL_PATTERN), Tag("text")],
        Discriminator(_json_kind),
    ]


def _bounded(places: int, maximum: Decimal) -> AfterValidator:
    """Greater than zero, at most `maximum`, at most `places` decimals (trailing zeros aside)."""
    def check(value: Decimal | str) -> Decimal:
        number = _read(value)
        if number <= 0:
            raise invalid("must be greater than zero")
        if number > maximum:
            raise invalid(f"must be at most {maximum}")
        if number != number.quantize(Decimal(1).scaleb(-places)):
            raise invalid(f"at most {places} decimals")
        return number

    return AfterValidator(check)


def _plain(number: Decimal) -> Decimal:
    """Without trailing zeros or exponent: `2.50` → `2.5`, `1E+2` → `100`."""
    return Decimal(money.normalized_text(number))


def _cents(number: Decimal) -> Decimal:
    return number.quantize(money.CENT)


_DECIMAL = gate(_DECIMAL_HINT)
Money = Annotated[Decimal, Shape(_number_shape(MAX_MONEY)), _DECIMAL, _bounded(2, MAX_MONEY),
                  AfterValidator(_cents)]
Quantity = Annotated[Decimal, Shape(_number_shape(MAX_QUANTITY)), _DECIMAL,
                     _bounded(QUANTITY_PLACES, MAX_QUANTITY), AfterValidator(_plain)]
ExchangeRate = Annotated[Decimal, Shape(_number_shape(MAX_EXCHANGE_RATE)), _DECIMAL,
                         _bounded(RATE_PLACES, MAX_EXCHANGE_RATE), AfterValidator(_plain)]


def _rate(value: int | str) -> Decimal:
    rate = _read(value)
    return _plain(rate) if rate else Decimal(0)


TaxRate = Annotated[Decimal, Shape(Annotated[
    Annotated[Literal[0, 16, 18], Tag("number")]  # the ITBIS rates, percent
    | Annotated[_Str, StringConstraints(pattern=RATE_PATTERN), Tag("text")],
    Discriminator(_json_kind),
]), gate(_RATE_HINT), AfterValidator(_rate)]


def _date(value: str) -> dt.date:
    text = ascii_form(value)
    assert text is not None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError as exc:
        raise invalid(_DATE_HINT) from exc
    if day < EARLIEST_DATE:
        raise invalid(f"must not be before {EARLIEST_DATE.isoformat()}")
    return day


_DateText = Annotated[_Str, StringConstraints(pattern=DATE_PATTERN), gate(_DATE_HINT)]


def _optional_date(value: str | None) -> dt.date | None:
    return None if value is None else _date(value)


Date = Annotated[dt.date, Shape(_DateText), AfterValidator(_date)]
OptionalDate = Annotated[dt.date | None, Shape(_DateText | None), AfterValidator(_optional_date)]


def _currency(value: str | None) -> str:
    text = ascii_form(value or "")
    assert text is not None
    return text.strip().upper() or DEFAULT_CURRENCY


Currency = Annotated[str, Shape(Annotated[_Str, StringConstraints(pattern=CURRENCY_PATTERN),
                                          gate("an ISO 4217 code such as DOP or USD")] | None),
                     AfterValidator(_currency)]


# --- the bodies ------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SupplierIn(_Body):
    name: SupplierName = Field(description="Needs at least one letter or digit (a name of only "
                               "symbols or emoji is refused: it would match every other such "
                               "name).")
    tax_id: TaxIdIn = Field(None, examples=["1-31-24679-6"], description=(
        "RNC (9 digits) or cédula (11 digits); dashes and spaces allowed, check digit verified; "
        "read after NFKC (fullwidth digits are read as ASCII, other digit sets are refused). "
        "Optional: without it the supplier is matched on its normalised name."))
    email: Email = None
    phone: Phone = None


class LineIn(_Body):
    description: Description
    amount: Money = Field(description="Unit price before ITBIS (Alegra's `price`): greater than "
                          "zero, at most 2 decimals (trailing zeros aside), at most "
                          f"{MAX_MONEY}.")
    quantity: Quantity | None = Field(None, description="Omitted or null: 1. Greater than zero, "
                                      "up to 6 decimals.")
    tax_rate: TaxRate | None = Field(None, description="ITBIS percent: 18, 16, or 0 for an "
                                     "exempt line (a decimal string equal to one of them, such "
                                     "as \"18.00\", is read as it). Omitted or null: no tax on "
                                     "the line.")
    category: LineCategory = Field(None, description="Expense account for this line; overrides "
                                   "the receipt's `category`. Needs at least one letter or digit.")


Filename = Annotated[_Str, StringConstraints(min_length=1, max_length=MAX_FILENAME), _STRING,
                     AfterValidator(_required)]


class AttachmentIn(_Body):
    filename: Filename
    content_type: Annotated[_Str, StringConstraints(min_length=1, max_length=100), _STRING,
                            AfterValidator(_required)] = Field(
        examples=["image/jpeg"], description="image/jpeg, image/png, image/webp, image/gif or "
        "application/pdf (case and parameters aside), or application/octet-stream to let the "
        "bytes decide; it must match the bytes' own signature (else 415).")
    data_base64: Annotated[_Str, StringConstraints(min_length=1), _STRING] = Field(
        json_schema_extra={"contentEncoding": "base64"},
        description="The file's bytes, standard base64 (line breaks allowed).")


class ReceiptIn(_Body):
    """A supplier's receipt. Unknown fields are accepted and ignored (they are not stored and do
    not count for idempotency). Field errors answer 422 naming the field's JSON path, e.g.
    `lines[2].amount`. Identifiers, numbers, dates and the currency are read after Unicode NFKC
    normalisation (so fullwidth `１` is `1`); the patterns here list those characters, and any
    other character outside ASCII is refused. No text field may hold a lone surrogate, a control
    character (U+0000–U+001F, U+007F–U+009F, U+2028, U+2029), a bidi override or isolate
    (U+202A–U+202E, U+2066–U+2069), or only invisible characters."""

    supplier: SupplierIn
    date: Date = Field(examples=["2024-05-01"], description="The receipt's date, from "
                       f"{EARLIEST_DATE.isoformat()} to tomorrow (UTC).")
    due_date: OptionalDate = Field(None, description="On or after `date`, at most ten years "
                                   "after it; default `date`.")
    ncf: NcfIn = Field(None, examples=["B0100000001"], description="NCF (B + 10 characters) or "
                       "e-CF (E + 12); its type is kept.")
    category: Category = Field(description="Name of the expense account (created if missing); "
                               "needs at least one letter or digit.")
    currency: Currency = Field(DEFAULT_CURRENCY, description="ISO 4217 code, any case; "
                               "omitted, null or blank: DOP.")
    exchange_rate: ExchangeRate | None = Field(None, description="DOP per unit of `currency`; "
                                               "required unless DOP (where only 1 fits).")
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    total: Money | None = Field(None, description=(
        "Optional check: must equal the sum over lines of amount × quantity plus its ITBIS, "
        "rounded once to the cent, half up; otherwise 422 `total_mismatch` with `expected` and "
        f"`given`. That sum may not pass {MAX_MONEY} (422 on `total`)."))
    attachment: AttachmentIn | None = None


# --- reading a request body ----------------------------------------------------------------


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


def refusal(exc: ValidationError) -> ReceiptInvalid:
    """The first error pydantic found, as a ReceiptInvalid naming its JSON path."""
    error = exc.errors()[0]
    if not error["loc"] and error["type"] == "model_type":
        return ReceiptInvalid(None, "the receipt must be a JSON object")
    return ReceiptInvalid(json_path(error["loc"]), message(error))


def json_path(loc: tuple[int | str, ...]) -> str | None:
    """`("lines", 2, "amount")` → `lines[2].amount`; None for the whole body."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or None


def decode_json(raw: bytes | str, field: str | None = None) -> object:
    """Decode JSON (UTF-8, RFC 8259) with numbers as Decimal or int, never float (pydantic's own
    JSON parser reads numbers through a float, and refuses JSON's lone-surrogate escapes that
    the text rules name on their field). Raises ReceiptInvalid (400 `malformed_json`), also for
    nesting too deep to read."""
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
