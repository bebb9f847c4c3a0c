"""AuditStack as the whole app synthesizes it: one project key, the audit trail, its queries."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Synthesized


def resources(synthesized: Synthesized, resource_type: str) -> list[dict[str, Any]]:
    return [dict(r) for r in synthesized.template("Audit").find_resources(resource_type).values()]


def test_it_is_deployed_first_and_is_the_only_stack_with_a_key(each_environment: Synthesized) -> None:
    audit = each_environment.stack("Audit")
    assert audit.dependencies == []
    for name in ("Network", "Gateway"):
        assert audit in each_environment.stack(name).dependencies
    # No other key encrypts anything: the gateway's one key only signs access tokens.
    assert each_environment.template("Network").find_resources("AWS::KMS::Key") == {}
    gateway_keys = each_environment.template("Gateway").find_resources("AWS::KMS::Key").values()
    assert [k["Properties"]["KeyUsage"] for k in gateway_keys] == ["SIGN_VERIFY"]


def test_one_rotating_retained_key_with_the_environment_alias(each_environment: Synthesized) -> None:
    (key,) = resources(each_environment, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True and key["DeletionPolicy"] == "RetainExceptOnCreate"
    (alias,) = resources(each_environment, "AWS::KMS::Alias")
    assert alias["Properties"]["AliasName"] == f"alias/aigw-{each_environment.config.environment}"


def test_services_use_the_key_only_for_what_is_named_to_them(dev: Synthesized) -> None:
    (key,) = resources(dev, "AWS::KMS::Key")
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    logs_groups = sorted(
        s["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"].rsplit(":", 1)[1]
        for s in statements
        if s["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    )
    assert logs_groups == [
        "/aigw-dev/audit",
        "/aigw-dev/metrics",
        "/aigw-dev/telemetry",
        "/aigw-dev/vpc-flow-logs",
        "/aws/kinesisfirehose/aigw-dev-audit",
        "/aws/lambda/aigw-dev-cost-anomaly",
        "/aws/lambda/aigw-dev-idp-keys",
    ]
    by_sid = {s.get("Sid"): s for s in statements}
    firehose = by_sid["S3WritesByDeliveryRole"]
    assert "aigw-dev-audit-123456789012-eu-west-1" in json.dumps(firehose["Condition"]["StringLike"])
    publishers = by_sid["ServicesPublishAlerts"]
    assert sorted(publishers["Principal"]["Service"]) == [
        "budgets.amazonaws.com",
        "cloudwatch.amazonaws.com",
        "costalerts.amazonaws.com",
        "events.amazonaws.com",
    ]
    assert publishers["Condition"] == {"StringEquals": {"aws:SourceAccount": dev.config.account}}
    # Auto Scaling's events reach the topic through EventBridge: no statement for its service-linked role.
    assert "AWSServiceRoleForAutoScaling" not in json.dumps(statements)
    proxy = by_sid["ProxyInstancesReadSecrets"]
    assert proxy["Action"] == "kms:Decrypt"
    # The account as principal, narrowed to the role by condition: never a wildcard principal (checkov CKV_AWS_33).
    assert proxy["Principal"] == {"AWS": f"arn:aws:iam::{dev.config.account}:root"}
    assert proxy["Condition"]["StringEquals"]["kms:ViaService"] == "secretsmanager.eu-west-1.amazonaws.com"
    proxy_role = proxy["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    role_names = [
        r["Properties"].get("RoleName") for r in dev.template("Gateway").find_resources("AWS::IAM::Role").values()
    ]
    assert proxy_role == f"arn:aws:iam::{dev.config.account}:role/aigw-dev-proxy-eu-west-1"
    assert "aigw-dev-proxy-eu-west-1" in role_names
    # Every statement but the account's own (which delegates to IAM policies) carries a condition.
    (deny,) = [statement for statement in statements if statement["Effect"] == "Deny"]
    assert deny["Action"] == "kms:CreateGrant"  # everyone is denied grants but for AWS resources (CT.KMS.PR.3)
    for statement in statements:
        if statement is deny:
            continue
        assert statement["Principal"] not in ("*", {"AWS": "*"}), statement
        if statement["Principal"] != {"AWS": "arn:aws:iam::123456789012:root"} or "kms:*" not in statement["Action"]:
            assert statement.get("Condition"), statement


def test_log_groups_keep_the_hot_period_and_the_bucket_the_retention(each_environment: Synthesized) -> None:
    audit = each_environment.config.audit
    groups = {
        g["Properties"]["LogGroupName"]: g["Properties"] for g in resources(each_environment, "AWS::Logs::LogGroup")
    }
    env = each_environment.config.environment
    assert groups[f"/aigw-{env}/audit"]["RetentionInDays"] == audit.hot_days
    assert groups[f"/aigw-{env}/metrics"]["RetentionInDays"] == audit.hot_days
    (bucket,) = [b for b in resources(each_environment, "AWS::S3::Bucket") if "ObjectLockEnabled" in b["Properties"]]
    (rule,) = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == audit.retention_days
    assert rule["Transitions"][0]["TransitionInDays"] == audit.hot_days
    (stream,) = resources(each_environment, "AWS::KinesisFirehose::DeliveryStream")
    hints = stream["Properties"]["ExtendedS3DestinationConfiguration"]["BufferingHints"]
    assert hints == {"SizeInMBs": audit.delivery_buffer_mib, "IntervalInSeconds": audit.delivery_buffer_seconds}


def test_the_audit_group_is_the_one_subscribed_to_the_stream(dev: Synthesized) -> None:
    (subscription,) = resources(dev, "AWS::Logs::SubscriptionFilter")
    groups = dev.template("Audit").find_resources("AWS::Logs::LogGroup")
    assert groups[subscription["Properties"]["LogGroupName"]["Ref"]]["Properties"]["LogGroupName"] == "/aigw-dev/audit"


def test_saved_queries_answer_the_six_questions_and_adoption_per_team(each_environment: Synthesized) -> None:
    config = each_environment.config
    names = {q["Properties"]["Name"] for q in resources(each_environment, "AWS::Logs::QueryDefinition")}
    folder = f"aigw-{config.environment}"
    for question in (
        "requests-and-rejections-by-team-per-day",
        "policy-blocks-by-rule",
        "top-users-by-tokens",
        "latency-p50-p99-by-model",
        "weekly-active-users-share-of-seats",
        "errors-and-breaker-openings",
    ):
        assert f"{folder}/{question}" in names
    per_team = {n.rsplit("/", 1)[1] for n in names if n.startswith(f"{folder}/weekly-active-users-share-of-seats/")}
    assert per_team == set(config.licensed_seats)


def test_delivery_alarms_go_to_the_alerts_topic(dev: Synthesized) -> None:
    (topic,) = dev.template("Audit").find_resources("AWS::SNS::Topic")
    alarms = resources(dev, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 3
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": topic}] for a in alarms)
