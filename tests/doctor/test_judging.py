"""`sync.doctor`'s pure judging: each check confirmed, contradicted (with its evidence), or
without evidence."""

from __future__ import annotations

from sync import doctor
from sync.doctor import CONFIRMED, CONTRADICTED, NO_EVIDENCE


def _contact(cid: str, number: str, kind: str | None) -> dict[str, object]:
    return {"id": cid, "identification": number,
            "identificationObject": {"type": kind, "number": number}}


def test_identification_types_confirmed_contradicted_and_unknown() -> None:
    good = [_contact("1", "1-31-24679-6", "RNC"), _contact("2", "00113918205", "CED")]
    assert doctor.judge_identification_types(good).verdict == CONFIRMED
    bad = doctor.judge_identification_types([*good, _contact("3", "131246796", "NIT")])
    assert bad.verdict == CONTRADICTED
    assert "contact 3" in bad.evidence
    assert "'NIT'" in bad.evidence
    untyped = [_contact("4", "131246796", None), {"id": "5", "identificationObject": None}]
    assert doctor.judge_identification_types(untyped).verdict == NO_EVIDENCE
    assert doctor.judge_identification_types([]).verdict == NO_EVIDENCE


def test_ncf_field_confirmed_in_object_or_list_contradicted_elsewhere() -> None:
    as_object = {"id": "7", "numberTemplate": {"number": "B0100000005"}}
    as_list = {"id": "8", "numberTemplate": [{"number": "B01-0000-0006", "prefix": None}]}
    assert doctor.judge_ncf_field([as_object, as_list]).verdict == CONFIRMED
    elsewhere = {"id": "9", "numberTemplate": [{"fullNumber": "B0100000007", "number": "7"}]}
    found = doctor.judge_ncf_field([as_object, elsewhere])
    assert found.verdict == CONTRADICTED
    assert "bill 9" in found.evidence
    assert "numberTemplate[0].fullNumber" in found.evidence
    at_root = doctor.judge_ncf_field([{"id": "10", "number": "B0100000008"}])
    assert at_root.verdict == CONTRADICTED
    assert "number='B0100000008'" in at_root.evidence
    no_ncf = [{"id": "11", "numberTemplate": {"number": "42"}}, {"id": "12"}]
    assert doctor.judge_ncf_field(no_ncf).verdict == NO_EVIDENCE


def _headers(remaining: int, reset: str) -> dict[str, str]:
    return {"x-rate-limit-limit": "150", "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": reset}


def test_rate_headers_confirmed_contradicted_and_unknown() -> None:
    counting = [_headers(149, "58"), _headers(148, "57"), _headers(147, "57")]
    assert doctor.judge_rate_headers(counting).verdict == CONFIRMED
    missing = doctor.judge_rate_headers([_headers(149, "58"), {"x-rate-limit-limit": "150"}])
    assert missing.verdict == CONTRADICTED
    assert "answer 2 lacks" in missing.evidence
    epoch = doctor.judge_rate_headers([_headers(149, "1733580000")])
    assert epoch.verdict == CONTRADICTED
    assert "1733580000" in epoch.evidence
    rising = doctor.judge_rate_headers([_headers(149, "10"), _headers(148, "20")])
    assert rising.verdict == CONTRADICTED
    assert "Reset 10 → 20" in rising.evidence
    assert doctor.judge_rate_headers([]).verdict == NO_EVIDENCE


def test_categories_paging_confirmed_contradicted_and_unknown() -> None:
    a, b = {"id": "5001"}, {"id": "5002"}
    assert doctor.judge_categories_paging([a], [b]).verdict == CONFIRMED
    repeated = doctor.judge_categories_paging([a], [a])
    assert repeated.verdict == CONTRADICTED
    assert "both gave category 5001" in repeated.evidence
    whole = doctor.judge_categories_paging([a, b], [a, b])
    assert whole.verdict == CONFIRMED
    assert "whole list" in whole.evidence
    assert doctor.judge_categories_paging([a], []).verdict == NO_EVIDENCE
    assert doctor.judge_categories_paging([], []).verdict == NO_EVIDENCE


def test_identification_search_confirmed_contradicted_and_unknown() -> None:
    contact = {"id": "3", "identification": "1-31-24679-6"}
    assert doctor.pick_searchable([{"id": "1", "identification": None}, contact]) == contact
    found = doctor.judge_identification_search(
        contact, {"131246796": [], "1-31-24679-6": [contact]})
    assert found.verdict == CONFIRMED
    assert "'131246796': not found" in found.evidence
    lost = doctor.judge_identification_search(
        contact, {"131246796": [], "1-31-24679-6": [{"id": "9"}]})
    assert lost.verdict == CONTRADICTED
    assert "contact 3 holds '1-31-24679-6'" in lost.evidence
    assert doctor.judge_identification_search(None, {}).verdict == NO_EVIDENCE


def test_exit_status_and_json_shape() -> None:
    ok = doctor.Finding("g", CONFIRMED, "e")
    assert doctor.exit_status([ok, doctor.Finding("h", NO_EVIDENCE, "x")]) == 0
    assert doctor.exit_status([ok, doctor.Finding("h", CONTRADICTED, "x")]) == 1
    assert ok.as_json() == {"guess": "g", "verdict": CONFIRMED, "evidence": "e"}
