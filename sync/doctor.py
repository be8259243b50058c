"""`alegra-sync doctor`'s judging: the service's [unverified] guesses about Alegra, settled from
a company's own data. Pure: each check takes JSON already fetched (`sync/commands/doctor.py`
does the reading) and returns one `Finding`.

A verdict is `confirmed`, `contradicted` (the evidence names the records and what they hold) or
`no evidence` (the evidence says what data would settle it). No data is never a contradiction.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sync.alegra.payloads import IDENTIFICATION_TYPES, NCF_FIELD
from sync.alegra.responses import rate_headers
from sync.dominican import compact_ncf, digits

CONFIRMED = "confirmed"
CONTRADICTED = "contradicted"
NO_EVIDENCE = "no evidence"
SHOWN = 5  # records named in a finding's evidence, at most
WINDOW_S = 60.0  # Alegra's rate window: a Reset in seconds never exceeds it

Json = dict[str, Any]
_NCF = re.compile(r"(?:B\d{10}|E\d{12}|[A-Z]\d{18})")


@dataclass(frozen=True)
class Finding:
    guess: str
    verdict: str
    evidence: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def exit_status(findings: Sequence[Finding]) -> int:
    """0 when nothing is contradicted, 1 otherwise."""
    return 1 if any(f.verdict == CONTRADICTED for f in findings) else 0


def _n(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _listed(items: Sequence[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return "; ".join(items[:SHOWN]) + more


# --- 1. identification type codes -------------------------------------------------------------

ID_GUESS = (f"identification type codes: {IDENTIFICATION_TYPES['RNC']!r} for a 9-digit RNC, "
            f"{IDENTIFICATION_TYPES['CEDULA']!r} for an 11-digit cédula")


def judge_identification_types(contacts: Sequence[Mapping[str, Any]]) -> Finding:
    """The `identificationObject.type` of each contact with a 9- or 11-digit number."""
    expected = {9: IDENTIFICATION_TYPES["RNC"], 11: IDENTIFICATION_TYPES["CEDULA"]}
    agree: list[str] = []
    differ: list[str] = []
    for contact in contacts:
        ident = contact.get("identificationObject")
        if not isinstance(ident, Mapping) or not isinstance(ident.get("number"), str):
            continue
        length = len(digits(ident["number"]))
        if length not in expected or ident.get("type") in (None, ""):
            continue
        seen = f"contact {contact.get('id')} ({length} digits) has type {ident['type']!r}"
        (agree if ident["type"] == expected[length] else differ).append(seen)
    if differ:
        return Finding(ID_GUESS, CONTRADICTED, _listed(differ))
    if agree:
        return Finding(ID_GUESS, CONFIRMED, f"{len(agree)} contact(s) agree: {_listed(agree)}")
    return Finding(ID_GUESS, NO_EVIDENCE, "no contact with a typed 9- or 11-digit identification:"
                   " one typed in Alegra's web app (an RNC and a cédula) would settle it")


# --- 2. where a bill keeps its NCF ------------------------------------------------------------

NCF_GUESS = f"a bill's NCF is kept in `{'.'.join(NCF_FIELD)}`"


def ncf_places(bill: Mapping[str, Any]) -> dict[str, str]:
    """Every field of a bill holding an NCF-shaped value: path → the value."""
    outer, _ = NCF_FIELD
    found: dict[str, str] = {}
    template = bill.get(outer)
    templates = template if isinstance(template, list) else [template]
    for i, each in enumerate(templates):
        if not isinstance(each, Mapping):
            continue
        where = f"{outer}[{i}]" if isinstance(template, list) else outer
        for key in ("fullNumber", "billNumber", "number"):
            _note(found, f"{where}.{key}", each.get(key))
    for key in ("billNumber", "number"):
        _note(found, key, bill.get(key))
    return found


def _note(found: dict[str, str], path: str, value: Any) -> None:
    if isinstance(value, str | int) and not isinstance(value, bool):
        compact = compact_ncf(str(value))
        if compact and _NCF.fullmatch(compact):
            found[path] = str(value)


def _is_guessed_place(path: str) -> bool:
    outer, inner = NCF_FIELD
    return re.fullmatch(rf"{outer}(\[\d+\])?\.{inner}", path) is not None


def judge_ncf_field(bills: Sequence[Mapping[str, Any]]) -> Finding:
    agree: list[str] = []
    differ: list[str] = []
    for bill in bills:
        places = ncf_places(bill)
        if not places:
            continue
        held = ", ".join(f"{path}={value!r}" for path, value in places.items())
        seen = f"bill {bill.get('id')}: {held}"
        (agree if any(_is_guessed_place(p) for p in places) else differ).append(seen)
    if differ:
        return Finding(NCF_GUESS, CONTRADICTED, "NCF elsewhere: " + _listed(differ))
    if agree:
        return Finding(NCF_GUESS, CONFIRMED, f"{len(agree)} bill(s) agree: {_listed(agree)}")
    return Finding(NCF_GUESS, NO_EVIDENCE, "no bill with an NCF-shaped number: a supplier bill "
                   "with its NCF typed in Alegra's web app would settle it")


# --- 3. the rate-limit headers ----------------------------------------------------------------

RATE_GUESS = ("every answer carries X-Rate-Limit-Limit, -Remaining and -Reset; Reset counts "
              "down the window in seconds")


def judge_rate_headers(responses: Sequence[Mapping[str, str]]) -> Finding:
    """`responses`: each answer's headers, in the order they came."""
    if not responses:
        return Finding(RATE_GUESS, NO_EVIDENCE, "no answer from Alegra to read headers from")
    read = [rate_headers(headers) for headers in responses]
    missing = [f"answer {i + 1} lacks {', '.join(k for k, v in r.items() if v is None)}"
               for i, r in enumerate(read) if None in r.values()]
    if missing:
        return Finding(RATE_GUESS, CONTRADICTED, _listed(missing))
    too_big = [f"answer {i + 1}: Reset {_n(r['reset_s'])}" for i, r in enumerate(read)
               if r["reset_s"] > WINDOW_S]
    if too_big:
        return Finding(RATE_GUESS, CONTRADICTED, "Reset beyond a minute window (not seconds "
                       "left?): " + _listed(too_big))
    rising = [f"answers {i} → {i + 1}: Remaining {a['remaining']} → {b['remaining']}, Reset "
              f"{_n(a['reset_s'])} → {_n(b['reset_s'])}"
              for i, (a, b) in enumerate(itertools.pairwise(read), start=1)
              if b["remaining"] < a["remaining"] and b["reset_s"] > a["reset_s"]]
    if rising:
        return Finding(RATE_GUESS, CONTRADICTED, "Reset grew within one window: "
                       + _listed(rising))
    last = read[-1]
    return Finding(RATE_GUESS, CONFIRMED, f"{len(read)} answer(s) all carry the three headers; "
                   f"last: Limit {last['limit']}, Remaining {last['remaining']}, Reset "
                   f"{_n(last['reset_s'])}s")


# --- 4. /categories paging --------------------------------------------------------------------

CATEGORIES_GUESS = ("`/categories` honours `start` and `limit`, or ignores both and sends its "
                    "whole list (both are read completely; honouring `limit` but not `start` "
                    "is not)")


def judge_categories_paging(
    first: Sequence[Mapping[str, Any]], second: Sequence[Mapping[str, Any]]
) -> Finding:
    """`first`, `second`: the rows of `start=0&limit=1` and `start=1&limit=1`."""
    if len(first) > 1:
        return Finding(CATEGORIES_GUESS, CONFIRMED, f"limit=1 answered {len(first)} rows: "
                       "paging ignored, the whole list sent")
    if not first or not second:
        return Finding(CATEGORIES_GUESS, NO_EVIDENCE, "fewer than 2 categories: a chart of "
                       "accounts with two or more would settle it")
    a, b = str(first[0].get("id")), [str(r.get("id")) for r in second]
    if b == [a]:
        return Finding(CATEGORIES_GUESS, CONTRADICTED, f"start=0 and start=1 (limit=1) both "
                       f"gave category {a}: `limit` honoured, `start` ignored")
    return Finding(CATEGORIES_GUESS, CONFIRMED, f"start=0 gave category {a}, start=1 gave "
                   f"{', '.join(b)}: paged")


# --- 5. finding a contact by its identification -----------------------------------------------

SEARCH_GUESS = ("a contact is found by its identification searched bare and with dashes "
                "(one of the two forms finds it)")


def pick_searchable(contacts: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first contact with a 9- or 11-digit identification, to search for."""
    for contact in contacts:
        number = contact.get("identification")
        if isinstance(number, str) and len(digits(number)) in (9, 11):
            return contact
    return None


def judge_identification_search(
    contact: Mapping[str, Any] | None, found_by: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Finding:
    """`found_by`: the search form (bare, dashed) → the contacts Alegra listed for it."""
    if contact is None:
        return Finding(SEARCH_GUESS, NO_EVIDENCE, "no contact with a 9- or 11-digit "
                       "identification to search for")
    wanted = str(contact.get("id"))
    hits = {form: any(str(r.get("id")) == wanted for r in rows) for form, rows in found_by.items()}
    shown = ", ".join(f"{form!r}: {'found' if hit else 'not found'}" for form, hit in hits.items())
    held = f"contact {wanted} holds {contact.get('identification')!r}; {shown}"
    if any(hits.values()):
        return Finding(SEARCH_GUESS, CONFIRMED, held)
    return Finding(SEARCH_GUESS, CONTRADICTED, held)


def format_findings(findings: Sequence[Finding]) -> str:
    """One block per guess, as an operator reads it."""
    return "\n".join(f"{f.verdict:<13} {f.guess}\n{'':<14}{f.evidence}" for f in findings)
