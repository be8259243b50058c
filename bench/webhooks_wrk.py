"""Webhook acknowledgements under wrk: the issue's figure, `wrk -t2 -c32`, per receiver design.

    .venv/bin/python bench/webhooks_wrk.py [--seconds 10] [--rounds 5] [--variants bare,...]

For each variant a fresh uvicorn with the Procfile's flags (one process, no access log) on a fresh
database; wrk posts a realistic Alegra webhook body to a valid token URL (`post.lua`, written to
the work directory) for `--seconds`; then the web process is stopped (it commits what is queued)
and the inbox rows are counted: `lost` is every 2xx without its row. Variants alternate, round
after round; the figures are medians over rounds, with the 1-minute load average at each run
(the machine may be shared).

    bare       a Starlette endpoint that reads the body and answers 200: the ceiling
    app        the real app with an inbox that stores nothing (`NoInbox`): what the app's own
               request handling costs, before any storing
    committer  the real app: group commit through the committer process (receiver/inbox/)
    thread     the real app with the committer replaced by group commit on ONE writer thread
               with a plain sqlite3 connection and a queue (`ThreadCommit`, below): the
               simplest design that could hold the figure
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import queue
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starlette.applications import Starlette  # noqa: E402

from receiver import webhooks  # noqa: E402
from receiver.app import create_app  # noqa: E402
from receiver.inbox.committer import insert_items, open_connection  # noqa: E402
from sync.store.inbox import Item  # noqa: E402
from sync.webhook_tokens import make_token  # noqa: E402
from tests.support.procs import TEST_SECRET_KEY, ManagedProcess, free_port, product_env  # noqa: E402

NO_ALEGRA, NO_TOKEN = "http://127.0.0.1:9/api/v1", "unused"  # the web side never calls Alegra
PATH = f"/webhooks/alegra/{make_token([TEST_SECRET_KEY])}"
VARIANTS = {
    "bare": "bench.webhooks:bare_app",
    "app": "bench.webhooks_wrk:app_without_inbox",
    "committer": "receiver.app:create_app",
    "thread": "bench.webhooks_wrk:thread_app",
}
BODY = json.dumps({"subject": "edit-client", "message": {"client": {
    "id": "1042", "name": "Ferretería Duarte SRL", "identification": "101000001",
    "identificationObject": {"type": "RNC", "number": "101000001"},
    "email": "compras@ferreteriaduarte.do", "phonePrimary": "809-555-0142",
    "address": {"address": "Av. Duarte 115", "city": "Santo Domingo"},
    "type": ["provider"], "status": "active", "kindOfPerson": "LEGAL_ENTITY",
    "regime": "REGIMEN_ORDINARIO", "term": {"id": "1", "name": "Contado", "days": "0"},
}}}, ensure_ascii=False)
Entry = tuple[Item, "asyncio.Future[int]"]
# bench/webhooks.py's reader of /proc, imported by name (mypy sees bench/*.py as top-level modules)
cpu_s = cast(Callable[[ManagedProcess], float], importlib.import_module("bench.webhooks").cpu_s)


class ThreadCommit:
    """Group commit on a dedicated writer thread: each request queues its row; the thread takes
    everything queued, inserts it in one transaction (`insert_items`, `synchronous = FULL`) and
    resolves the futures on the event loop."""

    def __init__(self, path: Path, **_: Any) -> None:
        self.path = path
        self.queue: queue.SimpleQueue[Entry | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread.start()

    def submit(self, item: Item, *, timeout_s: float | None = None) -> asyncio.Future[int]:
        future: asyncio.Future[int] = self.loop.create_future()
        self.queue.put((item, future))
        return future

    async def close(self) -> None:
        self.queue.put(None)
        await asyncio.to_thread(self.thread.join)

    def _run(self) -> None:
        conn = open_connection(self.path)
        while (batch := self._take()) is not None:
            try:
                ids, _ = insert_items(conn, [item for item, _ in batch])
            except Exception as exc:  # every request of the batch answers 503
                self.loop.call_soon_threadsafe(_fail, batch, exc)
                continue
            self.loop.call_soon_threadsafe(_resolve, batch, ids)
        conn.close()

    def _take(self) -> list[Entry] | None:
        """The next batch: wait for one entry, then take what else is queued (None: stop)."""
        first = self.queue.get()
        batch = [] if first is None else [first]
        while first is not None and len(batch) < 256:
            try:
                entry = self.queue.get_nowait()
            except queue.Empty:
                break
            if entry is None:
                self.queue.put(None)
                break
            batch.append(entry)
        return batch or None


def _resolve(batch: list[Entry], ids: list[int]) -> None:
    for (_, future), inbox_id in zip(batch, ids, strict=True):
        if not future.done():
            future.set_result(inbox_id)


def _fail(batch: list[Entry], exc: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


class NoInbox:
    """An inbox writer that stores nothing and answers every delivery at once (id 0)."""

    def __init__(self, path: Path, **_: Any) -> None:
        self.path = path

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()

    def submit(self, item: Item, *, timeout_s: float | None = None) -> asyncio.Future[int]:
        future: asyncio.Future[int] = self.loop.create_future()
        future.set_result(0)
        return future

    async def close(self) -> None:
        return None


def app_without_inbox() -> Starlette:
    """The real app, its inbox writer replaced by one that stores nothing."""
    cast(Any, webhooks).InboxWriter = NoInbox
    return create_app()


def thread_app() -> Starlette:
    """The real app with the committer process replaced by a writer thread."""
    cast(Any, webhooks).InboxWriter = ThreadCommit
    return create_app()


@dataclass
class Run:
    acks: int
    acks_per_s: float
    p50_ms: float
    p99_ms: float
    lost: int
    load: float
    cpu_ms: float  # CPU of the web process and its committer per acknowledgement


def lua_script(work: Path) -> Path:
    script = work / "post.lua"
    body = BODY.replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n', encoding="utf-8")
    return script


def run_variant(variant: str, work: Path, seconds: int, rnd: int) -> Run:
    """One wrk run against a fresh uvicorn on a fresh database, then the rows counted."""
    db, port = work / f"{variant}-{rnd}.db", free_port()
    args = [sys.executable, "-m", "uvicorn", VARIANTS[variant], "--factory", "--host",
            "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    env = product_env(db, alegra_base_url=NO_ALEGRA, email="bench@example.com", token=NO_TOKEN,
                      port=port, LOG_LEVEL="warning")
    proc = ManagedProcess(f"web-{variant}-{rnd}", args, env, work).start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{url}/healthz" if variant != "bare" else f"{url}/")
        httpx.post(f"{url}{PATH}", content=b"{}")  # starts the committer before measuring
        load, cpu_before = os.getloadavg()[0], cpu_s(proc)
        out = subprocess.run(
            ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", str(work / "post.lua"),
             f"{url}{PATH}"], capture_output=True, text=True, check=True).stdout
        cpu = cpu_s(proc) - cpu_before
    finally:
        proc.stop()
    acks = _wrk_acks(out)
    stores = variant not in ("bare", "app")
    rows = _rows(db) - 1 if stores else acks  # the warm-up delivery is one row
    return Run(acks, acks / seconds, _pct(out, "50"), _pct(out, "99"), max(0, acks - rows), load,
               cpu * 1000 / max(acks, 1))


def _wrk_acks(out: str) -> int:
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total - (int(bad.group(1)) if bad else 0)


def _pct(out: str, pct: str) -> float:
    match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    assert match is not None, out
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 0
    variants = args.variants.split(",")
    runs: dict[str, list[Run]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        work = Path(tmp)
        lua_script(work)
        for rnd in range(args.rounds):
            for variant in variants:
                run = run_variant(variant, work, args.seconds, rnd)
                runs[variant].append(run)
                print(f"round {rnd + 1} {variant:9} {run.acks_per_s:7.0f} acks/s  p50 "
                      f"{run.p50_ms:5.2f} ms  p99 {run.p99_ms:6.2f} ms  lost {run.lost}  "
                      f"load {run.load:.1f}  cpu {run.cpu_ms:.3f} ms/ack", flush=True)
    report(runs, args)
    return 0


def report(runs: dict[str, list[Run]], args: argparse.Namespace) -> None:
    bare = statistics.median(r.acks_per_s for r in runs["bare"]) if "bare" in runs else 0.0
    bare_p99 = statistics.median(r.p99_ms for r in runs["bare"]) if "bare" in runs else 0.0
    print(f"\nwrk -t2 -c32 -d{args.seconds}s, median of {args.rounds} rounds, alternating")
    print("| variant | acks/s | of bare | p50 ms | p99 ms | p99 of bare's | lost | load "
          "| web CPU ms/ack |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for variant, rs in runs.items():
        acks = statistics.median(r.acks_per_s for r in rs)
        p99 = statistics.median(r.p99_ms for r in rs)
        print(f"| {variant} | {acks:.0f} | {acks / bare:.0%} | "
              f"{statistics.median(r.p50_ms for r in rs):.2f} | {p99:.2f} | {p99 / bare_p99:.2f}× "
              f"| {sum(r.lost for r in rs)} | {statistics.median(r.load for r in rs):.1f} "
              f"| {statistics.median(r.cpu_ms for r in rs):.3f} |"
              if bare else f"| {variant} | {acks:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
