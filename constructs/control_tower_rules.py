"""AWS Control Tower's proactive controls as a validation plugin: cdklabs' CfnGuardValidator (cfn-guard and the
rules bundled in its package), given only the rules for resource types the templates hold.

cfn-guard skips a rule whose resource type is absent, but still spends the time evaluating it: all 237 rules over
aigw's five templates took ~9.5 s a synth, the ~50 that apply ~2 s. Which rule evaluates which types is the
rules' own metadata (`EvaluatedResourceTypes`), read from the same package; a rule that names no type runs always.
"""

from __future__ import annotations

import json
import tarfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import IPolicyValidationContextBeta1, IPolicyValidationPluginBeta1, PolicyValidationPluginReportBeta1

PLUGIN_NAME = "cdk-validator-cfnguard"  # acknowledgment ids are "<plugin name>::<guard rule name>"
METADATA = "package/rules/control-tower/metadata/"


@cache
def evaluated_types() -> dict[str, frozenset[str]]:
    """Rule file name (what `disabled_rules` takes, e.g. ct-sqs-pr-1) -> the resource types it evaluates."""
    package = resources.files("cdklabs.cdk_validator_cfnguard._jsii")
    (archive,) = [entry for entry in package.iterdir() if entry.name.endswith(".jsii.tgz")]
    found = {}
    with resources.as_file(archive) as path, tarfile.open(path) as tar:
        for member in tar:
            if member.name.startswith(METADATA) and member.name.endswith(".metadata.json"):
                handle = tar.extractfile(member)
                assert handle is not None
                types = json.load(handle).get("EvaluatedResourceTypes") or []
                found[member.name.rsplit("/", 1)[1].removesuffix(".metadata.json")] = frozenset(types)
    if not found:
        raise RuntimeError("cdklabs-cdk-validator-cfnguard: no Control Tower rule metadata in its package")
    return found


def rules_without(types: set[str]) -> list[str]:
    """The rules none of whose resource types are in `types` (a rule that names none is kept)."""
    return sorted(rule for rule, evaluated in evaluated_types().items() if evaluated and not evaluated & types)


@jsii.implements(IPolicyValidationPluginBeta1)
class ControlTowerRules:
    """The plugin; its findings and acknowledgments are CfnGuardValidator's own (same plugin name, same rules)."""

    @property
    def name(self) -> str:
        return PLUGIN_NAME

    @property
    def version(self) -> str | None:
        from importlib.metadata import version

        return version("cdklabs-cdk-validator-cfnguard")

    @property
    def rule_ids(self) -> list[str] | None:
        return None

    def validate(self, context: IPolicyValidationContextBeta1) -> PolicyValidationPluginReportBeta1:
        # Imported here: loading the plugin unpacks its cfn-guard binaries and rules (36 MB) in every process.
        from cdklabs.cdk_validator_cfnguard import CfnGuardValidator

        types = {resource["Type"] for path in context.template_paths for resource in _resources(Path(path))}
        validator = CfnGuardValidator(control_tower_rules_enabled=True, disabled_rules=rules_without(types))
        return validator.validate(context)


def _resources(template: Path) -> list[dict[str, Any]]:
    return list(json.loads(template.read_text()).get("Resources", {}).values())
