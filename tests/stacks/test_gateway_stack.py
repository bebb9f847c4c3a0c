"""GatewayStack as the whole app synthesizes it, in every environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk.assertions import Template
from constructs.compliance import unacknowledged_findings

from config.settings import instance_vcpus
from tests.conftest import Synthesized, synthesize_dev_with


def resources(synthesized: Synthesized, resource_type: str) -> list[dict[str, Any]]:
    return [dict(r) for r in synthesized.template("Gateway").find_resources(resource_type).values()]


def test_fleet_spans_every_az_with_the_configured_sizes(each_environment: Synthesized) -> None:
    config = each_environment.config
    (group,) = resources(each_environment, "AWS::AutoScaling::AutoScalingGroup")
    subnet_imports = group["Properties"]["VPCZoneIdentifier"]
    assert len(subnet_imports) == len(config.availability_zones)
    network = each_environment.template_json("Network")["Resources"]
    workload_azs = {
        r["Properties"]["AvailabilityZone"]
        for k, r in network.items()
        if r["Type"] == "AWS::EC2::Subnet" and "Workload" in k
    }
    assert workload_azs == set(config.availability_zones)
    assert (group["Properties"]["MinSize"], group["Properties"]["MaxSize"]) == (
        str(config.fleet.min_instances),
        str(config.fleet.max_instances),
    )
    (launch,) = resources(each_environment, "AWS::EC2::LaunchTemplate")
    assert launch["Properties"]["LaunchTemplateData"]["InstanceType"] == config.fleet.instance_type


def test_both_scaling_targets_come_from_config(dev: Synthesized) -> None:
    policies = resources(dev, "AWS::AutoScaling::ScalingPolicy")
    targets = sorted(p["Properties"]["TargetTrackingConfiguration"]["TargetValue"] for p in policies)
    assert targets == sorted([dev.config.fleet.cpu_target_percent, dev.config.fleet.requests_per_instance_per_minute])


def test_every_vcpu_runs_a_worker_so_the_cpu_target_can_be_reached(each_environment: Synthesized) -> None:
    """With one process per instance, three of four vCPUs sat idle and average CPU could never reach 60 %."""
    (launch,) = resources(each_environment, "AWS::EC2::LaunchTemplate")
    vcpus = instance_vcpus(launch["Properties"]["LaunchTemplateData"]["InstanceType"])
    assert vcpus is not None and vcpus > 1
    user_data = json.dumps(launch["Properties"]["LaunchTemplateData"]["UserData"])
    for name in ("audit", "metrics", "telemetry"):  # the agent ships each worker's own files
        assert all(f"/var/log/aigw/{name}-{index}.jsonl" in user_data for index in range(vcpus))
        assert f"/var/log/aigw/{name}-{vcpus}.jsonl" not in user_data and f"/var/log/aigw/{name}.jsonl" not in user_data
    (cpu,) = [
        p["Properties"]["TargetTrackingConfiguration"]
        for p in resources(each_environment, "AWS::AutoScaling::ScalingPolicy")
        if "PredefinedMetricSpecification" in p["Properties"]["TargetTrackingConfiguration"]
    ]
    assert cpu["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ASGAverageCPUUtilization"
    assert cpu["TargetValue"] < 100


def test_load_balancer_uses_the_configured_certificate_and_protection(each_environment: Synthesized) -> None:
    config = each_environment.config
    (listener,) = resources(each_environment, "AWS::ElasticLoadBalancingV2::Listener")
    assert listener["Properties"]["Certificates"] == [{"CertificateArn": config.load_balancer.certificate_arn}]
    (balancer,) = resources(each_environment, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    attributes = {a["Key"]: a["Value"] for a in balancer["Properties"]["LoadBalancerAttributes"]}
    assert attributes["deletion_protection.enabled"] == str(config.load_balancer.deletion_protection).lower()
    assert balancer["Properties"]["Scheme"] == "internal"


def test_nothing_in_the_app_admits_the_world_or_ssh(each_environment: Synthesized) -> None:
    for stack in ("Network", "Gateway"):
        template = each_environment.template_json(stack)["Resources"].values()
        inline = [
            rule
            for r in template
            if r["Type"] == "AWS::EC2::SecurityGroup"
            for rule in r["Properties"].get("SecurityGroupIngress", [])
        ]
        separate = [r["Properties"] for r in template if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
        for rule in inline + separate:
            assert rule.get("CidrIp") != "0.0.0.0/0" and rule.get("FromPort") != 22, rule


def test_instances_learn_the_counters_endpoint_at_deploy(dev: Synthesized) -> None:
    (launch,) = resources(dev, "AWS::EC2::LaunchTemplate")
    user_data = json.dumps(launch["Properties"]["LaunchTemplateData"]["UserData"])
    (counters,) = dev.template("Gateway").find_resources("AWS::ElastiCache::ReplicationGroup")
    assert "AIGW_REDIS_HOST=" in user_data and f'"{counters}", "PrimaryEndPoint.Address"' in user_data
    assert "AIGW_REDIS_AUTH_SECRET_ID=" in user_data


def test_every_alarm_notifies_the_alerts_topic(each_environment: Synthesized) -> None:
    alarms = resources(each_environment, "AWS::CloudWatch::Alarm")
    # One per AZ, five for the fleet and its load balancer, the root volume, and the IdP-keys mirror's two.
    assert len(alarms) == len(each_environment.config.availability_zones) + 5 + 1 + 2
    assert each_environment.template("Gateway").find_resources("AWS::SNS::Topic") == {}  # the audit stack's
    for alarm in alarms:
        (action,) = alarm["Properties"]["AlarmActions"]
        assert "AlertsTopic" in action["Fn::ImportValue"]
    descriptions = " ".join(a["Properties"]["AlarmDescription"] for a in alarms)
    for symptom in ("unhealthy", "fewer than", "5xx", "p99 response time above 8 s", "circuit breaker", "Redis"):
        assert symptom in descriptions


def test_with_a_vendor_endpoint_service_the_role_reads_its_key_secret(tmp_path: Path) -> None:
    vendor = {
        "service": "com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0",
        "url": "https://api.vendor.example",
        "api_key_secret_id": "aigw/dev/vendor-key",
    }
    app = synthesize_dev_with(tmp_path, lambda raw: raw.update(vendor=vendor))
    assert unacknowledged_findings(tmp_path / "cdk.out") == []
    gateway = app.node.find_child("Gateway")
    assert isinstance(gateway, Stack)
    (policy,) = [
        p
        for p in Template.from_stack(gateway).find_resources("AWS::IAM::ManagedPolicy").values()
        if p["Properties"].get("Description") == "aigw proxy instances"
    ]
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert "InvokeConfiguredModels" not in statements  # no Bedrock here
    secrets = json.dumps(statements["ReadOwnSecrets"]["Resource"])
    assert ":secret:aigw/dev/vendor-key-??????" in secrets


def test_the_error_rate_alarm_guards_its_division(dev: Synthesized) -> None:
    (alarm,) = [a for a in resources(dev, "AWS::CloudWatch::Alarm") if "5xx" in a["Properties"]["AlarmDescription"]]
    (expression,) = [m["Expression"] for m in alarm["Properties"]["Metrics"] if "Expression" in m]
    # CloudWatch may refuse MAX([requests, 1]); IF(requests > 0, ..., 0) is its documented guard.
    assert expression == "IF(requests > 0, 100 * (elb5xx + target5xx) / requests, 0)"
    assert "MAX(" not in json.dumps(alarm)
