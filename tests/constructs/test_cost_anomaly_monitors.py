"""CostAnomalyMonitors: AWS Cost Anomaly Detection by service and by team, alerting immediately."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from constructs.cost_anomaly_monitors import CostAnomalyMonitors, threshold_expression

from tests.conftest import BareStack


def template(teams: tuple[str, ...]) -> Template:
    stack = BareStack()
    CostAnomalyMonitors(
        stack,
        "Monitors",
        name_prefix="t",
        teams=teams,
        topic=sns.Topic(stack, "Alerts"),
        impact_usd=100,
        impact_percent=20,
    )
    return Template.from_stack(stack)


def properties(found: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    return [r["Properties"] for r in found.values()]


def test_a_monitor_by_service_and_one_by_the_team_tag() -> None:
    monitors = {
        m["MonitorName"]: m
        for m in properties(template(("payments", "data")).find_resources("AWS::CE::AnomalyMonitor"))
    }
    assert monitors["t-by-service"]["MonitorType"] == "DIMENSIONAL"
    assert monitors["t-by-service"]["MonitorDimension"] == "SERVICE"
    by_team = monitors["t-by-team"]
    assert by_team["MonitorType"] == "CUSTOM"
    assert json.loads(by_team["MonitorSpecification"]) == {
        "Tags": {"Key": "team", "Values": ["payments", "data"], "MatchOptions": ["EQUALS"]}
    }


def test_the_subscription_sends_both_monitors_to_the_topic_at_once() -> None:
    found = template(("payments",))
    (subscription,) = properties(found.find_resources("AWS::CE::AnomalySubscription"))
    assert subscription["Frequency"] == "IMMEDIATE"
    (topic,) = found.find_resources("AWS::SNS::Topic")
    assert subscription["Subscribers"] == [{"Type": "SNS", "Address": {"Ref": topic}}]
    assert len(subscription["MonitorArnList"]) == 2
    assert json.loads(subscription["ThresholdExpression"]) == json.loads(threshold_expression(100, 20))


def test_the_threshold_needs_both_the_absolute_and_the_relative_impact() -> None:
    expression = json.loads(threshold_expression(250, 12.5))
    assert [c["Dimensions"]["Key"] for c in expression["And"]] == [
        "ANOMALY_TOTAL_IMPACT_ABSOLUTE",
        "ANOMALY_TOTAL_IMPACT_PERCENTAGE",
    ]
    assert [c["Dimensions"]["Values"] for c in expression["And"]] == [["250"], ["12.5"]]
    assert all(c["Dimensions"]["MatchOptions"] == ["GREATER_THAN_OR_EQUAL"] for c in expression["And"])


def test_without_teams_only_the_service_monitor_exists() -> None:
    names = [m["MonitorName"] for m in properties(template(()).find_resources("AWS::CE::AnomalyMonitor"))]
    assert names == ["t-by-service"]
