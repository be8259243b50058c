"""Categories (the chart of accounts) and taxes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sync.simulator.state import SimConfig


def _find(nodes: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for node in nodes:
        if node["name"] == name:
            return node
        try:
            return _find(node.get("children", []), name)
        except LookupError:
            continue
    raise LookupError(name)


def test_tree_nests_leaf_accounts_under_their_parents(api: httpx.Client) -> None:
    """format=tree nests "Combustible y lubricantes" under Gastos > Gastos generales."""
    tree = api.get("/categories", params={"format": "tree"}).json()
    assert {root["name"] for root in tree} >= {"Activos", "Pasivos", "Patrimonio", "Ingresos",
                                               "Costos", "Gastos"}
    general = _find(_find(tree, "Gastos")["children"], "Gastos generales")
    leaf = _find(general["children"], "Combustible y lubricantes")
    assert leaf["children"] == []
    assert leaf["type"] == "expense"
    assert leaf["idParent"] == general["id"]
    assert isinstance(leaf["id"], str)


def test_plain_is_flat_and_filters_by_type_and_name(api: httpx.Client) -> None:
    """format=plain lists accounts without children; name and type filter them."""
    rows = api.get("/categories", params={"format": "plain", "type": "expense",
                                          "name": "papelería"}).json()
    assert [row["name"] for row in rows] == ["Papelería y útiles de oficina"]
    assert "children" not in rows[0]


def test_filtered_tree_keeps_the_path_to_matches(api: httpx.Client) -> None:
    """A filtered tree keeps only the branches that lead to a matching account."""
    tree = api.get("/categories", params={"format": "tree", "name": "servicios públicos"}).json()
    assert [root["name"] for root in tree] == ["Gastos"]
    assert [c["name"] for c in tree[0]["children"]] == ["Gastos generales"]


def test_create_needs_an_existing_parent_and_inherits_its_type(api: httpx.Client) -> None:
    """A new account under an expense parent is an expense; no or unknown parent is 400."""
    parent = api.get("/categories", params={"format": "plain", "name": "Gastos generales"})
    created = api.post("/categories", json={"idParent": parent.json()[0]["id"],
                                            "name": "Fletes y acarreos"})
    assert created.status_code == 201
    assert created.json()["type"] == "expense"
    assert created.json()["nature"] == "debit"
    assert api.post("/categories", json={"name": "Huérfana"}).status_code == 400
    assert api.post("/categories", json={"idParent": "nope", "name": "X"}).status_code == 400


def test_categories_cannot_be_deleted(api: httpx.Client) -> None:
    """DELETE on an account answers 405; PUT renames it."""
    leaf = api.get("/categories", params={"format": "plain", "name": "Seguros"}).json()[0]
    assert api.delete(f"/categories/{leaf['id']}").status_code == 405
    renamed = api.put(f"/categories/{leaf['id']}", json={"name": "Seguros y fianzas"})
    assert renamed.json()["name"] == "Seguros y fianzas"


@pytest.mark.parametrize("sim_config", [SimConfig(categories_paged=True)])
def test_categories_page_by_30_when_configured(api: httpx.Client) -> None:
    """With categories_paged, the plain list comes in pages of 30 like other lists."""
    first = api.get("/categories", params={"format": "plain", "metadata": "true"}).json()
    second = api.get("/categories", params={"format": "plain", "start": 30}).json()
    assert len(first["data"]) == 30
    assert first["metadata"]["total"] == 30 + len(second)


def test_taxes_are_the_dominican_itbis_rates(api: httpx.Client) -> None:
    """/taxes lists ITBIS 18 %, ITBIS 16 % and exempt with string ids."""
    taxes = api.get("/taxes").json()
    assert sorted(t["percentage"] for t in taxes) == [0, 16, 18]
    assert all(isinstance(t["id"], str) and t["status"] == "active" for t in taxes)
    assert api.get(f"/taxes/{taxes[0]['id']}").json() == taxes[0]
