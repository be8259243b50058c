"""The repository paths the README and docs/ name exist, so the docs cannot silently rot."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Paths named in the docs that are not in the repository on purpose.
ALLOWED_MISSING = {
    ".env",  # written by `make run`, or by the operator
    "sync/store/migrations/NNNN_name.sql",  # the pattern migration files follow
}
RUNTIME_PREFIXES = ("data/", "./data/")  # the database and the demo's files, made at run time

TOP_DIRS = ("sync/", "receiver/", "tests/", "deploy/", "docs/", "bench/")
EXTENSIONS = (".py", ".md", ".yml", ".yaml", ".toml", ".sql", ".service", ".timer", ".example",
              ".conf", ".json", ".db", ".cfg", ".txt", ".ini", ".lock")
BARE_FILES = {"Makefile", "Procfile", "Caddyfile", "pyproject.toml", ".env"}
# The docs name modules relative to these packages too (`store/receipts.py`, `flow/lane.py`).
PACKAGES = ("", "sync/", "receiver/", "sync/alegra/")

CODE_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
DIAGRAM_PATH = re.compile(r"(?<![\w/.])((?:[\w-]+/)+[\w-]+\.py)\b")


def looks_like_path(token: str) -> bool:
    """A span that names a file or folder of this repository, not a URL, MIME type or pattern."""
    if any(c in token for c in " <>*…{}|$") or "://" in token or token.startswith("/"):
        return False
    if token in BARE_FILES:
        return True
    if "/" not in token:
        return False
    return token.startswith(TOP_DIRS) or token.endswith(EXTENSIONS)


def exists(path: str) -> bool:
    """Whether the path is in the tree, from the root or from a package the docs name it from."""
    if path in ALLOWED_MISSING or path.startswith(RUNTIME_PREFIXES):
        return True
    return any((ROOT / prefix / path).exists() for prefix in PACKAGES)


def named_paths(text: str) -> set[str]:
    """Inline code spans that look like paths, and the `.py` paths of fenced diagrams."""
    found = set()
    for block in FENCE.findall(text):
        found.update(DIAGRAM_PATH.findall(block))
    for span in CODE_SPAN.findall(FENCE.sub("", text)):
        token = span.split(":")[0] if re.search(r"\.py:\w", span) else span
        if looks_like_path(token):
            found.add(token)
    return found


def missing_paths(doc: Path) -> list[str]:
    """The paths a document names that are not in the repository."""
    return sorted(p for p in named_paths(doc.read_text(encoding="utf-8")) if not exists(p))


def test_every_path_the_docs_name_exists() -> None:
    """Every repository path in backticks in README.md and docs/*.md (and in their flow
    diagrams) exists, but for the few made at run time."""
    missing = {doc.name: missing_paths(doc) for doc in DOCS}
    assert {name: paths for name, paths in missing.items() if paths} == {}


def test_the_check_sees_a_path_that_is_gone(tmp_path: Path) -> None:
    """A document naming a file that does not exist is reported, in a span and in a diagram."""
    doc = tmp_path / "gone.md"
    doc.write_text("See `receiver/status.py` and `sync/flow/run_receipt.py`.\n"
                   "```\nwebhook → events/parse.py → store/inbox.py\n```\n", encoding="utf-8")
    assert missing_paths(doc) == ["events/parse.py", "receiver/status.py"]


def test_spans_that_are_not_paths_are_not_checked() -> None:
    """URLs, MIME types, endpoints and placeholders are not taken for paths."""
    text = ("`multipart/form-data` `GET /v1/receipts` `https://api.alegra.com/api/v1` "
            "`PUBLIC_URL/webhooks/alegra/<token>` `/etc/alegra-sync/alegra-sync.env` "
            "`sync/store/migrations/NNNN_name.sql`")
    assert named_paths(text) == {"sync/store/migrations/NNNN_name.sql"}
