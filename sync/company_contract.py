"""A company as an operator adds it (`POST /v1/companies`, `alegra-sync companies add`), declared
once (pydantic): the same rules for both, and the schema /openapi.json publishes. Also the
company id: a slug of the name (lowercase ASCII letters, digits and dashes).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, Strict

from sync.receipt_contract import gate, invalid
from sync.text_rules import has_visible, storable_problem

RESERVED_ID = "default"  # sync.store.db.DEFAULT_COMPANY, the environment's account (pure here)
MAX_NAME = 100
MAX_ID = 63
MAX_EMAIL = 254
MAX_TOKEN = 500
MAX_URL = 500
COMPANY_ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
_COMPANY_ID = re.compile(COMPANY_ID_PATTERN)
_VISIBLE = r"[\x21-\x7e]"  # printable ASCII but the space: HTTP Basic sends these as they are
_LOCAL = r"[\x21-\x3f\x41-\x7e]"  # the same without `@`
EMAIL_PATTERN = f"^{_LOCAL}+@{_LOCAL}+\\.{_LOCAL}+$"
TOKEN_PATTERN = f"^{_VISIBLE}+$"
URL_PATTERN = f"^https?://{_VISIBLE}+$"


class CompanyIdInvalid(ValueError):
    """A name that makes no usable id; the message says why."""


def company_id(name: str) -> str:
    """The id of a company named `name`: accents dropped, lowercase ASCII letters and digits,
    every other run of characters one dash (`Ferretería Ochoa, S.R.L.` → `ferreteria-ochoa-s-r-l`).
    Raises CompanyIdInvalid when nothing is left, or for the reserved `default`."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:MAX_ID].rstrip("-")
    if not slug:
        raise CompanyIdInvalid("needs at least one letter (a-z) or digit to make the company's id")
    if slug == RESERVED_ID:
        raise CompanyIdInvalid(
            f"its id would be {RESERVED_ID!r}, which is reserved for the environment's account"
        )
    return slug


def is_company_id(text: str) -> bool:
    """Whether `text` has the shape of a company id (existing or not)."""
    return len(text) <= MAX_ID and _COMPANY_ID.fullmatch(text) is not None


def _name(value: str) -> str:
    text = value.strip()
    problem = storable_problem(text) or (None if has_visible(text) else "required")
    if problem is not None:
        raise invalid(problem)
    try:
        company_id(text)
    except CompanyIdInvalid as exc:
        raise invalid(str(exc)) from None
    return text


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if "@" in parts.netloc:
        raise invalid("no user or password in the URL: the e-mail and token are sent apart")
    if not parts.hostname:
        raise invalid("an http(s) URL with a host, e.g. https://api.alegra.com/api/v1")
    return value.rstrip("/")


_Str = Annotated[str, Strict()]
Name = Annotated[_Str, Field(min_length=1, max_length=MAX_NAME, examples=["Ferretería Ochoa"]),
                 gate("must be a string"), AfterValidator(_name)]
Email = Annotated[_Str, Field(max_length=MAX_EMAIL, pattern=EMAIL_PATTERN,
                              examples=["contabilidad@ochoa.do"]),
                  gate("an e-mail address of printable ASCII characters")]
Token = Annotated[_Str, Field(min_length=1, max_length=MAX_TOKEN, pattern=TOKEN_PATTERN),
                  gate(f"1 to {MAX_TOKEN} printable ASCII characters, no spaces")]
BaseUrl = Annotated[_Str, Field(max_length=MAX_URL, pattern=URL_PATTERN,
                                examples=["https://api.alegra.com/api/v1"]),
                    gate("an http(s) URL"), AfterValidator(_base_url)]


class CompanyIn(BaseModel):
    """A company to add: one Alegra account. Its id is a slug of `name`."""

    name: Name
    email: Email = Field(description="The Alegra user's e-mail (HTTP Basic user).")
    token: Token = Field(repr=False, json_schema_extra={"writeOnly": True}, description=(
        "The Alegra API token. Stored encrypted; never in an answer, a log line or a listing."))
    base_url: BaseUrl | None = Field(None, description=(
        "Alegra's API base URL for this account (a sandbox, a test account); null: the "
        "deployment's ALEGRA_BASE_URL."))

    @property
    def id(self) -> str:
        return company_id(self.name)
