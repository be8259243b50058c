"""The simulated Alegra accounts: each e-mail/token pair is its own company with its own state.

The account configured at start (`SimConfig.email`/`token`) is `default`, and requests with
credentials of no account meet its faults and land in its request log, as when the simulator
served one account. More accounts are added at run time (`Accounts.add`, `POST /_sim/accounts`,
`alegra-sync simulator --account`); each holds its own contacts, categories, taxes, bills,
subscriptions, deliveries, id sequences, request log and faults.

Alegra's limit is per user, so the fixed window is per e-mail: accounts that share an e-mail
(one user's companies) share one window, with the limit and length of the first of them; every
other account has its own. Credentials of no account count in a window of their own, with the
default account's limit, so a wrong token never spends an account's budget.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from sync.simulator.ratelimit import FixedWindows
from sync.simulator.state import SimConfig, SimState

Wake = Callable[[], None]


class AccountError(ValueError):
    """An account that cannot be added or found; `status` is the control API's answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Accounts:
    """Every simulated account, looked up by name (its e-mail unless given one) or credentials.

    Safe to use from any thread: the server's (the gate, the control API) and a test's.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self._lock = threading.RLock()
        self._by_name: dict[str, SimState] = {}
        self._by_email: dict[str, list[SimState]] = {}
        self._windows: dict[str, FixedWindows] = {}  # per e-mail (Alegra user)
        self._wake: Wake | None = None
        self.default = self._register(SimState(config or SimConfig()))
        self.strangers = FixedWindows(self.default.config.rate_limit,
                                      self.default.config.window_s)

    # --- adding ------------------------------------------------------------------------------

    def add(self, email: str, token: str, *, name: str | None = None,
            rate_limit: int | None = None, window_s: float | None = None) -> SimState:
        """A new account with the default account's behaviour but its own credentials, data and
        (unless its e-mail is taken) rate window. Raises AccountError when the name or the
        credentials are taken, a value is malformed, or the window clashes with its e-mail's."""
        _check_text("email", email, forbidden=":")
        _check_text("token", token)
        _check_text("name", name or email, forbidden="/")
        with self._lock:  # one add at a time: the e-mail's window is read, then made
            limits = self._limits_for(email, rate_limit, window_s)
            config = dataclasses.replace(self.default.config, email=email, token=token,
                                         name=name or email, **limits)
            state = SimState(config)
            state.control_path = f"/_sim/accounts/{quote(state.name, safe='@')}"
            return self._register(state)

    def _limits_for(self, email: str, rate_limit: int | None,
                    window_s: float | None) -> dict[str, Any]:
        """The account's limit and window: its e-mail's shared window if it has one, else the
        given values, else the default account's."""
        base = self.default.config
        shared = self._windows.get(email)
        limit = _positive("rate_limit", rate_limit, int) if rate_limit is not None else None
        length = _positive("window_s", window_s, float) if window_s is not None else None
        if shared is None:
            return {"rate_limit": limit or base.rate_limit, "window_s": length or base.window_s}
        if (limit or shared.limit, length or shared.window_s) != (shared.limit, shared.window_s):
            raise AccountError(
                f"accounts of {email} share one rate window: {shared.limit} requests "
                f"per {shared.window_s:g} s")
        return {"rate_limit": shared.limit, "window_s": shared.window_s}

    def _register(self, state: SimState) -> SimState:
        config = state.config
        with self._lock:
            if state.name in self._by_name:
                raise AccountError(f"an account named {state.name!r} exists: give another "
                                   "name", 409)
            if self._find(config.email, config.token) is not None:
                raise AccountError("an account with these credentials exists", 409)
            self._by_name[state.name] = state
            self._by_email.setdefault(config.email, []).append(state)
            self._windows.setdefault(
                config.email, FixedWindows(config.rate_limit, config.window_s))
            state.outbox.bind(self._wake)
        return state

    # --- finding -----------------------------------------------------------------------------

    def get(self, name: str) -> SimState:
        """The account of this name (by default its e-mail). Raises AccountError (404)."""
        with self._lock:
            state = self._by_name.get(name)
        if state is None:
            raise AccountError(f"no simulated account named {name!r}", 404)
        return state

    def find(self, email: str, token: str) -> SimState | None:
        """The account these credentials open, if any (the token compared in constant time)."""
        with self._lock:
            return self._find(email, token)

    def _find(self, email: str, token: str) -> SimState | None:
        for state in self._by_email.get(email, ()):
            if secrets.compare_digest(state.config.token.encode(), token.encode()):
                return state
        return None

    def all(self) -> list[SimState]:
        with self._lock:
            return list(self._by_name.values())

    def window(self, state: SimState) -> FixedWindows:
        """The fixed window `state`'s requests count in (shared by the accounts of an e-mail)."""
        with self._lock:
            return self._windows[state.config.email]

    # --- deliveries --------------------------------------------------------------------------

    def bind(self, wake: Wake | None) -> None:
        """Call `wake` whenever any account, present or added later, queues a delivery."""
        with self._lock:
            self._wake = wake
            for state in self._by_name.values():
                state.outbox.bind(wake)

    def describe(self, state: SimState) -> dict[str, Any]:
        """An account as the control API shows it (never its token)."""
        config = state.config
        return {"name": state.name, "email": config.email, "rate_limit": config.rate_limit,
                "window_s": config.window_s, "revoked": state.revoked,
                "default": state is self.default, "control_path": state.control_path}


def _check_text(field: str, value: object, forbidden: str = "") -> None:
    if not isinstance(value, str) or not value or value != value.strip() or any(
            char in value for char in forbidden):
        extra = f" and without {forbidden!r}" if forbidden else ""
        raise AccountError(f"{field} must be a non-empty string, no spaces around{extra}")


def _positive(field: str, value: object, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or (
            kind is int and not isinstance(value, int)):
        raise AccountError(f"{field} must be a positive {kind.__name__}")
    return kind(value)
