"""SharedCounters in a small app of its own, with every compliance pack on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template
from constructs.compliance import add_compliance_packs, unacknowledged_findings
from constructs.encrypted_log_group import EncryptedLogGroup
from constructs.private_network import PrivateNetwork
from constructs.project_key import ProjectKey
from constructs.shared_counters import PORT, SharedCounters

from tests.conftest import BareStack


class CountersStack(Stack):
    def __init__(self, app: App) -> None:
        super().__init__(
            app, "Counters", env=Environment(account="123456789012", region="eu-west-1"), analytics_reporting=False
        )
        key = ProjectKey(self, "Key", alias="alias/test", description="test")
        flow_logs = EncryptedLogGroup(self, "FlowLogs", log_group_name="/t/flow", retention_days=90, key=key)
        network = PrivateNetwork(
            self, "Network", availability_zones=BareStack.AZS, cidr="10.0.0.0/16", flow_log_group=flow_logs.log_group
        )
        self.proxies = ec2.SecurityGroup(self, "Proxies", vpc=network.vpc, allow_all_outbound=False)
        SharedCounters(
            self, "Counters", vpc=network.vpc, subnets=network.workload_subnets, clients=self.proxies, key=key.key
        )

    @property
    def availability_zones(self) -> list[str]:
        return list(BareStack.AZS)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    outdir = tmp_path_factory.mktemp("counters")
    app = App(outdir=str(outdir))
    stack = CountersStack(app)
    add_compliance_packs(app)
    app.synth()
    return Template.from_stack(stack), outdir


def one(template: Template, resource_type: str) -> dict[str, Any]:
    (resource,) = template.find_resources(resource_type).values()
    return dict(resource)


def test_zero_unacknowledged_findings(synthesized: tuple[Template, Path]) -> None:
    assert unacknowledged_findings(synthesized[1]) == []


def test_replica_in_another_az_with_failover_and_encryption(synthesized: tuple[Template, Path]) -> None:
    group = one(synthesized[0], "AWS::ElastiCache::ReplicationGroup")["Properties"]
    assert group["NumCacheClusters"] == 2 and len(set(group["PreferredCacheClusterAZs"])) == 2
    assert group["AutomaticFailoverEnabled"] is True and group["MultiAZEnabled"] is True
    assert group["AtRestEncryptionEnabled"] is True and group["KmsKeyId"]["Fn::GetAtt"][1] == "Arn"
    assert group["TransitEncryptionEnabled"] is True and group["TransitEncryptionMode"] == "required"
    assert group["Port"] == PORT != 6379
    assert "resolve:secretsmanager" in str(group["AuthToken"])  # never a literal token in the template


def test_reachable_only_from_the_proxy_group(synthesized: tuple[Template, Path]) -> None:
    template = synthesized[0]
    rules = [dict(r)["Properties"] for r in template.find_resources("AWS::EC2::SecurityGroupIngress").values()]
    to_counters = [r for r in rules if r["FromPort"] == PORT]
    assert len(to_counters) == 1 and to_counters[0]["SourceSecurityGroupId"]["Fn::GetAtt"][0].startswith("Proxies")


def test_token_is_generated_and_encrypted_with_the_project_key(synthesized: tuple[Template, Path]) -> None:
    secret = one(synthesized[0], "AWS::SecretsManager::Secret")["Properties"]
    assert secret["GenerateSecretString"]["PasswordLength"] == 64 and secret["KmsKeyId"]["Fn::GetAtt"][1] == "Arn"
