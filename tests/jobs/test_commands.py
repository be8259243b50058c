"""What `alegra-sync backfill` and `reconcile` print: progress per phase, and the drift an
operator acts on (pure formatting)."""

from __future__ import annotations

import io
import re

from sync.alegra.budget import RateBudget
from sync.commands.jobs import ProgressBar, format_report
from sync.jobs.runner import Progress


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


def test_the_drift_report_names_each_listed_contact() -> None:
    """Missing, extra and different contacts are printed with their names beside their ids."""
    report = {
        "id": 10, "created_at": "2024-05-01T12:00:00+00:00", "complete": True, "scanned": 3,
        "missing": 1, "extra": 1, "different": 1, "missing_ids": ["91"], "extra_ids": ["12"],
        "differences": {"5": {"email": ["a@example.com", "b@example.com"]}},
        "names": {"91": "Ferretería Ochoa", "12": "Sol del Caribe", "5": "Farmacia Carol"},
    }
    printed = format_report(report)
    assert "missing ids: 91 (Ferretería Ochoa)" in printed
    assert "extra ids: 12 (Sol del Caribe)" in printed
    assert "5 (Farmacia Carol): email: 'a@example.com' → 'b@example.com'" in printed


FRAME = re.compile(r"^(?P<label>[a-z ]+?):(?: +\d+%\|[^|]*\|)? (?P<n>\d+)(?:/(?P<total>\d+))?")


def _frames(output: str) -> list[str]:
    return [f.strip() for f in re.split(r"[\r\n]", output) if f.strip()]


def test_each_progress_frame_carries_its_own_phase_label_and_one_time_left() -> None:
    """At every phase change the label changes with the count (never the previous phase's label
    on the new phase's rows), and a frame shows one time left: the rate budget's, not tqdm's."""
    phases = {"accounts": 100, "taxes": 5, "contacts": 9000, "bills": 90}
    out = io.StringIO()
    bar = ProgressBar(RateBudget(limit=150, window_s=60), "backfill", file=out)
    for phase, total in phases.items():
        bar(Progress(phase, 0, None))
        for done in range(30, total + 30, 30):
            bar(Progress(phase, min(done, total), total))
    bar.close()
    frames = _frames(out.getvalue())
    seen = set()
    for frame in frames:
        match = FRAME.match(frame)
        assert match is not None, frame
        label = match["label"]
        if label == "backfill":  # before the first phase starts
            continue
        phase = label.removeprefix("backfill ")
        seen.add(phase)
        if match["total"] is not None:
            assert int(match["total"]) == phases[phase], frame
        assert int(match["n"]) <= phases[phase], frame
        assert frame.count("left") <= 1, frame
        assert "<" not in frame, frame  # tqdm's own `elapsed<remaining`
    assert seen == set(phases)
    assert "≈2 min left" in out.getvalue()  # 300 pages left at 150 a minute
