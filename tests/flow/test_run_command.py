"""`alegra-sync run`'s pure helpers: the dotenv file it writes and the sample it prints."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sync.commands.run import read_env_file, sample_curl, sample_receipt, set_env
from sync.receipt_model import parse_submission


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
