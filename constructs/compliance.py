"""The compliance gate: cdk-nag packs on every synth, and acknowledgments that must say why."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

from aws_cdk import Acknowledgment, App, CfnResource, Stack, Validations
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks, PCIDSS321Checks
from constructs import IConstruct
from constructs.control_tower_rules import PLUGIN_NAME, ControlTowerRules

# Rule-pack prefixes as acknowledgment ids spell them.
AWS_SOLUTIONS = "AwsSolutions::AwsSolutions"
PCI_DSS = "PCI.DSS.321::PCI.DSS.321"
NIST_R5 = "NIST.800.53.R5::NIST.800.53.R5"
CFN_VALIDATE = "CloudFormation-Validate"  # the CDK's built-in template validation
# AWS Control Tower's proactive controls, run by cfn-guard (cdklabs' validation plugin, its rules bundled): ids
# are "<plugin>::<guard rule name>", e.g. f"{CONTROL_TOWER}::s3_event_notifications_enabled_check".
CONTROL_TOWER = PLUGIN_NAME
# Independent scanners CI and auditors run on the synthesized templates (make scan).
CHECKOV, CFN_LINT, REASONS = "checkov", "cfn-lint", "aigw-acknowledgments"
# The same control in a cdk-nag pack (rule name after the pack's prefix) and in checkov: acknowledging the one
# acknowledges the other, with the same reason, so the two never disagree about a resource.
CHECKOV_EQUIVALENTS = {
    "S3BucketLoggingEnabled": "CKV_AWS_18",
    "LambdaConcurrency": "CKV_AWS_115",
    "LambdaDLQ": "CKV_AWS_116",
    "LambdaInsideVPC": "CKV_AWS_117",
}

COMPLIANCE_PACKS = (AwsSolutionsChecks, PCIDSS321Checks, NIST80053R5Checks)
REPORT_FILE = "validation-report.json"
PACKS_FILE = "aigw-compliance.json"  # which packs ran: the validation report omits packs with nothing to say
MIN_REASON_LENGTH = 40
# Construct metadata (in the assembly, not the templates) saying where in this repository a construct class is
# defined and where each acknowledgment is made: CDK's own creation traces hold only JavaScript frames when the
# app is Python. `make sarif` turns them into source locations.
SOURCE_METADATA, ACKNOWLEDGED_METADATA = "aigw:source", "aigw:acknowledged"
REPOSITORY = Path(__file__).resolve().parent.parent


def add_compliance_packs(app: App) -> None:
    """Run AwsSolutions, PCI DSS 3.2.1 and NIST 800-53 r5 (cdk-nag) and AWS Control Tower's proactive controls
    (cfn-guard) on the whole app.

    cdk-nag also writes every acknowledgment, its own and cfn-guard's, into each resource's Metadata, where
    auditors reading a template see them next to the resource they cover.
    """
    Validations.of(app).add_plugins(
        *(pack(app, write_suppressions_to_cloud_formation=True) for pack in COMPLIANCE_PACKS),
        # The CDK's beta plugin interface (what CfnGuardValidator implements), which add_plugins still takes.
        ControlTowerRules(),  # type: ignore[arg-type]
    )


def acknowledge(construct: IConstruct, *rule_ids: str, reason: str) -> None:
    """Acknowledge findings on the CloudFormation resource of `construct` (itself, or an L2's default
    child) and nowhere else: an acknowledgment on an L2 would spread to its policies and other parts.
    cdk-nag accepts an empty reason; we do not."""
    resource = _resource_of(construct, "acknowledge")
    _check_reason(resource, rule_ids, reason)
    Validations.of(resource).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in rule_ids))
    _record_call_site(resource, rule_ids)
    # The CDK's template validation is cfn-lint: the same rule, acknowledged where cfn-lint itself reads it.
    lint_rules = [rule_id.split("::", 1)[1] for rule_id in rule_ids if rule_id.startswith(f"{CFN_VALIDATE}::")]
    if lint_rules:
        _add_to_metadata(resource, CFN_LINT, lint_rules, reason)
    names = {rule_id.rpartition("-")[2] for rule_id in rule_ids}  # PCI.DSS.321::PCI.DSS.321-LambdaInsideVPC
    if equivalents := {CHECKOV_EQUIVALENTS[name] for name in names if name in CHECKOV_EQUIVALENTS}:
        # Read only when needed: each read is a round-trip to the CDK's process.
        known = {skip["id"] for skip in (resource.get_metadata(CHECKOV) or {}).get("skip", [])}
        if checks := sorted(equivalents - known):
            _add_to_metadata(resource, CHECKOV, checks, reason)


def acknowledge_imported(construct: IConstruct, rule: str, *, setting: str, source: IConstruct) -> None:
    """Control Tower's `rule` reads `setting` of `construct`'s resource only as a literal or a reference within
    its template: when the value comes from `source` in another stack, it arrives as Fn::ImportValue and the rule
    counts it as absent. Acknowledged there, and only there (within one stack the rule checks it itself)."""
    if Stack.of(construct) is Stack.of(source):
        return
    acknowledge(
        construct,
        f"{CONTROL_TOWER}::{rule}",
        reason=f"{setting} is set, to {source.node.path} of the {Stack.of(source).node.id} stack: an Fn::ImportValue, "
        "which this cfn-guard rule cannot resolve and counts as absent. The audit report's controls read it.",
    )


def acknowledge_scanner(construct: IConstruct, *check_ids: str, reason: str) -> None:
    """Acknowledge an independent scanner's finding on the CloudFormation resource of `construct`, in its
    Metadata where that scanner reads it: checkov's `CKV_…` ids (`checkov.skip`, the reason as comment) and
    cfn-lint's rule ids such as `W3005` (`cfn-lint.config.ignore_checks`)."""
    resource = _resource_of(construct, "acknowledge")
    _check_reason(resource, check_ids, reason)
    _record_call_site(resource, check_ids)
    checkov_ids = [check_id for check_id in check_ids if check_id.startswith("CKV")]
    lint_ids = [check_id for check_id in check_ids if check_id not in checkov_ids]
    if checkov_ids:
        _add_to_metadata(resource, CHECKOV, checkov_ids, reason)
    if lint_ids:
        _add_to_metadata(resource, CFN_LINT, lint_ids, reason)


def _record_call_site(resource: CfnResource, rule_ids: tuple[str, ...]) -> None:
    """Where the acknowledgment is written: the first frame outside this module."""
    frame = sys._getframe(1)
    while frame.f_code.co_filename == __file__ and frame.f_back is not None:
        frame = frame.f_back
    where = _in_repository(frame.f_code.co_filename)
    if where:
        resource.node.add_metadata(ACKNOWLEDGED_METADATA, {"rules": list(rule_ids), "at": f"{where}:{frame.f_lineno}"})


def record_sources(scope: IConstruct) -> None:
    """Mark each construct whose class is written in this repository with the file and line of its class."""
    for node in scope.node.find_all():
        cls = type(node)
        try:
            where = _in_repository(inspect.getsourcefile(cls) or "")
            line = inspect.getsourcelines(cls)[1] if where else 0
        except (OSError, TypeError):  # a class without source
            continue
        if where:
            node.node.add_metadata(SOURCE_METADATA, f"{where}:{line}")


def _in_repository(filename: str) -> str | None:
    """`filename` relative to the repository, unless it is outside it or an installed package (a virtualenv)."""
    path = Path(filename).resolve()
    if not path.is_relative_to(REPOSITORY) or "site-packages" in path.parts:
        return None
    return path.relative_to(REPOSITORY).as_posix()


def _resource_of(construct: IConstruct, what: str) -> CfnResource:
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path}: has no CloudFormation resource to {what} findings on")
    return resource


def _check_reason(resource: CfnResource, rule_ids: tuple[str, ...], reason: str) -> None:
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(
            f"{resource.node.path}: acknowledging {', '.join(rule_ids)} needs a specific reason, got {reason!r}"
        )


def _add_to_metadata(resource: CfnResource, scanner: str, rule_ids: list[str], reason: str) -> None:
    """checkov reads `Metadata.checkov.skip: [{id, comment}]`, cfn-lint `Metadata.cfn-lint.config.ignore_checks`
    (which has no place for a reason: it goes beside it, under `aigw-acknowledgments`)."""
    metadata = resource.get_metadata(scanner) or {}
    if scanner == CHECKOV:
        skip = [*metadata.get("skip", []), *({"id": rule_id, "comment": reason} for rule_id in rule_ids)]
        resource.add_metadata(CHECKOV, {"skip": skip})
        return
    ignored = [*metadata.get("config", {}).get("ignore_checks", []), *rule_ids]
    resource.add_metadata(CFN_LINT, {"config": {"ignore_checks": ignored}})
    reasons = resource.get_metadata(REASONS) or {}
    resource.add_metadata(REASONS, {**reasons, **{f"cfn-lint {rule_id}": reason for rule_id in rule_ids}})


def logical_id_of(construct: IConstruct) -> str:
    """The CloudFormation logical id of `construct`'s resource, as cdk-nag spells it in finding ids that
    name a resource (`IAM5[Resource::<LogicalId.Arn>/audit/*]`), so an acknowledgment covers that one."""
    resource = _resource_of(construct, "name")
    stack = Stack.of(resource)
    return str(stack.resolve(stack.get_logical_id(resource)))


def unacknowledged_findings(assembly_dir: str | Path) -> list[str]:
    """Every finding of the validation report that nobody acknowledged, warnings included.

    The CDK fails synth only on errors, and for cfn-guard's findings not even then once any one of them is
    acknowledged (the CDK then calls that plugin's report a success, the others still listed); the gate counts
    them itself, so that "zero violations" in the report is what a passing synth means.
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
    names = [*(pack().read_pack_name for pack in COMPLIANCE_PACKS), CONTROL_TOWER]
    (Path(assembly_dir) / PACKS_FILE).write_text(json.dumps({"packs": names}, indent=2) + "\n")
