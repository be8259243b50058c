"""What every `/api/v1` request passes before the routes: faults, rate limit, auth, the log.

Order: injected latency → a forced 429 (`burst_429`) → the fixed window of the presented
credentials (over the limit: 429, no Retry-After) → HTTP Basic auth (401) → an injected 5xx
(`error_rate`, before acting) → the route → `hang_after_commit` (a successful write is committed,
then the answer is held back `hang_s`). Every answer carries the `X-Rate-Limit-*` headers and
is logged, 429s and 401s included. The window counts the presented credentials, so a wrong
token spends its own budget, not the account's [unverified: Alegra may check auth first].
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync.simulator.errors import SimError, error_response
from sync.simulator.ratelimit import FixedWindows, WindowState

if TYPE_CHECKING:
    from sync.simulator.state import SimState

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ApiGate:
    """ASGI middleware in front of the API routes (see the module docstring for the order)."""

    def __init__(self, app: ASGIApp, state: SimState) -> None:
        self.app = app
        self.state = state
        self.windows = FixedWindows(state.config.rate_limit, state.config.window_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        faults = self.state.faults
        if faults.latency_s > 0:
            await asyncio.sleep(faults.latency_s)
        email, token = _credentials(scope)
        refusal, window = self._admit(email, token)
        if refusal is not None:
            await self._refuse(scope, receive, send, refusal, window)
            return
        messages = await self._run(scope, receive, window)
        status = int(messages[0]["status"])
        self._log(scope, status)
        if scope["method"] in WRITE_METHODS and 200 <= status < 300 and faults.take_hang():
            await asyncio.sleep(faults.hang_s)
        for message in messages:
            await send(message)

    def _admit(self, email: str, token: str) -> tuple[SimError | None, WindowState]:
        key, now = f"{email}\0{token}", time.monotonic()
        if self.state.faults.take_burst():
            window = self.windows.peek(key, now)
            return SimError(429, "Límite de solicitudes excedido"), _exhausted(window)
        window = self.windows.take(key, now)
        if not window.allowed:
            return SimError(429, "Límite de solicitudes excedido"), window
        config = self.state.config
        if not (_same(email, config.email) & _same(token, config.token)):
            return SimError(401, "Credenciales incorrectas"), window
        if self.state.faults.roll_error():
            status = self.state.faults.error_status
            return SimError(status, "Error interno simulado"), window
        return None, window

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, error: SimError,
                      window: WindowState) -> None:
        response = error_response(error, wrap=self.state.faults.wrap_errors)
        response.headers.update(window.headers())
        self._log(scope, error.status)
        await response(scope, receive, send)

    async def _run(self, scope: Scope, receive: Receive, window: WindowState) -> list[Message]:
        """The route's answer, held back so a hang can delay it and headers can be added."""
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        try:
            await self.app(scope, receive, capture)
        except Exception:
            self._log(scope, 500)
            raise
        extra = [(k.lower().encode(), v.encode()) for k, v in window.headers().items()]
        messages[0]["headers"] = [*messages[0].get("headers", []), *extra]
        return messages

    def _log(self, scope: Scope, status: int) -> None:
        path = str(scope["path"]).removeprefix(str(scope.get("root_path", "")))
        query = dict(parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1")))
        self.state.log_request(str(scope["method"]), path, query, status)


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


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def _exhausted(window: WindowState) -> WindowState:
    return WindowState(False, window.limit, 0, window.reset_s)
