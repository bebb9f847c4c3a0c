"""CostAnomalyDetector in a small app of its own, with every compliance pack on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from constructs.compliance import unacknowledged_findings
from constructs.cost_anomaly_detector import CODE, CostAnomalyDetector, DetectorSettings

from tests.constructs.conftest import NetworkedStack, synth_with_packs


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    def build(stack: NetworkedStack) -> CostAnomalyDetector:
        return CostAnomalyDetector(
            stack,
            "Detector",
            key=stack.key,
            topic=sns.Topic(stack, "Alerts", master_key=stack.key.key, enforce_ssl=True),
            environment="t",
            metrics_namespace="aigw",
            team_monthly_usd={"payments": 9000.0, "data": 1500.0},
            log_retention_days=365,
            settings=DetectorSettings(
                spike_mad_multiplier=4, spike_floor_usd=2.5, baseline_days=35, concentration_share=0.5
            ),
        )

    return synth_with_packs(tmp_path_factory.mktemp("detector"), build)


def one(template: Template, resource_type: str) -> dict[str, Any]:
    (resource,) = template.find_resources(resource_type).values()
    return dict(resource)


def test_zero_unacknowledged_findings(synthesized: tuple[Template, Path]) -> None:
    assert unacknowledged_findings(synthesized[1]) == []


def test_traced_with_dead_letters_encrypted_settings_and_no_reserved_concurrency(
    synthesized: tuple[Template, Path],
) -> None:
    template = synthesized[0]
    (function,) = [  # the network's own custom-resource function is there too
        f["Properties"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "handler.handler"
    ]
    assert function["Runtime"] == "python3.14" and function["Handler"] == "handler.handler"
    # One run at a time comes from the table's run lease: a reservation fails in accounts with a low
    # unreserved-concurrency quota (AWS keeps 100 unreserved, and new accounts may have 10 in all).
    assert "ReservedConcurrentExecutions" not in function
    (key,) = template.find_resources("AWS::KMS::Key")
    assert function["KmsKeyArn"] == {"Fn::GetAtt": [key, "Arn"]}
    assert function["TracingConfig"] == {"Mode": "Active"}
    (queue,) = template.find_resources("AWS::SQS::Queue")
    assert function["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [queue, "Arn"]}}
    variables = function["Environment"]["Variables"]
    assert json.loads(variables["TEAM_CAPS_JSON"]) == {"data": 1500.0, "payments": 9000.0}
    assert (variables["SPIKE_MAD_MULTIPLIER"], variables["ABSOLUTE_FLOOR_USD"], variables["BASELINE_DAYS"]) == (
        "4",
        "2.5",
        "35",
    )
    assert variables["ENVIRONMENT"] == "t" and variables["METRICS_NAMESPACE"] == "aigw"
    assert variables["COST_TAG_KEY"] == "team" and variables["CONCENTRATION_SHARE"] == "0.5"
    (table,) = template.find_resources("AWS::DynamoDB::Table")
    assert variables["TABLE_NAME"] == {"Ref": table}
    assert (CODE / "handler.py").is_file()  # the asset the function is built from


def test_it_runs_hourly(synthesized: tuple[Template, Path]) -> None:
    rule = one(synthesized[0], "AWS::Events::Rule")["Properties"]
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2


def test_sent_findings_expire_and_are_encrypted_with_the_project_key(synthesized: tuple[Template, Path]) -> None:
    table = one(synthesized[0], "AWS::DynamoDB::Table")["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"]["SSEType"] == "KMS"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_the_role_may_call_only_what_the_function_calls(synthesized: tuple[Template, Path]) -> None:
    template = synthesized[0]
    template.resource_count_is("AWS::IAM::Policy", 0)  # no inline policy: grants are in the managed one
    (policy,) = [
        p
        for p in template.find_resources("AWS::IAM::ManagedPolicy").values()
        if p["Properties"].get("Description") == "aigw-t cost-anomaly function"
    ]
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert sorted(statements["ReadUsageMetrics"]["Action"]) == ["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"]
    assert statements["ReadCosts"]["Action"] == "ce:GetCostAndUsage"
    wildcard = {
        sid: s["Condition"]["StringEquals"]["aws:RequestedRegion"]
        for sid, s in statements.items()
        if s["Resource"] == "*"
    }
    assert wildcard == {"ReadUsageMetrics": "eu-west-1", "ReadCosts": "us-east-1", "Tracing": "eu-west-1"}
    assert statements["Alert"]["Action"] == "sns:Publish"
    assert "dynamodb:Scan" not in statements["RememberSentFindings"]["Action"]
    services = statements["ProjectKeyThroughItsServices"]["Condition"]["StringEquals"]["kms:ViaService"]
    assert sorted(s.split(".")[0] for s in services) == ["dynamodb", "sns", "sqs"]


def test_failures_and_dead_letters_alarm_the_topic(synthesized: tuple[Template, Path]) -> None:
    template = synthesized[0]
    (topic,) = template.find_resources("AWS::SNS::Topic")
    alarms = [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()]
    assert sorted(a["MetricName"] for a in alarms) == ["ApproximateNumberOfMessagesVisible", "Errors"]
    assert all(a["AlarmActions"] == [{"Ref": topic}] for a in alarms)
    assert all(a["OKActions"] == [{"Ref": topic}] for a in alarms)  # and when it clears
