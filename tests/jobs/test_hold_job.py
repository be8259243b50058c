"""`hold_job` / `release_job`: a command holding a job beside the worker (`webhooks register`
holds `subscriptions`), on both engines (`database`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sync.jobs.runner import JobBusy, hold_job
from sync.jobs.schedule import RECONCILE, SUBSCRIPTIONS
from sync.settings import Settings, load_settings
from sync.store import jobs as job_store
from sync.store.db import Database, utcnow

pytestmark = pytest.mark.anyio
OTHER = "other-host.invalid/1:4242"
LATER = "2999-01-01T00:00:00+00:00"


@pytest.fixture
def settings() -> Settings:
    return load_settings(env_file=None, environ={"SECRET_KEY": "x" * 32})


async def _owner(db: Database, name: str) -> str | None:
    state = await job_store.job_state(db, name)
    assert state is not None
    return state.owner


async def test_a_held_job_is_busy_for_others_until_released(
    database: Database, settings: Settings
) -> None:
    owner = await hold_job(database, settings, SUBSCRIPTIONS, lease_s=60)
    other = await job_store.claim_job(database, SUBSCRIPTIONS, owner=OTHER, lease_until=LATER,
                                      holder_gone=lambda _: False)
    assert other == owner  # the worker's run is told who holds it

    await job_store.release_job(database, SUBSCRIPTIONS, owner=OTHER)  # not its hold
    assert await _owner(database, SUBSCRIPTIONS) == owner
    await job_store.release_job(database, SUBSCRIPTIONS, owner=owner)
    assert await _owner(database, SUBSCRIPTIONS) is None
    assert await job_store.claim_job(database, SUBSCRIPTIONS, owner=OTHER, lease_until=LATER,
                                     holder_gone=lambda _: False) is None


async def test_a_job_the_worker_holds_raises_job_busy_naming_it(
    database: Database, settings: Settings
) -> None:
    await job_store.ensure_jobs(database, {SUBSCRIPTIONS: utcnow()})
    await job_store.claim_job(database, SUBSCRIPTIONS, owner=OTHER, lease_until=LATER,
                              holder_gone=lambda _: False)
    with pytest.raises(JobBusy) as busy:
        await hold_job(database, settings, SUBSCRIPTIONS, lease_s=60)
    assert busy.value.holder == OTHER
    assert await _owner(database, SUBSCRIPTIONS) == OTHER


async def test_a_hold_whose_lease_ran_out_is_taken_over(
    database: Database, settings: Settings
) -> None:
    """A command killed -9 never releases: its short lease lets the worker in afterwards."""
    await hold_job(database, settings, SUBSCRIPTIONS, lease_s=-1)
    assert await job_store.claim_job(database, SUBSCRIPTIONS, owner=OTHER, lease_until=LATER,
                                     holder_gone=lambda _: False) is None


async def test_a_row_it_makes_is_scheduled_as_the_worker_would(
    database: Database, settings: Settings
) -> None:
    """`subscriptions` due now; a job the worker first runs one interval later, likewise."""
    before = datetime.now(UTC)
    for name in (SUBSCRIPTIONS, RECONCILE):
        await job_store.release_job(
            database, name, owner=await hold_job(database, settings, name, lease_s=60))
    states = {s.name: s for s in await job_store.job_states(database)}
    subscriptions, reconcile = states[SUBSCRIPTIONS].next_run_at, states[RECONCILE].next_run_at
    assert subscriptions is not None
    assert reconcile is not None
    assert subscriptions <= datetime.now(UTC)
    assert reconcile >= before + timedelta(seconds=settings.reconcile_s)
