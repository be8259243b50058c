"""GET /openapi.json: one OpenAPI 3.0.3 document merged from every web component.

Each module in `receiver.app.COMPONENTS` may define `OPENAPI_PATHS` (path → operations) and
`OPENAPI_SCHEMAS` (name → schema, merged into `components.schemas`). Schemas here are shared by
all: `Error` (the one error body, see receiver/errors.py). Security scheme `partnerKey`: the
partner or admin key as `Authorization: Bearer <key>`; operations name it in their `security`.
Two components may share a path with different methods; an operation or schema defined twice
differently is a programming error and fails the build loudly.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata
from types import ModuleType
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

OPENAPI_VERSION = "3.0.3"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": True,
            "properties": {
                "code": {"type": "string", "example": "invalid_field"},
                "message": {"type": "string"},
                "field": {
                    "type": "string",
                    "description": "JSON path of the input at fault, e.g. `lines[2].amount`, or "
                    "the header's name.",
                },
            },
            "description": "More evidence may follow, e.g. `expected` and `given` for "
            "`total_mismatch`, `receipt_id` for `idempotency_key_reused`.",
        }
    },
}
SECURITY_SCHEMES: dict[str, Any] = {
    "partnerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A partner key from `alegra-sync partners add NAME` (`--admin` for an "
        "operator key).",
    }
}

OPENAPI_PATHS: dict[str, Any] = {
    "/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI document",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}},
        }
    }
}
OPENAPI_SCHEMAS: dict[str, Any] = {"Error": ERROR_SCHEMA}


def build_spec(components: Iterable[ModuleType]) -> dict[str, Any]:
    """The whole document from the components' fragments. Raises ValueError on a clash."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for component in components:
        for path, operations in getattr(component, "OPENAPI_PATHS", {}).items():
            _merge(paths.setdefault(path, {}), operations, f"{component.__name__} {path}")
        _merge(schemas, getattr(component, "OPENAPI_SCHEMAS", {}), component.__name__)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "alegra-sync",
            "version": _version(),
            "description": "Partner receipts become supplier bills in Alegra. Every error "
            "answers `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def _merge(into: dict[str, Any], fragment: dict[str, Any], source: str) -> None:
    for name, value in fragment.items():
        if name in into and into[name] != value:
            raise ValueError(f"OpenAPI {name!r} from {source} clashes with an earlier definition")
        into[name] = value


def _version() -> str:
    try:
        return metadata.version("alegra-sync")
    except metadata.PackageNotFoundError:
        return "0.0.0"


async def openapi_json(request: Request) -> JSONResponse:
    """GET /openapi.json, built once per app from its components."""
    spec = getattr(request.app.state, "openapi", None)
    if spec is None:
        from receiver.app import COMPONENTS  # noqa: PLC0415 -- app imports this module

        spec = request.app.state.openapi = build_spec(COMPONENTS)
    return JSONResponse(spec)


routes: list[BaseRoute] = [Route("/openapi.json", openapi_json, methods=["GET"])]
