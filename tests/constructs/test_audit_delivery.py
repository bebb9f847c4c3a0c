"""AuditDelivery in a small app of its own, with every compliance pack on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from constructs.audit_bucket import AuditBucket
from constructs.audit_delivery import AuditDelivery
from constructs.compliance import unacknowledged_findings
from constructs.encrypted_log_group import EncryptedLogGroup

from tests.constructs.conftest import NetworkedStack, synth_with_packs


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    def build(stack: NetworkedStack) -> AuditDelivery:
        return AuditDelivery(
            stack,
            "Delivery",
            source=EncryptedLogGroup(stack, "Audit", log_group_name="/t/audit", retention_days=365, key=stack.key),
            audit_bucket=AuditBucket(stack, "Bucket", key=stack.key.key, bucket_name="t-audit"),
            key=stack.key,
            stream_name="t-audit",
            topic=sns.Topic(stack, "Alerts", master_key=stack.key.key, enforce_ssl=True),
            error_log_retention_days=365,
            buffer_mib=32,
            buffer_seconds=120,
        )

    return synth_with_packs(tmp_path_factory.mktemp("delivery"), build)


def one(template: Template, resource_type: str) -> dict[str, Any]:
    (resource,) = template.find_resources(resource_type).values()
    return dict(resource)


def test_zero_unacknowledged_findings(synthesized: tuple[Template, Path]) -> None:
    assert unacknowledged_findings(synthesized[1]) == []
    report = json.loads((synthesized[1] / "validation-report.json").read_text())
    reasons = [
        s["reason"]
        for plugin in report["pluginReports"]
        for s in plugin.get("suppressedViolations", [])
        if "AuditDelivery" in json.dumps(s) or "Delivery/DeliveryPolicy" in json.dumps(s)
    ]
    assert all("audit/" in reason for reason in reasons)


def test_the_stream_is_encrypted_buffered_as_asked_and_partitioned_by_date(synthesized: tuple[Template, Path]) -> None:
    properties = one(synthesized[0], "AWS::KinesisFirehose::DeliveryStream")["Properties"]
    assert properties["DeliveryStreamName"] == "t-audit"
    assert properties["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] == "CUSTOMER_MANAGED_CMK"
    s3 = properties["ExtendedS3DestinationConfiguration"]
    assert s3["BufferingHints"] == {"SizeInMBs": 32, "IntervalInSeconds": 120}
    assert s3["Prefix"] == "audit/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/"
    assert s3["ErrorOutputPrefix"].startswith("errors/!{firehose:error-output-type}/")
    assert s3["EncryptionConfiguration"]["KMSEncryptionConfig"]["AWSKMSKeyARN"]["Fn::GetAtt"][1] == "Arn"
    assert s3["CompressionFormat"] == "GZIP"
    processors = [p["Type"] for p in s3["ProcessingConfiguration"]["Processors"]]
    assert processors == ["Decompression", "CloudWatchLogProcessing", "AppendDelimiterToRecord"]
    assert s3["CloudWatchLoggingOptions"]["Enabled"] is True


def test_every_record_of_the_audit_group_is_subscribed(synthesized: tuple[Template, Path]) -> None:
    template = synthesized[0]
    subscription = one(template, "AWS::Logs::SubscriptionFilter")
    assert subscription["Properties"]["FilterPattern"] == ""
    assert "deliverystream/t-audit" in json.dumps(subscription["Properties"]["DestinationArn"])
    roles = template.find_resources("AWS::IAM::Role")
    logs_role = roles[subscription["Properties"]["RoleArn"]["Fn::GetAtt"][0]]
    (trust,) = logs_role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    # The trust AWS documents for CloudWatch Logs -> Firehose: the global principal, this account's logs here.
    assert trust["Principal"] == {"Service": "logs.amazonaws.com"}
    assert trust["Condition"] == {"StringLike": {"aws:SourceArn": "arn:aws:logs:eu-west-1:123456789012:*"}}


def test_roles_may_do_only_their_part(synthesized: tuple[Template, Path]) -> None:
    template = synthesized[0]
    template.resource_count_is("AWS::IAM::Policy", 0)
    policies = {
        p["Properties"]["Description"]: p["Properties"]["PolicyDocument"]["Statement"]
        for p in template.find_resources("AWS::IAM::ManagedPolicy").values()
        if "Firehose" in p["Properties"].get("Description", "")
        or "CloudWatch Logs" in p["Properties"].get("Description", "")
    }
    (put,) = next(v for k, v in policies.items() if k.startswith("CloudWatch Logs"))
    assert sorted(put["Action"]) == ["firehose:PutRecord", "firehose:PutRecordBatch"]
    delivery = next(v for k, v in policies.items() if k.startswith("Firehose"))
    actions = sorted(a for s in delivery for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
    assert not any(a.endswith("*") for a in actions) and "s3:DeleteObject" not in actions
    objects = json.dumps(next(s["Resource"] for s in delivery if "s3:PutObject" in s["Action"]))
    assert "/audit/*" in objects and "/errors/*" in objects


def test_the_key_lets_firehose_write_only_this_bucket_through_s3(synthesized: tuple[Template, Path]) -> None:
    (key,) = synthesized[0].find_resources("AWS::KMS::Key").values()
    (statement,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid", "").startswith("S3Writes")]
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert statement["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    assert ":s3:::t-audit" in json.dumps(statement["Condition"]["StringLike"])


def test_alarms_on_failed_or_late_delivery_and_on_the_error_prefix(synthesized: tuple[Template, Path]) -> None:
    template = synthesized[0]
    alarms = [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()]
    metrics = {a["MetricName"]: a for a in alarms}
    assert set(metrics) == {"DeliveryToS3.Success", "DeliveryToS3.DataFreshness", "PutRequests"}
    assert metrics["DeliveryToS3.DataFreshness"]["Threshold"] == 120 + 900
    errors = metrics["PutRequests"]
    assert {"Name": "FilterId", "Value": "DeliveryErrors"} in errors["Dimensions"]
    bucket = next(
        b for b in template.find_resources("AWS::S3::Bucket").values() if b["Properties"].get("BucketName") == "t-audit"
    )
    assert bucket["Properties"]["MetricsConfigurations"] == [{"Id": "DeliveryErrors", "Prefix": "errors/"}]
    topic = next(iter(template.find_resources("AWS::SNS::Topic")))
    assert all(a["AlarmActions"] == [{"Ref": topic}] for a in alarms)
    assert all(a["OKActions"] == [{"Ref": topic}] for a in alarms)  # and when it clears
