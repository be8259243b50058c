"""GET /openapi.json: one OpenAPI 3.1 document, read off the route table and the contract models.

Paths and methods come from the routes: every `ApiRoute` carries its operation (summary,
parameters, responses), and its path parameters come from the route's own template. Schemas
come from the pydantic models the components list in `OPENAPI_MODELS` (the bodies validated and
answered: `sync.receipt_contract`, the error body below), generated as JSON Schema 2020-12,
which is OpenAPI 3.1's own dialect; a component may add hand-written `OPENAPI_SCHEMAS` (name →
schema) for what no model describes yet. Security scheme `partnerKey`: the partner or admin key
as `Authorization: Bearer <key>`; operations name it in their `security`. A schema defined twice
differently, a route without its operation, or a 3.0-only `nullable` fails the build loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from importlib import metadata
from types import ModuleType
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from receiver.errors import Error

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/"
SECURITY_SCHEMES: dict[str, Any] = {
    "partnerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A partner key from `alegra-sync partners add NAME` (`--admin` for an "
        "operator key).",
    }
}
_PATH_TYPES = {"IntegerConvertor": "integer", "FloatConvertor": "number"}


class ApiRoute(Route):
    """A route and the OpenAPI operation it serves (one method per route)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], method: str,
                 operation: dict[str, Any], *,
                 middleware: Sequence[Middleware] | None = None) -> None:
        super().__init__(path, endpoint, methods=[method], middleware=middleware)
        self.method = method.lower()
        self.operation = operation


class ContractJsonSchema(GenerateJsonSchema):
    """pydantic's JSON Schema, as this API publishes it: a Decimal is a JSON number (decimal
    strings have their own branch in the contract), and no generated titles."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        out: dict[str, Any] = {"type": "number"}
        self.update_with_validations(out, schema, self.ValidationsMapping.numeric)
        return {k: _json_number(v) for k, v in out.items()}


def _json_number(value: object) -> object:
    if not isinstance(value, Decimal):
        return value
    return int(value) if value == value.to_integral_value() else float(value)


def _untitled(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _untitled(v) for k, v in schema.items()
                if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_untitled(v) for v in schema]
    return schema


def ref(name: str | type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF + (name if isinstance(name, str) else name.__name__)}


def ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    return ok(description, ref(Error))


def model_schemas(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    """The models' JSON Schemas and those of every model they use, by model name."""
    _, top = models_json_schema([(model, "validation") for model in models],
                                ref_template=REF + "{model}", schema_generator=ContractJsonSchema)
    return dict(_untitled(top.get("$defs", {})))


OPENAPI_MODELS: tuple[type[BaseModel], ...] = (Error,)


def build_spec(components: Iterable[ModuleType]) -> dict[str, Any]:
    """The whole document from the components' routes and models. Raises ValueError on a clash,
    or a 3.0-only keyword (TypeError: a route without its operation)."""
    paths: dict[str, Any] = {}
    models: list[type[BaseModel]] = []
    schemas: dict[str, Any] = {}
    for component in components:
        for route in component.routes:
            _add_operation(paths, route, component.__name__)
        models.extend(getattr(component, "OPENAPI_MODELS", ()))
        _merge(schemas, getattr(component, "OPENAPI_SCHEMAS", {}), component.__name__)
    _merge(schemas, model_schemas(dict.fromkeys(models)), "models")
    spec = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "alegra-sync",
            "version": _version(),
            "description": "Partner receipts become supplier bills in Alegra. Every error "
            "answers `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items())),
                       "securitySchemes": SECURITY_SCHEMES},
    }
    _refuse_nullable(spec, "")
    return spec


def _add_operation(paths: dict[str, Any], route: BaseRoute, source: str) -> None:
    if not isinstance(route, ApiRoute):
        raise TypeError(f"{source}: route {route!r} has no OpenAPI operation (use ApiRoute)")
    item = paths.setdefault(route.path_format, {})
    if route.method in item:
        raise ValueError(f"OpenAPI {route.method} {route.path_format} from {source} is defined "
                         "twice")
    operation = dict(route.operation)
    named = {p["name"] for p in operation.get("parameters", ()) if p.get("in") == "path"}
    implied = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": _PATH_TYPES.get(type(convertor).__name__, "string")}}
        for name, convertor in route.param_convertors.items() if name not in named
    ]
    if implied:
        operation["parameters"] = implied + list(operation.get("parameters", ()))
    item[route.method] = operation


def _merge(into: dict[str, Any], fragment: dict[str, Any], source: str) -> None:
    for name, value in fragment.items():
        if name in into and into[name] != value:
            raise ValueError(f"OpenAPI {name!r} from {source} clashes with an earlier definition")
        into[name] = value


def _refuse_nullable(node: Any, where: str) -> None:
    """OpenAPI 3.1 ignores 3.0's `nullable`: a schema written with it would silently refuse
    null. Write `"type": ["string", "null"]` (or `X | None` in a model) instead."""
    if isinstance(node, dict):
        if "nullable" in node:
            raise ValueError(f"OpenAPI 3.1 has no `nullable` (at {where or '/'})")
        for key, value in node.items():
            _refuse_nullable(value, f"{where}/{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            _refuse_nullable(value, f"{where}/{n}")


def _version() -> str:
    try:
        return metadata.version("alegra-sync")
    except metadata.PackageNotFoundError:
        return "0.0.0"


async def openapi_json(request: Request) -> Response:
    """GET /openapi.json, built once per app from its components."""
    spec = getattr(request.app.state, "openapi", None)
    if spec is None:
        from receiver.app import COMPONENTS  # noqa: PLC0415 -- app imports this module

        spec = request.app.state.openapi = build_spec(COMPONENTS)
    return JSONResponse(spec)


routes: list[BaseRoute] = [ApiRoute("/openapi.json", openapi_json, "GET", {
    "operationId": "getOpenApi",
    "summary": "This document",
    "security": [],
    "responses": {"200": ok("The OpenAPI document", {"type": "object"})},
})]
