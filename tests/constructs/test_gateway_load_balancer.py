"""GatewayLoadBalancer in a small app of its own, with every compliance pack on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template
from constructs.compliance import add_compliance_packs, unacknowledged_findings
from constructs.encrypted_log_group import EncryptedLogGroup
from constructs.gateway_load_balancer import GatewayLoadBalancer
from constructs.private_network import PrivateNetwork
from constructs.project_key import ProjectKey

from tests.conftest import BareStack

CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"


class LoadBalancerStack(Stack):
    def __init__(self, app: App, *, deletion_protection: bool = True) -> None:
        super().__init__(
            app, "Lb", env=Environment(account="123456789012", region="eu-west-1"), analytics_reporting=False
        )
        key = ProjectKey(self, "Key", alias="alias/test", description="test")
        flow_logs = EncryptedLogGroup(self, "FlowLogs", log_group_name="/t/flow", retention_days=90, key=key)
        network = PrivateNetwork(
            self, "Network", availability_zones=BareStack.AZS, cidr="10.0.0.0/16", flow_log_group=flow_logs.log_group
        )
        GatewayLoadBalancer(
            self, "Gateway", vpc=network.vpc, subnets=network.workload_subnets,
            certificate_arn=CERTIFICATE, client_cidrs=["10.0.0.0/8", "172.16.0.0/12"], target_port=8080,
            stream_seconds=630, deletion_protection=deletion_protection,
        )  # fmt: skip

    @property
    def availability_zones(self) -> list[str]:
        return list(BareStack.AZS)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    outdir = tmp_path_factory.mktemp("lb")
    app = App(outdir=str(outdir))
    stack = LoadBalancerStack(app)
    add_compliance_packs(app)
    app.synth()
    return Template.from_stack(stack), outdir


def one(template: Template, resource_type: str) -> dict[str, Any]:
    (resource,) = template.find_resources(resource_type).values()
    return dict(resource)


def test_zero_unacknowledged_findings(synthesized: tuple[Template, Path]) -> None:
    assert unacknowledged_findings(synthesized[1]) == []


def test_without_deletion_protection_the_choice_is_acknowledged(tmp_path: Path) -> None:
    """Outside prod the balancer may be deleted with its stack; the evidence says so, with the reason."""
    app = App(outdir=str(tmp_path))
    LoadBalancerStack(app, deletion_protection=False)
    add_compliance_packs(app)
    app.synth()
    assert unacknowledged_findings(tmp_path) == []
    report = json.loads((tmp_path / "validation-report.json").read_text())
    reasons = [
        s["reason"]
        for p in report["pluginReports"]
        for s in p.get("suppressedViolations", [])
        if "DeletionProtection" in s["ruleName"]
    ]
    assert reasons and all("non-production" in reason for reason in reasons)


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
    assert bucket["DeletionPolicy"] == "Retain"


def test_no_client_cidrs_is_refused() -> None:
    stack = BareStack()
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=list(BareStack.AZS))
    with pytest.raises(ValueError, match="at least one client CIDR"):
        GatewayLoadBalancer(
            stack, "Lb", vpc=vpc, subnets=ec2.SubnetSelection(), certificate_arn=CERTIFICATE, client_cidrs=[],
            target_port=8080, stream_seconds=630, deletion_protection=False,
        )  # fmt: skip
