"""GET /v1/cache/*: filters, cursor paging, provenance on every row, the accounts tree."""

from __future__ import annotations

from typing import Any

from sync.alegra.records import flatten_accounts, tax_from_alegra
from sync.store.accounts import upsert_accounts
from sync.store.contacts import mark_contact_deleted
from sync.store.taxes import upsert_taxes
from tests.ops.conftest import OpsApi, contact_json

CHART = [
    {"id": "5", "name": "Gastos", "type": "expense", "code": "6", "children": [
        {"id": "51", "idParent": "5", "name": "Gastos de oficina", "type": "expense", "code": "6.1",
         "children": [{"id": "511", "idParent": "51", "name": "Papelería", "type": "expense",
                       "code": "6.1.1"}]},
        {"id": "52", "idParent": "5", "name": "Viáticos", "type": "expense", "code": "6.2"},
    ]},
    {"id": "1", "name": "Activos", "type": "asset", "code": "1"},
]


def _ids(response: Any) -> list[str]:
    return [row["id"] for row in response.json()["data"]]


def test_contact_rows_carry_alegra_fields_and_provenance(ops: OpsApi) -> None:
    """A cached contact shows Alegra's fields, its source, confirmation time and deleted flag."""
    ops.store.contacts(contact_json("7", "Ferretería Ochoa SRL", "131246796", email="o@x.do"),
                       source="webhook")
    row = ops.get("/v1/cache/contacts/7").json()
    assert row["name"] == "Ferretería Ochoa SRL"
    assert row["tax_id"] == "131246796"
    assert row["type"] == ["provider"]
    assert row["email"] == "o@x.do"
    assert row["source"] == "webhook"
    assert row["deleted"] is False
    assert row["confirmed_at"].startswith("20")
    assert row["alegra"]["identificationObject"] == {"type": "RNC", "number": "131246796"}


def test_unknown_contact_is_404(ops: OpsApi) -> None:
    """An id the cache never saw answers 404 in the one error shape."""
    response = ops.get("/v1/cache/contacts/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_tax_id_filter_accepts_any_formatting(ops: OpsApi) -> None:
    """Dashes, spaces and dots in the tax id filter find the contact stored as digits."""
    ops.store.contacts(contact_json("7", "Ochoa", "1-31-24679-6"),
                       contact_json("8", "Otro", "101010101"))
    for written in ("1-31-24679-6", "131 24679 6", "131246796", "1.31.24679.6"):
        assert _ids(ops.get("/v1/cache/contacts", tax_id=written)) == ["7"]


def test_name_search_is_normalised(ops: OpsApi) -> None:
    """Case, accents and company-suffix punctuation do not matter to `q`."""
    ops.store.contacts(contact_json("7", "Ferretería Ochoa, S.R.L."),
                       contact_json("8", "Papelera Sol"))
    assert _ids(ops.get("/v1/cache/contacts", q="FERRETERIA ochoa srl")) == ["7"]
    assert _ids(ops.get("/v1/cache/contacts", q="ochoa")) == ["7"]
    assert _ids(ops.get("/v1/cache/contacts", q="100%")) == []


def test_type_status_and_deleted_filters(ops: OpsApi) -> None:
    """Type and status narrow the list; deleted contacts appear only when asked for."""
    ops.store.contacts(
        contact_json("1", "A client", type=["client"]),
        contact_json("2", "B supplier"),
        contact_json("3", "C both", type=["client", "provider"], status="inactive"),
        contact_json("4", "D gone"),
    )
    ops.store.run(lambda db: mark_contact_deleted(db, "4", source="reconcile"))
    assert _ids(ops.get("/v1/cache/contacts", type="provider")) == ["2", "3"]
    assert _ids(ops.get("/v1/cache/contacts", type="client", status="active")) == ["1"]
    assert _ids(ops.get("/v1/cache/contacts")) == ["1", "2", "3"]
    with_deleted = ops.get("/v1/cache/contacts", include_deleted="true").json()["data"]
    last = with_deleted[-1]
    assert (last["id"], last["deleted"], last["source"]) == ("4", True, "reconcile")


def test_cursor_pages_through_every_contact_once(ops: OpsApi) -> None:
    """Following next_cursor visits each contact exactly once, in name order."""
    ops.store.contacts(*(contact_json(str(i), f"Proveedor {i:03d}") for i in range(23)))
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 5}
    while True:
        page = ops.get("/v1/cache/contacts", **params).json()
        assert len(page["data"]) <= 5
        seen += [c["name"] for c in page["data"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [f"Proveedor {i:03d}" for i in range(23)]


def test_bad_paging_parameters_are_400(ops: OpsApi) -> None:
    """A limit over 200, a forged cursor or an unknown type answers 400 naming the parameter."""
    for params, field in (({"limit": 201}, "limit"), ({"limit": "x"}, "limit"),
                          ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"), ({"cursor": "%%%"}, "cursor"),
                          ({"type": "vendor"}, "type"), ({"tax_id": "abc"}, "tax_id"),
                          ({"include_deleted": "maybe"}, "include_deleted")):
        response = ops.get("/v1/cache/contacts", **params)
        assert response.status_code == 400, params
        assert response.json()["error"]["field"] == field


def test_accounts_flat_and_filtered(ops: OpsApi) -> None:
    """The flat view lists accounts by code; name (normalised) and type filters narrow it."""
    ops.store.run(lambda db: upsert_accounts(db, flatten_accounts(CHART), source="poll"))
    assert _ids(ops.get("/v1/cache/accounts")) == ["1", "5", "51", "511", "52"]
    assert _ids(ops.get("/v1/cache/accounts", type="asset")) == ["1"]
    flat = ops.get("/v1/cache/accounts", name="PAPELERIA").json()["data"]
    assert [(a["id"], a["is_leaf"], a["source"]) for a in flat] == [("511", True, "poll")]


def test_accounts_tree_keeps_matches_and_their_ancestors(ops: OpsApi) -> None:
    """The tree view nests children; a filter keeps the matching node and the path to it."""
    ops.store.run(lambda db: upsert_accounts(db, flatten_accounts(CHART), source="backfill"))
    whole = ops.get("/v1/cache/accounts", view="tree").json()["data"]
    assert sorted(node["id"] for node in whole) == ["1", "5"]
    expenses = next(node for node in whole if node["id"] == "5")
    assert [c["id"] for c in expenses["children"]] == ["51", "52"]
    filtered = ops.get("/v1/cache/accounts", view="tree", name="papeleria").json()["data"]
    assert [n["id"] for n in filtered] == ["5"]
    assert [c["id"] for c in filtered[0]["children"]] == ["51"]
    assert [c["id"] for c in filtered[0]["children"][0]["children"]] == ["511"]


def test_taxes_listed_with_provenance(ops: OpsApi) -> None:
    """Cached taxes are listed with percentage as text and their source."""
    taxes = [tax_from_alegra({"id": "1", "name": "ITBIS", "percentage": "18.00", "type": "ITBIS",
                              "status": "active"})]
    ops.store.run(lambda db: upsert_taxes(db, taxes, source="backfill"))
    data = ops.get("/v1/cache/taxes").json()["data"]
    assert [(t["id"], t["percentage"], t["source"]) for t in data] == [("1", "18.00", "backfill")]
