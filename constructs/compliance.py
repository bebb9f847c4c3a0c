"""The compliance gate: cdk-nag packs on every synth, and acknowledgments that must say why."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Acknowledgment, App, CfnResource, Stack, Validations
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks, PCIDSS321Checks
from constructs import IConstruct

# Rule-pack prefixes as acknowledgment ids spell them.
AWS_SOLUTIONS = "AwsSolutions::AwsSolutions"
PCI_DSS = "PCI.DSS.321::PCI.DSS.321"
NIST_R5 = "NIST.800.53.R5::NIST.800.53.R5"
CFN_VALIDATE = "CloudFormation-Validate"  # the CDK's built-in template validation

COMPLIANCE_PACKS = (AwsSolutionsChecks, PCIDSS321Checks, NIST80053R5Checks)
REPORT_FILE = "validation-report.json"
PACKS_FILE = "aigw-compliance.json"  # which packs ran: the validation report omits packs with nothing to say
MIN_REASON_LENGTH = 40


def add_compliance_packs(app: App) -> None:
    """Run AwsSolutions, PCI DSS 3.2.1 and NIST 800-53 r5 on the whole app.

    Acknowledgments are also written into each resource's Metadata, where auditors reading a
    template see them next to the resource they cover.
    """
    Validations.of(app).add_plugins(
        *(pack(app, write_suppressions_to_cloud_formation=True) for pack in COMPLIANCE_PACKS)
    )


def acknowledge(construct: IConstruct, *rule_ids: str, reason: str) -> None:
    """Acknowledge findings on the CloudFormation resource of `construct` (itself, or an L2's default
    child) and nowhere else: an acknowledgment on an L2 would spread to its policies and other parts.
    cdk-nag accepts an empty reason; we do not."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path}: has no CloudFormation resource to acknowledge findings on")
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(
            f"{construct.node.path}: acknowledging {', '.join(rule_ids)} needs a specific reason, got {reason!r}"
        )
    Validations.of(resource).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in rule_ids))


def logical_id_of(construct: IConstruct) -> str:
    """The CloudFormation logical id of `construct`'s resource, as cdk-nag spells it in finding ids that
    name a resource (`IAM5[Resource::<LogicalId.Arn>/audit/*]`), so an acknowledgment covers that one."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path}: has no CloudFormation resource")
    stack = Stack.of(resource)
    return str(stack.resolve(stack.get_logical_id(resource)))


def unacknowledged_findings(assembly_dir: str | Path) -> list[str]:
    """Every finding of the validation report that nobody acknowledged, warnings included.

    The CDK fails synth only on errors; the gate also refuses warnings, so that "zero violations"
    in the report is what a passing synth means.
    """
    report = json.loads((Path(assembly_dir) / REPORT_FILE).read_text())
    return [
        f"{plugin['pluginName']} {violation['ruleName']} ({violation['severity']}): {construct['constructPath']}"
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]


def record_packs(assembly_dir: str | Path) -> None:
    """Write which compliance packs ran next to the validation report, for the evidence report."""
    names = [pack().read_pack_name for pack in COMPLIANCE_PACKS]
    (Path(assembly_dir) / PACKS_FILE).write_text(json.dumps({"packs": names}, indent=2) + "\n")
