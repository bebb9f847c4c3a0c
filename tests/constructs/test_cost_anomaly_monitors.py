"""CostAnomalyMonitors: AWS Cost Anomaly Detection by service and by team, alerting immediately."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from constructs.cost_anomaly_monitors import CostAnomalyMonitors, threshold_expression

from tests.conftest import BareStack


def template(*, service_monitor: bool = True, team_monitor: bool = True) -> Template:
    stack = BareStack()
    CostAnomalyMonitors(
        stack,
        "Monitors",
        name_prefix="t",
        topic=sns.Topic(stack, "Alerts"),
        impact_usd=100,
        impact_percent=20,
        service_monitor=service_monitor,
        team_monitor=team_monitor,
    )
    return Template.from_stack(stack)


def properties(found: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    return [r["Properties"] for r in found.values()]


def test_a_monitor_by_service_and_one_by_the_team_tag_each_team_on_its_own() -> None:
    monitors = {m["MonitorName"]: m for m in properties(template().find_resources("AWS::CE::AnomalyMonitor"))}
    assert monitors["t-by-service"]["MonitorType"] == "DIMENSIONAL"
    assert monitors["t-by-service"]["MonitorDimension"] == "SERVICE"
    by_team = monitors["t-by-team"]
    # AWS-managed (DIMENSIONAL) over the tag: each team's cost is analysed on its own. A CUSTOM monitor
    # would watch the listed teams in aggregate, where one team's spike hides in the others' spend.
    assert (by_team["MonitorType"], by_team["MonitorDimension"]) == ("DIMENSIONAL", "TAG")
    assert json.loads(by_team["MonitorSpecification"]) == {"Tags": {"Key": "team"}}


def test_the_subscription_sends_both_monitors_to_the_topic_at_once() -> None:
    found = template()
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


def test_each_monitor_can_be_left_out() -> None:
    member_account = template(team_monitor=False)
    names = [m["MonitorName"] for m in properties(member_account.find_resources("AWS::CE::AnomalyMonitor"))]
    assert names == ["t-by-service"]
    (subscription,) = properties(member_account.find_resources("AWS::CE::AnomalySubscription"))
    assert len(subscription["MonitorArnList"]) == 1

    service_monitor_exists = template(service_monitor=False)
    names = [m["MonitorName"] for m in properties(service_monitor_exists.find_resources("AWS::CE::AnomalyMonitor"))]
    assert names == ["t-by-team"]


def test_without_any_monitor_there_is_nothing_to_subscribe() -> None:
    neither = template(service_monitor=False, team_monitor=False)
    neither.resource_count_is("AWS::CE::AnomalyMonitor", 0)
    neither.resource_count_is("AWS::CE::AnomalySubscription", 0)
