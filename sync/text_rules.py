"""The Unicode rules for partner input (pure): one place for what is read and what is stored.
`ascii_form` (NFKC, then ASCII only), `storable_problem` (lone surrogates, control and bidi
control characters), `has_visible`, and `nfkc_class` (the patterns the contract publishes).
Design: docs/receipts.md ("The Unicode rules").
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Mc", "Me"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Every compatibility decomposition to an ASCII character is in planes 0 and 1 (plane 2's are
# CJK ideographs), so scanning them finds all of NFKC's readings of ASCII.
_COMPATIBILITY_PLANES = range(0x80, 0x20000)
_CLASS_SPECIAL = frozenset("\\]^-[")


def ascii_form(text: str) -> str | None:
    """`text` after NFKC if that is all ASCII, else None."""
    if _SURROGATE.search(text):
        return None  # NFKC keeps them; they are not ASCII either way
    normal = unicodedata.normalize("NFKC", text)
    return normal if normal.isascii() else None


def ascii_digits(text: str) -> str:
    """The ASCII digits of `text` after NFKC, everything else dropped (for forgiving reads of
    numbers typed by hand in Alegra)."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if "0" <= ch <= "9")


def storable_problem(text: str) -> str | None:
    """Why `text` may not be stored (a sentence for the API error), or None if it may."""
    if _SURROGATE.search(text):
        return "not valid Unicode: a lone surrogate (a character cut in half?)"
    if _CONTROL.search(text):
        return "control characters are not allowed"
    if _BIDI.search(text):
        return "bidirectional override and isolate characters are not allowed"
    return None


def has_visible(text: str) -> bool:
    """Whether any character of `text` shows on a screen."""
    return any(
        ch not in _BLANK_LETTERS and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
        for ch in text
    )


def nfkc_class(ascii_chars: str) -> str:
    """A character class (`[...]`, literal characters and ranges) matching each of
    `ascii_chars` and each single character whose NFKC form is one of them."""
    points = sorted({ord(ch) for ch in ascii_chars} | {
        ord(ch) for ch, normal in _nfkc_ascii_readings() if normal in ascii_chars})
    runs: list[list[int]] = []
    for point in points:
        if runs and point == runs[-1][1] + 1:
            runs[-1][1] = point
        else:
            runs.append([point, point])
    return "[" + "".join(_class_run(first, last) for first, last in runs) + "]"


def _class_run(first: int, last: int) -> str:
    if first == last:
        return _class_char(first)
    joint = "" if last == first + 1 else "-"
    return _class_char(first) + joint + _class_char(last)


def _class_char(point: int) -> str:
    ch = chr(point)
    return "\\" + ch if ch in _CLASS_SPECIAL else ch


@cache
def _nfkc_ascii_readings() -> tuple[tuple[str, str], ...]:
    """(character, its NFKC form) for each non-ASCII character NFKC reads as one ASCII one."""
    found = []
    for point in _COMPATIBILITY_PLANES:
        ch = chr(point)
        if 0xD800 <= point <= 0xDFFF or not unicodedata.decomposition(ch):
            continue
        normal = unicodedata.normalize("NFKC", ch)
        if len(normal) == 1 and normal.isascii():
            found.append((ch, normal))
    return tuple(found)
