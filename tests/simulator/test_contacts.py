"""Contacts: the identification asymmetry, exact searches, paging, partial updates, soft delete."""

from __future__ import annotations

import uuid

import httpx
import pytest
from stdnum.do import cedula, rnc

from tests.support.servers import RunningSimulator

RNC = {"type": "RNC", "number": "131246796"}


def test_identification_is_written_as_object_and_read_as_string(api: httpx.Client) -> None:
    """POST takes {type, number}; GET answers the number as a string plus identificationObject."""
    created = api.post("/contacts", json={"name": "Ferretería Ochoa", "identification": RNC,
                                          "type": ["provider"]})
    assert created.status_code == 201
    read = api.get(f"/contacts/{created.json()['id']}").json()
    assert read["identification"] == "131246796"
    assert read["identificationObject"] == RNC
    assert read["type"] == ["provider"]
    assert read["status"] == "active"


def test_identification_sent_as_string_is_refused(api: httpx.Client) -> None:
    """Sending the read shape (a string) on create is a 400, so the asymmetry cannot hide."""
    response = api.post("/contacts", json={"name": "X", "identification": "131246796"})
    assert response.status_code == 400


def test_name_is_required(api: httpx.Client) -> None:
    """A contact without a name is refused with 400 in Alegra's error shape."""
    response = api.post("/contacts", json={"identification": RNC})
    assert response.status_code == 400
    assert "name" in response.json()["message"]


def test_search_by_identification_matches_only_as_typed(
    api: httpx.Client, simulator: RunningSimulator
) -> None:
    """A contact typed with dashes is not found by its bare digits, only by the dashed text."""
    simulator.state.person_create_contact(name="Ferretería Ochoa", identification="1-31-24679-6",
                                          type=["provider"])
    assert api.get("/contacts", params={"identification": "131246796"}).json() == []
    found = api.get("/contacts", params={"identification": "1-31-24679-6"}).json()
    assert [c["name"] for c in found] == ["Ferretería Ochoa"]


def test_name_filter_is_a_case_insensitive_substring(
    api: httpx.Client, simulator: RunningSimulator
) -> None:
    """`name` finds contacts containing the text in any case; `type` narrows by role."""
    state = simulator.state
    state.person_create_contact(name="Ferretería Ochoa SRL", type=["provider"])
    state.person_create_contact(name="Farmacia Ochoa", type=["client"])
    names = [c["name"] for c in api.get("/contacts", params={"name": "ochoa"}).json()]
    providers = api.get("/contacts", params={"name": "OCHOA", "type": "provider"}).json()
    assert names == ["Ferretería Ochoa SRL", "Farmacia Ochoa"]
    assert [c["name"] for c in providers] == ["Ferretería Ochoa SRL"]


def test_put_is_a_partial_update(api: httpx.Client) -> None:
    """PUT changes only the fields sent, e.g. a client becomes also a provider."""
    contact_id = api.post("/contacts", json={"name": "Colmado Báez", "identification": RNC,
                                             "type": ["client"], "email": "a@b.do"}).json()["id"]
    updated = api.put(f"/contacts/{contact_id}", json={"type": ["client", "provider"]}).json()
    assert updated["type"] == ["client", "provider"]
    assert updated["email"] == "a@b.do"
    assert updated["identification"] == "131246796"


def test_delete_is_soft_and_hides_the_contact(
    api: httpx.Client, simulator: RunningSimulator
) -> None:
    """A deleted contact answers 404 and leaves lists, but the simulator keeps it aside."""
    contact_id = api.post("/contacts", json={"name": "Taller Núñez"}).json()["id"]
    assert api.delete(f"/contacts/{contact_id}").status_code == 200
    assert api.get(f"/contacts/{contact_id}").status_code == 404
    assert api.get("/contacts").json() == []
    assert contact_id in simulator.state.deleted_contacts


def test_paging_with_metadata_and_the_30_row_cap(
    api: httpx.Client, simulator: RunningSimulator
) -> None:
    """Pages hold at most 30 rows; metadata=true wraps them with the total; limit>30 is 400."""
    simulator.state.seed_contacts(45)
    first = api.get("/contacts", params={"start": 0, "limit": 30, "metadata": "true"}).json()
    second = api.get("/contacts", params={"start": 30, "limit": 30}).json()
    assert first["metadata"] == {"total": 45}
    assert len(first["data"]) == 30
    assert len(second) == 15
    assert {c["id"] for c in first["data"]}.isdisjoint(c["id"] for c in second)
    assert api.get("/contacts", params={"limit": 31}).status_code == 400


def test_ids_are_strings_numeric_first_then_uuids(
    api: httpx.Client, simulator: RunningSimulator
) -> None:
    """The first records get numeric-looking string ids, later ones UUIDs, in creation order."""
    simulator.state.seed_contacts(8)
    ids = [c["id"] for c in api.get("/contacts").json()]
    assert all(isinstance(i, str) for i in ids)
    assert ids[:5] == ["1", "2", "3", "4", "5"]
    assert all(uuid.UUID(i) for i in ids[5:])


def test_order_by_name_descending(api: httpx.Client, simulator: RunningSimulator) -> None:
    """order_field and order_direction sort the list."""
    for name in ("Beta", "alfa", "Gamma"):
        simulator.state.person_create_contact(name=name)
    rows = api.get("/contacts", params={"order_field": "name", "order_direction": "DESC"}).json()
    assert [c["name"] for c in rows] == ["Gamma", "Beta", "alfa"]


def test_seeded_contacts_look_like_real_books(simulator: RunningSimulator) -> None:
    """Seeded contacts have valid RNCs or cédulas, some dashed, some client-only."""
    rows = simulator.state.seed_contacts(40)
    numbers = [c["identification"] for c in rows]
    assert all(rnc.is_valid(n) or cedula.is_valid(n) for n in numbers)
    assert any("-" in n for n in numbers)
    assert any(c["type"] == ["client"] for c in rows)
    assert len(set(numbers)) == 40


@pytest.mark.parametrize("bad", [{"type": ["supplier"]}, {"status": "gone"}])
def test_malformed_fields_are_refused(api: httpx.Client, bad: dict[str, object]) -> None:
    """An unknown contact type or status is a 400."""
    assert api.post("/contacts", json={"name": "X", **bad}).status_code == 400
