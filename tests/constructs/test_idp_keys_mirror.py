"""IdpKeysMirror in a small app of its own, with every compliance pack on."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from constructs.compliance import REPORT_FILE, unacknowledged_findings
from constructs.idp_keys_mirror import CODE, HANDLER, INITIAL_VALUE, IdpKeysMirror

from tests.constructs.conftest import NetworkedStack, synth_with_packs

ISSUER = "https://idp.example.com/oauth2/default"


@dataclass
class Synthesized:
    template: Template
    outdir: Path
    mirror: IdpKeysMirror

    def resolve(self, value: Any) -> Any:
        return Stack.of(self.mirror).resolve(value)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    made: list[IdpKeysMirror] = []

    def build(stack: NetworkedStack) -> None:
        topic = sns.Topic(stack, "Alerts", master_key=stack.key.key, enforce_ssl=True)
        made.append(
            IdpKeysMirror(
                stack, "IdpKeys", key=stack.key, topic=topic, environment="t", issuer=ISSUER, log_retention_days=365
            )
        )

    template, outdir = synth_with_packs(tmp_path_factory.mktemp("idp-keys"), build)
    return Synthesized(template, outdir, made[0])


def one(template: Template, resource_type: str, **properties: Any) -> tuple[str, dict[str, Any]]:
    found = [
        (logical_id, resource["Properties"])
        for logical_id, resource in template.find_resources(resource_type).items()
        if all(resource["Properties"].get(name) == value for name, value in properties.items())
    ]
    assert len(found) == 1, found
    return found[0]


def function(synthesized: Synthesized) -> dict[str, Any]:
    return one(synthesized.template, "AWS::Lambda::Function", Handler=HANDLER)[1]


def parameter_arn(synthesized: Synthesized) -> dict[str, Any]:
    logical_id, _ = one(synthesized.template, "AWS::SSM::Parameter")
    # The parameter's name starts with "/", which its ARN does not repeat after "parameter".
    return {
        "Fn::Join": [
            "",
            ["arn:aws:ssm:eu-west-1:123456789012:parameter", {"Ref": logical_id}],  # cdk.json: a known partition
        ]
    }


def test_zero_unacknowledged_findings(synthesized: Synthesized) -> None:
    assert unacknowledged_findings(synthesized.outdir) == []


def test_only_being_outside_the_vpc_and_unreserved_are_acknowledged_on_the_function(synthesized: Synthesized) -> None:
    report = json.loads((synthesized.outdir / REPORT_FILE).read_text())
    reasons = {
        (plugin["pluginName"], suppressed["ruleName"]): suppressed["reason"]
        for plugin in report["pluginReports"]
        for suppressed in plugin.get("suppressedViolations", [])
        if any("IdpKeys/Function" in c["constructPath"] for c in suppressed["violatingConstructs"])
    }
    assert {rule for _, rule in reasons} == {
        "PCI.DSS.321-LambdaInsideVPC",
        "NIST.800.53.R5-LambdaInsideVPC",
        "NIST.800.53.R5-LambdaConcurrency",
        "lambda_inside_vpc_check",
    }
    for (_, rule), reason in reasons.items():
        if rule.endswith(("LambdaInsideVPC", "lambda_inside_vpc_check")):
            assert "IdP" in reason and "no route out" in reason
        else:
            assert "unreserved-concurrency quota" in reason


def test_the_function_runs_outside_the_vpc_traced_with_encrypted_settings(synthesized: Synthesized) -> None:
    properties = function(synthesized)
    assert "VpcConfig" not in properties  # it must reach the IdP on the internet
    key_id, _ = one(synthesized.template, "AWS::KMS::Key")
    assert properties["KmsKeyArn"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert properties["Runtime"] == "python3.14" and properties["TracingConfig"] == {"Mode": "Active"}
    # No reservation: it would fail to deploy in an account with a low unreserved-concurrency quota.
    assert "ReservedConcurrentExecutions" not in properties
    assert properties["FunctionName"] == synthesized.mirror.function_name == "aigw-t-idp-keys"
    assert properties["Environment"]["Variables"] == {
        "ISSUER": ISSUER,
        "PARAMETER_NAME": "/aigw/t/idp-jwks",
        "MIN_REFRESH_SECONDS": "60",
    }
    queue_id, queue = one(synthesized.template, "AWS::SQS::Queue")
    assert properties["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert queue["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    logs_id, logs = one(synthesized.template, "AWS::Logs::LogGroup", LogGroupName="/aws/lambda/aigw-t-idp-keys")
    assert properties["LoggingConfig"] == {"LogGroup": {"Ref": logs_id}}
    assert logs["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]} and logs["RetentionInDays"] == 365
    _, retries = one(synthesized.template, "AWS::Lambda::EventInvokeConfig")
    assert (retries["MaximumRetryAttempts"], retries["MaximumEventAgeInSeconds"]) == (1, 300)
    assert (CODE / "idp_keys_handler.py").is_file()  # the asset the function is built from


def test_it_runs_every_five_minutes(synthesized: Synthesized) -> None:
    _, rule = one(synthesized.template, "AWS::Events::Rule")
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = rule["Targets"]
    function_id, _ = one(synthesized.template, "AWS::Lambda::Function", Handler=HANDLER)
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert (target["RetryPolicy"]["MaximumRetryAttempts"], target["RetryPolicy"]["MaximumEventAgeInSeconds"]) == (
        2,
        300,
    )


def test_the_parameter_starts_empty_with_a_tier_picked_by_size(synthesized: Synthesized) -> None:
    _, parameter = one(synthesized.template, "AWS::SSM::Parameter")
    assert parameter["Name"] == synthesized.mirror.parameter_name == "/aigw/t/idp-jwks"
    assert (parameter["Type"], parameter["Tier"], parameter["Value"]) == (
        "String",
        "Intelligent-Tiering",
        INITIAL_VALUE,
    )
    # The function reads the initial value as an empty key set (and writes the same form).
    sys.path.insert(0, str(CODE))
    try:
        from idp_keys import EMPTY_VALUE, Stored, parse_stored
    finally:
        sys.path.remove(str(CODE))
    assert INITIAL_VALUE == EMPTY_VALUE and parse_stored(INITIAL_VALUE) == Stored()


def test_the_functions_policy_names_exactly_the_parameter(synthesized: Synthesized) -> None:
    _, policy = one(synthesized.template, "AWS::IAM::ManagedPolicy", Description="aigw-t IdP-keys function")
    statements = {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}
    assert statements["MirrorKeys"]["Action"] == ["ssm:GetParameter", "ssm:PutParameter"]
    assert statements["MirrorKeys"]["Resource"] == parameter_arn(synthesized)
    ssm_actions = [s for s in statements.values() if any(str(a).startswith("ssm:") for a in _list(s["Action"]))]
    assert ssm_actions == [statements["MirrorKeys"]]
    # Customer-managed only: no inline policy on the role, no AWS-managed one.
    role_id, role = one(
        synthesized.template,
        "AWS::IAM::Role",
        Description="aigw-t IdP-keys function: mirror the IdP's public keys into one SSM parameter",
    )
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    assert policy["Roles"] == [{"Ref": role_id}]
    inline = synthesized.template.find_resources("AWS::IAM::Policy")
    assert not [p for p in inline.values() if {"Ref": role_id} in p["Properties"].get("Roles", [])]


def test_a_gateway_may_read_the_parameter_and_ask_the_function_nothing_more(synthesized: Synthesized) -> None:
    read, ask = (
        synthesized.resolve(statement.to_statement_json()) for statement in synthesized.mirror.gateway_statements
    )
    assert (read["Action"], read["Resource"]) == ("ssm:GetParameter", parameter_arn(synthesized))
    function_id, _ = one(synthesized.template, "AWS::Lambda::Function", Handler=HANDLER)
    assert (ask["Action"], ask["Resource"]) == ("lambda:InvokeFunction", {"Fn::GetAtt": [function_id, "Arn"]})


def test_failures_and_dead_letters_alarm_the_topic(synthesized: Synthesized) -> None:
    alarms = synthesized.template.find_resources("AWS::CloudWatch::Alarm")
    by_metric = {alarm["Properties"]["MetricName"]: alarm["Properties"] for alarm in alarms.values()}
    assert by_metric["Errors"]["EvaluationPeriods"] == 3 and by_metric["Errors"]["Period"] == 300
    assert "ApproximateNumberOfMessagesVisible" in by_metric
    topic_id, _ = one(synthesized.template, "AWS::SNS::Topic")
    for alarm in by_metric.values():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}] == alarm["OKActions"]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
