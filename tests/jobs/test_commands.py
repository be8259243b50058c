"""What `alegra-sync reconcile` prints: the drift an operator acts on (pure formatting)."""

from __future__ import annotations

from sync.commands.jobs import format_report


def test_the_printed_report_names_the_counts_ids_and_changed_fields() -> None:
    """Counts for each kind of drift, the ids, and each changed field as old → new."""
    report = {
        "id": 7, "created_at": "2024-05-01T12:00:00+00:00", "complete": True, "scanned": 300,
        "missing": 1, "extra": 2, "different": 1, "missing_ids": ["91"],
        "extra_ids": ["12", "13"],
        "differences": {"5": {"email": ["a@example.com", "b@example.com"]}},
    }
    printed = format_report(report)
    assert "Drift report #7" in printed
    assert "scan complete" in printed
    assert "missing ids: 91" in printed
    assert "extra ids: 12, 13" in printed
    assert "5: email: 'a@example.com' → 'b@example.com'" in printed


def test_an_incomplete_scan_says_extra_contacts_are_not_known() -> None:
    """A scan cut short is flagged, so nobody reads "0 extra" as "nothing was deleted in Alegra"."""
    report = {"id": 8, "created_at": "2024-05-01T12:00:00+00:00", "complete": False,
              "scanned": 60, "missing": 0, "extra": 0, "different": 0}
    assert "INCOMPLETE (extra contacts not determined)" in format_report(report)


def test_long_lists_are_cut_with_a_count_of_the_rest() -> None:
    """Past 20 ids the rest are counted, not printed (the JSON form has them all)."""
    ids = [str(n) for n in range(25)]
    report = {"id": 9, "created_at": "2024-05-01T12:00:00+00:00", "complete": True,
              "scanned": 25, "missing": 25, "extra": 0, "different": 0, "missing_ids": ids}
    assert "… and 5 more" in format_report(report)
