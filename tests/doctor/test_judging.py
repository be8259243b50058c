"""`sync.doctor`'s pure judging: each check confirmed, contradicted (with its evidence), or
without evidence; the two that may learn do so only from one clear alternative."""

from __future__ import annotations

from typing import Any

from sync import doctor
from sync.doctor import CONFIRMED, CONTRADICTED, NO_EVIDENCE, Check, Verdict
from sync.learned import BUILT_IN, write_shape


def _contact(cid: str, number: str, kind: str | None, name: str = "X") -> dict[str, Any]:
    return {"id": cid, "name": name, "identification": number,
            "identificationObject": {"type": kind, "number": number}}


def test_identification_types_confirmed_contradicted_and_unknown() -> None:
    good = [_contact("1", "1-31-24679-6", "RNC"), _contact("2", "00113918205", "CED")]
    assert doctor.judge_identification_types(good).verdict == CONFIRMED
    assert doctor.judge_identification_types(good).learned == {}
    bad = doctor.judge_identification_types([*good, _contact("3", "131246796", "NIT")])
    assert bad.verdict == CONTRADICTED
    assert "contact 3" in bad.evidence
    assert "'NIT'" in bad.evidence
    assert bad.learned == {}  # RNC contacts disagree among themselves: nothing clear to learn
    untyped = [_contact("4", "131246796", None), {"id": "5", "identificationObject": None}]
    assert doctor.judge_identification_types(untyped).verdict == NO_EVIDENCE
    assert doctor.judge_identification_types([]).verdict == NO_EVIDENCE


def test_identification_types_learns_each_kind_its_contacts_agree_on() -> None:
    theirs = [_contact("1", "1-01-01063-2", "RN"), _contact("2", "101001577", "RN"),
              _contact("3", "402-0070067-5", "CE")]
    found = doctor.judge_identification_types(theirs)
    assert found.verdict == CONTRADICTED
    assert found.learned == {"identification_type.RNC": "RN", "identification_type.CEDULA": "CE"}
    only_rnc = doctor.judge_identification_types(
        [_contact("1", "101001577", "RN"), _contact("2", "00113918205", "CED")])
    assert only_rnc.learned == {"identification_type.RNC": "RN"}


def test_ncf_field_confirmed_in_object_or_list_contradicted_elsewhere() -> None:
    as_object = {"id": "7", "numberTemplate": {"number": "B0100000005"}}
    as_list = {"id": "8", "numberTemplate": [{"number": "B01-0000-0006", "prefix": None}]}
    assert doctor.judge_ncf_field([as_object, as_list]).verdict == CONFIRMED
    elsewhere = {"id": "9", "numberTemplate": [{"fullNumber": "B0100000007", "number": "7"}]}
    found = doctor.judge_ncf_field([as_object, elsewhere])
    assert found.verdict == CONTRADICTED
    assert "bill 9" in found.evidence
    assert "numberTemplate[0].fullNumber" in found.evidence
    assert found.learned == {}  # one bill agrees with us: no clear alternative
    at_root = doctor.judge_ncf_field([{"id": "10", "number": "B0100000008"}])
    assert at_root.verdict == CONTRADICTED
    assert "number='B0100000008'" in at_root.evidence
    assert at_root.learned == {"ncf_field": "number"}
    no_ncf = [{"id": "11", "numberTemplate": {"number": "42"}}, {"id": "12"}]
    assert doctor.judge_ncf_field(no_ncf).verdict == NO_EVIDENCE


def test_ncf_field_learns_the_one_place_every_bill_keeps_it() -> None:
    bills = [{"id": "1", "numberTemplate": [{"fullNumber": "B0100000071"}]},
             {"id": "2", "numberTemplate": {"fullNumber": "B0100000072", "number": "12"}}]
    assert doctor.judge_ncf_field(bills).learned == {"ncf_field": "numberTemplate.fullNumber"}
    two_places = [{"id": "3", "billNumber": "B0100000073", "number": "B0100000073"}]
    assert doctor.judge_ncf_field(two_places).learned == {}  # which one? not clear


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
    next_window = [_headers(148, "1"), _headers(147, "2")]  # the window turned in between
    assert doctor.judge_rate_headers(next_window).verdict == CONFIRMED
    assert doctor.judge_rate_headers([]).verdict == NO_EVIDENCE


def test_reset_countdown_in_seconds() -> None:
    seconds = [(100.0, _headers(149, "58")), (100.5, _headers(148, "58")),
               (102.1, _headers(147, "56"))]
    assert doctor.judge_reset_countdown(seconds).verdict == CONFIRMED
    stuck = doctor.judge_reset_countdown([(0.0, _headers(149, "58")), (3.0, _headers(148, "58"))])
    assert stuck.verdict == CONTRADICTED
    assert "not a countdown" in stuck.evidence
    millis = [(0.0, _headers(149, "58000")), (2.0, _headers(148, "56000"))]
    assert doctor.judge_reset_countdown(millis).verdict == CONTRADICTED
    too_close = [(0.0, _headers(149, "58")), (0.3, _headers(148, "58"))]
    assert doctor.judge_reset_countdown(too_close).verdict == NO_EVIDENCE
    new_window = [(0.0, _headers(2, "1")), (2.0, _headers(149, "59"))]
    assert doctor.judge_reset_countdown(new_window).verdict == NO_EVIDENCE
    # a 2 s window: the second answer may be in the next one, however Remaining compares
    short = [(0.0, _headers(149, "2")), (2.05, _headers(140, "2"))]
    assert doctor.judge_reset_countdown(short).verdict == NO_EVIDENCE
    assert doctor.judge_reset_countdown([]).verdict == NO_EVIDENCE


def test_categories_paging_confirmed_contradicted_and_unknown() -> None:
    a, b = {"id": "5001"}, {"id": "5002"}
    assert doctor.judge_categories_paging([a], [b]).verdict == CONFIRMED
    repeated = doctor.judge_categories_paging([a], [a], [a, b])
    assert repeated.verdict == CONTRADICTED
    assert "both gave category 5001" in repeated.evidence
    # One category only: paging ignored (the whole list, of one) reads the same as `start`
    # ignored; a company with so little data is no evidence, never a contradiction.
    assert doctor.judge_categories_paging([a], [a], [a]).verdict == NO_EVIDENCE
    assert doctor.judge_categories_paging([a], [a]).verdict == NO_EVIDENCE
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


def test_name_search_by_part_of_the_name() -> None:
    contact = {"id": "4", "name": "Distribuidora Caribe SRL"}
    picked = doctor.name_part([{"id": "1", "name": "Ana"}, contact])
    assert picked == (contact, "Distribuidora")
    whole = "Distribuidora Caribe SRL"
    assert doctor.judge_name_search(picked, {"Distribuidora": [contact],
                                             whole: [contact]}).verdict == CONFIRMED
    exact_only = doctor.judge_name_search(picked, {"Distribuidora": [], whole: [contact]})
    assert exact_only.verdict == CONTRADICTED
    assert "'Distribuidora': not found" in exact_only.evidence
    # A common word fills Alegra's page with other contacts: not finding ours there is no
    # evidence (it may be on a later page), not a contradiction.
    others = [{"id": str(100 + i), "name": f"Distribuidora {i}"} for i in range(30)]
    crowded = doctor.judge_name_search(picked, {"Distribuidora": others, whole: [contact]})
    assert crowded.verdict == NO_EVIDENCE
    assert doctor.judge_name_search(None, {}).verdict == NO_EVIDENCE
    assert doctor.name_part([{"id": "1", "name": "Ana"}, {"id": "2", "name": "Ferreteria"}]) is None


def test_date_filter() -> None:
    bills = [{"id": "1", "date": "2026-11-27"}, {"id": "2", "date": "2026-12-07"}]
    bound = doctor.date_bound(bills)
    assert bound == "2026-12-07"
    assert doctor.judge_date_filter(bound, [bills[1]]).verdict == CONFIRMED
    ignored = doctor.judge_date_filter(bound, bills)
    assert ignored.verdict == CONTRADICTED
    assert "bill 1 dated 2026-11-27" in ignored.evidence
    assert doctor.judge_date_filter(bound, []).verdict == CONTRADICTED
    same_day = doctor.date_bound([bills[1], {"id": "3", "date": "2026-12-07"}])
    assert doctor.judge_date_filter(same_day, []).verdict == NO_EVIDENCE


def test_currency_shape() -> None:
    dop = {"id": "1", "currency": {"code": "DOP"}}
    ours = {"id": "2", "currency": {"code": "USD", "exchangeRate": 58.75}}
    theirs = {"id": "3", "currency": {"code": "USD", "rate": 58.75}}
    assert doctor.judge_currency_shape([dop, {"id": "4"}]).verdict == NO_EVIDENCE
    assert doctor.judge_currency_shape([dop, ours]).verdict == CONFIRMED
    found = doctor.judge_currency_shape([ours, theirs, {"id": "5", "currency": "EUR"}])
    assert found.verdict == CONTRADICTED
    assert "bill 3" in found.evidence
    assert "bill 5" in found.evidence
    assert found.learned == {}  # reported, never acted on


def test_subscription_urls() -> None:
    def mask(url: str) -> str:
        return url.replace("secret", "sec…")

    full = [{"id": "1", "url": "https://sync.example/webhooks/alegra/secret"}]
    confirmed = doctor.judge_subscription_urls(full, mask)
    assert confirmed.verdict == CONFIRMED
    assert "secret" not in confirmed.evidence
    bare = doctor.judge_subscription_urls(
        [*full, {"id": "2", "url": "sync.example/webhooks/alegra/secret"}], mask)
    assert bare.verdict == CONTRADICTED
    assert "subscription 2" in bare.evidence
    assert "secret" not in bare.evidence
    assert doctor.judge_subscription_urls([]).verdict == NO_EVIDENCE


def test_learned_settings_make_the_write_shape() -> None:
    assert write_shape({}) == BUILT_IN
    shape = write_shape({"identification_type.CEDULA": "CE", "ncf_field": "billNumber",
                         "identification_type.PASSPORT": "P", "bogus": "x"})
    assert shape.id_types == {"RNC": "RNC", "CEDULA": "CE"}
    assert shape.ncf_field == ("billNumber",)
    assert set(shape.learned) == {"identification_type.CEDULA", "ncf_field"}
    assert write_shape({"ncf_field": "observations"}) == BUILT_IN  # not a place an NCF goes


def test_exit_status_json_shape_and_printing() -> None:
    ok = doctor.Finding(Check.NAME_SEARCH, "g", CONFIRMED, "e")
    assert doctor.exit_status([ok, doctor.Finding(Check.DATE_FILTER, "h", NO_EVIDENCE, "x")]) == 0
    bad = doctor.Finding(Check.NCF_FIELD, "h", CONTRADICTED, "x", {"ncf_field": "billNumber"})
    assert doctor.exit_status([ok, bad]) == 1
    assert ok.as_json() == {"check": "name_search", "guess": "g", "verdict": "confirmed",
                            "evidence": "e", "learned": {}}
    assert Verdict("no evidence") is NO_EVIDENCE
    printed = doctor.format_findings([ok, bad])
    assert "contradicted  h" in printed
    assert "ncf_field = 'billNumber'" in printed
