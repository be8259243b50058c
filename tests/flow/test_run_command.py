"""`alegra-sync run`'s helpers: the dotenv file it writes, the sample it prints, the children's
log format, the line saying what a start keeps, and the demo store's reset (partners kept)."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

from sync.commands.run import (
    busy_port,
    child_environment,
    read_env_file,
    reset_demo_store,
    sample_curl,
    sample_receipt,
    set_env,
    simulator_line,
)
from sync.receipt_model import parse_submission
from sync.settings import load_settings
from sync.store.db import Database
from sync.store.partners import create_partner, find_partner_by_key, restore_partners


def test_a_missing_env_file_is_created_owner_only(tmp_path: Path) -> None:
    """The generated SECRET_KEY goes into a new .env only its owner can read."""
    env = tmp_path / ".env"
    set_env(env, "SECRET_KEY", "s" * 40)

    assert read_env_file(env) == {"SECRET_KEY": "s" * 40}
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o600


def test_setting_a_value_again_replaces_it_and_keeps_the_rest(tmp_path: Path) -> None:
    """A new demo key replaces the old line; the operator's own lines stay as they were."""
    env = tmp_path / ".env"
    env.write_text("# mine\nPORT=9000")
    set_env(env, "DEMO_PARTNER_KEY", "as_old")
    set_env(env, "DEMO_PARTNER_KEY", "as_demo")

    assert read_env_file(env) == {"PORT": "9000", "DEMO_PARTNER_KEY": "as_demo"}
    assert env.read_text().startswith("# mine\nPORT=9000\n")


def test_env_file_reader_skips_comments_and_strips_quotes(tmp_path: Path) -> None:
    """Comments, blank lines and `export` are understood; quotes around values are removed."""
    env = tmp_path / ".env"
    env.write_text("# settings\n\nexport PORT=9000\nPUBLIC_URL='https://x.example'\nbad line\n")

    assert read_env_file(env) == {"PORT": "9000", "PUBLIC_URL": "https://x.example"}
    assert read_env_file(tmp_path / "missing") == {}


def test_sample_receipt_is_valid_and_the_curl_waits_for_it() -> None:
    """The printed sample passes the partner API's validation and asks to wait for the bill."""
    submission = parse_submission(sample_receipt(), max_attachment_bytes=1024)
    curl = sample_curl(8000, "as_key")

    assert submission.receipt.supplier.tax_id is not None
    assert submission.receipt.ncf is not None
    assert "Prefer: wait=10" in curl
    assert "Bearer as_key" in curl
    assert "http://127.0.0.1:8000/v1/receipts" in curl


def test_on_a_terminal_the_processes_log_for_a_reader_and_json_otherwise() -> None:
    """honcho pipes the children, so `auto` would see no terminal: run passes `console` when it
    is on one; off a terminal, or with LOG_FORMAT chosen, nothing changes."""
    assert child_environment({}, on_terminal=True)["LOG_FORMAT"] == "console"
    assert child_environment({"LOG_FORMAT": "auto"}, on_terminal=True)["LOG_FORMAT"] == "console"
    assert "LOG_FORMAT" not in child_environment({}, on_terminal=False)
    assert child_environment({"LOG_FORMAT": "json"}, on_terminal=True)["LOG_FORMAT"] == "json"


def test_the_simulator_line_says_what_this_start_keeps() -> None:
    """The default demo store starts afresh with its partners kept; a DATABASE_URL of one's own
    is kept as it is, and the line no longer claims that data starts fresh."""
    url = "http://127.0.0.1:8001/api/v1"
    fresh = simulator_line(url, Path("data/alegra-sync-simulator.db"), True, 2)
    kept = simulator_line(url, Path("/srv/mine.db"), False, 0)

    assert "starts afresh too (partners and their keys kept: 2)" in fresh
    assert "/srv/mine.db is kept as it is" in kept
    assert "fresh" not in kept


def test_a_busy_port_names_the_setting_that_moves_it() -> None:
    """Taken ports are reported with the setting to change, never a flag that risks the data."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(env_file=None, environ={
            "SECRET_KEY": "x" * 32, "SIMULATOR_PORT": str(port), "PORT": "1"})
        message = busy_port(settings)

    assert message is not None
    assert f"port {port} is in use" in message
    assert "SIMULATOR_PORT" in message


def test_simulator_port_is_a_setting_with_a_default() -> None:
    """SIMULATOR_PORT defaults to 8001 and is read like every other number."""
    assert load_settings(env_file=None, environ={"SECRET_KEY": "x" * 32}).simulator_port == 8001
    assert load_settings(env_file=None, environ={
        "SECRET_KEY": "x" * 32, "SIMULATOR_PORT": "9101"}).simulator_port == 9101


def test_the_demo_store_resets_but_its_partners_and_their_keys_survive(tmp_path: Path) -> None:
    """The store is removed (with its -wal/-shm) and a fresh one gets the partners back:
    keys made before the restart still authenticate."""
    path = tmp_path / "alegra-sync-simulator.db"
    key = asyncio.run(_partner_with_receipt_table_rows(path))

    kept = reset_demo_store(path)

    assert not path.exists()
    assert [row["name"] for row in kept] == ["acme"]
    assert asyncio.run(_restored_name(path, kept, key)) == "acme"


async def _partner_with_receipt_table_rows(path: Path) -> str:
    db = await Database.open(path)
    try:
        _, key = await create_partner(db, "acme")
        await db.execute("INSERT INTO worker_state(id, pid, beat_at) VALUES (1, 1, 'x')")
    finally:
        await db.close()
    return key


async def _restored_name(path: Path, kept: list[dict[str, object]], key: str) -> str | None:
    db = await Database.open(path)
    try:
        assert await db.scalar("SELECT COUNT(*) FROM worker_state") == 0
        await restore_partners(db, kept)
        partner = await find_partner_by_key(db, key)
    finally:
        await db.close()
    return None if partner is None else partner.name

