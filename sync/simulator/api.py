"""The `/api/v1` routes: thin adapters from HTTP to the resource rules, in Alegra's shapes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync.simulator import bills, categories, contacts, contrary, errors, listing, webhooks
from sync.simulator.deliveries import handshake
from sync.simulator.errors import SimError, bad_request
from sync.simulator.gate import account_of
from sync.simulator.state import SimState

Handler = Callable[[SimState, Request], Awaitable[Response]]
ClientSource = Callable[[], httpx.AsyncClient]


async def body_of(request: Request) -> dict[str, Any]:
    """The JSON object sent. Raises SimError(400) for anything else."""
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("El cuerpo de la petición no es JSON válido") from None
    if not isinstance(body, dict):
        raise bad_request("El cuerpo de la petición debe ser un objeto JSON")
    return body


def _deleted(what: str) -> JSONResponse:
    return JSONResponse({"code": 200, "message": f"{what} fue eliminado correctamente"})


def _id(request: Request) -> str:
    return str(request.path_params["id"])


# --- contacts ------------------------------------------------------------------------------

async def list_contacts(state: SimState, request: Request) -> Response:
    rows = contacts.search(state, request.query_params)
    sequence = state.ids["contacts"].sequence
    return JSONResponse(listing.paged(rows, request.query_params, sequence))


async def create_contact(state: SimState, request: Request) -> Response:
    return JSONResponse(contacts.create(state, await body_of(request)), 201)


async def get_contact(state: SimState, request: Request) -> Response:
    return JSONResponse(contacts.get(state, _id(request)))


async def update_contact(state: SimState, request: Request) -> Response:
    return JSONResponse(contacts.update(state, _id(request), await body_of(request)))


async def delete_contact(state: SimState, request: Request) -> Response:
    contacts.delete(state, _id(request))
    return _deleted("El contacto")


# --- categories and taxes ------------------------------------------------------------------

async def list_categories(state: SimState, request: Request) -> Response:
    params = request.query_params
    rows = categories.listing(state, params)
    if state.config.categories_paged and not state.config.contrary:
        return JSONResponse(listing.paged(rows, params, state.ids["categories"].sequence))
    return JSONResponse(listing.with_metadata(rows, len(rows), params))


async def create_category(state: SimState, request: Request) -> Response:
    return JSONResponse(categories.create(state, await body_of(request)), 201)


async def get_category(state: SimState, request: Request) -> Response:
    return JSONResponse(categories.get(state, _id(request)))


async def update_category(state: SimState, request: Request) -> Response:
    return JSONResponse(categories.update(state, _id(request), await body_of(request)))


async def list_taxes(state: SimState, request: Request) -> Response:
    rows = list(state.taxes.values())
    return JSONResponse(listing.with_metadata(rows, len(rows), request.query_params))


async def get_tax(state: SimState, request: Request) -> Response:
    tax = state.taxes.get(_id(request))
    if tax is None:
        raise errors.not_found("El impuesto")
    return JSONResponse(tax)


# --- bills ---------------------------------------------------------------------------------

async def list_bills(state: SimState, request: Request) -> Response:
    rows = bills.search(state, request.query_params)
    sequence = state.ids["bills"].sequence
    return JSONResponse(listing.paged(rows, request.query_params, sequence))


async def create_bill(state: SimState, request: Request) -> Response:
    return JSONResponse(bills.create(state, await body_of(request)), 201)


async def get_bill(state: SimState, request: Request) -> Response:
    return JSONResponse(bills.get(state, _id(request)))


async def update_bill(state: SimState, request: Request) -> Response:
    return JSONResponse(bills.update(state, _id(request), await body_of(request)))


async def delete_bill(state: SimState, request: Request) -> Response:
    bills.delete(state, _id(request))
    return _deleted("La factura de proveedor")


async def attach_to_bill(state: SimState, request: Request) -> Response:
    """Exactly one file field, named `file`; anything else is Alegra's code 904."""
    bill_id = _id(request)
    bills.get(state, bill_id)
    invalid = SimError(400, "El archivo adjunto no es válido", errors.INVALID_ATTACHMENT)
    try:
        async with request.form() as form:
            files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
            if len(files) != 1 or files[0][0] != "file":
                raise invalid
            upload = files[0][1]
            data = await upload.read()
            name, content_type = upload.filename or "file", upload.content_type or ""
    except (MultiPartException, HTTPException):  # a malformed multipart body
        raise invalid from None
    root = str(request.base_url).rstrip("/")  # the simulator's root, outside /api/v1
    files_url = f"{root}{state.control_path}/files"
    attachment = bills.attach(state, bill_id, name=name, content_type=content_type, data=data,
                              files_url=files_url)
    return JSONResponse(attachment, 201)


# --- webhook subscriptions -----------------------------------------------------------------

def subscription_handlers(client: ClientSource) -> dict[str, Handler]:
    """The handlers that call the subscriber's URL (the handshake) need the HTTP client."""

    async def require_handshake(state: SimState, url: str) -> None:
        if not await handshake(client(), url, state.config.handshake_timeout_s):
            raise bad_request("La URL no respondió a la verificación con un 2xx a tiempo")

    async def create(state: SimState, request: Request) -> Response:
        body = await body_of(request)
        webhooks.validate(state, body)
        await require_handshake(state, body["url"])
        return JSONResponse({"subscription": webhooks.create(state, body)}, 201)

    async def update(state: SimState, request: Request) -> Response:
        body = await body_of(request)
        current = webhooks.get(state, _id(request))
        if "url" in body and body["url"] != current["url"]:
            webhooks.validate(state, {**current, **body}, except_id=current["id"])
            await require_handshake(state, str(body["url"]))
        return JSONResponse({"subscription": webhooks.update(state, current["id"], body)})

    return {"create": create, "update": update}


async def list_subscriptions(state: SimState, request: Request) -> Response:
    with state.lock:
        rows = list(state.subscriptions.values())
    if state.config.contrary:
        rows = [{**row, "url": contrary.listed_url(str(row["url"]))} for row in rows]
    return JSONResponse({"subscriptions": rows})


async def get_subscription(state: SimState, request: Request) -> Response:
    # GET by id answers in the create's envelope [unverified: may be the bare object].
    return JSONResponse({"subscription": webhooks.get(state, _id(request))})


async def delete_subscription(state: SimState, request: Request) -> Response:
    webhooks.get(state, _id(request))
    state.drop_subscription(_id(request))
    return _deleted("La suscripción")


# --- the app -------------------------------------------------------------------------------

def build_api(client: ClientSource) -> Starlette:
    """The `/api/v1` app (mounted behind `gate.ApiGate`, which picks the request's account);
    every error in Alegra's shape."""
    subs = subscription_handlers(client)
    table: list[tuple[str, str, Handler]] = [
        ("/contacts", "GET", list_contacts), ("/contacts", "POST", create_contact),
        ("/contacts/{id}", "GET", get_contact), ("/contacts/{id}", "PUT", update_contact),
        ("/contacts/{id}", "DELETE", delete_contact),
        ("/categories", "GET", list_categories), ("/categories", "POST", create_category),
        ("/categories/{id}", "GET", get_category), ("/categories/{id}", "PUT", update_category),
        ("/taxes", "GET", list_taxes), ("/taxes/{id}", "GET", get_tax),
        ("/bills", "GET", list_bills), ("/bills", "POST", create_bill),
        ("/bills/{id}", "GET", get_bill), ("/bills/{id}", "PUT", update_bill),
        ("/bills/{id}", "DELETE", delete_bill),
        ("/bills/{id}/attachment", "POST", attach_to_bill),
        ("/webhooks/subscriptions", "GET", list_subscriptions),
        ("/webhooks/subscriptions", "POST", subs["create"]),
        ("/webhooks/subscriptions/{id}", "GET", get_subscription),
        ("/webhooks/subscriptions/{id}", "PUT", subs["update"]),
        ("/webhooks/subscriptions/{id}", "DELETE", delete_subscription),
    ]
    routes = [Route(path, _bind(handler), methods=[method])
              for path, method, handler in table]

    def wrap(request: Request) -> bool:  # read at answer time: a test may flip it
        return account_of(request.scope).faults.wrap_errors

    async def on_sim_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SimError)
        return errors.error_response(exc, wrap=wrap(request))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error = SimError(exc.status_code, exc.detail)
        return errors.error_response(error, wrap=wrap(request), headers=exc.headers)

    return Starlette(routes=routes, exception_handlers={
        SimError: on_sim_error, HTTPException: on_http_error})


def _bind(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(account_of(request.scope), request)

    return endpoint
