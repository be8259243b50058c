"""Scheduled jobs as typed records (pure): a job's row as the scheduler decides on it and the
operators read it, and one recorded run. Times are aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sync.states import JobOutcome


@dataclass(frozen=True)
class JobState:
    """One job's row of the `jobs` table: its schedule, its last run, and who runs it now."""

    name: str
    next_run_at: datetime | None  # None: not scheduled again (a backfill that succeeded)
    last_outcome: JobOutcome | None = None
    checkpoint: dict[str, Any] | None = None  # job-specific, e.g. the next page's offset
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_duration_s: float | None = None
    last_error: str | None = None
    owner: str | None = None  # 'host:pid' of the process running it, None when idle
    lease_until: datetime | None = None

    @property
    def running(self) -> bool:
        """A process holds the job now."""
        return self.owner is not None


@dataclass(frozen=True)
class JobRunRecord:
    """One recorded run of a job (`job_runs`): when, how it ended, and its job's detail."""

    id: int
    name: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: JobOutcome | None = None
    duration_s: float | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
