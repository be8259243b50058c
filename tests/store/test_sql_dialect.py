"""One set of queries for SQLite and PostgreSQL: no SQLite-only construct comes back into the SQL
of `sync/` and `receiver/` (docs: CONTEXT's "Portable SQL"; tests/store/test_portable_sql.py runs
the queries that once had one on both engines).

A static scan of every string literal (docstrings aside). Code that is engine-specific on purpose
is left out: whatever sits under an `if … engine …` branch or in a function named for its engine
(`_describe_sqlite`), and the modules that are one engine's own mechanics (ENGINE_OWN, with the
reason)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE_OWN = {
    "sync/store/db.py": "the engine layer: SQLite's pragmas and migration checks",
    "sync/store/sql.py": "the engine layer: the Cursor protocol names lastrowid",
    "sync/store/engine_pg.py": "PostgreSQL's own connection",
    "sync/store/backup.py": "`db backup` copies a SQLite file",
    "receiver/inbox/committer.py": "the SQLite committer's connection (its SQL is inbox.py's)",
    "sync/store/copy.py": "`db copy` reads a SQLite source's own bookkeeping",
}
SKIPPED_PACKAGES = ("sync/simulator/",)  # the simulated Alegra keeps no store

# (what it is, pattern): each is SQLite's alone, or reads differently on PostgreSQL.
FORBIDDEN = [
    ("INSERT/UPDATE OR …: use ON CONFLICT … DO NOTHING / DO UPDATE", r"\b(INSERT|UPDATE)\s+OR\s"),
    ("REPLACE INTO: use ON CONFLICT … DO UPDATE", r"\bREPLACE\s+INTO\b"),
    ("IFNULL: use COALESCE", r"\bIFNULL\s*\("),
    ("date functions: compute times in Python (utcnow())",
     r"\b(datetime|julianday|strftime|unixepoch)\s*\("),
    ("GLOB: no such operator on PostgreSQL", r"\bGLOB\b"),
    ("json_* functions: bind one placeholder per value, decode JSON in Python",
     r"\bjson_(extract|each|array|object|group_array|tree)\s*\("),
    ("rowid: key by a column of the table", r"\b(_?rowid_?|oid|last_insert_rowid)\b"),
    ("SQLite's catalogue: branch on db.engine", r"\b(sqlite_master|sqlite_sequence|PRAGMA)\b"),
    ("LIMIT -1: leave the LIMIT out", r"\bLIMIT\s+-"),
    ("`IS NOT <value>`: use COALESCE(x, '') != …", r"\bIS\s+NOT\s+'"),
    ("unary + hint: use `column || ''` (PostgreSQL has no unary + on text)",
     r"(^|[\s(])\+[a-z_]+(\.[a-z_]+)?\s*(=|<|>|IN\b)"),
    ("named parameter: use ?", r"[=(,<>]\s*:[a-z_]\w*"),
    ("`LIMIT ? OFFSET`-less `LIMIT ?, ?`: use LIMIT … OFFSET …", r"\bLIMIT\s+\?\s*,"),
]


def _sources() -> Iterator[Path]:
    for package in ("sync", "receiver"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative not in ENGINE_OWN and not relative.startswith(SKIPPED_PACKAGES):
                yield path


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _engine_branches(tree: ast.AST) -> set[int]:
    """Every node under an `if` whose test names an engine (`db.engine == "sqlite"`), or in a
    function named for one engine (`_describe_sqlite`, `_describe_postgresql`)."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "engine" in ast.unparse(node.test):
            inside.update(id(child) for child in ast.walk(node))
        if (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and re.search(r"sqlite|postgresql", node.name)):
            inside.update(id(child) for child in ast.walk(node))
    return inside


def _texts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of each string literal but docstrings and engine branches; an f-string's
    pieces joined with `{}` where its values go."""
    skip = _docstrings(tree) | _engine_branches(tree)
    in_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                   for part in node.values}
    for node in ast.walk(tree):
        if id(node) in skip or id(node) in in_fstrings:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(
                part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)


def _lastrowid_uses(tree: ast.AST) -> Iterator[int]:
    skip = _engine_branches(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "lastrowid" and id(node) not in skip:
            yield node.lineno


def flagged(text: str) -> list[str]:
    """What of FORBIDDEN `text` holds (SQL keywords in any case; names as written)."""
    return [what for what, pattern in FORBIDDEN
            if re.search(pattern, text, 0 if "[a-z" in pattern else re.IGNORECASE)]


def findings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = path.relative_to(ROOT).as_posix()
    found = [f"{where}:{line}: cursor.lastrowid: use INSERT … RETURNING id"
             for line in _lastrowid_uses(tree)]
    for line, text in _texts(tree):
        found += [f"{where}:{line}: {what}: {text.strip()[:80]!r}" for what in flagged(text)]
    return found


def test_no_sqlite_only_construct_in_the_services_sql() -> None:
    problems = [problem for path in _sources() for problem in findings(path)]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("sql", [
    "INSERT OR IGNORE INTO partners(id) VALUES (?)",
    "SELECT IFNULL(a, 0) FROM t",
    "SELECT (julianday(a) - julianday(b)) * 86400.0 FROM inbox",
    "SELECT 1 FROM t WHERE name GLOB 'a*'",
    "SELECT id FROM t WHERE id IN (SELECT value FROM json_each(?))",
    "SELECT seq FROM sqlite_sequence WHERE name = 'inbox'",
    "SELECT a.rowid FROM receipt_attachments AS a",
    "SELECT 1 FROM inbox WHERE +company_id = ?",
    "UPDATE jobs SET next_run_at = :at WHERE name = :name",
    "SELECT * FROM companies ORDER BY id LIMIT -1",
    "SELECT 1 FROM accounts WHERE type IS NOT 'expense'",
])
def test_the_scan_finds_each_construct(sql: str) -> None:
    """The scan is not blind: each construct, as a module's string, is reported."""
    [(_, text)] = list(_texts(ast.parse(f"QUERY = {sql!r}\n")))
    assert flagged(text), f"{sql!r} is not caught"


def test_portable_sql_passes() -> None:
    for sql in (
        "INSERT INTO partner_grants(partner_id, company_id, granted_at) VALUES (?, ?, ?)"
        " ON CONFLICT(partner_id, company_id) DO NOTHING",
        "SELECT received_at, applied_at FROM inbox WHERE company_id || '' = ? AND id > ?",
        "SELECT * FROM accounts ORDER BY code NULLS FIRST, name_key LIMIT ?",
        "UPDATE receipts SET status = ? WHERE id IN (?, ?, ?)",
    ):
        assert flagged(sql) == [], sql


def test_engine_branches_and_docstrings_are_left_out() -> None:
    source = (
        'def f(db):\n'
        '    """Reads sqlite_sequence on SQLite."""\n'
        '    if db.engine == "sqlite":\n'
        '        return "SELECT seq FROM sqlite_sequence"\n'
        '    return "SELECT 1"\n'
    )
    assert [text for _, text in _texts(ast.parse(source))] == ["SELECT 1"]
    named = 'def _columns_sqlite(db):\n    return "PRAGMA table_info(t)"\n'
    assert list(_texts(ast.parse(named))) == []
