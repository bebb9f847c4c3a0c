"""`make diagram`: the architecture drawn from the cloud assembly alone, its flows read from security groups,
IAM policies and the resources' own wiring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from scripts import diagram
from tests.conftest import Synthesized

ROOT = Path(__file__).resolve().parents[2]


def flows_between(architecture: diagram.Architecture, source: str, target: str) -> set[str]:
    """The labels of the flows from nodes whose label contains `source` to nodes whose label contains `target`."""
    return {
        what
        for (start, end), labels in architecture.flows.items()
        if source in architecture.nodes[start] and target in architecture.nodes[end]
        for what in labels
    }


def test_the_diagram_names_every_stack_and_every_az(each_environment: Synthesized, tmp_path: Path) -> None:
    written = diagram.render(each_environment.directory, tmp_path)
    source = written["dot"].read_text()
    for artifact_id in ("Audit", "Network", "Gateway", "Cost", "Operations"):
        assert f"{artifact_id} · " in source  # every node is labelled with its stack
    for stack in each_environment.stacks:
        assert stack.stack_name in source
    for az in each_environment.config.availability_zones:
        assert az in source
    assert written["svg"].read_text().lstrip().startswith("<?xml")
    assert written["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_request_path_is_what_the_security_groups_allow(each_environment: Synthesized) -> None:
    architecture = diagram.build(each_environment.directory)
    client_ranges = ", ".join(sorted(str(cidr) for cidr in each_environment.config.load_balancer.client_cidrs))
    assert flows_between(architecture, f"developers' networks\n{client_ranges}", "load balancer") == {"tcp 443"}
    assert flows_between(architecture, "load balancer", "Auto Scaling group") == {"tcp 8080"}
    assert flows_between(architecture, "Auto Scaling group", "Redis") == {"tcp 6380"}
    assert flows_between(architecture, "Auto Scaling group", "bedrock-runtime") == {"tcp 443"}
    assert flows_between(architecture, "Synthetics canary", "load balancer") == {"tcp 443"}
    # Only the fleet reaches Redis and the vendor's endpoint; nothing reaches the fleet but the load balancer.
    into = {
        architecture.nodes[start].split("\n")[1]
        for (start, end) in architecture.flows
        if "Redis" in architecture.nodes[end] or "bedrock-runtime" in architecture.nodes[end]
    }
    assert into == {"Fleet/Group/ASG"}
    assert {
        architecture.nodes[start].split("\n")[0] for (start, end) in architecture.flows if "Fleet/Group/ASG" in end
    } <= {"Gateway · load balancer"}
    assert "no internet gateway, NAT gateway or egress-only gateway in any template" in architecture.notes


def test_the_audit_trail_and_the_alerts_are_drawn(prod: Synthesized) -> None:
    architecture = diagram.build(prod.directory)
    assert flows_between(architecture, "Auto Scaling group", "AuditLogs/LogGroup") == {"logs"}
    assert flows_between(architecture, "AuditLogs/LogGroup", "Firehose") == {"subscription"}
    assert "delivery" in flows_between(architecture, "Firehose", "AuditBucket/Bucket")
    notified = flows_between(architecture, "CloudWatch alarms", "SNS topic")
    alarms = sum(
        1
        for _, _, resource in prod.resources("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
        if resource["Properties"].get("AlarmActions")
    )
    assert sum(int(label.split()[0]) for label in notified) == alarms
    assert flows_between(architecture, "budgets", "SNS topic")


def security_groups(tmp_path: Path, groups: dict[str, Any], **others: dict[str, Any]) -> diagram.Assembly:
    """An assembly of one stack holding only `groups` (logical id -> properties) and `others` (logical id ->
    resource)."""
    template = {
        "Resources": {name: {"Type": "AWS::EC2::SecurityGroup", "Properties": p} for name, p in groups.items()} | others
    }
    (tmp_path / "Net.template.json").write_text(json.dumps(template))
    manifest = {
        "artifacts": {
            "Net": {
                "type": "aws:cloudformation:stack",
                "environment": "aws://1/eu-west-1",
                "properties": {"templateFile": "Net.template.json"},
            }
        }
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return diagram.Assembly(tmp_path)


def test_a_group_without_egress_rules_keeps_ec2s_default_and_cdks_placeholder_allows_nothing(tmp_path: Path) -> None:
    placeholder = {"CidrIp": "255.255.255.255/32", "FromPort": 252, "IpProtocol": "icmp", "ToPort": 86}
    rules = diagram.security_group_rules(
        security_groups(tmp_path, {"Open": {}, "Closed": {"SecurityGroupEgress": [placeholder]}})
    )
    assert [(rule.group, rule.direction, rule.ports, str(rule.peer_cidr)) for rule in rules] == [
        ("Net/Open", "out", (0, 65535), "0.0.0.0/0")
    ]


def test_a_range_given_as_the_vpcs_is_resolved_and_one_known_only_at_deploy_time_is_left_out(tmp_path: Path) -> None:
    def https_from(cidr: Any) -> dict[str, Any]:
        return {"SecurityGroupIngress": [{"CidrIp": cidr, "FromPort": 443, "IpProtocol": "tcp", "ToPort": 443}]}

    unresolved: list[str] = []
    rules = diagram.security_group_rules(
        security_groups(
            tmp_path,
            {
                "FromVpc": https_from({"Fn::GetAtt": ["Vpc", "CidrBlock"]}),
                "FromParameter": https_from({"Ref": "AllowedRange"}),
                "Ports": {
                    "SecurityGroupIngress": [
                        {"CidrIp": "10.0.0.0/8", "FromPort": {"Ref": "Port"}, "IpProtocol": "tcp", "ToPort": 8443}
                    ]
                },
            },
            Vpc={"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.20.0.0/16"}},
        ),
        unresolved,
    )
    inbound = [(rule.group, rule.ports, str(rule.peer_cidr)) for rule in rules if rule.direction == "in"]
    assert inbound == [("Net/FromVpc", (443, 443), "10.20.0.0/16")]
    assert sorted(unresolved) == ["Net/FromParameter in", "Net/Ports in"]


def test_an_arn_written_out_is_matched_by_name(dev: Synthesized, tmp_path: Path) -> None:
    assembly = tmp_path / "cdk.out"
    shutil.copytree(dev.directory, assembly, ignore=shutil.ignore_patterns("asset.*"))
    found = diagram.Assembly(assembly)
    stream = found.of_type("AWS::KinesisFirehose::DeliveryStream")[0]
    name = stream.properties["DeliveryStreamName"]
    assert found.ref(f"arn:aws:firehose:eu-west-1:123456789012:deliverystream/{name}", "Audit") == stream.id
    assert found.ref("arn:aws:firehose:eu-west-1:123456789012:deliverystream/nothing-of-ours", "Audit") is None


def test_the_example_under_docs_is_what_the_production_synth_draws(prod: Synthesized) -> None:
    """docs/architecture-prod.{dot,svg,png} is checked in for readers of the repository; it must not drift."""
    drawn = diagram.dot(diagram.build(prod.directory))
    example = ROOT / "docs" / "architecture-prod.dot"
    assert example.read_text() == drawn, (
        "docs/architecture-prod.* is out of date: make synth ENV=prod, then "
        "python scripts/diagram.py cdk.out --out docs --name architecture-prod"
    )
    assert (ROOT / "docs" / "architecture-prod.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
