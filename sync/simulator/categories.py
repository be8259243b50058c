"""Categories: the chart of accounts (not product categories). No webhook event covers them.

GET answers a tree (`format=tree`, nodes nest under `children`) or a flat list (`format=plain`).
Which format Alegra uses when none is given is [unverified]; the simulator defaults to the tree.
There is no DELETE (the route answers 405).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sync.simulator.errors import bad_request, not_found
from sync.simulator.fields import required_text

if TYPE_CHECKING:
    from sync.simulator.state import SimState

DEFAULT_FORMAT = "tree"
_NATURE = {"asset": "debit", "expense": "debit", "cost": "debit",
           "liability": "credit", "equity": "credit", "income": "credit"}
_EDITABLE = ("name", "code", "description", "status")


def create(state: SimState, body: dict[str, Any]) -> dict[str, Any]:
    """POST /categories: `idParent` and `name` required, the parent must exist; `type` and
    `nature` default to the parent's. Raises SimError(400)."""
    name = required_text(body, "name")
    with state.lock:
        parent = _parent(state, body.get("idParent"))
        kind = body.get("type") or parent["type"]
        if kind not in _NATURE:
            raise bad_request(f"type debe ser uno de {sorted(_NATURE)}")
        record = {
            "id": state.ids["categories"].next(), "idParent": parent["id"], "name": name,
            "code": body.get("code"), "description": body.get("description") or "",
            "type": kind, "nature": body.get("nature") or _NATURE[kind],
            "status": "active", "readOnly": False,
        }
        state.categories[record["id"]] = record
        return record


def update(state: SimState, category_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """PUT /categories/{id}: name, code, description, status, or a new (existing) parent."""
    if "name" in body:
        required_text(body, "name")
    with state.lock:
        record = copy.deepcopy(get(state, category_id))
        if "idParent" in body:
            record["idParent"] = _parent(state, body["idParent"])["id"]
        for field in _EDITABLE:
            if field in body:
                record[field] = body[field]
        state.categories[category_id] = record
        return record


def get(state: SimState, category_id: str) -> dict[str, Any]:
    with state.lock:
        record = state.categories.get(category_id)
    if record is None:
        raise not_found("La categoría")
    return record


def is_leaf(state: SimState, category_id: str) -> bool:
    with state.lock:
        return not any(node["idParent"] == category_id for node in state.categories.values())


def _parent(state: SimState, parent_id: Any) -> dict[str, Any]:
    if not isinstance(parent_id, str | int) or isinstance(parent_id, bool):
        raise bad_request("El campo idParent es obligatorio")
    parent = state.categories.get(str(parent_id))
    if parent is None:
        raise bad_request("La categoría padre no existe")
    return parent


def listing(state: SimState, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """The matching accounts, flat (`format=plain`) or as a pruned tree (a node is kept if it
    or one of its descendants matches the filters)."""
    fmt = params.get("format", DEFAULT_FORMAT)
    if fmt not in {"tree", "plain"}:
        raise bad_request("format debe ser tree o plain")
    with state.lock:
        nodes = [copy.deepcopy(node) for node in state.categories.values()]
    if fmt == "plain":
        return [node for node in nodes if _matches(node, params)]
    return _tree(nodes, params)


def _tree(nodes: list[dict[str, Any]], params: Mapping[str, str]) -> list[dict[str, Any]]:
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    for node in nodes:
        by_parent.setdefault(node["idParent"], []).append(node)

    def build(node: dict[str, Any]) -> dict[str, Any] | None:
        children = [c for c in (build(child) for child in by_parent.get(node["id"], [])) if c]
        if not children and not _matches(node, params):
            return None
        return {**node, "children": children}

    return [tree for tree in (build(root) for root in by_parent.get(None, [])) if tree]


def _matches(node: dict[str, Any], params: Mapping[str, str]) -> bool:
    if "type" in params and node["type"] != params["type"]:
        return False
    if "status" in params and node["status"] != params["status"]:
        return False
    return params.get("name", "").lower() in node["name"].lower()
