"""AvailabilityCanary and CanaryCredential in a networked stack with every compliance pack on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template
from constructs.availability_canary import HANDLER, AvailabilityCanary, CanaryCredential
from constructs.compliance import unacknowledged_findings
from constructs.log_delivery_bucket import LogDeliveryBucket

from tests.constructs.conftest import NetworkedStack, synth_with_packs

RUNTIME = "syn-python-selenium-14.0"


def build(stack: NetworkedStack) -> AvailabilityCanary:
    credential = CanaryCredential(stack, "Credential", key=stack.key.key, secret_name="aigw-test-canary-token")
    logs = LogDeliveryBucket(stack, "AccessLogs", what="S3 server access logs", retention_days=90)
    return AvailabilityCanary(
        stack, "Canary", name="aigw-test-canary", vpc=stack.network.vpc, subnets=stack.network.workload_subnets,
        load_balancer_dns="internal-aigw-123.eu-west-1.elb.amazonaws.com", domain_name="aigw.test.fenwick.bank",
        model="eu.anthropic.claude-haiku-4-5-20251001-v1:0", token=credential.secret, key=stack.key.key,
        role_name="aigw-test-canary-eu-west-1", access_logs=logs.bucket, runtime=RUNTIME,
    )  # fmt: skip


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    return synth_with_packs(tmp_path_factory.mktemp("canary"), build)


def one(template: Template, resource_type: str) -> dict[str, Any]:
    (resource,) = template.find_resources(resource_type).values()
    return dict(resource["Properties"])


def test_zero_unacknowledged_findings(synthesized: tuple[Template, Path]) -> None:
    assert unacknowledged_findings(synthesized[1]) == []


def test_it_runs_every_minute_in_the_workload_subnets_once_per_run(synthesized: tuple[Template, Path]) -> None:
    canary = one(synthesized[0], "AWS::Synthetics::Canary")
    assert (canary["Name"], canary["RuntimeVersion"]) == ("aigw-test-canary", RUNTIME)
    assert canary["Schedule"]["Expression"] == "rate(1 minute)"
    assert canary["Code"]["Handler"] == HANDLER
    assert canary["StartCanaryAfterCreation"] is True
    run = canary["RunConfig"]
    assert run["TimeoutInSeconds"] <= 60
    assert run["EnvironmentVariables"]["AIGW_DOMAIN"] == "aigw.test.fenwick.bank"
    assert run["EnvironmentVariables"]["AIGW_MODEL"] == "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
    assert "Ref" in run["EnvironmentVariables"]["AIGW_CANARY_TOKEN_SECRET_ID"]  # the secret's ARN, never its value
    assert canary["Schedule"].get("RetryConfig", {"MaxRetries": 0})["MaxRetries"] == 0
    vpc = canary["VPCConfig"]
    assert len(vpc["SubnetIds"]) == 3 and len(vpc["SecurityGroupIds"]) == 1


def test_its_security_group_only_speaks_https(synthesized: tuple[Template, Path]) -> None:
    (group,) = [
        g["Properties"]
        for g in synthesized[0].find_resources("AWS::EC2::SecurityGroup").values()
        if "canary" in g["Properties"]["GroupDescription"]
    ]
    assert [(rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) for rule in group["SecurityGroupEgress"]] == [
        ("tcp", 443, 443)
    ]


def test_its_artifacts_are_kms_encrypted_logged_and_expire(synthesized: tuple[Template, Path]) -> None:
    buckets = synthesized[0].find_resources("AWS::S3::Bucket")
    (artifacts,) = [b["Properties"] for b in buckets.values() if "LoggingConfiguration" in b["Properties"]]
    (encryption,) = artifacts["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert artifacts["LoggingConfiguration"]["LogFilePrefix"] == "canary-artifacts/"
    assert artifacts["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 90
    canary = one(synthesized[0], "AWS::Synthetics::Canary")
    assert (canary["SuccessRetentionPeriod"], canary["FailureRetentionPeriod"]) == (90, 90)


def test_its_role_reads_only_its_secret_and_writes_only_its_bucket(synthesized: tuple[Template, Path]) -> None:
    (policy,) = (
        synthesized[0]
        .find_resources("AWS::IAM::ManagedPolicy", {"Properties": {"Description": "aigw availability canary"}})
        .values()
    )
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    by_action = {action: s for s in statements for action in _list(s["Action"])}
    assert _list(by_action["secretsmanager:GetSecretValue"]["Resource"]) == [{"Ref": _secret_id(synthesized[0])}]
    assert by_action["cloudwatch:PutMetricData"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "CloudWatchSynthetics"}
    }
    assert all("iam:" not in action and action != "*" for action in by_action)
    # Every '*' is narrowed by a condition (the audit report's least-privilege control checks the same).
    assert all(s.get("Condition") for s in statements if "*" in _list(s["Resource"]))
    (role,) = (
        synthesized[0]
        .find_resources("AWS::IAM::Role", {"Properties": {"RoleName": "aigw-test-canary-eu-west-1"}})
        .values()
    )
    assert (
        "ManagedPolicyArns" not in role["Properties"]
    )  # no AWS managed policy (AWSLambdaVPCAccessExecutionRole et al.)


def test_the_credential_is_random_and_encrypted_with_the_project_key(synthesized: tuple[Template, Path]) -> None:
    secret = one(synthesized[0], "AWS::SecretsManager::Secret")
    assert secret["GenerateSecretString"] == {"ExcludePunctuation": True, "PasswordLength": 48}
    assert "KmsKeyId" in secret


def test_a_name_too_long_stops_synth(tmp_path: Path) -> None:
    def long_name(stack: NetworkedStack) -> None:
        credential = CanaryCredential(stack, "Credential", key=stack.key.key, secret_name="x")
        logs = LogDeliveryBucket(stack, "AccessLogs", what="logs", retention_days=90)
        AvailabilityCanary(
            stack, "Canary", name="aigw-production-canary", vpc=stack.network.vpc,
            subnets=stack.network.workload_subnets, load_balancer_dns="x", domain_name="x", model="x",
            token=credential.secret, key=stack.key.key, role_name="r", access_logs=logs.bucket, runtime=RUNTIME,
        )  # fmt: skip

    with pytest.raises(ValueError, match="1 to 21 characters: 'aigw-production-canary'"):
        synth_with_packs(tmp_path, long_name)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _secret_id(template: Template) -> str:
    (logical_id,) = template.find_resources("AWS::SecretsManager::Secret")
    return str(logical_id)
