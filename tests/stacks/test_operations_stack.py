"""OperationsStack as the whole app synthesizes it: the canary wired to the load balancer, its token and the project
key; the SLO's alerts at the configured target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk.assertions import Template

from config.slo import BURN_RATE_ALERTS
from gateway.settings import CANARY_TOKEN_VARIABLE
from tests.conftest import Synthesized, synthesize_dev_with


def resources(synthesized: Synthesized, resource_type: str, stack: str = "Operations") -> dict[str, dict[str, Any]]:
    return {k: dict(r) for k, r in synthesized.template(stack).find_resources(resource_type).items()}


def test_it_depends_on_the_gateway_and_nothing_depends_on_it(each_environment: Synthesized) -> None:
    operations = each_environment.stack("Operations")
    assert each_environment.stack("Gateway") in operations.dependencies
    assert all(operations not in stack.dependencies for stack in each_environment.stacks)


def test_the_canary_calls_the_load_balancer_as_the_gateways_domain(each_environment: Synthesized) -> None:
    config = each_environment.config
    ((_, canary),) = resources(each_environment, "AWS::Synthetics::Canary").items()
    properties = canary["Properties"]
    assert properties["Name"] == config.canary_name
    assert properties["RuntimeVersion"] == config.operations.canary.runtime
    variables = properties["RunConfig"]["EnvironmentVariables"]
    assert variables["AIGW_DOMAIN"] == config.load_balancer.domain_name
    assert variables["AIGW_MODEL"] == config.canary_model
    assert "DNSName" in json.dumps(variables["AIGW_LOAD_BALANCER"])  # the balancer's own name, imported
    assert "CanaryToken" in json.dumps(variables["AIGW_CANARY_TOKEN_SECRET_ID"])  # the gateway stack's secret
    # In the workload subnets, the fleet's.
    assert all("WorkloadSubnet" in json.dumps(s) for s in properties["VPCConfig"]["SubnetIds"])
    assert len(properties["VPCConfig"]["SubnetIds"]) == len(config.availability_zones)


def test_the_load_balancer_lets_the_canary_in_on_443(each_environment: Synthesized) -> None:
    ingress = [
        r["Properties"]
        for r in resources(each_environment, "AWS::EC2::SecurityGroupIngress").values()
        if "CanarySecurityGroup" in json.dumps(r["Properties"].get("SourceSecurityGroupId"))
    ]
    assert [(i["FromPort"], i["ToPort"]) for i in ingress] == [(443, 443)]
    assert "LoadBalancerSecurityGroup" in json.dumps(ingress[0]["GroupId"])


def test_the_project_key_lets_only_the_canary_role_read_its_token_and_write_its_artifacts(
    each_environment: Synthesized,
) -> None:
    config = each_environment.config
    (key,) = resources(each_environment, "AWS::KMS::Key", "Audit").values()
    statements = {s.get("Sid"): s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    role = f"aigw-{config.environment}-canary-{config.region}"
    for sid, service in (("CanaryReadsItsToken", "secretsmanager"), ("CanaryWritesArtifacts", "s3")):
        statement = statements[sid]
        assert role in json.dumps(statement["Condition"]["ArnEquals"]["aws:PrincipalArn"])
        assert statement["Condition"]["StringEquals"]["kms:ViaService"] == f"{service}.{config.region}.amazonaws.com"


def test_the_fleet_knows_the_token_and_may_read_it(each_environment: Synthesized) -> None:
    gateway = json.dumps(each_environment.template_json("Gateway"))
    assert CANARY_TOKEN_VARIABLE in gateway
    (secret_id,) = [
        k
        for k, r in resources(each_environment, "AWS::SecretsManager::Secret", "Gateway").items()
        if r["Properties"].get("Name") == f"aigw-{each_environment.config.environment}-canary-token"
    ]
    readers = [
        p
        for p in resources(each_environment, "AWS::IAM::ManagedPolicy", "Gateway").values()
        if secret_id in json.dumps(p)
    ]
    assert readers and all("secretsmanager:GetSecretValue" in json.dumps(p) for p in readers)


def test_the_burn_rate_alerts_follow_the_configured_slo(each_environment: Synthesized) -> None:
    target = each_environment.config.operations.slo.target_percent
    alarms = resources(each_environment, "AWS::CloudWatch::Alarm")
    for alert in BURN_RATE_ALERTS:
        windows = [a["Properties"] for k, a in alarms.items() if k.startswith(f"Slo{alert.name}")]
        assert len(windows) == 2
        assert {w["Threshold"] for w in windows} == {alert.burn_rate * (1 - target / 100)}
    composites = resources(each_environment, "AWS::CloudWatch::CompositeAlarm")
    assert len(composites) == len(BURN_RATE_ALERTS)
    assert all("AlertsTopic" in json.dumps(c["Properties"]["AlarmActions"]) for c in composites.values())


def test_a_canary_that_does_not_run_alarms(each_environment: Synthesized) -> None:
    (alarm,) = [
        a["Properties"] for k, a in resources(each_environment, "AWS::CloudWatch::Alarm").items() if "CanaryNot" in k
    ]
    assert (alarm["MetricName"], alarm["Statistic"], alarm["TreatMissingData"]) == (
        "SuccessPercent", "SampleCount", "breaching",
    )  # fmt: skip
    assert alarm["Dimensions"] == [{"Name": "CanaryName", "Value": each_environment.config.canary_name}]


def test_without_the_canary_the_sli_is_the_load_balancers_alone(tmp_path: Path) -> None:
    app = synthesize_dev_with(tmp_path, lambda raw: raw.update(operations={"canary": {"enabled": False}}))
    operations = Template.from_stack(_stack(app, "Operations"))
    assert operations.find_resources("AWS::Synthetics::Canary") == {}
    text = json.dumps(operations.to_json())
    assert "canaryRuns" not in text and "SuccessPercent" not in text
    assert len(operations.find_resources("AWS::CloudWatch::CompositeAlarm")) == len(BURN_RATE_ALERTS)
    gateway = json.dumps(Template.from_stack(_stack(app, "Gateway")).to_json())
    assert CANARY_TOKEN_VARIABLE not in gateway and "canary-token" not in gateway


def _stack(app: Any, name: str) -> Stack:
    found = app.node.find_child(name)
    assert isinstance(found, Stack)
    return found
