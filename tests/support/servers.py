"""Real uvicorn servers on loopback ports, in daemon threads (as httpx's own tests do)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from sync.simulator.accounts import Accounts
from sync.simulator.app import create_simulator
from sync.simulator.state import SimConfig, SimState


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(uvicorn.Server):
    """uvicorn checks `should_exit` every 0.1 s; tests stop servers often: check every 10 ms."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            await asyncio.sleep(0.01)


class ServerThread:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a daemon thread; `.url` once started."""

    def __init__(self, app: ASGIApp, *, startup_timeout_s: float = 10.0) -> None:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listening socket's proto says TCP; with proto 0, Nagle + delayed ACK add ~40 ms a request.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))  # bound here, so no other process can take it
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none",
                                timeout_graceful_shutdown=2)
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._startup_timeout_s = startup_timeout_s

    def start(self) -> ServerThread:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit (running the app's shutdown) and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator served on loopback: where it is, and one account's credentials and state.

    The fixture's is the default account; `add_account` and `account` give the same view of
    another account of the same simulator (its own data, rate window, faults and log).
    """

    root_url: str
    state: SimState
    config: SimConfig
    accounts: Accounts | None = None  # None when built by hand around a lone app

    def add_account(self, email: str, token: str, *, name: str | None = None,
                    rate_limit: int | None = None,
                    window_s: float | None = None) -> RunningSimulator:
        """A new account of this simulator (see `Accounts.add`), as a RunningSimulator."""
        added = self._accounts().add(email, token, name=name, rate_limit=rate_limit,
                                     window_s=window_s)
        return self._on(added)

    def account(self, name: str) -> RunningSimulator:
        """The account of this name (its e-mail unless it was given one)."""
        return self._on(self._accounts().get(name))

    def _on(self, state: SimState) -> RunningSimulator:
        return RunningSimulator(self.root_url, state, state.config, self.accounts)

    def _accounts(self) -> Accounts:
        if self.accounts is None:
            raise RuntimeError("this RunningSimulator was built without its accounts")
        return self.accounts

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api/v1"

    @property
    def email(self) -> str:
        return self.config.email

    @property
    def token(self) -> str:
        return self.config.token


@contextmanager
def running_simulator(config: SimConfig | None = None) -> Iterator[RunningSimulator]:
    """Serve a fresh simulator for the duration of the block."""
    app, state = create_simulator(config)
    server = ServerThread(app).start()
    try:
        yield RunningSimulator(server.url, state, state.config, app.state.accounts)
    finally:
        server.stop()
