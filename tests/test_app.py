"""The app as a whole: cost-allocation tags everywhere, and the compliance gate's evidence."""

from __future__ import annotations

import copy
import fnmatch
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_logs as logs
from constructs.compliance import MIN_REASON_LENGTH, unacknowledged_findings

import app as aigw_app
from config import load_config
from tests.conftest import Synthesized, cli_context

PACKS = ("AwsSolutions", "PCI.DSS.321", "NIST.800.53.R5")


def taggable(resource_type: str) -> bool:
    """Whether CloudFormation takes Tags on this type: its L1 class in aws_cdk says so (ITaggable)."""
    if resource_type.startswith("Custom::"):
        return False
    module = importlib.import_module(f"aws_cdk.aws_{resource_type.split('::')[1].lower()}")
    (l1,) = [
        cls
        for cls in vars(module).values()
        if isinstance(cls, type) and getattr(cls, "CFN_RESOURCE_TYPE_NAME", None) == resource_type
    ]
    return hasattr(l1, "tags") or hasattr(l1, "cdk_tag_manager")


def test_every_taggable_resource_carries_the_cost_allocation_tags(each_environment: Synthesized) -> None:
    expected = {
        "project": each_environment.config.tags.project,
        "environment": each_environment.config.environment,
        "cost-center": each_environment.config.tags.cost_center,
    }
    checked = set()
    for _, logical_id, resource in each_environment.resources():
        if not taggable(resource["Type"]):
            continue
        properties = resource.get("Properties", {})
        # Budgets and Cost Explorer types call the property ResourceTags.
        tags = properties.get("Tags", properties.get("ResourceTags", {}))
        # Most types take a list of Key/Value; a few (e.g. SSM parameters) a plain map.
        rendered = {t["Key"]: t["Value"] for t in tags} if isinstance(tags, list) else tags
        assert expected.items() <= rendered.items(), f"{logical_id} ({resource['Type']}): {rendered}"
        checked.add(resource["Type"])
    # Guards the check itself: these types are taggable and present, so they must have been checked.
    assert {
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EC2::VPCEndpoint",
        "AWS::KMS::Key",
        "AWS::Lambda::Function",
        "AWS::Budgets::Budget",
        "AWS::CE::AnomalyMonitor",
    } <= checked
    assert not taggable("AWS::EC2::SubnetRouteTableAssociation")


def test_validation_report_has_zero_violations(each_environment: Synthesized) -> None:
    assert unacknowledged_findings(each_environment.directory) == []


def test_every_acknowledgment_has_a_specific_reason_on_a_resource(each_environment: Synthesized) -> None:
    report = each_environment.validation_report
    suppressed = [(p["pluginName"], s) for p in report["pluginReports"] for s in p.get("suppressedViolations", [])]
    assert suppressed, "the report should carry the acknowledged findings with their reasons"
    stack_paths = {stack.node.path for stack in each_environment.stacks}
    for plugin, violation in suppressed:
        assert len(violation["reason"].strip()) >= MIN_REASON_LENGTH, (plugin, violation["ruleName"])
        assert violation["acknowledgedAt"] not in stack_paths, "no stack-level acknowledgments"
    generic = {"ok", "accepted", "n/a", "not applicable", "false positive", "todo"}
    assert not [v for _, v in suppressed if v["reason"].strip().lower() in generic]


def test_acknowledgments_are_written_into_the_resources_metadata(dev: Synthesized) -> None:
    """Auditors read templates: each acknowledged resource says which rules and why, next to itself."""
    resources = dev.template_json("Network")["Resources"]
    noted = {
        logical_id: resource["Metadata"]["cdk_nag"]["rules_to_suppress"]
        for logical_id, resource in resources.items()
        if "cdk_nag" in resource.get("Metadata", {})
    }
    subnets = {k for k, r in resources.items() if r["Type"] == "AWS::EC2::Subnet"}
    assert subnets <= set(noted)
    for rules in noted.values():
        assert all(len(rule["reason"]) >= MIN_REASON_LENGTH for rule in rules)


def test_the_gate_refuses_an_unacknowledged_finding(tmp_path: Path, bundle_cache: Path) -> None:
    """With the CLI's own context (version reporting on), a violation still fails synth."""
    app = App(outdir=str(tmp_path), context=cli_context("dev"))
    aigw_app.build(app, load_config("dev"))
    network = app.node.find_child("Network")
    assert isinstance(network, Stack)
    logs.LogGroup(network, "Unencrypted", retention=logs.RetentionDays.ONE_WEEK)  # no KMS key: PCI/NIST error
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()


def test_no_synth_needs_credentials_or_lookups(each_environment: Synthesized) -> None:
    manifest = json.loads((each_environment.directory / "manifest.json").read_text())
    assert "missing" not in manifest, "a context lookup would need AWS credentials at synth"


# --- Alarms and rules can really publish: what AWS enforces and moto does not -------------------------------------

PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


def resolve(value: Any, context: dict[str, str]) -> Any:
    """The few intrinsics a policy condition uses here (Ref to a pseudo parameter, Fn::Join), as plain text."""
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in context:
        return context[value["Ref"]]
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(resolve(part, context)) for part in parts)
    return value


def topic_of(action: Any, synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    """The alerts topic an alarm action or rule target names, in whichever stack it lives: (logical id, template)."""
    if "Ref" in action:
        return action["Ref"], {}
    name = action["Fn::ImportValue"]
    for stack in synthesized.stacks:
        template = synthesized.template_json(stack.node.id)
        for output in template.get("Outputs", {}).values():
            if output.get("Export", {}).get("Name") == name:
                return output["Value"]["Ref"], template
    raise AssertionError(f"no stack exports {name}")


def service_may_publish(
    template: dict[str, Any], topic: str, service: str, source_arn: str, context: dict[str, str]
) -> bool:
    """Evaluates the topic's policy and its key's policy the way SNS and KMS would for `service` publishing on
    behalf of `source_arn` (an allowing statement whose every condition holds, and no applicable deny)."""
    request = {"aws:SourceAccount": context["AWS::AccountId"], "aws:SourceArn": source_arn}

    def holds(statement: dict[str, Any]) -> bool:
        for operator, pairs in statement.get("Condition", {}).items():
            for key, expected in pairs.items():
                wanted = [resolve(e, context) for e in (expected if isinstance(expected, list) else [expected])]
                if key == "aws:SecureTransport":  # AWS services publish over TLS
                    if operator != "Bool" or wanted != ["false"]:
                        return False
                    return False  # this deny does not apply to a TLS request
                if key not in request:
                    return False
                match operator:
                    case "StringEquals":
                        ok = request[key] in wanted
                    case "ArnLike" | "StringLike" | "ArnEquals":
                        ok = any(fnmatch.fnmatchcase(request[key], str(w)) for w in wanted)
                    case _:
                        return False
                if not ok:
                    return False
        return True

    def allowed(statements: list[dict[str, Any]], action: str) -> bool:
        def names(statement: dict[str, Any]) -> bool:
            principal = statement.get("Principal", {})
            services = principal.get("Service", []) if isinstance(principal, dict) else []
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            named = services if isinstance(services, list) else [services]
            return f"{service}.amazonaws.com" in named and any(fnmatch.fnmatchcase(action, a) for a in actions)

        allow = any(s["Effect"] == "Allow" and names(s) and holds(s) for s in statements)
        deny = any(s["Effect"] == "Deny" and holds(s) for s in statements)
        return allow and not deny

    resources = template["Resources"]
    policies = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in resources.values()
        if r["Type"] == "AWS::SNS::TopicPolicy" and {"Ref": topic} in r["Properties"]["Topics"]
    ]
    key = resources[topic]["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy = resources[key]["Properties"]["KeyPolicy"]["Statement"]
    return (
        len(policies) == 1
        and allowed(policies[0], "sns:Publish")
        and allowed(key_policy, "kms:GenerateDataKey")
        and allowed(key_policy, "kms:Decrypt")
    )


def test_every_alarm_and_rule_may_publish_to_the_topic_it_names(each_environment: Synthesized) -> None:
    config = each_environment.config
    context = {**PSEUDO, "AWS::Region": config.region, "AWS::AccountId": config.account}
    checked = {"cloudwatch": 0, "events": 0}
    for stack in each_environment.stacks:
        template = each_environment.template_json(stack.node.id)
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
                properties = resource["Properties"]
                service, targets = "cloudwatch", [*properties.get("AlarmActions", []), *properties.get("OKActions", [])]
                if not targets:  # one window of a burn-rate alert: the composite alarm over it must notify
                    assert any(
                        logical_id in json.dumps(other["Properties"]["AlarmRule"])
                        and other["Properties"]["AlarmActions"]
                        for other in template["Resources"].values()
                        if other["Type"] == "AWS::CloudWatch::CompositeAlarm"
                    ), logical_id
                    continue
                source = f"arn:aws:cloudwatch:{config.region}:{config.account}:alarm:{stack.stack_name}-{logical_id}-X"
            elif resource["Type"] == "AWS::Events::Rule" and any(
                "AlertsTopic" in json.dumps(t["Arn"]) for t in resource["Properties"].get("Targets", [])
            ):
                service, targets = "events", [t["Arn"] for t in resource["Properties"]["Targets"]]
                source = f"arn:aws:events:{config.region}:{config.account}:rule/{stack.stack_name}-{logical_id}-X"
            else:
                continue
            for target in targets:
                topic, topic_template = topic_of(target, each_environment)
                assert service_may_publish(topic_template or template, topic, service, source, context), logical_id
            checked[service] += 1
    assert checked["cloudwatch"] >= 13 and checked["events"] >= 1, checked


def test_the_check_itself_catches_a_topic_policy_without_cloudwatch(dev: Synthesized) -> None:
    audit = dev.template_json("Audit")
    (policy,) = [r for r in audit["Resources"].values() if r["Type"] == "AWS::SNS::TopicPolicy"]
    topic = policy["Properties"]["Topics"][0]["Ref"]
    context = {**PSEUDO, "AWS::Region": "eu-west-1", "AWS::AccountId": dev.config.account}
    alarm = f"arn:aws:cloudwatch:eu-west-1:{dev.config.account}:alarm:any"
    assert service_may_publish(audit, topic, "cloudwatch", alarm, context)
    # Another account's alarm may not; nor may any alarm once the statement is gone (the old policy).
    assert not service_may_publish(
        audit,
        topic,
        "cloudwatch",
        alarm.replace(dev.config.account, "999999999999"),
        {**context, "AWS::AccountId": "999999999999"},
    )
    broken = copy.deepcopy(audit)
    for resource in broken["Resources"].values():
        if resource["Type"] == "AWS::SNS::TopicPolicy":
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
            statements[:] = [s for s in statements if s.get("Sid") != "AlarmsPublish"]
    assert not service_may_publish(broken, topic, "cloudwatch", alarm, context)


def test_data_is_kept_except_when_its_own_first_create_fails(each_environment: Synthesized) -> None:
    """Retained resources with fixed names would survive a failed first create and break the retry with
    "already exists": RetainExceptOnCreate keeps them on delete and replacement only."""
    kept: dict[str, str] = {}
    for _, logical_id, resource in each_environment.resources():
        policy = resource.get("DeletionPolicy")
        if policy in ("Retain", "RetainExceptOnCreate", "Snapshot"):
            assert policy == "RetainExceptOnCreate", f"{logical_id} ({resource['Type']}): {policy}"
            assert resource.get("UpdateReplacePolicy") == "Retain", logical_id
            kept[logical_id] = resource["Type"]
    assert {"AWS::KMS::Key", "AWS::S3::Bucket", "AWS::Logs::LogGroup"} <= set(kept.values())
    named_groups = [
        r["Properties"]["LogGroupName"]
        for _, logical_id, r in each_environment.resources("AWS::Logs::LogGroup")
        if logical_id in kept
    ]
    assert f"/aigw-{each_environment.config.environment}/audit" in named_groups
