"""The `/_sim/` control API: drive a simulator running in another process (tests, benchmarks).

No Alegra auth, no rate limit, no faults, and not logged as API requests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync.simulator import bills, contacts
from sync.simulator.errors import SimError, bad_request, error_response
from sync.simulator.state import SimState

Handler = Callable[[SimState, Request], Awaitable[Any]]
RECENT = 50  # log entries returned by GET /_sim/requests


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json() if await request.body() else {}
    except ValueError:
        raise bad_request("invalid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


async def requests_log(state: SimState, request: Request) -> Any:
    params = request.query_params
    status = params.get("status")
    rows = state.matching_requests(params.get("method") or None,
                                   params.get("path_prefix") or None,
                                   int(status) if status else None)
    return {"count": len(rows), "total": len(state.requests),
            "recent": [asdict(row) for row in rows[-RECENT:]]}


async def clear_requests(state: SimState, request: Request) -> Any:
    state.clear_log()
    return {"count": 0}


async def set_faults(state: SimState, request: Request) -> Any:
    try:
        state.faults.update(await _json(request))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return state.faults.as_dict()


async def person_create_contact(state: SimState, request: Request) -> Any:
    return state.person_create_contact(**await _json(request))


async def person_edit_contact(state: SimState, request: Request) -> Any:
    return state.person_edit_contact(request.path_params["id"], **await _json(request))


async def person_delete_contact(state: SimState, request: Request) -> Any:
    contacts.get(state, request.path_params["id"])
    state.person_delete_contact(request.path_params["id"])
    return {"deleted": request.path_params["id"]}


async def person_create_bill(state: SimState, request: Request) -> Any:
    return state.person_create_bill(**await _json(request))


async def person_void_bill(state: SimState, request: Request) -> Any:
    return state.person_void_bill(request.path_params["id"])


async def person_delete_bill(state: SimState, request: Request) -> Any:
    bills.get(state, request.path_params["id"])
    state.person_delete_bill(request.path_params["id"])
    return {"deleted": request.path_params["id"]}


async def person_create_category(state: SimState, request: Request) -> Any:
    return state.person_create_category(**await _json(request))


async def seed(state: SimState, request: Request) -> Any:
    body = await _json(request)
    count = body.get("contacts", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise bad_request("contacts must be a non-negative integer")
    created = state.seed_contacts(count, deliver=bool(body.get("deliver", False)))
    return {"contacts": len(created), "ids": [row["id"] for row in created]}


async def snapshot(state: SimState, request: Request) -> Any:
    return state.snapshot()


async def drop_subscription(state: SimState, request: Request) -> Any:
    sub_id = request.path_params["id"]
    if sub_id not in state.subscriptions:
        raise SimError(404, "subscription not found")
    state.drop_subscription(sub_id)
    return {"deleted": sub_id}


async def attachment_file(state: SimState, request: Request) -> Response:
    stored = state.files.get(request.path_params["id"])
    if stored is None:
        raise SimError(404, "file not found")
    return Response(stored[1], media_type=stored[0] or "application/octet-stream")


TABLE: tuple[tuple[str, str, Handler], ...] = (
    ("/requests", "GET", requests_log), ("/requests/clear", "POST", clear_requests),
    ("/faults", "POST", set_faults),
    ("/person/contacts", "POST", person_create_contact),
    ("/person/contacts/{id}", "PATCH", person_edit_contact),
    ("/person/contacts/{id}", "DELETE", person_delete_contact),
    ("/person/bills", "POST", person_create_bill),
    ("/person/bills/{id}/void", "POST", person_void_bill),
    ("/person/bills/{id}", "DELETE", person_delete_bill),
    ("/person/categories", "POST", person_create_category),
    ("/seed", "POST", seed), ("/state", "GET", snapshot),
    ("/subscriptions/{id}", "DELETE", drop_subscription),
    ("/files/{id}", "GET", attachment_file),
)


def control_routes(state: SimState) -> list[Route]:
    """The routes under `/_sim`; SimErrors answer in Alegra's shape."""
    return [Route(f"/_sim{path}", _bind(state, handler), methods=[method])
            for path, method, handler in TABLE]


def _bind(state: SimState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(state, request)
        except SimError as exc:
            return error_response(exc, wrap=False)
        return result if isinstance(result, Response) else JSONResponse(result)

    return endpoint
