"""A partner's receiver for bench/notifications.py, in its own process: verifies each delivery's
signature with `standardwebhooks` (as a partner would), notes when it arrived, answers 204.

    python bench/notifications_receiver.py PORT SECRET[,SECRET...]

`GET /arrivals` answers [[webhook-id, type, receipt_id, unix time], ...] and forgets them.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ARRIVALS: list[list[Any]] = []
BAD: list[int] = [0]


def app(secrets: list[str]) -> Starlette:
    hooks = [Webhook(secret) for secret in secrets]

    async def hook(request: Request) -> Response:
        raw = await request.body()
        at = time.time()
        for webhook in hooks:
            try:
                event = webhook.verify(raw, dict(request.headers))
                break
            except Exception:  # noqa: S112 -- the next secret may verify it
                continue
        else:
            BAD[0] += 1
            return Response(status_code=401)
        ARRIVALS.append([request.headers["webhook-id"], event["type"],
                         event["data"].get("receipt_id"), at])
        return Response(status_code=204)

    async def arrivals(_: Request) -> Response:
        taken = ARRIVALS[:]
        del ARRIVALS[: len(taken)]
        return JSONResponse({"arrivals": taken, "bad_signatures": BAD[0]})

    return Starlette(routes=[Route("/hook", hook, methods=["POST"]),
                             Route("/arrivals", arrivals, methods=["GET"])])


if __name__ == "__main__":
    port, secrets = int(sys.argv[1]), sys.argv[2].split(",")
    uvicorn.run(app(secrets), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)
