"""Fixtures shared by every test suite. Product fixtures live with the suites that need them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sync.simulator.state import SimConfig
from sync.store.db import Database
from tests.support.databases import ENGINES, PgServer, reachable_server
from tests.support.servers import RunningSimulator, running_simulator

# Hypothesis (under schemathesis) keeps its caches in `.hypothesis/` of the working directory,
# which is the checkout: keep them in the temporary directory instead. Read when first written.
HYPOTHESIS_HOME = Path(tempfile.gettempdir()) / f"alegra-sync-hypothesis-{os.getuid()}"
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(HYPOTHESIS_HOME))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sim_config() -> SimConfig:
    """The simulator's configuration for a test: a 1 s rate window and fast retries.

    Override this fixture in a test module (or parametrize it) for a different account.
    """
    # Handshakes wait up to 5 s (Alegra's own bound is unknown): the web app's first answer can
    # take seconds on a loaded machine (its committer process starting); none of these tests
    # makes a handshake time out on purpose.
    return SimConfig(window_s=1.0, delivery_retry_delays=(0.05, 0.05, 0.05),
                     handshake_timeout_s=5.0, delivery_timeout_s=1.0)


@pytest.fixture
def simulator(sim_config: SimConfig) -> Iterator[RunningSimulator]:
    """A fresh simulated Alegra served on a loopback port for one test."""
    with running_simulator(sim_config) as running:
        yield running


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The tests' PostgreSQL server (tests/support/databases.py): skips without one, but in CI."""
    server = reachable_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine in turn: a test using `database` or `database_target` runs on both."""
    return str(request.param)


@pytest.fixture
def database_target(engine: str, tmp_path: Path, request: pytest.FixtureRequest
                    ) -> Iterator[Path | str]:
    """What `Database.open` (or DATABASE_URL) takes for a fresh, migrated store of this test's
    own: a SQLite file's path, or a PostgreSQL URL (its database is dropped afterwards)."""
    if engine == "sqlite":
        yield tmp_path / "store.db"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.create()
    try:
        yield url
    finally:
        server.drop(url)


@pytest.fixture
async def database(database_target: Path | str) -> AsyncIterator[Database]:
    """An opened, migrated store on each engine (see `engine`)."""
    db = await Database.open(database_target)
    try:
        yield db
    finally:
        await db.close()
