"""The README, followed top to bottom against the demo, command by command (issue 16).

The demo starts as `make run` starts it: `alegra-sync run` on a pseudo-terminal, without
credentials, in a project directory of its own (its data/ and .env private to the test), on free
ports (PORT, SIMULATOR_PORT). Then every shell command of the README's ```sh blocks runs, in
README order, as written, with `sh -c` from that directory, after the one substitution below;
so a README edit that breaks a command breaks this test. Between them come the `curl` the demo
prints and the README's example receipt (its ```json block), both sent as the README says.

Each command must exit 0 and show what the README says it shows (`EXPECTATIONS`); every
expectation must meet its command, so a command renamed in the README is noticed too. (`status`
exits 1 when the cache is not trustworthy, as the README says; followed this far, the demo's
cache is trustworthy, and its check wants 0.)

The substitution (`Walk.substitute`): the README's examples name the default ports 8000 and
8001 (the simulator's), a receipt id `rcp_…` (or a literal one), an event id 4711 and a
`/backups` folder; here they are the demo's ports, the one receipt of this walkthrough that
failed, an inbox event of this demo, and a folder of the test's. `$ADMIN_KEY` is the admin key
`partners add … --admin` printed, `$ACME_KEY` the key "Acme Expenses" got last, and `$NEXT` the
`next_cursor` of the answer before it ("" when there is no next page). The README's
`.venv/bin/alegra-sync` is a stub in the project directory that runs this checkout's CLI.
Commands that cannot run here are in `SKIPPED`, each with why.

From "Companies" on the demo serves two companies (`default` and the simulated `acme-sa` the
README adds), and the admin's and Acme's keys reach both: the receipts and the event lookup this
test sends itself name `Alegra-Company: default`, as the README's later commands do.

The walkthrough makes one thing of its own, right after `webhooks register` (which points the
simulator's webhooks at the demo): a receipt for a new supplier with an inactive account as its
category. It fails (`account_inactive`), so `receipts show` and `retry` have a failure to show,
and creating its supplier sends the demo a webhook delivery, the event the examples replay.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.commands.run import read_env_file
from tests.deployment.demo import TerminalRun, clean_env, project
from tests.support.procs import ROOT, eventually, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

README = ROOT / "README.md"

# Commands that cannot run on a test machine, by how they start, and why.
SKIPPED = {
    "make ": "`make run` is what this test does (`alegra-sync run` on a terminal); `make test` "
             "runs this test",
    "sudo ": "installs or operates the systemd deployment as root (/opt, /etc, systemctl); "
             "deploy/ is checked by tests/deployment/test_units.py",
    "cd /": "a server's directories (/opt/alegra-sync, /var/lib/alegra-sync)",
    "journalctl ": "the systemd journal of the server's units",
}

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
KEY = re.compile(r"^(as_\S+)$", re.MULTILINE)
NO_RECEIPT = "/v1/receipts/rcp_000000000000000000000000"
COMPANY = "Alegra-Company"


@dataclass(frozen=True)
class Step:
    """One thing the README has the reader do: a shell command, or its example receipt."""

    section: str
    text: str
    prelude: str = ""  # the block's assignments before it (`H=…; API=…`), run first
    receipt: dict[str, Any] | None = None


def readme_steps(markdown: str) -> list[Step]:
    """The ```sh blocks' commands (continuations joined, comment lines left out) and the
    ```json example receipts, in README order, each with the heading it is under."""
    steps: list[Step] = []
    section = ""
    for block in re.finditer(r"^(#{2,4}) ([^\n]+)$|^```(\w*)\n(.*?)^```$", markdown,
                             re.MULTILINE | re.DOTALL):
        heading, language, body = block.group(2), block.group(3), block.group(4)
        if heading is not None:
            section = heading
        elif language == "json" and '"supplier"' in body:
            steps.append(Step(section, "the example receipt", receipt=json.loads(body)))
        elif language == "sh":
            steps += _commands(section, body)
    return steps


def _commands(section: str, body: str) -> list[Step]:
    found: list[Step] = []
    prelude: list[str] = []
    for line in re.sub(r"\\\n\s*", " ", body).splitlines():
        command = line.strip()
        if not command or command.startswith("#"):
            continue
        if _assignments_only(command):
            prelude.append(command)
        else:
            found.append(Step(section, command, "; ".join(prelude)))
    return found


def _assignments_only(command: str) -> bool:
    parts = [part.strip() for part in command.split(";") if part.strip()]
    return all(re.fullmatch(r'[A-Za-z_]\w*=("[^"]*"|\S*)', part) for part in parts)


def skip_reason(step: Step) -> str | None:
    return next((why for start, why in SKIPPED.items() if step.text.startswith(start)), None)


@dataclass
class Result:
    step: Step
    command: str  # what ran, after the substitution
    returncode: int
    stdout: str
    stderr: str

    @property
    def http_status(self) -> int:
        """A curl's status (the test adds `-w` writing it to stderr)."""
        found = re.findall(r"^HTTP (\d{3})$", self.stderr, re.MULTILINE)
        assert found, self.explain()
        return int(found[-1])

    def json(self) -> Any:
        return json.loads(self.stdout)

    def explain(self) -> str:
        return (f"[{self.step.section}] {self.command}\nexit {self.returncode}\n"
                f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}")


@dataclass
class Walk:
    """The demo being walked through, and what the commands so far made."""

    project: Path
    env: dict[str, str]
    port: int
    sim_port: int
    demo: TerminalRun
    keys: dict[str, list[str]] = field(default_factory=dict)  # partner → its keys, oldest first
    failed_receipt: str = ""
    event_id: int = 0
    next_cursor: str = ""

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def admin_key(self) -> str:
        return self.keys["Ops team"][-1]

    def substitute(self, text: str) -> str:
        """The README's example values → this demo's (see the module docstring)."""
        command = text.replace("http://127.0.0.1:8000", self.api)
        command = command.replace("http://127.0.0.1:8001", self.sim_url)
        command = re.sub(r"\brcp_(…|[0-9a-f]{24})", self.failed_receipt, command)
        command = command.replace("/v1/events/4711/", f"/v1/events/{self.event_id}/")
        command = command.replace(" /backups/", f" {self.project}/backups/")
        if command.startswith("curl "):
            command = "curl -w '%{stderr}HTTP %{http_code}\\n' " + command.removeprefix("curl ")
        return command

    def run(self, step: Step) -> Result:
        command = self.substitute(step.text)
        script = f"{self.substitute(step.prelude)}; {command}" if step.prelude else command
        env = {**self.env, "ADMIN_KEY": self.admin_key if "Ops team" in self.keys else "",
               "ACME_KEY": self.keys.get("Acme Expenses", [""])[-1], "NEXT": self.next_cursor}
        done = subprocess.run(["/bin/sh", "-c", script], cwd=self.project, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        return Result(step, command, done.returncode, done.stdout, done.stderr)

    def status_with(self, key: str, path: str = NO_RECEIPT) -> int:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.get(f"{self.api}{path}", headers=headers, timeout=10).status_code

    def receipt(self, receipt_id: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        answer = httpx.get(f"{self.api}/v1/receipts/{receipt_id}", headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def post_receipt(self, body: dict[str, Any], key: str, idempotency_key: str,
                     wait: int | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key,
                   COMPANY: "default"}
        if wait is not None:
            headers["Prefer"] = f"wait={wait}"
        return httpx.post(f"{self.api}/v1/receipts", json=body, headers=headers, timeout=40)

    def settled(self, receipt_id: str, status: str) -> dict[str, Any]:
        return eventually(lambda: (r := self.receipt(receipt_id))["status"] == status and r,
                          30, f"{receipt_id} to be {status}")

    def newest_key(self, result: Result, partner: str) -> str:
        found = KEY.search(result.stdout)
        assert found is not None, result.explain()
        self.keys.setdefault(partner, []).append(found.group(1))
        return found.group(1)


# --- what each command must do, by the command as the README writes it ------------------------

Check = Callable[[Walk, Result], None]


def _partner(command: str) -> str:
    found = re.search(r'"([^"]+)"', command)
    assert found is not None, command
    return found.group(1)


def check_partners_add(walk: Walk, result: Result) -> None:
    """The key is printed once, and the running demo accepts it at once (here 404, no such
    receipt, not 401); an admin key reads the cache."""
    key = walk.newest_key(result, _partner(result.step.text))
    assert "not be shown again" in result.stdout
    assert walk.status_with(key) == 404
    if "--admin" in result.step.text:
        assert walk.status_with(key, "/v1/cache/status") == 200


def check_partners_list(walk: Walk, result: Result) -> None:
    """A header row, every partner, key prefixes and never a key."""
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "ID", "KEY"], result.explain()
    for name in (*walk.keys, "demo"):
        assert any(row.startswith(name) for row in rows), result.explain()
    assert not any(key in result.stdout for keys in walk.keys.values() for key in keys)


def check_partners_rotate(walk: Walk, result: Result) -> None:
    """A new key that works; the replaced one works during the grace period, unless the
    partner was revoked: then only the new key works (and the partner is active again)."""
    name = _partner(result.step.text)
    earlier = list(walk.keys[name])
    new = walk.newest_key(result, name)
    assert walk.status_with(new) == 404
    if "keeps working until" in result.stdout:
        assert walk.status_with(earlier[-1]) == 404  # the grace period
    else:
        assert [walk.status_with(key) for key in earlier] == [401] * len(earlier)


def check_sim_account(walk: Walk, result: Result) -> None:
    """The running simulator has a second account (its answer never shows the token)."""
    assert result.http_status == 201, result.explain()
    assert result.json()["email"] == "acme@example.com", result.explain()
    assert "acme-demo-token" not in result.stdout


def check_companies_add(walk: Walk, result: Result) -> None:
    """The company's id on the last line, and the demo's admin key reaches it at once."""
    assert result.stdout.strip().splitlines()[-1] == "acme-sa", result.explain()
    status = httpx.get(f"{walk.api}/v1/cache/status", timeout=10, headers={
        "Authorization": f"Bearer {walk.admin_key}", COMPANY: "acme-sa"})
    assert status.status_code == 200, status.text


def check_partners_grant(walk: Walk, result: Result) -> None:
    assert "Acme Expenses now reaches acme-sa" in result.stdout, result.explain()


def check_company_receipt(walk: Walk, result: Result) -> None:
    """Billed (201, `completed`) in the added simulator account, and only there."""
    assert result.http_status == 201, result.explain()
    assert result.json()["status"] == "completed", result.explain()
    assert result.json()["alegra"]["bill_id"] is not None, result.explain()

    def bills(path: str) -> int:
        return int(httpx.get(f"{walk.sim_url}{path}/state", timeout=10).json()["bills"])

    assert bills("/_sim/accounts/acme@example.com") == 1
    assert bills("/_sim") == 1  # the demo's sample receipt's, from before


def check_partners_revoke(walk: Walk, result: Result) -> None:
    """Every key of the partner stops at once; the refusal is logged once, without the key."""
    keys = walk.keys[_partner(result.step.text)]
    assert [walk.status_with(key) for key in keys] == [401] * len(keys)  # the first 401s

    def refused() -> int:
        return sum("http.refused" in line and "401" in line
                   for line in walk.demo.output().splitlines())

    eventually(lambda: refused() == len(keys), 30, "an http.refused line per refusal")


def check_webhooks_register(walk: Walk, result: Result) -> None:
    """Six subscriptions at the demo's web process (the simulator checked that it answers).
    Then the walkthrough's failing receipt, whose new supplier the simulator announces."""
    assert result.stdout.count("created ") == 6, result.explain()
    fail_a_receipt(walk)


def fail_a_receipt(walk: Walk) -> None:
    """A receipt that fails at its account step (an inactive account), for a new supplier: its
    creation in Alegra is a `new-client` delivery to the demo's inbox."""
    body = {"supplier": {"name": "Papelería Cibao", "tax_id": "1-01-00001-5"},
            "date": "2026-11-20", "ncf": "B0100000077", "category": "Gastos de representación",
            "lines": [{"description": "Almuerzo con cliente", "amount": "1500.00"}]}
    answer = walk.post_receipt(body, walk.keys["Acme Expenses"][-1], "walkthrough-fails", wait=20)
    assert answer.status_code == 201, answer.text
    assert (answer.json()["status"], answer.json()["error"]["code"]) == (
        "failed", "account_inactive"), answer.text
    walk.failed_receipt = answer.json()["id"]

    def delivered() -> int | None:
        events = httpx.get(f"{walk.api}/v1/events?subject=new-client", timeout=10,
                           headers={"Authorization": f"Bearer {walk.admin_key}",
                                    COMPANY: "default"})
        rows = events.json()["data"]
        return int(rows[0]["id"]) if rows else None

    walk.event_id = eventually(delivered, 30, "the new-client delivery")


def check_webhooks_register_all(walk: Walk, result: Result) -> None:
    """Each live company under its heading: `default`'s subscriptions already there, the added
    company's six created at its own URL."""
    default, added = result.stdout.split("== acme-sa")
    assert default.startswith("== default"), result.explain()
    assert "created " not in default, result.explain()
    assert default.count("present") == 6, result.explain()
    assert added.count("created ") == 6, result.explain()


def check_webhooks_list(walk: Walk, result: Result) -> None:
    """Each subscription points here with the newest key, its URL token masked."""
    rows = result.stdout.splitlines()[1:]
    assert len(rows) == 6, result.explain()
    assert all("here, newest key" in row and "…" in row for row in rows), result.explain()


def check_backfill(walk: Walk, result: Result) -> None:
    assert "backfill complete" in result.stdout, result.explain()
    assert "backfill contacts" in result.stderr  # the progress bar


def check_reconcile(walk: Walk, result: Result) -> None:
    """The bar, then the drift report: scan complete, missing, extra, different."""
    assert "reconcile contacts" in result.stderr, result.explain()
    for line in ("Drift report", "scan complete", "missing", "extra", "different"):
        assert line in result.stdout, result.explain()


def check_status(walk: Walk, result: Result) -> None:
    """Exit 0 and "trustworthy": the README has been followed, webhooks registered."""
    assert result.returncode == 0, result.explain()
    assert result.stdout.startswith("Cache: trustworthy"), result.explain()
    assert "Receipts" in result.stdout
    assert "\x1b[" not in result.stdout  # colours only on a terminal


def check_receipts_show(walk: Walk, result: Result) -> None:
    """Why it failed (the step, Alegra's answer) and what to do about it."""
    out = result.stdout
    assert out.startswith(f"Receipt {walk.failed_receipt}: FAILED"), result.explain()
    assert "account_inactive" in out, result.explain()
    assert re.search(r"what to do +Activate the expense account", out), result.explain()
    assert "\x1b[" not in out  # colours only on a terminal


def check_receipts_retry(walk: Walk, result: Result) -> None:
    """Handed back to the worker, which tries again (the account is still inactive)."""
    assert "queued again" in result.stdout, result.explain()
    retried = walk.settled(walk.failed_receipt, "failed")
    assert retried["attempts"] >= 2, retried


def check_db_backup(walk: Walk, result: Result) -> None:
    """One self-contained file, readable by its owner only, with the demo's rows."""
    found = re.search(r"db backup (\S+)", result.command)
    assert found is not None, result.explain()
    path = Path(found.group(1))
    assert path.stat().st_mode & 0o077 == 0
    assert not path.with_name(path.name + "-wal").exists()
    with sqlite3.connect(path) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = {row[0] for row in copy.execute("SELECT name FROM partners")}
        receipts = copy.execute("SELECT count(*) FROM receipts").fetchone()[0]
    copy.close()
    assert {"demo", "Acme Expenses", "Ops team"} <= names
    assert receipts >= 3


def check_sample_curl(walk: Walk, result: Result) -> None:
    """The demo's sample receipt is billed within the 10 s it waits: 201, `completed`."""
    assert result.http_status == 201, result.explain()
    assert result.json()["status"] == "completed", result.explain()


def check_listing(walk: Walk, result: Result) -> None:
    """The failed receipt is Acme's; `next_cursor` is kept for the next command's `$NEXT`."""
    assert result.http_status == 200, result.explain()
    assert [r["id"] for r in result.json()["data"]] == [walk.failed_receipt], result.explain()
    walk.next_cursor = result.json()["next_cursor"] or ""


def check_retry(walk: Walk, result: Result) -> None:
    """202, and the receipt is queued again."""
    assert result.http_status == 202, result.explain()
    assert result.json()["status"] == "queued", result.explain()


def check_replay(walk: Walk, result: Result) -> None:
    """200 with the event, back to `received`."""
    assert result.http_status == 200, result.explain()
    assert (result.json()["id"], result.json()["state"]) == (walk.event_id, "received")


def check_ok(walk: Walk, result: Result) -> None:
    assert result.http_status == 200, result.explain()
    assert "data" in result.json(), result.explain()


def check_contacts(walk: Walk, result: Result) -> None:
    """The sample receipt's supplier, cached."""
    check_ok(walk, result)
    assert [c["name"] for c in result.json()["data"]] == ["Ferretería Ochoa, S.R.L."]


def check_accounts_tree(walk: Walk, result: Result) -> None:
    check_ok(walk, result)
    assert "Combustible y lubricantes" in result.stdout


def check_cache_status_jq(walk: Walk, result: Result) -> None:
    """jq prints `trustworthy`, then the reasons."""
    assert result.http_status == 200, result.explain()
    assert result.stdout.split()[:2] == ["true", "[]"], result.explain()


EXPECTATIONS: list[tuple[str, Check]] = [
    (r"^curl .*/_sim/accounts ", check_sim_account),
    (r"companies add ", check_companies_add),
    (r"partners grant ", check_partners_grant),
    (r"^curl -sS -X POST .*/v1/receipts .*Alegra-Company: acme-sa", check_company_receipt),
    (r"^curl -sS -X POST .*/v1/receipts ", check_sample_curl),
    (r"partners add .*", check_partners_add),
    (r"partners list", check_partners_list),
    (r"partners rotate ", check_partners_rotate),
    (r"partners revoke ", check_partners_revoke),
    (r"webhooks register --all", check_webhooks_register_all),
    (r"webhooks register", check_webhooks_register),
    (r"webhooks list", check_webhooks_list),
    (r"alegra-sync backfill", check_backfill),
    (r"alegra-sync reconcile", check_reconcile),
    (r"alegra-sync status", check_status),
    (r"receipts show ", check_receipts_show),
    (r"receipts retry ", check_receipts_retry),
    (r"db backup ", check_db_backup),
    (r"^curl .*/v1/receipts\?status=failed", check_listing),
    (r"^curl .*-X POST .*/retry\"", check_retry),
    (r"^curl .*-X POST .*/replay\"", check_replay),
    (r"^curl .*/v1/events\?", check_ok),
    (r"^curl .*/v1/cache/contacts\?", check_contacts),
    (r"^curl .*/v1/cache/accounts\?", check_accounts_tree),
    (r"^curl .*/v1/cache/status\" \| jq", check_cache_status_jq),
]


def expectation(text: str) -> Check | None:
    return next((check for pattern, check in EXPECTATIONS if re.search(pattern, text)), None)


def check_example_receipt(walk: Walk, step: Step) -> None:
    """The README's example receipt, sent as it says (a real image in place of its `...`): 202
    with a Location, and it is billed with its attachment."""
    assert step.receipt is not None
    body = json.loads(json.dumps(step.receipt))
    body["attachment"]["data_base64"] = base64.b64encode(JPEG).decode()
    answer = walk.post_receipt(body, walk.keys["Acme Expenses"][-1], "readme-example")
    assert answer.status_code == 202, answer.text
    assert answer.headers["Location"] == f"/v1/receipts/{answer.json()['id']}"
    billed = walk.settled(answer.json()["id"], "completed")
    assert billed["alegra"]["attachment"] is not None, billed


def sample_curl(output: str) -> Step:
    """The `curl` the demo prints at start (its lines joined, as a shell reads them)."""
    text = output.replace("\r\n", "\n")
    found = re.search(r"^curl -sS .*?-d '.*?'$", text, re.MULTILINE | re.DOTALL)
    assert found is not None, output
    return Step("the demo's sample", re.sub(r"\\\n\s*", " ", found.group(0)))


def test_the_readme_followed_top_to_bottom_against_the_demo(tmp_path: Path) -> None:
    """Every README command works against the demo `make run` starts, and shows what the README
    says; then Ctrl-C stops the demo."""
    here = project(tmp_path)
    stub = here / ".venv" / "bin" / "alegra-sync"
    stub.parent.mkdir(parents=True)
    stub.write_text(f'#!/bin/sh\nexec {sys.executable} -m sync.cli "$@"\n', encoding="utf-8")
    stub.chmod(0o755)
    (here / "backups").mkdir()
    port = free_port()
    sim_port = free_port()
    env = clean_env(PORT=str(port), SIMULATOR_PORT=str(sim_port))

    demo = TerminalRun(here, env)
    walk = Walk(here, env, port, sim_port, demo)
    ran: list[Result] = []
    used: set[Check] = set()
    try:
        demo.started()
        eventually(lambda: _web_up(walk), 20, "the demo's web process")
        steps = [sample_curl(demo.output()), *readme_steps(README.read_text(encoding="utf-8"))]
        for step in steps:
            if step.receipt is not None:
                check_example_receipt(walk, step)
                continue
            if skip_reason(step):
                continue
            result = walk.run(step)
            ran.append(result)
            # `status` exits 1 when the cache is not trustworthy (its check says what it wants)
            assert result.returncode == 0 or "alegra-sync status" in step.text, result.explain()
            check = expectation(step.text)
            if check is not None:
                check(walk, result)
                used.add(check)
    finally:
        stopped = demo.interrupt()

    assert {check for _, check in EXPECTATIONS} <= used, "README commands no longer there: " + (
        ", ".join(c.__name__ for _, c in EXPECTATIONS if c not in used))
    assert len(ran) >= 20
    assert stopped == 130, demo.output()[-2000:]  # Ctrl-C stops it (SIGINT's exit status)
    assert not (here / "data" / "demo.json").exists()
    demo_key = read_env_file(here / ".env")["DEMO_PARTNER_KEY"]
    partner_keys = [key for keys in walk.keys.values() for key in keys if key != demo_key]
    assert not any(key in demo.output() for key in partner_keys)  # never logged


def _web_up(walk: Walk) -> bool:
    try:
        return httpx.get(f"{walk.api}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_the_walkthrough_reads_every_command_of_the_readme() -> None:
    """The extraction itself: commands in README order, continuations joined, comment lines
    left out, the curl block's assignments kept as its prelude; only `make` and the server's
    commands are skipped."""
    steps = readme_steps(README.read_text(encoding="utf-8"))
    texts = [step.text for step in steps]

    def first(fragment: str) -> int:
        return next(i for i, text in enumerate(texts) if fragment in text)

    order = ["partners add", "companies add", "the example receipt", "webhooks register",
             "backfill", "status", "receipts show", 'curl -sH "$H"', "sudo useradd"]
    assert [first(fragment) for fragment in order] == sorted(first(f) for f in order)
    curls = [step for step in steps if step.text.startswith('curl -sH "$H"')]
    assert len(curls) >= 10
    assert all(step.prelude.startswith('H="Authorization: Bearer $ADMIN_KEY"') for step in curls)
    assert not any(text.endswith("\\") or text.startswith("#") for text in texts)
    assert all(step.section for step in steps)
    assert {step.section for step in steps if skip_reason(step) and
            not step.text.startswith("make ")} == {
        "Running it on a server", "The database and its backups", "Logs"}
