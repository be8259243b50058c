"""`alegra-sync doctor`'s judging: the service's [unverified] guesses about Alegra, settled from
a company's own data. Pure: each check takes JSON already fetched (`sync/commands/doctor.py`
does the reading) and returns one `Finding`.

A verdict is `confirmed`, `contradicted` (the evidence names the records and what they hold) or
`no evidence` (the evidence says what data would settle it). No data is never a contradiction.
Two checks may also name what the company's own data shows instead of the guess (`learned`,
`sync.learned`): only when every record that speaks to it agrees on one alternative.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sync.alegra.pages import MAX_PAGE_SIZE
from sync.alegra.payloads import DEFAULT_CURRENCY, IDENTIFICATION_TYPES, NCF_FIELD
from sync.alegra.responses import rate_headers
from sync.dominican import compact_ncf, digits
from sync.learned import ID_TYPE_SETTING, NCF_PLACES, NCF_SETTING


class Verdict(StrEnum):
    CONFIRMED = "confirmed"
    CONTRADICTED = "contradicted"
    NO_EVIDENCE = "no evidence"


class Check(StrEnum):
    """Each check's stable name (the key its finding is stored and shown under)."""

    IDENTIFICATION_TYPES = "identification_types"
    NCF_FIELD = "ncf_field"
    RATE_HEADERS = "rate_headers"
    RESET_COUNTDOWN = "reset_countdown"
    CATEGORIES_PAGING = "categories_paging"
    IDENTIFICATION_SEARCH = "identification_search"
    NAME_SEARCH = "name_search"
    DATE_FILTER = "date_filter"
    CURRENCY_SHAPE = "currency_shape"
    SUBSCRIPTION_URLS = "subscription_urls"


CONFIRMED = Verdict.CONFIRMED
CONTRADICTED = Verdict.CONTRADICTED
NO_EVIDENCE = Verdict.NO_EVIDENCE
SHOWN = 5  # records named in a finding's evidence, at most
WINDOW_S = 60.0  # Alegra's rate window: a Reset in seconds never exceeds it
COUNTDOWN_MIN_S = 1.5  # answers this far apart (in one window) show whether Reset counts down
# A Reset of at least this leaves the window open for the next answer (rounded either way, and
# however busy the account): below it, a Reset that grows may be a new window's.
SURELY_OPEN_S = 3.0

Json = dict[str, Any]
_NCF = re.compile(r"(?:B\d{10}|E\d{12}|[A-Z]\d{18})")


@dataclass(frozen=True)
class Finding:
    """One guess judged. `learned`: setting name → the value the company's data shows instead
    (only on a contradiction with one clear alternative; the caller decides to store it)."""

    check: Check
    guess: str
    verdict: Verdict
    evidence: str
    learned: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"check": str(self.check), "guess": self.guess, "verdict": str(self.verdict),
                "evidence": self.evidence, "learned": dict(self.learned)}


def exit_status(findings: Sequence[Finding]) -> int:
    """0 when nothing is contradicted, 1 otherwise."""
    return 1 if any(f.verdict == CONTRADICTED for f in findings) else 0


def _n(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _listed(items: Sequence[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return "; ".join(items[:SHOWN]) + more


def _id(row: Mapping[str, Any]) -> str:
    return str(row.get("id"))


# --- 1. identification type codes -------------------------------------------------------------

ID_GUESS = (f"identification type codes: {IDENTIFICATION_TYPES['RNC']!r} for a 9-digit RNC, "
            f"{IDENTIFICATION_TYPES['CEDULA']!r} for an 11-digit cédula")
_KIND_BY_LENGTH = {9: "RNC", 11: "CEDULA"}


def typed_identifications(contacts: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(contact id, kind, type code) of each contact whose identification is typed and 9 or 11
    digits long."""
    typed = []
    for contact in contacts:
        ident = contact.get("identificationObject")
        if not isinstance(ident, Mapping) or not isinstance(ident.get("number"), str):
            continue
        kind = _KIND_BY_LENGTH.get(len(digits(ident["number"])))
        if kind is None or ident.get("type") in (None, ""):
            continue
        typed.append((_id(contact), kind, str(ident["type"])))
    return typed


def judge_identification_types(contacts: Sequence[Mapping[str, Any]]) -> Finding:
    """The `identificationObject.type` of each contact with a 9- or 11-digit number. A kind all
    of whose typed contacts carry one other code is learned as that code."""
    typed = typed_identifications(contacts)
    digits_of = {"RNC": 9, "CEDULA": 11}
    seen = [(f"contact {cid} ({digits_of[kind]} digits) has type {code!r}",
             code == IDENTIFICATION_TYPES[kind]) for cid, kind, code in typed]
    differ = [text for text, agrees in seen if not agrees]
    agree = [text for text, agrees in seen if agrees]
    if differ:
        return Finding(Check.IDENTIFICATION_TYPES, ID_GUESS, CONTRADICTED, _listed(differ),
                       _clear_codes(typed))
    if agree:
        return Finding(Check.IDENTIFICATION_TYPES, ID_GUESS, CONFIRMED,
                       f"{len(agree)} contact(s) agree: {_listed(agree)}")
    return Finding(Check.IDENTIFICATION_TYPES, ID_GUESS, NO_EVIDENCE,
                   "no contact with a typed 9- or 11-digit identification: one typed in "
                   "Alegra's web app (an RNC and a cédula) would settle it")


def _clear_codes(typed: Sequence[tuple[str, str, str]]) -> dict[str, str]:
    """Per kind, the one code its typed contacts all carry, when it is not ours."""
    learned: dict[str, str] = {}
    for kind, ours in IDENTIFICATION_TYPES.items():
        codes = {code for _, k, code in typed if k == kind}
        if len(codes) == 1 and ours not in codes:
            learned[ID_TYPE_SETTING.format(kind=kind)] = codes.pop()
    return learned


# --- 2. where a bill keeps its NCF ------------------------------------------------------------

NCF_GUESS = f"a bill's NCF is kept in `{'.'.join(NCF_FIELD)}`"


def ncf_places(bill: Mapping[str, Any]) -> dict[str, str]:
    """Every field of a bill holding an NCF-shaped value: path → the value."""
    outer = NCF_FIELD[0]
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


def _place(path: str) -> str:
    """A path without its list index: `numberTemplate[0].number` is `numberTemplate.number`."""
    return re.sub(r"\[\d+\]", "", path)


def judge_ncf_field(bills: Sequence[Mapping[str, Any]]) -> Finding:
    """Where each bill with an NCF-shaped number keeps it. When no bill keeps it where we write
    it and every one keeps it in one same other place, that place is learned."""
    guessed = ".".join(NCF_FIELD)
    agree: list[str] = []
    differ: list[str] = []
    elsewhere: list[set[str]] = []
    for bill in bills:
        places = ncf_places(bill)
        if not places:
            continue
        held = ", ".join(f"{path}={value!r}" for path, value in places.items())
        seen = f"bill {_id(bill)}: {held}"
        normal = {_place(p) for p in places}
        if guessed in normal:
            agree.append(seen)
        else:
            differ.append(seen)
            elsewhere.append(normal)
    if differ:
        return Finding(Check.NCF_FIELD, NCF_GUESS, CONTRADICTED, "NCF elsewhere: "
                       + _listed(differ), _clear_place(elsewhere, mixed=bool(agree)))
    if agree:
        return Finding(Check.NCF_FIELD, NCF_GUESS, CONFIRMED,
                       f"{len(agree)} bill(s) agree: {_listed(agree)}")
    return Finding(Check.NCF_FIELD, NCF_GUESS, NO_EVIDENCE, "no bill with an NCF-shaped number: "
                   "a supplier bill with its NCF typed in Alegra's web app would settle it")


def _clear_place(elsewhere: Sequence[set[str]], *, mixed: bool) -> dict[str, str]:
    """The one place every contradicting bill keeps its NCF in (and no bill agrees with us)."""
    if mixed or not elsewhere:
        return {}
    common = set.intersection(*elsewhere) & set(NCF_PLACES)
    return {NCF_SETTING: common.pop()} if len(common) == 1 else {}


# --- 3. the rate-limit headers ----------------------------------------------------------------

RATE_GUESS = "every answer carries X-Rate-Limit-Limit, -Remaining and -Reset (seconds left)"


def judge_rate_headers(responses: Sequence[Mapping[str, str]]) -> Finding:
    """`responses`: each answer's headers, in the order they came."""
    def found(verdict: Verdict, evidence: str) -> Finding:
        return Finding(Check.RATE_HEADERS, RATE_GUESS, verdict, evidence)

    if not responses:
        return found(NO_EVIDENCE, "no answer from Alegra to read headers from")
    read = [rate_headers(headers) for headers in responses]
    missing = [f"answer {i + 1} lacks {', '.join(k for k, v in r.items() if v is None)}"
               for i, r in enumerate(read) if None in r.values()]
    if missing:
        return found(CONTRADICTED, _listed(missing))
    too_big = [f"answer {i + 1}: Reset {_n(r['reset_s'])}" for i, r in enumerate(read)
               if r["reset_s"] > WINDOW_S]
    if too_big:
        return found(CONTRADICTED, "Reset beyond a minute window (not seconds left?): "
                     + _listed(too_big))
    rising = [f"answers {i} → {i + 1}: Remaining {a['remaining']} → {b['remaining']}, Reset "
              f"{_n(a['reset_s'])} → {_n(b['reset_s'])}"
              for i, (a, b) in enumerate(itertools.pairwise(read), start=1)
              if b["remaining"] < a["remaining"] and b["reset_s"] > a["reset_s"]
              and a["reset_s"] >= SURELY_OPEN_S]
    if rising:
        return found(CONTRADICTED, "Reset grew within one window: " + _listed(rising))
    last = read[-1]
    return found(CONFIRMED, f"{len(read)} answer(s) all carry the three headers; last: Limit "
                 f"{last['limit']}, Remaining {last['remaining']}, Reset {_n(last['reset_s'])}s")


RESET_GUESS = "X-Rate-Limit-Reset counts the window down in seconds"


def judge_reset_countdown(answers: Sequence[tuple[float, Mapping[str, str]]]) -> Finding:
    """`answers`: (seconds on a monotonic clock when it came, its headers), in order. The first
    and the last answer of one window (Remaining went down) at least COUNTDOWN_MIN_S apart: Reset
    should have gone down by about the seconds between them (whole seconds, rounded)."""
    def found(verdict: Verdict, evidence: str) -> Finding:
        return Finding(Check.RESET_COUNTDOWN, RESET_GUESS, verdict, evidence)

    read = [(at, rate_headers(headers)) for at, headers in answers]
    read = [(at, r) for at, r in read if None not in r.values()]
    if len(read) < 2:
        return found(NO_EVIDENCE, "fewer than two answers with the three headers")
    (t0, a), (t1, b) = read[0], read[-1]
    elapsed = t1 - t0
    # One window for sure only when fewer seconds passed than the first Reset left (less one,
    # for its rounding either way): else a new window may have opened in between.
    if (elapsed < COUNTDOWN_MIN_S or b["remaining"] >= a["remaining"]
            or elapsed > a["reset_s"] - 1):
        return found(NO_EVIDENCE, f"no two answers of one window {COUNTDOWN_MIN_S}s apart "
                     f"({elapsed:.1f}s between the first and the last)")
    fell = a["reset_s"] - b["reset_s"]
    seen = (f"over {elapsed:.1f}s Remaining {a['remaining']} → {b['remaining']}, Reset "
            f"{_n(a['reset_s'])} → {_n(b['reset_s'])}")
    if abs(fell - elapsed) <= 1.5:
        return found(CONFIRMED, seen)
    return found(CONTRADICTED, seen + " (not a countdown in seconds)")


# --- 4. /categories paging --------------------------------------------------------------------

CATEGORIES_GUESS = ("`/categories` honours `start` and `limit`, or ignores both and sends its "
                    "whole list (both are read completely; honouring `limit` but not `start` "
                    "is not)")


def judge_categories_paging(
    first: Sequence[Mapping[str, Any]], second: Sequence[Mapping[str, Any]],
    wider: Sequence[Mapping[str, Any]] | None = None,
) -> Finding:
    """`first`, `second`: the rows of `start=0&limit=1` and `start=1&limit=1`; `wider`: those of
    `start=0&limit=2`, read when both gave the same one category (None: not read). With one
    category only, paging ignored (the whole list, of one) looks just like `start` ignored."""
    def found(verdict: Verdict, evidence: str) -> Finding:
        return Finding(Check.CATEGORIES_PAGING, CATEGORIES_GUESS, verdict, evidence)

    if len(first) > 1:
        return found(CONFIRMED, f"limit=1 answered {len(first)} rows: paging ignored, the whole"
                     " list sent")
    if not first or not second:
        return found(NO_EVIDENCE, "fewer than 2 categories: a chart of accounts with two or "
                     "more would settle it")
    a, b = _id(first[0]), [_id(r) for r in second]
    if b == [a] and (wider is None or len(wider) < 2):
        return found(NO_EVIDENCE, f"start=0 and start=1 (limit=1) both gave category {a}, and "
                     "no second category was listed: a chart of accounts with two or more "
                     "would settle it")
    if b == [a]:
        return found(CONTRADICTED, f"start=0 and start=1 (limit=1) both gave category {a}: "
                     "`limit` honoured, `start` ignored")
    return found(CONFIRMED, f"start=0 gave category {a}, start=1 gave {', '.join(b)}: paged")


# --- 5. finding a contact by its identification, and by part of its name ----------------------

SEARCH_GUESS = ("a contact is found by its identification searched bare and with dashes "
                "(one of the two forms finds it)")


def pick_searchable(contacts: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first contact with a 9- or 11-digit identification, to search for."""
    for contact in contacts:
        number = contact.get("identification")
        if isinstance(number, str) and len(digits(number)) in (9, 11):
            return contact
    return None


def _hits(wanted: str, found_by: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, bool]:
    return {form: any(_id(r) == wanted for r in rows) for form, rows in found_by.items()}


def _shown(hits: Mapping[str, bool]) -> str:
    return ", ".join(f"{form!r}: {'found' if hit else 'not found'}" for form, hit in hits.items())


def judge_identification_search(
    contact: Mapping[str, Any] | None, found_by: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Finding:
    """`found_by`: the search form (bare, dashed) → the contacts Alegra listed for it."""
    if contact is None:
        return Finding(Check.IDENTIFICATION_SEARCH, SEARCH_GUESS, NO_EVIDENCE,
                       "no contact with a 9- or 11-digit identification to search for")
    hits = _hits(_id(contact), found_by)
    held = f"contact {_id(contact)} holds {contact.get('identification')!r}; {_shown(hits)}"
    verdict = CONFIRMED if any(hits.values()) else CONTRADICTED
    return Finding(Check.IDENTIFICATION_SEARCH, SEARCH_GUESS, verdict, held)


NAME_GUESS = "a contact is found by part of its name (the `name` filter matches a substring)"
_WORD = re.compile(r"\w{4,}")


def name_part(contacts: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], str] | None:
    """A contact whose name has a word of 4+ letters besides others, and its longest such word:
    searched alone it is a part of the name, not the whole."""
    for contact in contacts:
        name = contact.get("name")
        if not isinstance(name, str):
            continue
        words = _WORD.findall(name)
        if words and max(words, key=len) != name.strip():
            return contact, max(words, key=len)
    return None


def judge_name_search(
    picked: tuple[Mapping[str, Any], str] | None,
    found_by: Mapping[str, Sequence[Mapping[str, Any]]],
) -> Finding:
    """`found_by`: the part and the whole name → the contacts Alegra listed for each."""
    if picked is None:
        return Finding(Check.NAME_SEARCH, NAME_GUESS, NO_EVIDENCE,
                       "no contact with a name of several words to search for")
    contact, part = picked
    hits = _hits(_id(contact), found_by)
    held = f"contact {_id(contact)} is named {contact.get('name')!r}; {_shown(hits)}"
    if not hits.get(part) and len(found_by.get(part, ())) >= MAX_PAGE_SIZE:
        return Finding(Check.NAME_SEARCH, NAME_GUESS, NO_EVIDENCE, held + f" ({part!r} listed "
                       f"a full page of {MAX_PAGE_SIZE} other contacts: it may be on a later one)")
    verdict = CONFIRMED if hits.get(part) else CONTRADICTED
    return Finding(Check.NAME_SEARCH, NAME_GUESS, verdict, held)


# --- 6. the bills' date filter ----------------------------------------------------------------

DATE_GUESS = "`date_afterOrNow=D` lists only the bills dated D or later"


def date_bound(bills: Sequence[Mapping[str, Any]]) -> str | None:
    """The latest date among the bills, when some bill is older (else nothing to tell apart)."""
    dates = sorted({str(b["date"]) for b in bills if isinstance(b.get("date"), str)})
    return dates[-1] if len(dates) > 1 else None


def judge_date_filter(bound: str | None, rows: Sequence[Mapping[str, Any]]) -> Finding:
    """`rows`: what `date_afterOrNow=bound` listed."""
    def found(verdict: Verdict, evidence: str) -> Finding:
        return Finding(Check.DATE_FILTER, DATE_GUESS, verdict, evidence)

    if bound is None:
        return found(NO_EVIDENCE, "no bills on two different dates: bills on two days would "
                     "settle it")
    older = [f"bill {_id(r)} dated {r.get('date')}" for r in rows
             if isinstance(r.get("date"), str) and r["date"] < bound]
    if older:
        return found(CONTRADICTED, f"date_afterOrNow={bound} also listed " + _listed(older))
    if not rows:
        return found(CONTRADICTED, f"date_afterOrNow={bound} listed nothing, though a bill "
                     "has that date")
    return found(CONFIRMED, f"date_afterOrNow={bound} listed {len(rows)} bill(s), none older")


# --- 7. a foreign-currency bill's `currency` --------------------------------------------------

CURRENCY_GUESS = ("a foreign-currency bill's `currency` is `{code, exchangeRate}` "
                  "(DOP per unit)")


def _foreign(bill: Mapping[str, Any]) -> bool:
    currency = bill.get("currency")
    code = currency.get("code") if isinstance(currency, Mapping) else currency
    return isinstance(code, str) and code not in ("", DEFAULT_CURRENCY)


def judge_currency_shape(bills: Sequence[Mapping[str, Any]]) -> Finding:
    foreign = [b for b in bills if _foreign(b)]
    if not foreign:
        return Finding(Check.CURRENCY_SHAPE, CURRENCY_GUESS, NO_EVIDENCE,
                       "no bill in another currency than DOP: one typed in Alegra would "
                       "settle it")
    agree: list[str] = []
    differ: list[str] = []
    for bill in foreign:
        currency = bill["currency"]
        seen = f"bill {_id(bill)}: currency {currency!r}"
        fits = (isinstance(currency, Mapping) and "exchangeRate" in currency
                and isinstance(currency["exchangeRate"], int | float | str))
        (agree if fits else differ).append(seen)
    if differ:
        return Finding(Check.CURRENCY_SHAPE, CURRENCY_GUESS, CONTRADICTED, _listed(differ))
    return Finding(Check.CURRENCY_SHAPE, CURRENCY_GUESS, CONFIRMED, _listed(agree))


# --- 8. how Alegra lists the webhook subscriptions' URLs --------------------------------------

URLS_GUESS = ("Alegra lists a subscription's URL as it was sent, scheme included "
              "(`https://…`; matching tolerates its absence)")


def judge_subscription_urls(
    subscriptions: Sequence[Mapping[str, Any]], mask: Callable[[str], str] | None = None
) -> Finding:
    """`mask`: how a URL is printed (our token in it is a secret); the URL as is without one."""
    def shown(url: str) -> str:
        return mask(url) if mask is not None else url

    urls = [(_id(s), str(s["url"])) for s in subscriptions if isinstance(s.get("url"), str)]
    if not urls:
        return Finding(Check.SUBSCRIPTION_URLS, URLS_GUESS, NO_EVIDENCE,
                       "no webhook subscription listed: the worker's subscriptions job makes them")
    bare = [f"subscription {sid}: {shown(url)!r}" for sid, url in urls if "://" not in url]
    if bare:
        return Finding(Check.SUBSCRIPTION_URLS, URLS_GUESS, CONTRADICTED,
                       "listed without a scheme: " + _listed(bare))
    return Finding(Check.SUBSCRIPTION_URLS, URLS_GUESS, CONFIRMED,
                   f"{len(urls)} subscription(s) listed with their scheme, e.g. "
                   f"{shown(urls[0][1])!r}")


def format_findings(findings: Sequence[Finding]) -> str:
    """One block per guess, as an operator reads it (what it learned, if anything)."""
    blocks = []
    for f in findings:
        block = f"{f.verdict:<13} {f.guess}\n{'':<14}{f.evidence}"
        for name, value in f.learned.items():
            block += f"\n{'':<14}→ this company's data shows {name} = {value!r}"
        blocks.append(block)
    return "\n".join(blocks)
