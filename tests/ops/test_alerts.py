"""deploy/alerts.yml watches only metrics the service exports: an alert on a renamed or
misspelt series would never fire, and nobody would notice."""

from __future__ import annotations

import re
from pathlib import Path

from sync import metrics
from tests.ops.conftest import OpsApi

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "alerts.yml"
OUR_NAME = re.compile(r"\balegra_sync_[a-z0-9_]+")
# Sample names per `# TYPE` line (a counter's TYPE line already ends in _total).
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count")}


def exported_series(ops: OpsApi) -> set[str]:
    """Every series name /metrics can show, from its `# TYPE` lines."""
    ops.store.heartbeat(budget={"limit": 150, "remaining": 140, "in_flight": 0,
                                "reset_in_s": 12.0, "waiting": {"RECEIPT": 0}})
    text = ops.client.get("/metrics").text
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        names.update(name + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


def test_every_metric_in_the_alert_rules_is_exported(ops: OpsApi) -> None:
    """Each alegra_sync_* name in deploy/alerts.yml is a series /metrics serves."""
    used = set(OUR_NAME.findall(ALERTS.read_text(encoding="utf-8")))
    assert used, "the rules file names no alegra_sync_* metric"
    assert used - exported_series(ops) == set()


def test_the_check_knows_the_worker_families_too(ops: OpsApi) -> None:
    """The worker's counters and histograms are exported before the worker counted anything,
    so the check above cannot pass merely because a family had no samples yet."""
    series = exported_series(ops)
    for family in metrics.FAMILIES.values():
        assert family.name + ("_total" if family.kind == "counter" else "_bucket") in series


def test_every_rule_has_a_name_an_expression_and_a_summary() -> None:
    """Each rule (one `- alert:` item) carries `expr:` and a summary annotation."""
    rules = re.split(r"^\s*- alert: ", ALERTS.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
    assert len(rules) >= 8
    for rule in rules:
        assert re.search(r"^\s+expr: \S", rule, re.MULTILINE), rule
        assert re.search(r"^\s+summary: \S", rule, re.MULTILINE), rule
