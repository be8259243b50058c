"""A client that hangs up in the middle of its body, against the real web process (uvicorn)."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.support.procs import eventually, free_port, product_env, run_cli, start_web

pytestmark = pytest.mark.e2e


def test_disconnect_mid_body_is_one_info_line_not_an_error(tmp_path: Path) -> None:
    """Hanging up halfway through a receipt's body logs `http.client_disconnected` at info
    level, no error and no traceback, and stores nothing; the service keeps answering."""
    port = free_port()
    env = product_env(tmp_path / "t.db", alegra_base_url="http://127.0.0.1:9", email="a@b.do",
                      token="unused-token", port=port)
    added = run_cli(["partners", "add", "acme"], env)
    assert added.returncode == 0, added.stderr
    [key] = re.findall(r"^as_\S+$", added.stdout, re.MULTILINE)
    web = start_web(env, tmp_path)
    try:
        for n in range(3):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    b"POST /v1/receipts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + key.encode() + b"\r\n"
                    b"Idempotency-Key: cut-" + str(n).encode() + b"\r\n"
                    b"Content-Length: 60000\r\n\r\n" + b'{"supplier": {"name": "Och')

        def disconnects() -> list[dict[str, object]]:
            lines = [json.loads(line) for line in web.logs().splitlines()
                     if line.startswith("{")]
            found = [e for e in lines if e.get("event") == "http.client_disconnected"]
            return found if len(found) == 3 else []

        logged = eventually(disconnects, what="three http.client_disconnected lines")
        assert {entry["level"] for entry in logged} == {"info"}
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        logs = web.logs()
        assert "Traceback" not in logs
        assert "http.unhandled" not in logs
        with sqlite3.connect(tmp_path / "t.db") as conn:
            assert conn.execute("SELECT count(*) FROM receipts").fetchone() == (0,)
    finally:
        web.stop()
