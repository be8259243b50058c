"""The web process's end of the inbox committer (`committer.py`): start it, send it a
batch, read its answer, stop it.

The committer is started on the first batch (a web process that gets no deliveries never starts
one), in a session of its own so that a Ctrl-C or a signal to the web process's group does not
stop it before the web process has handed it the batches it still holds; it exits when its end
of the socket pair reads end of file, which is also what happens when the web process is killed.
If it dies, the batch in flight fails (those requests answer 503; Alegra delivers again) and the
next batch starts a new one, at most one start per RESTART_EVERY_S.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import receiver
from receiver.inbox.committer import HEAD, LOCK_WAIT_S, frame
from sync.logs import get_logger
from sync.store.inbox import Item

RESTART_EVERY_S = 1.0
STOP_WAIT_S = 10.0  # at shutdown, for the committer to finish its batch and exit
SOURCE_ROOT = Path(receiver.__file__).resolve().parents[1]  # so the child imports this same code


class CommitterGone(ConnectionError):
    """The committer process is not running (exited, or could not start): nothing was answered,
    so the batch's outcome is unknown. The next batch starts a new committer."""


class CommitFailed(RuntimeError):
    """The committer answered that it could not write the batch: nothing was written."""


@dataclass(frozen=True)
class CommitterOptions:
    lock_wait_s: float = LOCK_WAIT_S
    log_format: str = "auto"
    log_level: str = "info"
    # A committer that has not answered a batch by then is stuck (stopped, or its disk hung):
    # it is killed and the next batch starts another. Past its lock wait, with room for fsync.
    answer_deadline_s: float = LOCK_WAIT_S + 7.5


@dataclass
class _Running:
    process: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class CommitterChannel:
    """`await commit(items)` → ids, one batch at a time; `await stop()` at shutdown."""

    def __init__(self, path: Path, options: CommitterOptions | None = None) -> None:
        self.path = path
        self.options = options or CommitterOptions()
        self._running: _Running | None = None
        self._started_at = float("-inf")

    async def commit(self, items: Sequence[Item]) -> list[int]:
        """The batch's ids once the committer has COMMITTED it. CommitFailed if it wrote
        nothing; CommitterGone if it died (the batch may or may not be written)."""
        running = await self._ensure_running()
        try:
            status, value = await self._exchange(running, items)
        except BaseException as exc:
            # Whatever interrupted the exchange (the child died or hung, or this task was
            # cancelled), its answer may still come: the next batch must never read it as its
            # own. So this committer is done with.
            self._discard(running)
            if isinstance(exc, asyncio.IncompleteReadError | ConnectionError | TimeoutError):
                raise CommitterGone("the inbox committer exited or stopped answering") from exc
            raise
        if status != "ok":
            raise CommitFailed(value)
        assert isinstance(value, list)
        return value

    async def _exchange(self, running: _Running, items: Sequence[Item]) -> tuple[str, object]:
        running.writer.write(frame(list(items)))
        async with asyncio.timeout(self.options.answer_deadline_s):
            head = await running.reader.readexactly(HEAD.size)
            return _unpickle(await running.reader.readexactly(HEAD.unpack(head)[0]))

    def _detach(self, running: _Running) -> None:
        """No batch goes to this committer again; closing our end makes it exit."""
        if self._running is running:
            self._running = None
        running.writer.close()

    def _discard(self, running: _Running) -> None:
        """Detach and kill the process now (asyncio's child watcher reaps it)."""
        self._detach(running)
        if running.process.returncode is None:
            running.process.kill()

    async def stop(self) -> None:
        """Close the socket (the committer exits at end of file) and wait for it."""
        if self._running is not None:
            await self._forget(self._running)

    @property
    def pid(self) -> int | None:
        return self._running.process.pid if self._running is not None else None

    async def _ensure_running(self) -> _Running:
        if self._running is not None and self._running.process.returncode is None:
            return self._running
        if self._running is not None:
            await self._forget(self._running)
        if time.monotonic() - self._started_at < RESTART_EVERY_S:
            raise CommitterGone("the inbox committer is restarting")
        self._started_at = time.monotonic()
        self._running = await self._start()
        return self._running

    async def _start(self) -> _Running:
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command(theirs.fileno()), pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, start_new_session=True, env=self._env(),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        get_logger(pid=process.pid).info("webhook.committer_started")
        return _Running(process, reader, writer)

    def _command(self, fd: int) -> list[str]:
        """`-P`: the current directory is not put on the child's path (a `sync/` there must not
        stand in for this code)."""
        o = self.options
        return [sys.executable, "-P", "-m", "receiver.inbox.committer", str(fd),
                str(self.path), "--lock-wait", str(o.lock_wait_s), "--log-format", o.log_format,
                "--log-level", o.log_level]

    @staticmethod
    def _env() -> dict[str, str]:
        """The web process's environment; PYTHONPATH gains the directory this code was imported
        from only when the child would not find it anyway (it was found through the current
        directory, which `-P` leaves out): never ahead of the standard library otherwise."""
        env = dict(os.environ)
        cwd = Path.cwd().resolve()
        found = {Path(p).resolve() for p in sys.path if p and Path(p).resolve() != cwd}
        if SOURCE_ROOT not in found:
            path = env.get("PYTHONPATH")
            env["PYTHONPATH"] = f"{SOURCE_ROOT}{os.pathsep}{path}" if path else str(SOURCE_ROOT)
        return env

    async def _forget(self, running: _Running) -> None:
        """Detach and reap the process (killed if it does not exit in time)."""
        self._detach(running)
        try:
            await asyncio.wait_for(running.process.wait(), STOP_WAIT_S)
        except TimeoutError:
            running.process.kill()
            await running.process.wait()


def _unpickle(data: bytes) -> tuple[str, object]:
    """The committer's answer (both ends are this program, over a private socket pair)."""
    status, value = pickle.loads(data)  # noqa: S301 — our own child's answer
    return str(status), value
