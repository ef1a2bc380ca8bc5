"""deploy/grafana/kefu-loop.json: a dashboard Grafana can import, whose every query asks for a
metric that Kefu's code defines or that RabbitMQ documents (deploy/grafana/rabbitmq-metrics.md),
and whose SQL reads columns feedback's tables have."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.feedback.adapters.tables import verdicts

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "kefu-loop.json"
DEFINED = re.compile(r"\b(?:Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][\w:]*)\"")
METRIC = re.compile(r"\b((?:kefu|http|rabbitmq)_[a-z0-9_]+)\b")
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")
CONSUMER = ROOT / "shared" / "messaging" / "consumer.py"
OUTCOMES = re.compile(r'outcome=~?"([^"]+)"')


def kefu_metrics() -> set[str]:
    names = set()
    for folder in ("shared", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            names.update(DEFINED.findall(path.read_text(encoding="utf-8")))
    return names


def rabbitmq_metrics() -> set[str]:
    table_rows = (ROOT / "deploy" / "grafana" / "rabbitmq-metrics.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\|\s*(rabbitmq_[a-z0-9_]+)\s*\|", table_rows, re.MULTILINE))


def outcomes(expr: str) -> set[str]:
    """The consumer outcomes a query selects (``outcome="a"`` or ``outcome=~"a|b"``)."""
    return {value for match in OUTCOMES.findall(expr) for value in match.split("|")}


def known(name: str, metrics: set[str]) -> bool:
    base = next((name[: -len(s)] for s in HISTOGRAM_SERIES if name.endswith(s)), name)
    return name in metrics or base in metrics


def dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    metrics = kefu_metrics() | rabbitmq_metrics()
    # Outcomes are string literals in the consumer: one a query names must be among them.
    counted = set(re.findall(r'"([a-z_]+)"', CONSUMER.read_text(encoding="utf-8")))
    inputs = {f"${{{item['name']}}}" for item in dashboard.get("__inputs", [])}
    problems = []
    panels = dashboard.get("panels") or []
    if not panels:
        problems.append("no panels")
    for panel in panels:
        title = panel.get("title") or f"panel {panel.get('id')}"
        if not {"x", "y", "w", "h"} <= set(panel.get("gridPos", {})):
            problems.append(f"{title}: no position")
        if not panel.get("targets"):
            problems.append(f"{title}: no query")
        for target in panel.get("targets", []):
            if target.get("datasource", {}).get("uid") not in inputs:
                problems.append(f"{title}: a data source that is not among __inputs")
            expr, sql = target.get("expr", "").strip(), target.get("rawSql", "").strip()
            if not expr and not sql:
                problems.append(f"{title}: an empty query")
            if expr:
                if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
                    problems.append(f"{title}: unbalanced {expr}")
                named = METRIC.findall(expr)
                if not named:
                    problems.append(f"{title}: no metric in {expr}")
                problems += [f"{title}: unknown metric {n}" for n in named if not known(n, metrics)]
                problems += [f"{title}: no outcome {o}" for o in outcomes(expr) - counted]
            if sql:
                problems += sql_problems(title, sql)
    return problems


def sql_problems(title: str, sql: str) -> list[str]:
    if f"FROM {verdicts.schema}.{verdicts.name}" not in sql:
        return [f"{title}: reads another table than {verdicts.schema}.{verdicts.name}"]
    columns = set(verdicts.columns.keys())
    used = set(re.findall(r"\b(verdict|decided_at|[a-z]+_at)\b", sql))
    return [f"{title}: no column {column}" for column in sorted(used - columns)]


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def test_the_dashboard_asks_only_for_what_exists() -> None:
    assert dashboard_problems(load()) == []


def test_the_dashboard_shows_the_loop() -> None:
    queries = " ".join(
        target.get("expr", "") + target.get("rawSql", "")
        for panel in load()["panels"]
        for target in panel["targets"]
    )
    for shown in (
        'handler=~"/v1/issues',  # intake rate
        "rabbitmq_queue_messages_ready",  # lag per consumer
        "rabbitmq_queue_messages_unacked",
        "kefu_events_consumed_total",  # errors
        r"\\.dlq",  # DLQ depth
        "verdict = 'satisfied'",  # CSAT now
    ):
        assert shown in queries, shown


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["panels"][0]["targets"][0].update(expr=" "), "an empty query"),
        (
            lambda d: d["panels"][0]["targets"][0].update(expr="rate(kefu_nothing_total[5m])"),
            "unknown metric kefu_nothing_total",
        ),
        (
            lambda d: d["panels"][0]["targets"][0].update(expr="sum(rabbitmq_queue_depth)"),
            "unknown metric rabbitmq_queue_depth",
        ),
        (lambda d: d["panels"][0]["targets"][0].update(expr="sum(rate(x[5m])"), "unbalanced"),
        (
            lambda d: d["panels"][0]["targets"][0].update(
                expr='sum(rate(kefu_events_consumed_total{outcome=~"retried|failed"}[5m]))'
            ),
            "no outcome failed",
        ),
        (lambda d: d["panels"][0].update(targets=[]), "no query"),
        (lambda d: d.update(panels=[]), "no panels"),
    ],
)
def test_a_broken_dashboard_is_caught(change: Any, problem: str) -> None:
    dashboard = copy.deepcopy(load())
    change(dashboard)
    assert any(problem in found for found in dashboard_problems(dashboard))


def test_a_query_of_a_missing_column_is_caught() -> None:
    sql = "SELECT count(*) FROM feedback.verdicts WHERE rated_at > now()"
    assert sql_problems("CSAT", sql) == ["CSAT: no column rated_at"]
