"""Contrary mode (`SimConfig.contrary`, `alegra-sync simulator --contrary`): an Alegra account
that answers the other way on each of the product's [unverified] guesses, to test
`alegra-sync doctor` and what it learns.

- identification type codes: `RN` for a 9-digit RNC, `CE` for an 11-digit cédula; an API write
  with any other code is refused with a 400 (`errors.INVALID_IDENTIFICATION`);
- a bill's NCF is kept in `numberTemplate[].fullNumber` (a list, as some live bills read): an
  API write's `numberTemplate.number` is Alegra's own sequence there, not kept;
- the contacts' `name` filter matches the whole name only (exactly);
- `GET /categories` ignores `start` and `limit` and sends its whole list;
- `GET /bills` ignores `date_afterOrNow`;
- subscriptions are listed with their URL's scheme stripped;
- a foreign-currency bill reads `currency: {code, rate}`.

`seed` types contacts and bills as a person in Alegra's web app would (done at start unless
`SimConfig.contrary_seed` is off). The normal mode is untouched by all of this.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sync.simulator import errors
from sync.simulator.errors import bad_request

if TYPE_CHECKING:
    from sync.simulator.state import SimState

ID_TYPES = {9: "RN", 11: "CE"}  # digits of the number → the only code accepted for it
NCF_KEY = "fullNumber"
_KEPT_TEMPLATE_KEYS = ("id", "prefix", NCF_KEY)

# What `seed` types in (a contact with an RNC, one with a cédula, three bills on two dates).
SEED_RNC = "1-01-01063-2"
SEED_CEDULA = "402-0070067-5"
SEED_NCFS = ("B0100000071", "B0100000072", "B0100000073")


def check_identification_type(value: Mapping[str, Any]) -> None:
    """An API write's `identification` object: refused (400) unless typed with our code."""
    number = "".join(ch for ch in str(value.get("number")) if ch.isdigit())
    wanted = ID_TYPES.get(len(number))
    if wanted is not None and value.get("type") != wanted:
        raise bad_request(f"El tipo de identificación {value.get('type')!r} no es válido "
                          f"para un número de {len(number)} dígitos",
                          errors.INVALID_IDENTIFICATION)


def number_template(value: Any) -> Any:
    """An API write's `numberTemplate` as this account keeps it: a list, `number` dropped."""
    templates = value if isinstance(value, list) else [value]
    kept = [{k: t[k] for k in _KEPT_TEMPLATE_KEYS if k in t} for t in templates
            if isinstance(t, Mapping)]
    return [t for t in kept if t] or None


def name_matches(row_name: str, wanted: str) -> bool:
    return row_name == wanted


def listed_url(url: str) -> str:
    return url.split("://", 1)[-1]


def seed(state: SimState) -> None:
    """Contacts and bills as typed in Alegra's web app: its codes, its NCF field, its currency."""
    from sync.simulator import bills, contacts  # noqa: PLC0415 -- they import the state module

    company = contacts.create(state, {
        "name": "Distribuidora Caribe SRL", "identification": SEED_RNC,
        "identificationType": ID_TYPES[9], "type": ["provider"]}, typed_by_person=True)
    contacts.create(state, {
        "name": "Juana Almonte Reyes", "identification": SEED_CEDULA,
        "identificationType": ID_TYPES[11], "type": ["provider"]}, typed_by_person=True)
    leaf = next(c for c in state.categories.values() if c["type"] == "expense"
                and not any(o["idParent"] == c["id"] for o in state.categories.values()))
    today = date.today()
    for n, (ncf, day, currency) in enumerate(zip(
            SEED_NCFS, (today - timedelta(days=10), today, today),
            (None, None, {"code": "USD", "rate": 58.75}), strict=True)):
        body: dict[str, Any] = {
            "date": day.isoformat(), "dueDate": day.isoformat(), "provider": {"id": company["id"]},
            "numberTemplate": [{"id": "3", "prefix": None, NCF_KEY: ncf}],
            "purchases": {"categories": [{"id": leaf["id"], "price": 100 + n, "quantity": 1}]},
        }
        if currency is not None:
            body["currency"] = currency
        bills.create(state, body, typed_by_person=True)
