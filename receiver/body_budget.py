"""One budget, per web process, for the receipt bodies being received and decoded at once
(`MAX_BODY_BYTES_IN_FLIGHT`): a request that would pass it is answered 503 `busy` with
`Retry-After` and stores nothing. `BoundedBody` is route middleware:
`Route(..., middleware=[Middleware(BoundedBody)])`. Design: docs/receipts.md ("The body budget").
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from receiver.errors import ApiError
from sync.logs import get_logger

RETRY_AFTER_S = 1


@dataclass
class BodyBudget:
    """Bytes of receipt bodies held right now, out of `limit`."""

    limit: int
    in_use: int = 0

    def take(self, size: int, *, held: int) -> bool:
        """Hold `size` more bytes for a request that already holds `held`. False (nothing taken)
        when that would pass the limit while other requests hold bytes too."""
        if self.in_use + size > self.limit and self.in_use > held:
            return False
        self.in_use += size
        return True

    def give_back(self, size: int) -> None:
        self.in_use -= size


def budget_of(scope: Scope) -> BodyBudget:
    """The app's budget, made on first use from its settings."""
    state = scope["app"].state
    budget: BodyBudget | None = getattr(state, "body_budget", None)
    if budget is None:
        budget = state.body_budget = BodyBudget(state.settings.max_body_bytes_in_flight)
    return budget


class BoundedBody:
    """Route middleware holding the request's body against the app's `BodyBudget`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hold = _Hold(budget_of(scope), receive, _content_length(scope))
        try:
            await self.app(scope, hold.receive, send)
        finally:
            hold.release()


class _Hold:
    """One request's share of the budget: its declared length at the first read, then at least
    what has arrived. Refusing raises the 503 `ApiError` out of the endpoint's read."""

    def __init__(self, budget: BodyBudget, receive: Receive, declared: int | None) -> None:
        self.budget, self._receive, self.declared = budget, receive, declared
        self.held = self.received = 0
        self.started = False

    async def receive(self) -> Message:
        if not self.started:
            self.started = True
            self._hold_at_least(self.declared or 0)
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self._hold_at_least(self.received)
        return message

    def _hold_at_least(self, size: int) -> None:
        more = size - self.held
        if more <= 0:
            return
        if not self.budget.take(more, held=self.held):
            get_logger().warning(
                "receipt.body_budget_full", size=size, in_flight=self.budget.in_use,
                limit=self.budget.limit,
            )
            # Answered at once; the server discards the rest of the body as it arrives (uvicorn
            # keeps none of it), so the client reads this answer once it has sent its body.
            raise ApiError(
                503, "busy",
                "too many receipt bodies are being received at once; retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.held += more

    def release(self) -> None:
        self.budget.give_back(self.held)
        self.held = 0


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
