"""The app as a whole: cost-allocation tags everywhere, and the compliance gate's evidence."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

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
    for stack in each_environment.stacks:
        for logical_id, resource in each_environment.template_json(stack.node.id)["Resources"].items():
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


def test_the_gate_refuses_an_unacknowledged_finding(tmp_path: Path) -> None:
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
