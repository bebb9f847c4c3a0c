"""SharedCounters in a small app of its own, with every compliance pack on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template
from constructs.compliance import unacknowledged_findings
from constructs.shared_counters import PORT, SharedCounters

from tests.constructs.conftest import NetworkedStack, synth_with_packs


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path]:
    def build(stack: NetworkedStack) -> None:
        proxies = ec2.SecurityGroup(stack, "Proxies", vpc=stack.network.vpc, allow_all_outbound=False)
        vpc, subnets = stack.network.vpc, stack.network.workload_subnets
        SharedCounters(stack, "Counters", vpc=vpc, subnets=subnets, clients=proxies, key=stack.key.key)

    return synth_with_packs(tmp_path_factory.mktemp("counters"), build)


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
