"""Dominican identifiers — RNC, cédula, NCF — validated by python-stdnum (whitelists included).

Pure functions. `normalize_tax_id` is strict (partner input); `loose_tax_id` is forgiving
(records typed by hand in Alegra may carry dashes, spaces or fail the check digit, and must still
be matched against a partner's valid number). Both read a number through
`text_rules.ascii_form` (NFKC), so `１３１２４６７９６` is `131246796`, and keep ASCII digits only:
what they return is always ASCII.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from stdnum.do import cedula, ncf, rnc
from stdnum.exceptions import ValidationError

from sync.text_rules import ascii_digits, ascii_form

TaxKind = Literal["RNC", "CEDULA"]

_NCF_SEPARATORS = re.compile(r"[\s\-.]", re.ASCII)
_TAX_ID_CHARS = re.compile(r"[0-9\s\-.]*", re.ASCII)
_ASCII_ONLY = "only ASCII digits 0-9, spaces, dots and dashes are allowed"


class InvalidTaxId(ValueError):
    """Not a valid RNC (9 digits) or cédula (11 digits). `reason` says why, for the API error."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason


class InvalidNcf(ValueError):
    """Not a valid NCF / e-CF number. `reason` says why."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason


@dataclass(frozen=True)
class TaxId:
    number: str  # digits only
    kind: TaxKind


@dataclass(frozen=True)
class Ncf:
    number: str  # compact, upper case: B0100000001, E310000000001
    type_code: str  # B01, E31, ... (for the legacy 19-char form, the type inside it)


def digits(value: str) -> str:
    """The ASCII digits of `value` after NFKC; anything else, other digit sets included, is
    dropped."""
    return ascii_digits(value)


def normalize_tax_id(raw: str) -> TaxId:
    """Validate an RNC or cédula, dashes and spaces allowed, read after NFKC. Raises
    InvalidTaxId."""
    text = ascii_form(raw)
    if text is None or not _TAX_ID_CHARS.fullmatch(text):
        raise InvalidTaxId(raw, _ASCII_ONLY)
    number = digits(text)
    if len(number) == 9:
        if not rnc.is_valid(number):
            raise InvalidTaxId(raw, "not a valid RNC (check digit does not match)")
        return TaxId(number, "RNC")
    if len(number) == 11:
        if not cedula.is_valid(number):
            raise InvalidTaxId(raw, "not a valid cédula (check digit does not match)")
        return TaxId(number, "CEDULA")
    raise InvalidTaxId(raw, f"an RNC has 9 digits and a cédula 11; got {len(number)}")


def loose_tax_id(raw: str | None) -> str | None:
    """Digits of an identification as Alegra stores it, if it has the length of an RNC/cédula."""
    if not raw:
        return None
    number = digits(str(raw))
    return number if len(number) in (9, 11) else None


def compact_ncf(raw: str) -> str | None:
    """The one reading of an NCF as written (partner input, or a bill's number in Alegra):
    after NFKC, without spaces, dots and dashes, upper case; None when anything outside ASCII
    remains. Not validated: a bill typed in Alegra may carry a number that is no NCF."""
    text = ascii_form(raw)
    return None if text is None else _NCF_SEPARATORS.sub("", text).upper()


def normalize_ncf(raw: str) -> Ncf:
    """Validate an NCF (B + 2 + 8), e-CF (E + 2 + 10) or legacy 19-char NCF, read after NFKC.
    Raises InvalidNcf."""
    number = compact_ncf(raw)
    if number is None:
        raise InvalidNcf(raw, "only ASCII letters and digits (with spaces, dots or dashes)")
    try:
        number = ncf.validate(number)
    except ValidationError as exc:
        raise InvalidNcf(raw, _ncf_reason(number, exc)) from exc
    type_code = number[:3] if len(number) in (11, 13) else "B" + number[9:11]
    return Ncf(number, type_code)


def _ncf_reason(number: str, exc: ValidationError) -> str:
    if len(number) not in (11, 13, 19):
        return "an NCF has 11 characters (B0100000001), an e-CF 13 (E310000000001)"
    if number[:1] not in ("B", "E", "A", "P") or not number[1:].isdigit():
        return "an NCF starts with B (or E for an e-CF) followed by digits"
    return f"unknown NCF document type {number[:3]}: {exc}"
