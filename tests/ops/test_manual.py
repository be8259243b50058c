"""The README is the operator's manual: every setting, every error code the service emits, every
receipt failure code and every trust reason is documented there (found by reading the code)."""

from __future__ import annotations

import re
from pathlib import Path

from sync import receipt_advice
from sync.alegra import errors as alegra_errors

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _source(*globs: str) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for g in globs for p in sorted(ROOT.glob(g)))


def _section(title: str) -> str:
    start = README.index(title)
    following = README.find("\n#", start + len(title))
    return README[start:following if following != -1 else None]


def _undocumented(names: set[str], text: str) -> set[str]:
    return {name for name in names if f"`{name}`" not in text}


def test_every_setting_is_in_the_configuration_table() -> None:
    """Each variable sync/settings.py reads has its row in the README's configuration table."""
    source = _source("sync/settings.py")
    names = set(re.findall(r"config\(\s*\"([A-Z][A-Z0-9_]+)\"", source))
    names |= set(re.findall(r"_(?:number|flag|choice)\(config, \"([A-Z][A-Z0-9_]+)\"", source))
    names |= set(re.findall(r"\(\"([A-Z][A-Z0-9_]+)\", (?:int|float)\)", source))  # _NUMBERS
    assert len(names) > 15
    assert _undocumented(names, _section("## Configuration")) == set()


def test_every_api_error_code_is_explained() -> None:
    """Each `code` an error body can carry (receiver/, the receipt rules) is in the manual."""
    source = _source("receiver/*.py", "sync/receipt_*.py")
    codes = set(re.findall(r"ApiError\(\s*\d{3},\s*\"([a-z_]+)\"", source))
    codes |= set(re.findall(r"code(?::\s*str)?\s*=\s*\"([a-z_]+)\"", source))
    codes |= set(re.findall(r"\d{3}: \"([a-z_]+)\"", _source("receiver/errors.py")))
    assert {"invalid_field", "invalid_parameter", "unauthorized", "too_large"} <= codes
    assert _undocumented(codes, _section("#### API errors")) == set()


def test_every_receipt_failure_code_has_advice_and_a_row() -> None:
    """Each code a failed receipt can carry has its advice in `receipt advice` and its row."""
    source = _source("sync/flow/*.py")
    codes = set(re.findall(r"FlowFailed\(\s*\"([a-z_]+)\"", source))
    codes |= set(re.findall(r"\"(ncf_[a-z_]+)\"", source)) | {"internal"}
    assert codes - set(receipt_advice._BY_CODE) == set()
    kinds = {cls.__name__ for cls in vars(alegra_errors).values()
             if isinstance(cls, type) and issubclass(cls, alegra_errors.AlegraError)
             and cls not in (alegra_errors.AlegraError, alegra_errors.Retryable)}
    assert _undocumented(codes | kinds, _section("#### A failed receipt's error")) == set()


def test_every_trust_reason_is_explained() -> None:
    """Each reason `sync/status.py` can give for an untrustworthy cache has its row."""
    codes = set(re.findall(r"_reason\(\s*\"([a-z_]+)\"", _source("sync/status.py")))
    assert len(codes) >= 10
    assert _undocumented(codes, _section("#### Can the cache be trusted?")) == set()
