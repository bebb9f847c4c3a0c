"""ProxyFleet in a small app of its own, with every compliance pack on."""

from __future__ import annotations

import json
import os
import subprocess
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
from constructs.model_access import invoke_statements
from constructs.proxy_fleet import (
    AL2023_PARAMETER,
    GROUP_PLACEHOLDER,
    ProxyFleet,
    ResourceSignal,
    agent_config,
    root_volume_used_percent,
    user_data_script,
)

from config import load_config
from config.render import gateway_settings
from tests.conftest import BareStack
from tests.constructs.conftest import NetworkedStack, synth_with_packs

ROUTE = load_config("dev").models[0]
SHIPPED = {
    "/var/log/aigw/audit.jsonl": "/a", "/var/log/aigw/metrics.jsonl": "/m", "/var/log/aigw/telemetry.jsonl": "/t",
}  # fmt: skip
SIGNAL = ResourceSignal(stack="aigw-dev-gateway", resource="FleetGroupASG1234", region="eu-west-1", role="proxy-role")


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    def build(stack: NetworkedStack) -> ProxyFleet:
        audit = EncryptedLogGroup(stack, "Audit", log_group_name="/t/audit", retention_days=365, key=stack.key)
        metrics = EncryptedLogGroup(stack, "Metrics", log_group_name="/t/metrics", retention_days=365, key=stack.key)
        return ProxyFleet(
            stack, "Fleet", vpc=stack.network.vpc, subnets=stack.network.workload_subnets,
            security_group=ec2.SecurityGroup(stack, "Proxies", vpc=stack.network.vpc, allow_all_outbound=False),
            bundle=GatewayBundle(stack, "Bundle", settings=gateway_settings(load_config("dev"))),
            alerts=sns.Topic(stack, "Alerts", master_key=stack.key.key, enforce_ssl=True),
            log_groups={"/var/log/aigw/audit.jsonl": audit.log_group, "/var/log/aigw/metrics.jsonl": metrics.log_group},
            metrics_namespace="aigw",
            model_statements=[invoke_statements(ROUTE, [])],
            secret_arns=["arn:aws:secretsmanager:eu-west-1:123456789012:secret:aigw/redis-AbCdEf"],
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


def test_launches_and_terminations_reach_the_alerts_topic_through_eventbridge(
    synthesized: tuple[Template, Path],
) -> None:
    template, _ = synthesized
    group_id, group, _ = group_and_launch_template(template)
    # Not the group's own notifications: they publish as the service-linked role, which the key cannot name.
    assert "NotificationConfigurations" not in group["Properties"]
    (rule,) = resources(template, "AWS::Events::Rule")
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.autoscaling"]
    assert {"EC2 Instance Launch Unsuccessful", "EC2 Instance Terminate Unsuccessful"} <= set(pattern["detail-type"])
    assert pattern["detail"] == {"AutoScalingGroupName": [{"Ref": group_id}]}
    ((topic_id, _),) = template.find_resources("AWS::SNS::Topic").items()
    assert [target["Arn"] for target in rule["Properties"]["Targets"]] == [{"Ref": topic_id}]


def test_instances_boot_only_once_their_role_holds_its_policies(synthesized: tuple[Template, Path]) -> None:
    template, _ = synthesized
    _, group, launch = group_and_launch_template(template)
    for description in ("aigw proxy instances", "aigw proxy instances: invoke a model"):
        ((policy_id, _),) = template.find_resources(
            "AWS::IAM::ManagedPolicy", {"Properties": {"Description": description}}
        ).items()
        assert policy_id in group["DependsOn"]
    # The launch template reaches the role through its instance profile: no DependsOn repeating it (cfn-lint W3005).
    assert "DependsOn" not in launch


def group_and_launch_template(template: Template) -> tuple[str, dict[str, Any], dict[str, Any]]:
    ((group_id, group),) = template.find_resources("AWS::AutoScaling::AutoScalingGroup").items()
    (launch,) = resources(template, "AWS::EC2::LaunchTemplate")
    return group_id, dict(group), launch


def user_data_text(launch: dict[str, Any]) -> str:
    """The user data with each reference written as <Ref:LogicalId>."""
    parts = launch["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    return "".join(part if isinstance(part, str) else f"<Ref:{part['Ref']}>" for part in parts)


def test_create_and_update_complete_only_when_new_instances_serve(synthesized: tuple[Template, Path]) -> None:
    group_id, group, launch = group_and_launch_template(synthesized[0])
    # A create waits for the minimum of instances to signal; a FAILURE or the timeout rolls it back.
    assert group["CreationPolicy"]["ResourceSignal"] == {"Count": 2, "Timeout": "PT15M"}  # >= the 300 s grace
    rolling = group["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert rolling["WaitOnResourceSignals"] is True and rolling["PauseTime"] == "PT15M"
    # The instances signal that very group, in this stack, with the instance role's credentials.
    script = user_data_text(launch)
    roles = synthesized[0].find_resources("AWS::IAM::Role")
    (role_id,) = [k for k, r in roles.items() if r["Properties"].get("Description", "").startswith("aigw proxy")]
    options = f"--stack Test --resource {group_id} --region eu-west-1 --role <Ref:{role_id}>"
    assert f"cfn-signal --success false {options} || true" in script  # the EXIT trap
    assert f'exec bash "$work/bundle/signal-when-healthy.sh" {options} --wait 300\n' in script
    assert script.index("trap '") < script.index("dnf install")


def test_signal_permission_is_this_stack_only_and_customer_managed(synthesized: tuple[Template, Path]) -> None:
    template, _ = synthesized
    template.resource_count_is("AWS::IAM::Policy", 0)  # CDK's signals grant would be an inline policy
    statements = [
        s
        for p in resources(template, "AWS::IAM::ManagedPolicy")
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "cloudformation" in json.dumps(s["Action"])
    ]
    assert statements == [
        {
            "Sid": "SignalOwnStack",
            "Action": "cloudformation:SignalResource",
            "Effect": "Allow",
            "Resource": {"Ref": "AWS::StackId"},
        }
    ]


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
    # By default the image is Amazon Linux 2023's latest, resolved by CloudFormation from its public parameter.
    image = data["ImageId"]["Ref"]
    parameter = template.to_json()["Parameters"][image]
    assert parameter == {"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", "Default": AL2023_PARAMETER}


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
    (model_policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources(template, "AWS::IAM::ManagedPolicy")
        if p["Properties"].get("Description") == "aigw proxy instances: invoke a model"
    ]
    assert [s["Resource"] for s in model_policy] == [ROUTE.arn, list(ROUTE.model_arns)]


def test_no_ssh_and_nothing_open_to_the_world(synthesized: tuple[Template, Path]) -> None:
    template, _ = synthesized
    rules = [
        r
        for g in resources(template, "AWS::EC2::SecurityGroup")
        for r in g["Properties"].get("SecurityGroupIngress", [])
    ]
    rules += [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupIngress")]
    assert not [r for r in rules if r.get("CidrIp") == "0.0.0.0/0" or r.get("FromPort") == 22]


def script(**changes: Any) -> str:
    return user_data_script(
        **{
            "bundle_s3_url": "s3://bucket/abc.zip",
            "region": "eu-west-1",
            "shipped": SHIPPED,
            "workers": 2,
            "environment": {"AIGW_REDIS_HOST": "counters.local"},
            "signal": SIGNAL,
            **changes,
        }
    )


def test_user_data_installs_offline_and_ships_both_files() -> None:
    script_ = script()
    assert "AWS_REGION=eu-west-1\nAIGW_REDIS_HOST=counters.local\n" in script_
    assert script_.index("/opt/aigw/etc/environment") < script_.index("install.sh")  # before the service starts
    # cfn-signal first, so that any later failure can be reported; pip for python3.11's venv (AL2023 splits it).
    assert script_.index("dnf install -y aws-cfn-bootstrap\n") < script_.index(
        "dnf install -y python3.11 python3.11-pip amazon-cloudwatch-agent logrotate\n"
    )
    assert 'aws s3 cp s3://bucket/abc.zip "$work/bundle.zip"' in script_
    assert 'install.sh" --system' in script_ and "pip install" not in script_  # pip runs only in install.sh, offline
    files = agent_config(SHIPPED, 2)["logs"]["logs_collected"]["files"]["collect_list"]  # type: ignore[index]
    assert [(f["file_path"], f["log_group_name"], f["log_stream_name"]) for f in files] == [
        ("/var/log/aigw/audit-0.jsonl", "/a", "{instance_id}/worker-0"),
        ("/var/log/aigw/audit-1.jsonl", "/a", "{instance_id}/worker-1"),
        ("/var/log/aigw/metrics-0.jsonl", "/m", "{instance_id}/worker-0"),
        ("/var/log/aigw/metrics-1.jsonl", "/m", "{instance_id}/worker-1"),
        ("/var/log/aigw/telemetry-0.jsonl", "/t", "{instance_id}/worker-0"),
        ("/var/log/aigw/telemetry-1.jsonl", "/t", "{instance_id}/worker-1"),
    ]  # every worker's own files, each a stream of its own
    assert json.loads(script_.split("<<'AGENT'\n", 1)[1].split("\nAGENT", 1)[0]) == agent_config(SHIPPED, 2)


def test_agent_publishes_the_root_volume_metric_the_alarm_reads() -> None:
    config: Any = agent_config(SHIPPED, 2)
    metrics = config["metrics"]
    disk = metrics["metrics_collected"]["disk"]
    alarm_metric = root_volume_used_percent("my-group")
    assert alarm_metric.dimensions is not None
    # The agent names a disk metric disk_<measurement>, in its namespace, with a `path` dimension per resource.
    assert (metrics["namespace"], f"disk_{disk['measurement'][0]}") == (
        alarm_metric.namespace,
        alarm_metric.metric_name,
    )
    assert disk["resources"] == [alarm_metric.dimensions["path"]]
    # The rolled-up series carries exactly the alarm's dimensions, the group's name among them.
    assert sorted(alarm_metric.dimensions) in [sorted(d) for d in metrics["aggregation_dimensions"]]
    assert disk["append_dimensions"] == {"AutoScalingGroupName": GROUP_PLACEHOLDER} and disk["drop_device"] is True
    # The instance writes its group's name (from its tags in IMDS) over the placeholder before the agent starts.
    script_ = script()
    assert '"$imds/meta-data/tags/instance/aws:autoscaling:groupName")\n' in script_
    sed = f'sed -i "s|{GROUP_PLACEHOLDER}|$group|" /opt/aws/amazon-cloudwatch-agent/etc/aigw.json\n'
    assert script_.index("\nAGENT\n") < script_.index(sed) < script_.index("amazon-cloudwatch-agent-ctl")


def test_a_failing_boot_step_signals_failure_at_once(tmp_path: Path) -> None:
    # The user data as bash runs it, with a dnf that fails and a cfn-signal that records what it was told.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("dnf", "exit 1"), ("cfn-signal", f'echo "$*" >> {tmp_path / "signals"}')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    completed = subprocess.run(["bash", "-c", script()], env=env, capture_output=True, text=True, check=False)
    assert completed.returncode == 1
    assert (tmp_path / "signals").read_text() == f"--success false {SIGNAL.options}\n"


def bare_fleet(azs: int, **changes: Any) -> BareStack:
    """A fleet alone in a bare stack over the first `azs` AZs (no packs, no synth)."""
    stack = BareStack()
    subnets = [ec2.SubnetConfiguration(name="Workload", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)]
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=list(BareStack.AZS[:azs]), subnet_configuration=subnets)
    ProxyFleet(
        stack,
        "Fleet",
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_group_name="Workload"),
        security_group=ec2.SecurityGroup(stack, "Proxies", vpc=vpc),
        bundle=GatewayBundle(stack, "Bundle", settings=gateway_settings(load_config("dev"))),
        alerts=sns.Topic(stack, "Alerts"),
        log_groups={"/var/log/aigw/audit.jsonl": logs.LogGroup(stack, "Audit")},
        metrics_namespace="aigw",
        **changes,
    )
    return stack


def test_pinned_ami_is_written_into_the_template() -> None:
    stack = bare_fleet(2, image="ami-0123456789abcdef0")
    template = Template.from_stack(stack)
    (launch,) = resources(template, "AWS::EC2::LaunchTemplate")
    assert launch["Properties"]["LaunchTemplateData"]["ImageId"] == "ami-0123456789abcdef0"
    parameters = template.to_json().get("Parameters", {})
    assert not [p for p in parameters.values() if "AWS::EC2::Image::Id" in p["Type"]]  # nothing resolved at deploy


def test_one_az_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 AZs"):
        bare_fleet(1)


def test_count_tokens_is_allowed_on_the_model_in_this_region_only_where_bedrock_counts() -> None:
    counted = [s.to_json() for s in invoke_statements(ROUTE.model_copy(update={"count_tokens": True}), [])]
    (counting,) = [s for s in counted if s["Action"] == "bedrock:CountTokens"]
    assert counting["Resource"] == f"arn:aws:bedrock:eu-west-1::foundation-model/{ROUTE.foundation_model}"
    assert "Condition" not in counting  # CountTokens is never made through a profile
    shipped = [s.to_json() for s in invoke_statements(ROUTE, [])]  # the shipped table lists no Region for it
    assert all("bedrock:CountTokens" not in json.dumps(s) for s in shipped)
