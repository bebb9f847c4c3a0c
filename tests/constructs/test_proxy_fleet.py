"""ProxyFleet in a small app of its own, with every compliance pack on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from constructs.compliance import unacknowledged_findings
from constructs.encrypted_log_group import EncryptedLogGroup
from constructs.gateway_bundle import GatewayBundle
from constructs.proxy_fleet import ProxyFleet, agent_config, user_data_script

from config import load_config
from config.render import gateway_settings
from tests.conftest import BareStack
from tests.constructs.conftest import NetworkedStack, synth_with_packs

MODEL = "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    def build(stack: NetworkedStack) -> ProxyFleet:
        audit = EncryptedLogGroup(stack, "Audit", log_group_name="/t/audit", retention_days=90, key=stack.key)
        metrics = EncryptedLogGroup(stack, "Metrics", log_group_name="/t/metrics", retention_days=90, key=stack.key)
        return ProxyFleet(
            stack, "Fleet", vpc=stack.network.vpc, subnets=stack.network.workload_subnets,
            security_group=ec2.SecurityGroup(stack, "Proxies", vpc=stack.network.vpc, allow_all_outbound=False),
            bundle=GatewayBundle(stack, "Bundle", settings=gateway_settings(load_config("dev"))),
            alerts=sns.Topic(stack, "Alerts", master_key=stack.key.key, enforce_ssl=True),
            audit_log_group=audit.log_group, metrics_log_group=metrics.log_group, metrics_namespace="aigw",
            model_arns=[MODEL], secret_arns=["arn:aws:secretsmanager:eu-west-1:123456789012:secret:aigw/redis-AbCdEf"],
        )  # fmt: skip

    return synth_with_packs(tmp_path_factory.mktemp("fleet"), build)


def resources(template: Template, resource_type: str) -> list[dict[str, Any]]:
    return [dict(resource) for resource in template.find_resources(resource_type).values()]


def test_zero_unacknowledged_findings(synthesized: tuple[Template, Path]) -> None:
    assert unacknowledged_findings(synthesized[1]) == []


def test_group_spans_every_az_and_keeps_full_capacity_on_replacement(synthesized: tuple[Template, Path]) -> None:
    template, _ = synthesized
    (group,) = resources(template, "AWS::AutoScaling::AutoScalingGroup")
    assert len(group["Properties"]["VPCZoneIdentifier"]) == 3
    assert (group["Properties"]["MinSize"], group["Properties"]["MaxSize"]) == ("2", "6")
    assert group["Properties"]["HealthCheckType"] == "ELB" and group["Properties"]["HealthCheckGracePeriod"] == 300
    assert group["Properties"]["CapacityRebalance"] is True
    rolling = group["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert (rolling["MaxBatchSize"], rolling["MinInstancesInService"]) == (1, 2)
    assert group["Properties"]["NotificationConfigurations"]


def test_launch_template_imdsv2_encrypted_no_key_pair(synthesized: tuple[Template, Path]) -> None:
    template, _ = synthesized
    (launch,) = resources(template, "AWS::EC2::LaunchTemplate")
    data = launch["Properties"]["LaunchTemplateData"]
    assert (
        data["MetadataOptions"]["HttpTokens"] == "required" and data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    )
    (device,) = data["BlockDeviceMappings"]
    assert device["Ebs"]["Encrypted"] is True and device["Ebs"]["VolumeType"] == "gp3"
    assert "KeyName" not in data and data["Monitoring"]["Enabled"] is True
    assert data["InstanceType"] == "c6i.xlarge"
    parameters = template.to_json()["Parameters"]
    assert any(
        p.get("Default") == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
        for p in parameters.values()
    )


def test_drain_lifecycle_hook_outlasts_a_stream(synthesized: tuple[Template, Path]) -> None:
    (hook,) = resources(synthesized[0], "AWS::AutoScaling::LifecycleHook")
    assert hook["Properties"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert hook["Properties"]["HeartbeatTimeout"] >= 630
    assert hook["Properties"]["LifecycleHookName"] == ProxyFleet.LIFECYCLE_HOOK


def test_instance_role_has_no_unconditioned_wildcard(synthesized: tuple[Template, Path]) -> None:
    template, _ = synthesized
    template.resource_count_is("AWS::IAM::Policy", 0)
    fleet_policies = [
        p
        for p in resources(template, "AWS::IAM::ManagedPolicy")
        if p["Properties"].get("Description") == "aigw proxy instances"
    ]
    (policy,) = fleet_policies
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if "*" in targets:
            assert statement.get("Condition"), statement["Sid"]
    invoke = next(
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Sid"] == "InvokeConfiguredModels"
    )
    assert invoke["Resource"] == MODEL


def test_no_ssh_and_nothing_open_to_the_world(synthesized: tuple[Template, Path]) -> None:
    template, _ = synthesized
    rules = [
        r
        for g in resources(template, "AWS::EC2::SecurityGroup")
        for r in g["Properties"].get("SecurityGroupIngress", [])
    ]
    rules += [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupIngress")]
    assert not [r for r in rules if r.get("CidrIp") == "0.0.0.0/0" or r.get("FromPort") == 22]


def test_user_data_installs_offline_and_ships_both_files() -> None:
    script = user_data_script(
        bundle_s3_url="s3://bucket/abc.zip",
        region="eu-west-1",
        audit_log_group="/a",
        metrics_log_group="/m",
        environment={"AIGW_REDIS_HOST": "counters.local"},
    )
    assert "AWS_REGION=eu-west-1\nAIGW_REDIS_HOST=counters.local\n" in script
    assert script.index("/opt/aigw/etc/environment") < script.index("install.sh")  # before the service starts
    assert "dnf install -y python3.11 amazon-cloudwatch-agent" in script
    assert 'aws s3 cp s3://bucket/abc.zip "$work/bundle.zip"' in script
    assert 'install.sh" --system' in script and "pip install" not in script  # pip runs only in install.sh, offline
    files = agent_config("/a", "/m")["logs"]["logs_collected"]["files"]["collect_list"]  # type: ignore[index]
    assert [(f["file_path"], f["log_group_name"]) for f in files] == [
        ("/var/log/aigw/audit.jsonl", "/a"),
        ("/var/log/aigw/metrics.jsonl", "/m"),
    ]
    assert json.loads(script.split("<<'AGENT'\n", 1)[1].split("\nAGENT", 1)[0]) == agent_config("/a", "/m")


def test_one_az_is_refused() -> None:
    stack = BareStack()
    subnets = [ec2.SubnetConfiguration(name="Workload", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)]
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=[BareStack.AZS[0]], subnet_configuration=subnets)
    with pytest.raises(ValueError, match="at least 2 AZs"):
        ProxyFleet(
            stack,
            "Fleet",
            vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_group_name="Workload"),
            security_group=ec2.SecurityGroup(stack, "Proxies", vpc=vpc),
            bundle=GatewayBundle(stack, "Bundle", settings=gateway_settings(load_config("dev"))),
            alerts=sns.Topic(stack, "Alerts"),
            audit_log_group=logs.LogGroup(stack, "Audit"),
            metrics_log_group=logs.LogGroup(stack, "Metrics"),
            metrics_namespace="aigw",
        )
