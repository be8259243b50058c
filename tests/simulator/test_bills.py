"""Bills: Alegra's validation codes, the computed total, filters, updates and attachments."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.servers import RunningSimulator


@pytest.fixture
def provider_id(simulator: RunningSimulator) -> str:
    contact = simulator.state.person_create_contact(
        name="Ferretería Ochoa", identification="131246796", type=["provider"])
    return str(contact["id"])


@pytest.fixture
def fuel_id(api: httpx.Client) -> str:
    rows = api.get("/categories", params={"format": "plain", "name": "Combustible"}).json()
    return str(rows[0]["id"])


def bill(provider_id: str, fuel_id: str, **changes: Any) -> dict[str, Any]:
    body = {"date": "2025-03-01", "dueDate": "2025-03-31", "provider": {"id": provider_id},
            "numberTemplate": {"number": "B0100000123"},
            "purchases": {"categories": [
                {"id": fuel_id, "price": 100.10, "quantity": 3, "discount": 0.3,
                 "tax": [{"id": "1"}], "observations": "gasoil"},
                {"id": fuel_id, "price": "49.99", "quantity": 1, "tax": [{"id": "3"}]}]}}
    return {**body, **changes}


def test_create_answers_201_with_the_computed_total(
    api: httpx.Client, provider_id: str, fuel_id: str
) -> None:
    """(100.10*3 - 0.30) * 1.18 + 49.99 = 403.99, rounded half up to cents; status open."""
    response = api.post("/bills", json=bill(provider_id, fuel_id, currency={"code": "DOP"}))
    assert response.status_code == 201
    created = response.json()
    assert created["total"] == 403.99
    assert created["status"] == "open"
    assert created["provider"] == {"id": provider_id, "name": "Ferretería Ochoa",
                                   "identification": "131246796"}
    assert created["numberTemplate"] == {"number": "B0100000123"}
    assert created["currency"] == {"code": "DOP"}
    assert api.get(f"/bills/{created['id']}").json() == created


@pytest.mark.parametrize(("change", "code"), [
    ({"provider": {"id": "missing"}}, 11004),
    ({"purchases": {"categories": []}}, 11040),
    ({"purchases": {}}, 11040),
])
def test_refusals_carry_alegras_codes(
    api: httpx.Client, provider_id: str, fuel_id: str, change: dict[str, Any], code: int
) -> None:
    """An unknown provider is 11004 and a bill without lines 11040, both with 400."""
    response = api.post("/bills", json=bill(provider_id, fuel_id, **change))
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_inactive_provider_is_2094(
    api: httpx.Client, simulator: RunningSimulator, provider_id: str, fuel_id: str
) -> None:
    """A provider disabled in Alegra refuses new bills with code 2094."""
    simulator.state.person_edit_contact(provider_id, status="inactive")
    response = api.post("/bills", json=bill(provider_id, fuel_id))
    assert (response.status_code, response.json()["code"]) == (400, 2094)


@pytest.mark.parametrize("change", [
    {"date": "01/03/2025"}, {"dueDate": None}, {"total": 10}, {"status": "open"}, {"id": "9"},
    {"purchases": {"categories": [{"id": "nope", "price": 1, "quantity": 1}]}},
    {"purchases": {"categories": [{"id": "FUEL", "price": 1, "quantity": 1,
                                   "tax": [{"id": "99"}]}]}},
])
def test_malformed_bills_are_400(
    api: httpx.Client, provider_id: str, fuel_id: str, change: dict[str, Any]
) -> None:
    """Bad dates, read-only fields, unknown accounts or taxes are refused and nothing is stored."""
    body = bill(provider_id, fuel_id, **change)
    for line in body["purchases"].get("categories", []):
        line["id"] = fuel_id if line["id"] == "FUEL" else line["id"]
    assert api.post("/bills", json=body).status_code == 400
    assert api.get("/bills").json() == []


def test_list_filters_by_provider_date_and_status(
    api: httpx.Client, simulator: RunningSimulator, provider_id: str, fuel_id: str
) -> None:
    """client_id, date and status narrow the list of bills."""
    other = simulator.state.person_create_contact(name="Otro", type=["provider"])["id"]
    first = api.post("/bills", json=bill(provider_id, fuel_id)).json()
    api.post("/bills", json=bill(provider_id, fuel_id, date="2025-03-02"))
    api.post("/bills", json=bill(other, fuel_id))
    simulator.state.person_void_bill(first["id"])
    found = api.get("/bills", params={"client_id": provider_id, "date": "2025-03-01"}).json()
    assert [b["id"] for b in found] == [first["id"]]
    assert api.get("/bills", params={"status": "void"}).json()[0]["id"] == first["id"]
    assert len(api.get("/bills", params={"status": "open"}).json()) == 2


def test_put_updates_part_of_a_bill_and_recomputes(
    api: httpx.Client, provider_id: str, fuel_id: str
) -> None:
    """PUT with new lines recomputes the total and keeps the rest of the bill."""
    bill_id = api.post("/bills", json=bill(provider_id, fuel_id)).json()["id"]
    lines = {"categories": [{"id": fuel_id, "price": 10, "quantity": 1, "tax": [{"id": "2"}]}]}
    updated = api.put(f"/bills/{bill_id}", json={"purchases": lines}).json()
    assert updated["total"] == 11.6
    assert updated["numberTemplate"] == {"number": "B0100000123"}
    assert api.put("/bills/unknown", json={}).json()["code"] == 11110


def test_delete_removes_the_bill(api: httpx.Client, provider_id: str, fuel_id: str) -> None:
    """A deleted bill answers 404 with code 11110."""
    bill_id = api.post("/bills", json=bill(provider_id, fuel_id)).json()["id"]
    assert api.delete(f"/bills/{bill_id}").status_code == 200
    assert api.get(f"/bills/{bill_id}").json()["code"] == 11110


def test_attachment_is_stored_on_the_bill(
    api: httpx.Client, provider_id: str, fuel_id: str
) -> None:
    """One `file` field is accepted, answered {name, url}, and listed on the bill."""
    bill_id = api.post("/bills", json=bill(provider_id, fuel_id)).json()["id"]
    response = api.post(f"/bills/{bill_id}/attachment",
                        files={"file": ("recibo.pdf", b"%PDF-1.4 data", "application/pdf")})
    assert response.status_code == 201
    assert response.json()["name"] == "recibo.pdf"
    assert httpx.get(response.json()["url"]).content == b"%PDF-1.4 data"
    attachments = api.get(f"/bills/{bill_id}").json()["attachments"]
    assert [a["name"] for a in attachments] == ["recibo.pdf"]


def test_attachment_refusals(api: httpx.Client, provider_id: str, fuel_id: str) -> None:
    """A wrongly named or second file is 904; an unknown bill is 404 with 11110."""
    bill_id = api.post("/bills", json=bill(provider_id, fuel_id)).json()["id"]
    pdf = ("r.pdf", b"x", "application/pdf")
    wrong = api.post(f"/bills/{bill_id}/attachment", files={"upload": pdf})
    two = api.post(f"/bills/{bill_id}/attachment", files=[("file", pdf), ("file", pdf)])
    unknown = api.post("/bills/nope/attachment", files={"file": pdf})
    assert (wrong.status_code, wrong.json()["code"]) == (400, 904)
    assert two.json()["code"] == 904
    assert (unknown.status_code, unknown.json()["code"]) == (404, 11110)


def test_total_rounds_half_up_with_decimal_arithmetic(
    api: httpx.Client, provider_id: str, fuel_id: str
) -> None:
    """0.75 + 18 % = 0.885, which rounds half up to 0.89 (float rounding would give 0.88)."""
    lines = {"categories": [{"id": fuel_id, "price": 0.75, "quantity": 1, "tax": [{"id": "1"}]}]}
    assert api.post("/bills", json=bill(provider_id, fuel_id, purchases=lines)).json()[
        "total"] == 0.89


def test_a_summary_account_or_a_client_only_contact_is_refused(
    api: httpx.Client, simulator: RunningSimulator, provider_id: str, fuel_id: str
) -> None:
    """Lines post to leaf accounts only, and the provider must be classed as a provider."""
    summary = api.get("/categories", params={"format": "plain", "name": "Gastos generales"})
    lines = {"categories": [{"id": summary.json()[0]["id"], "price": 1, "quantity": 1}]}
    client_only = simulator.state.person_create_contact(name="Cliente", type=["client"])["id"]
    assert api.post("/bills", json=bill(provider_id, fuel_id, purchases=lines)).status_code == 400
    refused = api.post("/bills", json=bill(client_only, fuel_id))
    assert refused.json()["code"] == 11004
