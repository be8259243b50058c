"""Name normalisation for matching suppliers without a tax id, and expense accounts by name.

`name_key("Ferretería Ochoa, S.R.L.")` == `name_key("FERRETERIA OCHOA SRL")`
== "ferreteria ochoa srl". Case, accents, spacing and punctuation are folded; company
suffixes are folded to one spelling.
"""

from __future__ import annotations

import re
import unicodedata

# Spellings of the same legal suffix, after punctuation is removed and spaces collapsed.
_SUFFIXES = {
    "s r l": "srl",
    "s a s": "sas",
    "s a": "sa",
    "e i r l": "eirl",
    "c por a": "cxa",
    "c x a": "cxa",
    "c por a.": "cxa",
}
_SUFFIX_RE = re.compile(r"(?:^| )(" + "|".join(re.escape(s) for s in _SUFFIXES) + r")$")


def strip_accents(text: str) -> str:
    """NFKD without combining marks, and without format characters (zero-width space and
    joiners, soft hyphen, word joiner, BOM): they show as nothing, so `Och\u200boa` is `Ochoa`,
    never a second supplier beside it."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(
        ch for ch in decomposed
        if not unicodedata.combining(ch) and unicodedata.category(ch) != "Cf"
    )


def name_key(name: str) -> str:
    """The matching key of a supplier or account name (pure; empty input gives '')."""
    text = strip_accents(name).lower().replace("&", " y ")
    text = re.sub(r"[^\w\s]", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    match = _SUFFIX_RE.search(text)
    if match:
        text = text[: match.start(1)].rstrip() + " " + _SUFFIXES[match.group(1)]
    return text.strip()


def display_name(name: object) -> str:
    """A contact name from Alegra: REST gives a string, webhooks may give an object."""
    if isinstance(name, str):
        return name.strip()
    if isinstance(name, dict):
        if isinstance(name.get("fullname"), str) and name["fullname"].strip():
            return str(name["fullname"]).strip()
        parts = ("firstName", "secondName", "lastName", "secondLastName")
        return " ".join(str(name[p]).strip() for p in parts if name.get(p)).strip()
    return ""
