"""The three dashboards of an environment, as synthesized: named for it, every widget titled with its unit, and
each showing what the issue's operators asked for."""

from __future__ import annotations

import json
import re
from typing import Any

from config.slo import BURN_RATE_ALERTS, error_budget
from tests.conftest import Synthesized

KINDS = ("service", "cost-and-adoption", "audit")


def dashboards(synthesized: Synthesized) -> dict[str, list[dict[str, Any]]]:
    """Each dashboard's name and widgets, its body's tokens (references to other resources) as "TOKEN"."""
    found = {}
    for _, _, resource in synthesized.resources("AWS::CloudWatch::Dashboard"):
        body = resource["Properties"]["DashboardBody"]
        parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
        text = "".join(part if isinstance(part, str) else "TOKEN" for part in parts)
        found[resource["Properties"]["DashboardName"]] = json.loads(text)["widgets"]
    return found


def widget_text(widgets: list[dict[str, Any]]) -> str:
    return json.dumps(widgets)


def test_one_of_each_per_environment_named_for_it(each_environment: Synthesized) -> None:
    environment = each_environment.config.environment
    assert set(dashboards(each_environment)) == {f"aigw-{environment}-{kind}" for kind in KINDS}


def test_every_widget_has_a_title_and_a_unit(each_environment: Synthesized) -> None:
    checked = 0
    for name, widgets in dashboards(each_environment).items():
        for widget in widgets:
            if widget["type"] == "text":
                continue
            title = widget["properties"].get("title", "")
            assert re.search(r"\([^)]+\)$", title), (name, title)  # "... (ms)", "... (requests)"
            axis = widget["properties"].get("yAxis", {})
            if widget["type"] == "metric" and widget["properties"].get("view") != "singleValue":
                assert axis.get("left", {}).get("label"), (name, title)
            checked += 1
    assert checked >= 20


def test_the_service_dashboard_shows_the_sli_budget_and_what_moves_them(each_environment: Synthesized) -> None:
    config = each_environment.config
    widgets = dashboards(each_environment)[f"aigw-{config.environment}-service"]
    text = widget_text(widgets)
    titles = [w["properties"].get("title", "") for w in widgets]
    target = config.operations.slo.target_percent
    for wanted in (
        f"Availability over {config.operations.slo.window_days} days (%)",
        "Error budget left",
        "Latency p50 by model (ms)",
        "Latency p99 by model (ms)",
        "Circuit breaker",
        "5xx answers",
        "healthy targets by AZ",
        "Redis",
        "Policy blocks by rule (requests)",
        "Rate-limit and budget refusals",
    ):
        assert any(wanted in title for title in titles), wanted
    assert f'"value": {target:g}' in text  # the SLO line on the hourly availability
    assert all(f'"value": {alert.burn_rate:g}' in text for alert in BURN_RATE_ALERTS)
    assert f"e60 / {error_budget(target):g}" in text and "FILL(requests60, 0)" in text
    assert all(f'"AvailabilityZone", "{az}"' in text for az in config.availability_zones)
    assert 'Environment,Model} MetricName=\\"Latency\\"' in text
    for metric in ("BreakerOpen", "RateLimited", "BudgetRefused", "LimitFailOpen", "EngineCPUUtilization"):
        assert metric in text, metric


def test_the_cost_dashboard_sets_each_team_against_its_budget(each_environment: Synthesized) -> None:
    config = each_environment.config
    widgets = dashboards(each_environment)[f"aigw-{config.environment}-cost-and-adoption"]
    text = widget_text(widgets)
    for index, (team, amount) in enumerate(sorted(config.budgets.per_team(config.teams).items())):
        assert f"100 * FILL(spend{index}, 0) / {amount:g}" in text and f'"label": "{team}"' in text, team
    assert "100 * spend / SUM(spend)" in text  # top teams' share
    assert f"* {30 / 7:g}" in text  # the projection at the last week's rate
    assert "count_distinct(user) as weekly_active_users by team" in text
    assert all(metric in text for metric in ("InputTokens", "OutputTokens", "ClaudeCodeTokens"))


def test_the_audit_dashboard_shows_delivery_freshness_and_errors(each_environment: Synthesized) -> None:
    config = each_environment.config
    text = widget_text(dashboards(each_environment)[f"aigw-{config.environment}-audit"])
    for metric in ("DeliveryToS3.Success", "DeliveryToS3.DataFreshness", "PutRequests", "IncomingLogEvents"):
        assert metric in text, metric
    assert f'"value": {config.audit.delivery_buffer_seconds + 900}' in text  # DeliveryLagging's threshold
