"""The drift comparison: cached contacts against Alegra's, field for field (pure)."""

from __future__ import annotations

from typing import Any

from sync.alegra.records import contact_from_alegra
from sync.jobs.drift import DriftScan, diff_contact


def contact(contact_id: str = "1", **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": contact_id, "name": "Ferretería Ochoa SRL", "identification": "131246796",
        "identificationObject": {"type": "RNC", "number": "131246796"}, "type": ["provider"],
        "status": "active", "email": "compras@ochoa.do", "phonePrimary": "809-555-0101",
        "address": {"address": "Calle 1", "city": "Santo Domingo"},
    }
    row.update(changes)
    return row


def test_identical_contacts_have_no_drift() -> None:
    """The same contact on both sides differs in nothing."""
    record = contact_from_alegra(contact())
    assert diff_contact(record, contact_from_alegra(contact())) == {}


def test_each_changed_field_is_reported_with_both_values() -> None:
    """A changed name, e-mail and address show as [cached, alegra] pairs, by field."""
    cached = contact_from_alegra(contact())
    alegra = contact_from_alegra(contact(name="Ochoa Hermanos SRL", email=None,
                                         address={"address": "Calle 2", "city": "Santiago"}))
    diffs = diff_contact(cached, alegra)
    assert diffs == {
        "name": ["Ferretería Ochoa SRL", "Ochoa Hermanos SRL"],
        "email": ["compras@ochoa.do", None],
        "raw.address": [{"address": "Calle 1", "city": "Santo Domingo"},
                        {"address": "Calle 2", "city": "Santiago"}],
    }


def test_a_changed_tax_id_and_types_are_drift() -> None:
    """A new RNC and becoming a client too are differences the cache must take."""
    cached = contact_from_alegra(contact())
    alegra = contact_from_alegra(
        contact(identification="1-01-00001-2", type=["client", "provider"]))
    diffs = diff_contact(cached, alegra)
    assert diffs["tax_id"] == ["131246796", "101000012"]
    assert diffs["types"] == [["provider"], ["client", "provider"]]


def test_shape_differences_that_mean_the_same_are_not_drift() -> None:
    """A webhook's object-form name, reordered types, or a key only one side has are not drift."""
    cached = contact_from_alegra(contact(name={"fullname": "Ferretería Ochoa SRL"},
                                         type=["provider"], kindOfPerson="LEGAL_ENTITY"))
    alegra = contact_from_alegra(contact())
    assert diff_contact(cached, alegra) == {}


def test_a_scan_sorts_missing_different_and_unseen() -> None:
    """Across pages: a new contact is missing, an edited one different, an unlisted one unseen;
    the missing and the different are the repairs."""
    cached = {cid: contact_from_alegra(contact(cid)) for cid in ("1", "2", "3")}
    scan = DriftScan(cached)
    first = scan.add_page([contact_from_alegra(contact("1")),
                           contact_from_alegra(contact("2", email="nuevo@ochoa.do"))])
    second = scan.add_page([contact_from_alegra(contact("4"))])
    assert [r.alegra_id for r in first + second] == ["2", "4"]
    assert scan.missing == ["4"]
    assert list(scan.different) == ["2"]
    assert scan.unseen() == ["3"]


def test_extra_is_reported_only_for_a_complete_scan() -> None:
    """An incomplete scan reports no extra contacts: absence from a partial list proves nothing."""
    scan = DriftScan({"1": contact_from_alegra(contact("1"))})
    scan.add_page([contact_from_alegra(contact("2"))])
    scan.extra.append("1")
    assert scan.report(complete=True)["extra_ids"] == ["1"]
    partial = scan.report(complete=False)
    assert (partial["complete"], partial["extra"], partial["extra_ids"]) == (False, 0, [])
    assert (partial["missing"], partial["scanned"]) == (1, 1)


def test_the_report_names_every_listed_contact() -> None:
    """Missing and different contacts carry Alegra's name, an extra one the name it had cached."""
    cached = {cid: contact_from_alegra(contact(cid, name=f"Cached {cid}")) for cid in ("1", "2")}
    scan = DriftScan(cached)
    scan.add_page([contact_from_alegra(contact("1", name="Ochoa Hermanos")),
                   contact_from_alegra(contact("9", name="Sol del Caribe"))])
    scan.extra.append("2")
    report = scan.report(complete=True)
    assert report["names"] == {"9": "Sol del Caribe", "2": "Cached 2", "1": "Ochoa Hermanos"}
