"""Company leases as typed records, and the pure rule that spreads them over the workers.

A lease is one Alegra user: the companies that share its rate budget (`AlegraAccount.user`), so
a budget always has one spender. Its key is a digest of the user (base URL and e-mail), stable
while companies come and go. Times are the store's UTC text (`sync.store.db.utcnow()`), which
sorts as it reads. Design: sync/leasing.py.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass


def lease_key(user: tuple[str, str]) -> str:
    """The lease of an Alegra user (`AlegraAccount.user`: base URL, e-mail in lower case)."""
    base_url, email = user
    return hashlib.sha256(f"{base_url}\n{email}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LeaseRecord:
    """One row of `company_leases`: who holds the user's companies, and until when."""

    key: str
    holder: str | None
    expires_at: str | None
    acquired_at: str | None = None
    companies: tuple[str, ...] = ()

    def takeable_by(self, worker: str, now: str, dead: Collection[str] = ()) -> bool:
        """Free, ran out, already `worker`'s, or held by a worker known `dead`: what the
        compare-and-set would take."""
        return (self.holder is None or self.holder == worker or self.holder in dead
                or self.expires_at is None or self.expires_at < now)


@dataclass(frozen=True)
class WorkerRecord:
    """One row of `workers`: a worker process, live while `expires_at` has not passed."""

    id: str
    host: str
    pid: int
    started_at: str
    beat_at: str
    expires_at: str


@dataclass(frozen=True)
class LeasePlan:
    """What one worker does about its leases now: hand some over, try to take others."""

    release: tuple[str, ...] = ()
    take: tuple[str, ...] = ()


def fair_share(leases: int, workers: int) -> int:
    """The most leases a worker should hold: ceil(leases / live workers)."""
    return math.ceil(leases / max(1, workers))


def plan(
    worker: str,
    mine: Collection[str],
    *,
    wanted: Collection[str],
    rows: Sequence[LeaseRecord],
    workers: int,
    now: str,
    dead: Collection[str] = (),
) -> LeasePlan:
    """`worker` holds `mine`; the live companies need the leases `wanted`. It hands over what no
    live company needs and what it holds above its fair share; below it, it tries to take free
    or run-out leases (or those of `dead` workers), in an order of its own (so two workers rarely
    try the same one first)."""
    share = fair_share(len(wanted), workers)
    kept = sorted(key for key in mine if key in wanted)
    release = [key for key in mine if key not in wanted] + kept[share:]
    if len(kept) >= share:
        return LeasePlan(release=tuple(release))
    takeable = [row.key for row in rows if row.key in wanted and row.key not in mine
                and row.takeable_by(worker, now, dead)]
    takeable.sort(key=lambda key: hashlib.sha256(f"{worker}\n{key}".encode()).digest())
    return LeasePlan(release=tuple(release), take=tuple(takeable[: share - len(kept)]))
