"""Liveness and readiness: GET /healthz and GET /readyz (no key: load balancers call them).

`/healthz` says the process serves requests, nothing more. `/readyz` says whether this instance
should get traffic: the database answers (within READY_WAIT_S), every migration shipped with the
code is applied, and the worker's heartbeat is recent (`sync.status.WORKER_STALE_S`). Otherwise
503 with the reasons: a PostgreSQL that is restarting or unreachable is `database unreachable`,
and the pool reconnects by itself once it is back.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from receiver.admin_spec import HEALTHZ, READYZ
from receiver.openapi import ApiRoute
from sync.logs import get_logger
from sync.status import WORKER_STALE_S, worker_summary
from sync.store import ops_queries
from sync.store.db import Database, DatabaseUnavailable

READY_WAIT_S = 2.0  # a load balancer's probe answers in this time, whatever the database does


async def healthz(_: Request) -> JSONResponse:
    """The process is alive and serving. Says nothing about the database or the worker."""
    return JSONResponse({"status": "ok"})


async def readiness(db: Database, now: datetime) -> tuple[list[str], dict[str, Any]]:
    """(reasons not to be ready, the checks' figures). No reasons: ready."""
    try:
        async with asyncio.timeout(READY_WAIT_S):
            await ops_queries.ping(db)
            pending = await db.pending_migrations()
            worker = await worker_summary(db, now)
    except TimeoutError:
        return [f"database unreachable: no answer in {READY_WAIT_S:g} s"], {"database": False}
    except DatabaseUnavailable as exc:
        # The server's own words (host, database name) go to the log, not to this
        # unauthenticated answer: it names the kind of failure only.
        get_logger(reason=str(exc.reason)).warning("ready.database_unreachable")
        cause = type(exc.__cause__ or exc).__name__
        return [f"database unreachable: {cause}"], {"database": False}
    except (sqlite3.Error, ValueError) as exc:
        return [f"database unreachable: {type(exc).__name__}"], {"database": False}
    reasons = []
    if pending:
        reasons.append(f"migrations not applied: {', '.join(map(str, pending))}")
    age = worker["heartbeat_age_s"]
    if age is None:
        reasons.append("the worker has never sent a heartbeat")
    elif age > WORKER_STALE_S:
        reasons.append(f"worker heartbeat is {age:.0f} s old (limit {WORKER_STALE_S:.0f} s)")
    checks = {"database": True, "pending_migrations": pending, "worker_heartbeat_age_s": age}
    return reasons, checks


async def readyz(request: Request) -> JSONResponse:
    """200 when ready for traffic, else 503 with the reasons."""
    reasons, checks = await readiness(request.app.state.db, datetime.now(UTC))
    body = {"status": "not_ready" if reasons else "ready", "reasons": reasons, "checks": checks}
    return JSONResponse(body, status_code=503 if reasons else 200)


routes: list[BaseRoute] = [
    ApiRoute("/healthz", healthz, "GET", HEALTHZ),
    ApiRoute("/readyz", readyz, "GET", READYZ),
]
