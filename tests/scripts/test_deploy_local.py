"""`make deploy-local` end to end: a real `cdk bootstrap` and `cdk deploy` against moto's server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.deploy
def test_local_deploy_creates_the_network_and_reports_what_moto_skipped(tmp_path: Path, bundle_cache: Path) -> None:
    config = load_config("dev")
    # CI=true as on the CI machines, where the CDK CLI writes its progress to stdout.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))} | {"CI": "true"}
    completed = subprocess.run(
        [sys.executable, "scripts/deploy_local.py", "--env", "dev", "--moto-log", str(tmp_path / "moto.log")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = completed.stdout
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    rows = [line.split() for line in output.splitlines() if line.startswith("aigw-dev-network ")]
    created = [(row[1], row[3]) for row in rows]
    assert ("AWS::EC2::VPC", "CREATE_COMPLETE") in created
    assert [row for row in created if row[1] != "CREATE_COMPLETE"] == []

    subnet_azs = [row[4] for row in rows if row[1] == "AWS::EC2::Subnet"]
    assert sorted(set(subnet_azs)) == sorted(config.availability_zones)
    assert len(subnet_azs) == 2 * len(config.availability_zones)

    endpoint_services = {row[5] for row in rows if row[1] == "AWS::EC2::VPCEndpoint"}
    region = config.region
    assert {f"com.amazonaws.{region}.{s}" for s in ("ssm", "logs", "kms", "sts", "s3")} <= endpoint_services

    assert [row for row in rows if row[1] == "AWS::Logs::LogGroup" and row[4] == "/aigw-dev/vpc-flow-logs"]
    # moto's CloudFormation does not model security-group egress rules: the report must say so.
    skipped = dict(re.findall(r"^  (AWS::\S+): (.+)$", output.split("emulator skipped", 1)[1], re.MULTILINE))
    assert "aigw-dev-gateway/" in skipped["AWS::EC2::SecurityGroupEgress"]
    assert "AWS::CloudWatch::Alarm" in skipped and "AWS::AutoScaling::LifecycleHook" in skipped

    audit = [line.split() for line in output.splitlines() if line.startswith("aigw-dev-audit ")]
    assert [row for row in audit if row[3] != "CREATE_COMPLETE"] == []
    assert ("AWS::S3::Bucket", f"aigw-dev-audit-{config.account}-{region}") in {(row[1], row[4]) for row in audit}
    assert ("AWS::KMS::Alias", "alias/aigw-dev") in {(row[1], row[4]) for row in audit}
    # Firehose and the subscription filter are not modelled: the report says so rather than hiding them.
    assert "aigw-dev-audit/" in skipped["AWS::KinesisFirehose::DeliveryStream"]
    assert "aigw-dev-audit/" in skipped["AWS::Logs::SubscriptionFilter"]

    cost = {
        (row[1], row[3]) for row in (line.split() for line in output.splitlines() if line.startswith("aigw-dev-cost "))
    }
    assert {("AWS::Lambda::Function", "CREATE_COMPLETE"), ("AWS::DynamoDB::Table", "CREATE_COMPLETE")} <= cost
    assert ("AWS::Events::Rule", "CREATE_COMPLETE") in cost
    assert (
        "aigw-dev-cost/" in skipped["AWS::Budgets::Budget"] and "aigw-dev-cost/" in skipped["AWS::CE::AnomalyMonitor"]
    )

    gateway = {
        row[1]: row
        for row in (line.split(None, 4) for line in output.splitlines() if line.startswith("aigw-dev-gateway "))
    }
    # The group's subnets span every configured AZ (moto picks where instances land, so they prove nothing).
    group = re.fullmatch(r"(\d+) subnets in (\S+); (\d+) instances", gateway["AWS::AutoScaling::AutoScalingGroup"][4])
    assert group, gateway["AWS::AutoScaling::AutoScalingGroup"]
    assert sorted(group[2].split(",")) == sorted(config.availability_zones)
    assert int(group[1]) == len(config.availability_zones) and int(group[3]) == config.fleet.min_instances
    assert "moto places the instances itself (AWS balances them across those AZs)" in output
    assert re.search(
        rf"moto does not wait for instance signals \(CreationPolicy\): aigw-dev-gateway/\w+ "
        rf"\({config.fleet.min_instances} signals\)",
        output,
    )
    assert gateway["AWS::ElasticLoadBalancingV2::LoadBalancer"][4].startswith("internal ")
    assert {"AWS::ElasticLoadBalancingV2::Listener", "AWS::ElasticLoadBalancingV2::TargetGroup"} <= set(gateway)
    assert gateway["AWS::EC2::VPCEndpoint"][4] == f"Interface com.amazonaws.{region}.bedrock-runtime"
    # moto lacks ElastiCache replication groups and Bedrock inference profiles: the report says the ones it
    # shows are stand-ins, and reads each team's profile ARNs back from the stack's outputs.
    assert gateway["AWS::ElastiCache::ReplicationGroup"][4].startswith("moto-stand-in-")
    assert (
        "Stand-ins for types moto lacks (AWS::Bedrock::ApplicationInferenceProfile, AWS::ElastiCache::ReplicationGroup)"
        in output
    )
    profiles = [
        row
        for row in (line.split() for line in output.splitlines())
        if row[:2] == ["aigw-dev-gateway", "AWS::Bedrock::ApplicationInferenceProfile"]
    ]
    assert len(profiles) == len(config.teams) * len(config.vendor.models)
    assert all(row[3] == "CREATE_COMPLETE" and row[4].startswith("moto-stand-in-") for row in profiles)
    arn = rf"arn:aws:bedrock:{region}:{config.account}:application-inference-profile/[a-z0-9]{{12}}"
    for team in config.teams:
        (line,) = [
            line for line in output.splitlines() if re.match(rf"  aigw-dev-gateway  TeamProfiles{team}arns", line)
        ]
        pairs = dict(pair.split("=", 1) for pair in line.split()[-1].split(","))
        assert list(pairs) == list(config.vendor.models)
        assert all(re.fullmatch(arn, value) for value in pairs.values()), line


def test_a_bad_environment_deploys_nothing() -> None:
    completed = subprocess.run(
        [sys.executable, "scripts/deploy_local.py", "--env", "staging"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "config/staging.yaml: no such environment 'staging'" in completed.stderr
