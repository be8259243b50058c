"""The `/_sim/` control API: drive a simulator running in another process (tests, benchmarks).

`/_sim/…` acts on the default account, `/_sim/accounts/{name}/…` on any account (the same
routes); `GET|POST /_sim/accounts` lists and adds accounts, `PATCH /_sim/accounts/{name}`
revokes one's credentials. No Alegra auth, no rate limit, no faults, not logged as API requests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync.simulator import bills, contacts
from sync.simulator.accounts import AccountError, Accounts
from sync.simulator.errors import SimError, bad_request, error_response
from sync.simulator.state import SimState

Handler = Callable[[SimState, Request], Awaitable[Any]]
AccountsHandler = Callable[[Accounts, Request], Awaitable[Any]]
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


async def list_accounts(accounts: Accounts, request: Request) -> Any:
    return {"accounts": [accounts.describe(state) for state in accounts.all()]}


async def add_account(accounts: Accounts, request: Request) -> Any:
    """`{email, token, name?, rate_limit?, window_s?}` → 201 with the account (no token)."""
    body = await _json(request)
    unknown = set(body) - {"email", "token", "name", "rate_limit", "window_s"}
    if unknown:
        raise bad_request(f"unknown fields: {sorted(unknown)}")
    state = accounts.add(body.get("email", ""), body.get("token", ""), name=body.get("name"),
                         rate_limit=body.get("rate_limit"), window_s=body.get("window_s"))
    return JSONResponse(accounts.describe(state), 201)


async def show_account(accounts: Accounts, request: Request) -> Any:
    return accounts.describe(accounts.get(request.path_params["account"]))


async def change_account(accounts: Accounts, request: Request) -> Any:
    """`{"revoked": bool}`: its credentials stop (or start again) working; its data stays."""
    state = accounts.get(request.path_params["account"])
    body = await _json(request)
    if set(body) != {"revoked"} or not isinstance(body["revoked"], bool):
        raise bad_request('the body must be {"revoked": true|false}')
    state.revoked = body["revoked"]
    return accounts.describe(state)


ACCOUNTS_TABLE: tuple[tuple[str, str, AccountsHandler], ...] = (
    ("/accounts", "GET", list_accounts), ("/accounts", "POST", add_account),
    ("/accounts/{account}", "GET", show_account), ("/accounts/{account}", "PATCH", change_account),
)


def control_routes(accounts: Accounts) -> list[Route]:
    """The routes under `/_sim`: the default account's at `/_sim/…`, any account's at
    `/_sim/accounts/{name}/…`, and the accounts themselves. Errors answer in Alegra's shape."""
    def default(request: Request) -> SimState:
        return accounts.default

    def named(request: Request) -> SimState:
        return accounts.get(request.path_params["account"])

    routes = [Route(f"/_sim{path}", _bind(partial(handler, accounts)), methods=[method])
              for path, method, handler in ACCOUNTS_TABLE]
    for prefix, pick in (("/_sim", default), ("/_sim/accounts/{account}", named)):
        routes += [Route(f"{prefix}{path}", _bind(_on_account(pick, handler)), methods=[method])
                   for path, method, handler in TABLE]
    return routes


def _on_account(pick: Callable[[Request], SimState],
                handler: Handler) -> Callable[[Request], Awaitable[Any]]:
    async def on_account(request: Request) -> Any:
        return await handler(pick(request), request)

    return on_account


def _bind(handler: Callable[[Request], Awaitable[Any]]
          ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request)
        except SimError as exc:
            return error_response(exc, wrap=False)
        except AccountError as exc:
            return error_response(SimError(exc.status, str(exc)), wrap=False)
        return result if isinstance(result, Response) else JSONResponse(result)

    return endpoint
