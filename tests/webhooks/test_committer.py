"""The committer process that writes the inbox for the web process: what it records, and what
happens when it, or the web process, dies."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from receiver.inbox import channel as inbox_channel
from receiver.inbox.channel import CommitterGone, CommitterOptions
from receiver.inbox.committer import (
    checkpoint_if_due,
    frame,
    insert_items,
    open_connection,
    read_frame,
)
from receiver.inbox.writer import MAX_BATCH_BYTES, InboxWriter
from sync.alegra.client import AlegraClient
from sync.settings import Settings
from sync.store.contacts import get_cached_contact
from sync.store.db import Database
from sync.store.inbox import NewDelivery, NewHandshake
from tests.support.servers import RunningSimulator
from tests.webhooks.conftest import delivery, read_db
from tests.webhooks.test_apply import settle
from tests.webhooks.test_receiver import hold_write_lock

pytestmark = pytest.mark.anyio


def exited(pid: int) -> bool:
    """True once `pid` has exited (gone, or a zombie nobody has reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return status in {"Z", "X"}


def wait_exited(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited(pid):
            return True
        time.sleep(0.05)
    return False


async def test_each_row_records_what_its_body_is(db: Database, settings: Settings) -> None:
    """The committer parses each body: resource, id and subject for a known shape, the shape
    for the rest; a handshake leaves its note and no inbox row."""
    writer = InboxWriter(settings.database_path)
    await writer.start()
    ids = await asyncio.gather(
        writer.submit(NewDelivery(delivery("edit-client", "client", id="77"), 1)),
        writer.submit(NewDelivery(b"{not json", 0)),
        writer.submit(NewHandshake(0)),
    )
    await writer.close()
    rows = read_db(settings.database_path,
                   "SELECT id, shape, subject, resource, resource_id, key_index FROM inbox")
    assert [tuple(r) for r in rows] == [
        (ids[0], "ok", "edit-client", "client", "77", 1),
        (ids[1], "malformed", None, None, None, 0),
    ]
    assert ids[2] == 0
    assert len(read_db(settings.database_path, "SELECT * FROM webhook_handshakes")) == 1


async def test_a_batch_bigger_than_the_byte_bound_is_split_and_all_stored(
    db: Database, settings: Settings
) -> None:
    """Bodies worth more than MAX_BATCH_BYTES go in several batches; every one is stored."""
    body = b'{"pad": "' + b"x" * (256 * 1024) + b'"}'
    count = MAX_BATCH_BYTES // len(body) * 2 + 3
    writer = InboxWriter(settings.database_path)
    await writer.start()
    ids = await asyncio.gather(*(writer.submit(NewDelivery(body, 0)) for _ in range(count)))
    await writer.close()
    rows = read_db(settings.database_path, "SELECT id, length(body) AS size FROM inbox")
    assert sorted(ids) == [r["id"] for r in rows]
    assert {r["size"] for r in rows} == {len(body)}


async def test_a_committer_killed_mid_batch_fails_that_batch_and_the_next_one_commits(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of the committer while it waits for the lock: the batch is reported failed (the
    requests answer 503, nothing was written) and the next batch starts a new committer."""
    monkeypatch.setattr(inbox_channel, "RESTART_EVERY_S", 0.0)
    writer = InboxWriter(settings.database_path)
    await writer.start()
    await writer.submit(NewDelivery(b'{"first": 1}', 0))
    first_pid = writer.channel.pid
    assert first_pid is not None
    holder = hold_write_lock(settings.database_path, seconds=1.0)
    in_flight = writer.submit(NewDelivery(b'{"lost": 1}', 0))
    await asyncio.sleep(0.2)  # the committer is now polling for the lock
    os.kill(first_pid, signal.SIGKILL)
    with pytest.raises(CommitterGone):
        await in_flight
    await asyncio.to_thread(holder.join)
    assert await writer.submit(NewDelivery(b'{"after": 1}', 0)) > 0
    assert writer.channel.pid not in (None, first_pid)
    await writer.close()
    bodies = [bytes(r["body"]) for r in read_db(settings.database_path, "SELECT body FROM inbox")]
    assert bodies == [b'{"first": 1}', b'{"after": 1}']


async def test_closing_the_writer_stops_the_committer(db: Database, settings: Settings) -> None:
    """At shutdown the committer finishes and exits; no process is left behind."""
    writer = InboxWriter(settings.database_path)
    await writer.start()
    await writer.submit(NewDelivery(b"{}", 0))
    pid = writer.channel.pid
    assert pid is not None
    await writer.close()
    assert exited(pid)


HOLDER = """
import asyncio, sys
from pathlib import Path
from sync.logs import configure_logging
from sync.store.inbox import NewDelivery
from receiver.inbox.writer import InboxWriter

async def main():
    configure_logging("json")  # to stderr: stdout is for the pid
    writer = InboxWriter(Path(sys.argv[1]))
    await writer.start()
    await writer.submit(NewDelivery(b"{}", 0))
    print(writer.channel.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_the_committer_exits_when_the_web_process_is_killed(
    settings: Settings, db: Database
) -> None:
    """kill -9 of the process that started the committer leaves no committer running."""
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(settings.database_path), stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        committer_pid = int(await asyncio.wait_for(parent.stdout.readline(), 20))
        assert not exited(committer_pid)
    finally:
        parent.kill()
        await parent.wait()
    assert await asyncio.to_thread(wait_exited, committer_pid)


async def test_a_burst_is_logged_as_a_line_a_second_not_a_line_a_batch(
    db: Database, settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    """Twenty batches in quick succession: one `webhook.stored` line at once, the rest in one
    more line; together they count every delivery, first to last id."""
    writer = InboxWriter(settings.database_path, options=CommitterOptions(log_format="json"))
    await writer.start()
    ids = [await writer.submit(NewDelivery(b"{}", 0)) for _ in range(20)]
    await writer.close()
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines()]
    stored = [e for e in lines if e["event"] == "webhook.stored"]
    assert len(stored) == 2
    assert sum(e["count"] for e in stored) == 20
    assert (stored[0]["first_id"], stored[-1]["last_id"]) == (ids[0], ids[-1])


async def test_one_body_that_breaks_parsing_does_not_fail_its_batch(
    db: Database, settings: Settings
) -> None:
    """A body nested too deep to parse, sent with others in one batch: every item is stored
    and answered (the odd one as unusable), none gets a 503."""
    poison = json.dumps({"subject": "edit-client", "message": "[" * 100_000}).encode()
    writer = InboxWriter(settings.database_path)
    await writer.start()
    ids = await asyncio.gather(
        writer.submit(NewDelivery(delivery("edit-client", "client", id="1"), 0)),
        writer.submit(NewDelivery(poison, 0)),
        writer.submit(NewHandshake(0)),
    )
    await writer.close()
    shapes = {r["id"]: r["shape"] for r in read_db(settings.database_path,
                                                   "SELECT id, shape FROM inbox")}
    assert shapes == {ids[0]: "ok", ids[1]: "unknown"}


async def test_a_committer_that_stops_answering_is_replaced(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A committer frozen mid-life (SIGSTOP) fails its batch once the answer deadline passes,
    is killed, and the next batch goes to a new one."""
    monkeypatch.setattr(inbox_channel, "RESTART_EVERY_S", 0.0)
    writer = InboxWriter(settings.database_path)
    await writer.start()
    await writer.submit(NewDelivery(b'{"first": 1}', 0))  # a slow machine's start-up: no deadline
    writer.channel.options = CommitterOptions(answer_deadline_s=0.5)
    frozen = writer.channel.pid
    assert frozen is not None
    os.kill(frozen, signal.SIGSTOP)
    with pytest.raises(CommitterGone):
        await writer.submit(NewDelivery(b'{"unanswered": 1}', 0))
    writer.channel.options = CommitterOptions()  # the new committer's start-up: no deadline
    assert await writer.submit(NewDelivery(b'{"after": 1}', 0)) > 0
    assert writer.channel.pid not in (None, frozen)
    await writer.close()
    assert await asyncio.to_thread(wait_exited, frozen)


async def test_a_committer_started_with_a_high_descriptor_works(
    db: Database, settings: Settings
) -> None:
    """A web process holding more than 1,024 descriptors (connections under load) still gets a
    working committer: its socket's number is past what select() can watch."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows {hard} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [socket.socket() for _ in range(1100)]
    try:
        writer = InboxWriter(settings.database_path)
        await writer.start()
        assert await writer.submit(NewDelivery(b"{}", 0)) > 0
        await writer.close()
    finally:
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_reset_connection_ends_the_committer_cleanly(
    db: Database, settings: Settings
) -> None:
    """The web process dies with an answer unread (the committer sees a reset, not end of file):
    it exits 0, and its last `webhook.stored` line counts the deliveries it committed."""
    ours, theirs = socket.socketpair()
    channel = inbox_channel.CommitterChannel(
        settings.database_path, CommitterOptions(log_format="json"))
    child = await asyncio.create_subprocess_exec(
        *channel._command(theirs.fileno()), pass_fds=(theirs.fileno(),), env=channel._env(),
        stderr=subprocess.PIPE)
    theirs.close()
    ours.sendall(frame([NewDelivery(b"{}", 0)]))
    assert read_frame(ours) == ("ok", [1])
    ours.sendall(frame([NewDelivery(b"{}", 0)]))
    await asyncio.sleep(0.3)  # committed; its answer waits unread
    ours.close()
    _, err = await asyncio.wait_for(child.communicate(), 10)
    assert child.returncode == 0
    stored = [json.loads(line) for line in err.decode().splitlines()
              if "webhook.stored" in line]
    assert sum(e["count"] for e in stored) == 2


async def test_a_sync_package_in_the_current_directory_is_not_imported(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started from a directory holding another `sync/`, the committer runs this code."""
    impostor = tmp_path / "elsewhere" / "sync"
    impostor.mkdir(parents=True)
    (impostor / "__init__.py").write_text("raise SystemExit('the wrong sync was imported')\n")
    monkeypatch.chdir(impostor.parent)
    writer = InboxWriter(settings.database_path)
    await writer.start()
    assert await writer.submit(NewDelivery(b"{}", 0)) > 0
    await writer.close()


POISON_BODIES = [
    b'{"subject": "edit-client\\ud83d", "message": {"client": {"id": "1"}}}',
    b'{"subject": "edit-client", "message": {"client": {"id": "1\\ud83d"}}}',
    b"[" * 100_000,
    b'{"subject": "edit-client\\u0000", "message": {"client": {"id": 1e999999}}}',
    b'{"subject": "edit-client", "message": {"client": {"id": ' + b"9" * 5000 + b"}}}",
    b'"just a string"',
    b"\xff\xfe not UTF-8",
]


async def test_a_poison_delivery_among_genuine_ones_fails_none_and_the_genuine_are_applied(
    db: Database, settings: Settings, simulator: RunningSimulator, alegra: AlegraClient
) -> None:
    """Genuine deliveries sent in one batch with bodies SQLite or the parser could choke on
    (lone surrogates in the subject or id, deep nesting, huge numbers, non-objects, bytes that
    are not UTF-8): every one is committed and answered; the genuine ones are then applied."""
    contacts = [simulator.state.person_create_contact(name=f"Ferretería {n}", type=["provider"])
                for n in range(6)]
    genuine = [delivery("new-client", "client", **c) for c in contacts]
    bodies = genuine[:3] + POISON_BODIES + genuine[3:]
    writer = InboxWriter(settings.database_path)
    await writer.start()
    ids = await asyncio.gather(*(writer.submit(NewDelivery(b, 0)) for b in bodies))
    await writer.close()
    assert all(ids)
    assert len(set(ids)) == len(bodies)
    stored = {r["id"]: (bytes(r["body"]), r["shape"]) for r in read_db(
        settings.database_path, "SELECT id, body, shape FROM inbox")}
    assert [stored[i][0] for i in ids] == bodies
    assert [stored[i][1] for i in ids[:3] + ids[-3:]] == ["ok"] * 6
    await settle(alegra, db)
    states = {r["id"]: r["state"] for r in await db.fetchall("SELECT id, state FROM inbox")}
    assert [states[i] for i in ids[:3] + ids[-3:]] == ["applied"] * 6
    assert {states[i] for i in ids[3:-3]} == {"skipped"}
    for contact in contacts:
        assert await get_cached_contact(db, contact["id"]) is not None


def _refuse_subject(path: Path, subject: str) -> None:
    """A trigger that makes SQLite refuse any inbox row with this subject: a stand-in for a row
    refused for a reason nobody foresaw."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON inbox"
            f" WHEN NEW.subject = '{subject}' BEGIN SELECT RAISE(ABORT, 'refused'); END")


async def test_a_row_refused_for_an_unforeseen_reason_is_stored_malformed_alone(
    db: Database, settings: Settings
) -> None:
    """When the batch's INSERT fails for a reason that is not the lock, the batch is written
    row by row: the refused row is stored as malformed (its body kept), its batch-mates as
    they are, and each keeps its own id in order."""
    _refuse_subject(settings.database_path, "edit-bill")
    conn = open_connection(settings.database_path)
    try:
        items = [NewDelivery(delivery("edit-client", "client", id="1"), 0),
                 NewDelivery(delivery("edit-bill", "bill", id="2"), 1),
                 NewHandshake(0),
                 NewDelivery(delivery("edit-client", "client", id="3"), 0)]
        ids, rows = insert_items(conn, items)
    finally:
        conn.close()
    assert ids[2] == 0
    assert ids[0] < ids[1] < ids[3]
    stored = read_db(settings.database_path,
                     "SELECT id, shape, subject, resource_id, key_index, body FROM inbox")
    assert [tuple(r)[:5] for r in stored] == [
        (ids[0], "ok", "edit-client", "1", 0),
        (ids[1], "malformed", None, None, 1),
        (ids[3], "ok", "edit-client", "3", 0),
    ]
    assert bytes(stored[1]["body"]) == items[1].body  # type: ignore[union-attr]
    assert [r.shape for r in rows] == ["ok", "malformed", "ok"]
    assert len(read_db(settings.database_path, "SELECT * FROM webhook_handshakes")) == 1


async def test_a_database_that_refuses_every_row_fails_the_batch_and_writes_nothing(
    db: Database, settings: Settings
) -> None:
    """If even a row's malformed form is refused, the fault is not the row's: the batch fails
    (answered 503, Alegra delivers again) and nothing of it is written."""
    with sqlite3.connect(settings.database_path) as conn:
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON inbox"
                     " BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    conn = open_connection(settings.database_path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            insert_items(conn, [NewDelivery(b"{}", 0), NewHandshake(0)])
        assert not conn.in_transaction
    finally:
        conn.close()
    assert read_db(settings.database_path, "SELECT * FROM inbox") == []
    assert read_db(settings.database_path, "SELECT * FROM webhook_handshakes") == []


def wal_size_after_80_batches(conn: sqlite3.Connection, path: Path) -> int:
    """Commit 80 batches of 20 rows of about 3 KB; the WAL file's size then."""
    batch = [NewDelivery(b'{"pad": "' + b"x" * 3000 + b'"}', 0)] * 20
    for _ in range(80):
        insert_items(conn, batch)
    return Path(f"{path}-wal").stat().st_size


async def test_commits_never_checkpoint_and_a_due_checkpoint_lets_the_wal_be_rewritten(
    db: Database, settings: Settings
) -> None:
    """The committer's commits let the WAL grow past SQLite's 1,000-page checkpoint; once
    `checkpoint_if_due` has run, the next commits rewrite the WAL from its start, not grow it."""
    conn = open_connection(settings.database_path)
    try:
        grown = wal_size_after_80_batches(conn, settings.database_path)
        just_now = time.monotonic()
        assert checkpoint_if_due(conn, just_now) == just_now  # not due yet: nothing ran
        checkpoint_if_due(conn, float("-inf"))
        rewritten = wal_size_after_80_batches(conn, settings.database_path)
    finally:
        conn.close()
    assert grown > 2 * 1000 * 4096  # twice the 1,000 pages at which SQLite would checkpoint
    assert rewritten < 1.5 * grown  # appended, the same rows would have doubled it
