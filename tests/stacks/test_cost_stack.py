"""CostStack as the whole app synthesizes it: budgets from the config, both detectors, one topic."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Synthesized


def resources(synthesized: Synthesized, resource_type: str) -> list[dict[str, Any]]:
    return [dict(r)["Properties"] for r in synthesized.template("Cost").find_resources(resource_type).values()]


def test_budgets_for_the_organisation_and_every_team_from_the_config(each_environment: Synthesized) -> None:
    config = each_environment.config
    amounts = {
        b["Budget"]["BudgetName"]: b["Budget"]["BudgetLimit"]["Amount"]
        for b in resources(each_environment, "AWS::Budgets::Budget")
    }
    prefix = f"aigw-{config.environment}"
    assert amounts.pop(f"{prefix}-organisation") == config.budgets.org_monthly_usd
    assert amounts == {
        f"{prefix}-team-{team}": amount for team, amount in config.budgets.per_team(config.teams).items()
    }
    for team, amount in config.budgets.team_monthly_usd.items():
        assert amounts[f"{prefix}-team-{team}"] == amount  # named amounts are kept as configured


def test_every_alert_goes_to_the_audit_stacks_topic(each_environment: Synthesized) -> None:
    text = json.dumps(each_environment.template_json("Cost"))
    assert each_environment.template("Cost").find_resources("AWS::SNS::Topic") == {}
    for alarm in resources(each_environment, "AWS::CloudWatch::Alarm"):
        (action,) = alarm["AlarmActions"]
        assert "AlertsTopic" in action["Fn::ImportValue"]
    (subscription,) = resources(each_environment, "AWS::CE::AnomalySubscription")
    assert "AlertsTopic" in subscription["Subscribers"][0]["Address"]["Fn::ImportValue"]
    assert text.count("AlertsTopic") >= 3


def test_the_detector_gets_the_configured_caps_and_thresholds(each_environment: Synthesized) -> None:
    config = each_environment.config
    (function,) = resources(each_environment, "AWS::Lambda::Function")
    variables = function["Environment"]["Variables"]
    assert json.loads(variables["TEAM_CAPS_JSON"]) == config.budgets.per_team(config.teams)
    assert float(variables["SPIKE_MAD_MULTIPLIER"]) == config.cost_anomalies.spike_mad_multiplier
    assert float(variables["CONCENTRATION_SHARE"]) == config.cost_anomalies.concentration_share
    assert variables["ENVIRONMENT"] == config.environment
    (subscription,) = resources(each_environment, "AWS::CE::AnomalySubscription")
    values = [c["Dimensions"]["Values"][0] for c in json.loads(subscription["ThresholdExpression"])["And"]]
    assert [float(v) for v in values] == [
        config.cost_anomalies.aws_impact_usd,
        config.cost_anomalies.aws_impact_percent,
    ]


def test_budgets_and_cost_anomaly_detection_may_publish_to_the_encrypted_topic(dev: Synthesized) -> None:
    audit = dev.template_json("Audit")["Resources"]
    (topic_policy,) = [r for r in audit.values() if r["Type"] == "AWS::SNS::TopicPolicy"]
    statements = {s.get("Sid"): s for s in topic_policy["Properties"]["PolicyDocument"]["Statement"]}
    publish = statements["CostAlertsPublish"]
    assert sorted(publish["Principal"]["Service"]) == ["budgets.amazonaws.com", "costalerts.amazonaws.com"]
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": dev.config.account}}
    (key,) = [r for r in audit.values() if r["Type"] == "AWS::KMS::Key"]
    (key_statement,) = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "ServicesPublishAlerts"
    ]
    assert {"budgets.amazonaws.com", "costalerts.amazonaws.com"} <= set(key_statement["Principal"]["Service"])
