"""GatewayStack as the whole app synthesizes it, in every environment."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Synthesized


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
    assert len(alarms) == len(each_environment.config.availability_zones) + 5
    (topic,) = each_environment.template("Gateway").find_resources("AWS::SNS::Topic")
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]
    descriptions = " ".join(a["Properties"]["AlarmDescription"] for a in alarms)
    for symptom in ("unhealthy", "fewer than", "5xx", "p99 response time above 8 s", "circuit breaker", "Redis"):
        assert symptom in descriptions
