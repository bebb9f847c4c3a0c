"""GatewayLoadBalancer in a small app of its own, with every compliance pack on."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template
from constructs.compliance import unacknowledged_findings
from constructs.gateway_load_balancer import GatewayLoadBalancer

from tests.conftest import BareStack
from tests.constructs.conftest import NetworkedStack, synth_with_packs

CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"


def load_balancer(deletion_protection: bool) -> Callable[[NetworkedStack], GatewayLoadBalancer]:
    def build(stack: NetworkedStack) -> GatewayLoadBalancer:
        return GatewayLoadBalancer(
            stack, "Gateway", vpc=stack.network.vpc, subnets=stack.network.workload_subnets,
            certificate_arn=CERTIFICATE, client_cidrs=["10.0.0.0/8", "172.16.0.0/12"], target_port=8080,
            stream_seconds=630, deletion_protection=deletion_protection,
        )  # fmt: skip

    return build


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    return synth_with_packs(tmp_path_factory.mktemp("lb"), load_balancer(deletion_protection=True))


def one(template: Template, resource_type: str) -> dict[str, Any]:
    (resource,) = template.find_resources(resource_type).values()
    return dict(resource)


def test_zero_unacknowledged_findings(synthesized: tuple[Template, Path]) -> None:
    assert unacknowledged_findings(synthesized[1]) == []


def test_without_deletion_protection_the_choice_is_acknowledged(tmp_path: Path) -> None:
    """Until an environment's first deploy has succeeded the balancer must be deletable; the evidence says so."""
    synth_with_packs(tmp_path, load_balancer(deletion_protection=False))
    assert unacknowledged_findings(tmp_path) == []
    report = json.loads((tmp_path / "validation-report.json").read_text())
    reasons = [
        s["reason"]
        for p in report["pluginReports"]
        for s in p.get("suppressedViolations", [])
        if "DeletionProtection" in s["ruleName"]
    ]
    assert reasons and all("first deploy" in reason and "rolled back" in reason for reason in reasons)


def test_internal_with_strict_headers_and_stream_long_idle_timeout(synthesized: tuple[Template, Path]) -> None:
    balancer = one(synthesized[0], "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    assert balancer["Scheme"] == "internal" and len(balancer["Subnets"]) == 3
    attributes = {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["routing.http.desync_mitigation_mode"] == "strictest"
    assert attributes["deletion_protection.enabled"] == "true"
    assert attributes["idle_timeout.timeout_seconds"] == "630"
    assert attributes["access_logs.s3.enabled"] == "true"


def test_https_only_with_a_tls12_plus_policy(synthesized: tuple[Template, Path]) -> None:
    template = synthesized[0]
    (listener,) = [dict(r) for r in template.find_resources("AWS::ElasticLoadBalancingV2::Listener").values()]
    properties = listener["Properties"]
    assert (properties["Port"], properties["Protocol"]) == (443, "HTTPS")
    assert properties["SslPolicy"].startswith("ELBSecurityPolicy-TLS13-1-2")
    assert properties["Certificates"] == [{"CertificateArn": CERTIFICATE}]


def test_ingress_only_from_client_cidrs_on_443(synthesized: tuple[Template, Path]) -> None:
    groups = [dict(g) for g in synthesized[0].find_resources("AWS::EC2::SecurityGroup").values()]
    (balancer_group,) = [g for g in groups if "load balancer" in g["Properties"]["GroupDescription"]]
    rules = balancer_group["Properties"]["SecurityGroupIngress"]
    assert sorted(r["CidrIp"] for r in rules) == ["10.0.0.0/8", "172.16.0.0/12"]
    assert {(r["FromPort"], r["ToPort"]) for r in rules} == {(443, 443)}


def test_target_group_checks_healthz_and_drains_for_a_whole_stream(synthesized: tuple[Template, Path]) -> None:
    targets = one(synthesized[0], "AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]
    assert targets["HealthCheckPath"] == "/healthz" and targets["Port"] == 8080
    attributes = {a["Key"]: a["Value"] for a in targets["TargetGroupAttributes"]}
    assert attributes["deregistration_delay.timeout_seconds"] == "630"


def test_access_log_bucket_is_sse_s3_and_private(synthesized: tuple[Template, Path]) -> None:
    bucket = one(synthesized[0], "AWS::S3::Bucket")
    encryption = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert bucket["DeletionPolicy"] == "RetainExceptOnCreate"


def test_no_client_cidrs_is_refused() -> None:
    stack = BareStack()
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=list(BareStack.AZS))
    with pytest.raises(ValueError, match="at least one client CIDR"):
        GatewayLoadBalancer(
            stack, "Lb", vpc=vpc, subnets=ec2.SubnetSelection(), certificate_arn=CERTIFICATE, client_cidrs=[],
            target_port=8080, stream_seconds=630, deletion_protection=False,
        )  # fmt: skip
