"""GET /openapi.json describes the receipt API completely and validly."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from receiver.openapi import ApiRoute, build_spec
from tests.receipts_api.conftest import Api


def _spec(api: Api) -> dict[str, Any]:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def test_document_is_valid_openapi_31(api: Api) -> None:
    """The served document validates against the OpenAPI 3.1 schema, and each of its schemas is
    valid JSON Schema 2020-12 (3.1's dialect, the one pydantic writes)."""
    spec = _spec(api)
    OPENAPI_31_VALIDATOR.validate(spec)
    for schema in spec["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_receipt_operations_document_every_answer(api: Api) -> None:
    """POST and GET list every status they answer, with the shared error schema."""
    paths = _spec(api)["paths"]
    post = paths["/v1/receipts"]["post"]
    assert set(post["responses"]) == {
        "200", "201", "202", "400", "401", "404", "413", "415", "422", "503"}
    assert set(post["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert post["security"] == [{"partnerKey": []}]
    assert {p["name"] for p in post["parameters"]} == {
        "Idempotency-Key", "Prefer", "Alegra-Company"}
    error = post["responses"]["422"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}
    get = paths["/v1/receipts/{receipt_id}"]["get"]
    assert set(get["responses"]) == {"200", "400", "401", "404"}


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


async def _endpoint(_: object) -> Response:
    return Response()


def _component(name: str, routes: list[BaseRoute], **schemas: Any) -> ModuleType:
    module = ModuleType(name)
    module.routes = routes  # type: ignore[attr-defined]
    module.OPENAPI_SCHEMAS = schemas  # type: ignore[attr-defined]
    return module


def test_paths_and_their_parameters_come_from_the_routes() -> None:
    """A route's path, method and path parameters are what the document shows."""
    one = _component("one", [ApiRoute("/x/{x_id}/y/{n:int}", _endpoint, "PUT", {"summary": "a"})])
    operation = build_spec([one])["paths"]["/x/{x_id}/y/{n}"]["put"]
    assert operation["summary"] == "a"
    assert [(p["name"], p["in"], p["schema"]["type"]) for p in operation["parameters"]] == [
        ("x_id", "path", "string"), ("n", "path", "integer")]


def test_clashing_definitions_fail_loudly() -> None:
    """An operation or a schema defined twice, differently, is an error, not a silent merge."""
    one = _component("one", [ApiRoute("/x", _endpoint, "GET", {"summary": "a"})], S={"a": 1})
    two = _component("two", [ApiRoute("/x", _endpoint, "GET", {"summary": "b"})])
    three = _component("three", [], S={"a": 2})
    with pytest.raises(ValueError, match="twice"):
        build_spec([one, two])
    with pytest.raises(ValueError, match="clashes"):
        build_spec([one, three])


def test_components_may_share_a_path() -> None:
    """Different methods of one path from two components merge into one path item."""
    one = _component("one", [ApiRoute("/x", _endpoint, "GET", {"summary": "a"})])
    two = _component("two", [ApiRoute("/x", _endpoint, "POST", {"summary": "c"})])
    assert set(build_spec([one, two])["paths"]["/x"]) == {"get", "post"}


def test_a_route_without_its_operation_or_with_30_nullable_fails_loudly() -> None:
    """Every route is documented; `nullable` (OpenAPI 3.0, ignored by 3.1) is refused."""
    with pytest.raises(TypeError, match="no OpenAPI operation"):
        build_spec([_component("one", [Route("/x", _endpoint)])])
    nullable = {"type": "string", "nullable": True}
    with pytest.raises(ValueError, match="nullable"):
        build_spec([_component("one", [], S=nullable)])
