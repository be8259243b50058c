"""Operational endpoints: liveness, the OpenAPI document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route


async def healthz(_: Request) -> JSONResponse:
    """The process is alive and serving. Says nothing about the database or the worker."""
    return JSONResponse({"status": "ok"})


routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"])]
