"""Cached contacts against Alegra's, field for field (pure): what a reconciliation finds.

A `DriftScan` is fed one page of Alegra's contacts at a time and says which of them must be
written to the cache; at the end it becomes the drift report stored in `drift_reports`:
- missing: in Alegra, not in the cache (or cached as deleted);
- extra: live in the cache, gone from Alegra (known only after a complete scan);
- different: in both, with the fields that differ as `{field: [cached, alegra]}`;
and `names`, each listed contact's name (Alegra's, or the cache's for an extra one), so a report
reads as suppliers, not bare ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sync.alegra.records import ContactRecord

# The normalised fields the product reads. `name_key` derives from `name`, so it is not compared.
COMPARED_FIELDS = ("name", "tax_id", "id_type", "types", "status", "email", "phone")
# Raw keys whose value has more than one shape (REST's string name vs a webhook's object, the
# identification string vs object, type order): compared through the normalised fields above.
_RAW_KEYS_COVERED = frozenset(
    {"id", "name", "identification", "identificationObject", "type", "status", "email",
     "phonePrimary"}
)
# Ids listed per category in a stored report; the counts are always exact.
REPORT_ID_LIMIT = 500

FieldDiffs = dict[str, list[Any]]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def diff_contact(cached: ContactRecord, alegra: ContactRecord) -> FieldDiffs:
    """The fields in which the cached contact differs from Alegra's: `{field: [cached, alegra]}`.

    Raw keys present on one side only are not drift: a list and a single GET may return
    different sets of keys, and the cache stores whichever it last saw.
    """
    diffs: FieldDiffs = {}
    for name in COMPARED_FIELDS:
        mine, theirs = getattr(cached, name), getattr(alegra, name)
        if mine != theirs:
            diffs[name] = [_plain(mine), _plain(theirs)]
    shared = (cached.raw.keys() & alegra.raw.keys()) - _RAW_KEYS_COVERED
    for key in sorted(shared):
        if cached.raw[key] != alegra.raw[key]:
            diffs[f"raw.{key}"] = [cached.raw[key], alegra.raw[key]]
    return diffs


@dataclass
class DriftScan:
    """The running comparison of one reconciliation: cache snapshot in, report out."""

    cached: Mapping[str, ContactRecord]
    seen: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)
    different: dict[str, FieldDiffs] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # Alegra's names of missing/different

    def add_page(self, alegra: Iterable[ContactRecord]) -> list[ContactRecord]:
        """Compare one page of Alegra's contacts; returns those the cache must take (repairs)."""
        repairs: list[ContactRecord] = []
        for record in alegra:
            self.seen.add(record.alegra_id)
            mine = self.cached.get(record.alegra_id)
            if mine is None:
                self.missing.append(record.alegra_id)
                self.names[record.alegra_id] = record.name
                repairs.append(record)
                continue
            diffs = diff_contact(mine, record)
            if diffs:
                self.different[record.alegra_id] = diffs
                self.names[record.alegra_id] = record.name
                repairs.append(record)
        return repairs

    def unseen(self) -> list[str]:
        """Cached ids the scan did not list: candidates for `extra`, once the scan is complete."""
        return sorted(set(self.cached) - self.seen)

    def report(self, *, complete: bool) -> dict[str, Any]:
        """The drift report; `extra` is empty unless the scan was complete."""
        extra = self.extra if complete else []
        listed = [*self.missing[:REPORT_ID_LIMIT], *extra[:REPORT_ID_LIMIT],
                  *list(self.different)[:REPORT_ID_LIMIT]]
        return {
            "complete": complete,
            "scanned": len(self.seen),
            "missing": len(self.missing),
            "extra": len(extra),
            "different": len(self.different),
            "missing_ids": self.missing[:REPORT_ID_LIMIT],
            "extra_ids": extra[:REPORT_ID_LIMIT],
            "differences": dict(list(self.different.items())[:REPORT_ID_LIMIT]),
            "truncated": max(len(self.missing), len(extra), len(self.different)) > REPORT_ID_LIMIT,
            "names": {i: self._name(i) for i in listed},
        }

    def _name(self, alegra_id: str) -> str:
        cached = self.cached.get(alegra_id)
        return self.names.get(alegra_id) or (cached.name if cached is not None else "")
