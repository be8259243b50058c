"""What every `/api/v1` request passes before the routes: faults, rate limit, auth, the log.

Order: injected latency → a forced 429 (`burst_429`) → the fixed window of the presented
credentials (over the limit: 429, no Retry-After) → HTTP Basic auth (401) → an injected 5xx
(`error_rate`, before acting) → the route → `hang_after_commit` (a successful write is committed,
then the answer is held back `hang_s`). Every answer carries the `X-Rate-Limit-*` headers and
is logged in the account's request log, 429s and 401s included. The window is the account's
(per e-mail, see `accounts.py`); credentials of no account count in their own, so a wrong token
spends its own budget, not the account's [unverified: Alegra may check auth first]. A revoked
account's credentials pass the window and get 401.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync.simulator.errors import SimError, error_response
from sync.simulator.ratelimit import FixedWindows, WindowState

if TYPE_CHECKING:
    from sync.simulator.accounts import Accounts
    from sync.simulator.state import SimState

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ACCOUNT_KEY = "alegra_simulator.account"  # where the gate leaves the account in the scope
UNAUTHORIZED = SimError(401, "Credenciales incorrectas")


class ApiGate:
    """ASGI middleware in front of the API routes (see the module docstring for the order).

    It finds the account the credentials open and hands it to the routes in the scope
    (`account_of`); credentials of no account meet the default account's faults and log.
    """

    def __init__(self, app: ASGIApp, accounts: Accounts) -> None:
        self.app = app
        self.accounts = accounts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        email, token = _credentials(scope)
        account = self.accounts.find(email, token)
        home = account or self.accounts.default  # whose faults and request log
        faults = home.faults
        if faults.latency_s > 0:
            await asyncio.sleep(faults.latency_s)
        refusal, window = self._admit(email, token, account, home)
        if refusal is not None or account is None:  # _admit refuses credentials of no account
            response = _refusal(home, scope, refusal or UNAUTHORIZED, window)
            await response(scope, receive, send)
            return
        scope[ACCOUNT_KEY] = account
        messages = await self._run(scope, receive, home, window)
        status = int(messages[0]["status"])
        _log(home, scope, status)
        if scope["method"] in WRITE_METHODS and 200 <= status < 300 and faults.take_hang():
            await asyncio.sleep(faults.hang_s)
        for message in messages:
            await send(message)

    def _admit(self, email: str, token: str, account: SimState | None,
               home: SimState) -> tuple[SimError | None, WindowState]:
        windows, key = self._window_of(email, token, account)
        now = time.monotonic()
        if home.faults.take_burst():
            window = windows.peek(key, now)
            return SimError(429, "Límite de solicitudes excedido"), _exhausted(window)
        window = windows.take(key, now)
        if not window.allowed:
            return SimError(429, "Límite de solicitudes excedido"), window
        if account is None or account.revoked:
            return UNAUTHORIZED, window
        if home.faults.roll_error():
            return SimError(home.faults.error_status, "Error interno simulado"), window
        return None, window

    def _window_of(self, email: str, token: str,
                   account: SimState | None) -> tuple[FixedWindows, str]:
        """An account counts in its e-mail's window; other credentials in their own."""
        if account is None:
            return self.accounts.strangers, f"{email}\0{token}"
        return self.accounts.window(account), email

    async def _run(self, scope: Scope, receive: Receive, home: SimState,
                   window: WindowState) -> list[Message]:
        """The route's answer, held back so a hang can delay it and headers can be added."""
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        try:
            await self.app(scope, receive, capture)
        except Exception:
            _log(home, scope, 500)
            raise
        extra = [(k.lower().encode(), v.encode()) for k, v in window.headers().items()]
        messages[0]["headers"] = [*messages[0].get("headers", []), *extra]
        return messages


def _refusal(home: SimState, scope: Scope, error: SimError, window: WindowState) -> Response:
    """The refusal's answer, in `home`'s error shape and logged in its request log."""
    response = error_response(error, wrap=home.faults.wrap_errors)
    response.headers.update(window.headers())
    _log(home, scope, error.status)
    return response


def account_of(scope: Scope) -> SimState:
    """The account whose credentials the gate admitted this request with."""
    account: SimState = scope[ACCOUNT_KEY]
    return account


def _log(state: SimState, scope: Scope, status: int) -> None:
    path = str(scope["path"]).removeprefix(str(scope.get("root_path", "")))
    query = dict(parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1")))
    state.log_request(str(scope["method"]), path, query, status)


def _credentials(scope: Scope) -> tuple[str, str]:
    """The e-mail and token of an HTTP Basic `Authorization` header ("", "" when absent)."""
    headers = dict(scope.get("headers", []))
    scheme, _, encoded = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    email, _, token = decoded.partition(":")
    return email, token


def _exhausted(window: WindowState) -> WindowState:
    return WindowState(False, window.limit, 0, window.reset_s)
