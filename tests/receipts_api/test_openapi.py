"""GET /openapi.json describes the receipt API completely and validly."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR

from receiver.openapi import build_spec
from tests.receipts_api.conftest import Api


def _spec(api: Api) -> dict[str, Any]:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def test_document_is_valid_openapi_30(api: Api) -> None:
    """The served document validates against the OpenAPI 3.0 schema."""
    OPENAPI_30_VALIDATOR.validate(_spec(api))


def test_receipt_operations_document_every_answer(api: Api) -> None:
    """POST and GET list every status they answer, with the shared error schema."""
    paths = _spec(api)["paths"]
    post = paths["/v1/receipts"]["post"]
    assert set(post["responses"]) == {
        "200", "201", "202", "400", "401", "413", "415", "422", "503"}
    assert set(post["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert post["security"] == [{"partnerKey": []}]
    assert {p["name"] for p in post["parameters"]} == {"Idempotency-Key", "Prefer"}
    error = post["responses"]["422"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}
    get = paths["/v1/receipts/{receipt_id}"]["get"]
    assert set(get["responses"]) == {"200", "401", "404"}


def test_every_reference_resolves(api: Api) -> None:
    """Each $ref in the document names a schema it defines."""
    spec = _spec(api)
    schemas = spec["components"]["schemas"]
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert spec["components"]["securitySchemes"]["partnerKey"]["scheme"] == "bearer"


def _component(name: str, paths: dict[str, Any]) -> ModuleType:
    module = ModuleType(name)
    module.OPENAPI_PATHS = paths  # type: ignore[attr-defined]
    return module


def test_clashing_fragments_fail_loudly() -> None:
    """Two components defining the same operation differently is an error, not a silent merge."""
    one = _component("one", {"/x": {"get": {"summary": "a"}}})
    two = _component("two", {"/x": {"get": {"summary": "b"}, "post": {"summary": "c"}}})
    with pytest.raises(ValueError, match="clashes"):
        build_spec([one, two])


def test_components_may_share_a_path() -> None:
    """Different methods of one path from two components merge into one path item."""
    one = _component("one", {"/x": {"get": {"summary": "a"}}})
    two = _component("two", {"/x": {"post": {"summary": "c"}}})
    assert set(build_spec([one, two])["paths"]["/x"]) == {"get", "post"}
