"""The compliance gate's findings as SARIF 2.1.0, for code-review tools, from a cloud assembly alone.

    python scripts/sarif.py [CDK_OUT] [--out FILE]      (default: cdk.out, written to CDK_OUT/compliance.sarif)

One run per rule pack of validation-report.json (cdk-nag's three, Control Tower's proactive controls through
cfn-guard, and any other validation plugin). Each finding
is a result with its rule and pack, the construct path and the template's logical id, and the file and line in
this repository: where the construct is created, found from the `aigw:source` metadata the app records (CDK's
creation traces hold only JavaScript frames for a Python app). An acknowledged finding carries the
acknowledgment as an in-source suppression, with its reason as the justification and the line it is written on.
Works on a failed gate too: the assembly and its report are written before synth stops.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import cloud_assembly

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SOURCE_METADATA, ACKNOWLEDGED_METADATA = "aigw:source", "aigw:acknowledged"  # as constructs/compliance.py writes
SOURCE_ROOT = "%SRCROOT%"  # the repository's root, as GitHub code scanning resolves it
APP = ("app.py", 1)  # where every stack is composed: the location of a finding no construct of ours holds
LEVELS = {"error": "error", "warning": "warning"}  # anything else: "note"
# The pack each validation plugin's rules belong to, and where its rules are documented.
TOOLS = {
    "AwsSolutions": ("cdk-nag", "https://github.com/cdklabs/cdk-nag/blob/main/RULES.md"),
    "PCI.DSS.321": ("cdk-nag", "https://github.com/cdklabs/cdk-nag/blob/main/RULES.md"),
    "NIST.800.53.R5": ("cdk-nag", "https://github.com/cdklabs/cdk-nag/blob/main/RULES.md"),
    "cdk-validator-cfnguard": (
        "cdklabs-cdk-validator-cfnguard",
        "https://docs.aws.amazon.com/controltower/latest/controlreference/proactive-controls.html",
    ),
}


@dataclass
class Provenance:
    """What the assembly says about each construct path: its logical id and stack, the class it is an instance
    of (file:line), and where acknowledgments on it are written (rule id -> file:line)."""

    logical_ids: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (stack, logical id)
    paths: dict[tuple[str, str], str] = field(default_factory=dict)  # (stack, logical id) -> path
    templates: dict[str, str] = field(default_factory=dict)  # stack -> template file
    sources: dict[str, str] = field(default_factory=dict)  # path -> "file:line" of its class
    acknowledged: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))

    @classmethod
    def of(cls, assembly: Path) -> Provenance:
        provenance = cls()
        for stack in cloud_assembly.stacks(assembly):
            provenance.templates[stack.id] = stack.template_file
            for resource in stack.resources():
                provenance.logical_ids[resource.path] = (stack.id, resource.logical_id)
                provenance.paths[(stack.id, resource.logical_id)] = resource.path
            for path, items in stack.metadata.items():
                for item in items:
                    if item["type"] == SOURCE_METADATA:
                        provenance.sources[path] = item["data"]
                    elif item["type"] == ACKNOWLEDGED_METADATA:
                        for rule in item["data"]["rules"]:
                            provenance.acknowledged[path][rule] = item["data"]["at"]
        return provenance

    def created_at(self, construct_path: str) -> tuple[str, int]:
        """The line that creates `construct_path`'s outermost part not of this repository: in the source of its
        nearest ancestor that is (the line naming the next id in quotes), else that ancestor's class line. With
        no such ancestor, the app itself: code scanning refuses a result without a file in the repository."""
        parts = construct_path.split("/")
        for depth in range(len(parts) - 1, 0, -1):
            owner = "/".join(parts[:depth])
            if owner in self.sources:
                file, _, line = self.sources[owner].rpartition(":")
                return file, _line_naming(file, int(line), parts[depth])
        return APP

    def resource_of(self, construct: dict[str, Any]) -> tuple[str, str, str | None]:
        """(construct path, stack, logical id) of a violating construct. A plugin that names only a template's
        resource (CDK then writes an empty path) is traced back through the template's logical id."""
        path = construct.get("constructPath") or ""
        if path in self.logical_ids:
            return path, *self.logical_ids[path]
        resource = construct.get("cloudFormationResource") or {}
        stacks = {template: stack for stack, template in self.templates.items()}
        if (stack := stacks.get(resource.get("templatePath", ""))) and (logical_id := resource.get("logicalId")):
            return self.paths.get((stack, logical_id), f"{stack}/{logical_id}"), stack, logical_id
        return path, path.split("/", 1)[0], None


def _line_naming(file: str, class_line: int, child_id: str) -> int:
    """The first line at or after `class_line` of `file` that names `child_id` as a string, else `class_line`."""
    path = ROOT / file
    if not path.is_file():
        return class_line
    pattern = re.compile(rf"""["']{re.escape(child_id)}["']""")
    lines = path.read_text(encoding="utf-8").splitlines()
    for number in range(class_line, len(lines) + 1):
        text = lines[number - 1]
        if number > class_line and re.match(r"(class|def) ", text):  # the next top-level definition
            break
        if pattern.search(text):
            return number
    return class_line


def _location(file: str, line: int) -> dict[str, Any]:
    return {
        "physicalLocation": {"artifactLocation": {"uri": file, "uriBaseId": SOURCE_ROOT}, "region": {"startLine": line}}
    }


def _rule_id(rule_name: str) -> str:
    """`AwsSolutions-IAM5[Resource::*]` -> `AwsSolutions-IAM5`: the rule; the bracket names one finding of it."""
    return rule_name.split("[", 1)[0]


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def run_for(plugin: dict[str, Any], provenance: Provenance) -> dict[str, Any]:
    name = plugin["pluginName"]
    distribution, information = TOOLS.get(name, (name, None))
    rules: dict[str, dict[str, Any]] = {}
    results = []
    findings = [(finding, False) for finding in plugin.get("violations", [])]
    findings += [(finding, True) for finding in plugin.get("suppressedViolations", [])]
    for finding, acknowledged in findings:
        rule_id = _rule_id(finding["ruleName"])
        rule = rules.setdefault(
            rule_id,
            {
                "id": rule_id,
                "shortDescription": {"text": finding.get("description") or rule_id},
                "properties": {"pack": name},
            },
        )
        if information:
            rule["helpUri"] = information
        for construct in finding["violatingConstructs"]:
            results.append(
                result(name, rule_id, list(rules).index(rule_id), finding, construct, acknowledged, provenance)
            )
    driver: dict[str, Any] = {"name": name, "rules": list(rules.values()), "properties": {"pack": name}}
    if version := plugin.get("pluginVersion") or installed_version(distribution):  # the report's own, else what is here
        driver["version"] = version
    if information:
        driver["informationUri"] = information
    error = failed(plugin)
    invocation: dict[str, Any] = {"executionSuccessful": error is None}
    if error:
        invocation["toolExecutionNotifications"] = [{"level": "error", "message": {"text": error}}]
    return {
        "tool": {"driver": driver},
        "invocations": [invocation],
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {"conclusion": plugin.get("conclusion")},
    }


def failed(plugin: dict[str, Any]) -> str | None:
    """Why a plugin did not run to the end (CDK reports it as a failure without findings), else None."""
    if plugin.get("conclusion") == "failure" and not plugin.get("violations"):
        return str((plugin.get("metadata") or {}).get("error") or f"{plugin['pluginName']} failed without findings")
    return None


def gate(log: dict[str, Any]) -> dict[str, Any]:
    """The gate's result from a SARIF log: passed only when every finding is acknowledged and every pack ran."""
    open_findings = sum(1 for run in log["runs"] for found in run["results"] if "suppressions" not in found)
    not_run = [run["tool"]["driver"]["name"] for run in log["runs"] if not run["invocations"][0]["executionSuccessful"]]
    return {"passed": open_findings == 0 and not not_run, "open_findings": open_findings, "packs_not_run": not_run}


def result(
    pack: str,
    rule_id: str,
    rule_index: int,
    finding: dict[str, Any],
    construct: dict[str, Any],
    acknowledged: bool,
    provenance: Provenance,
) -> dict[str, Any]:
    path, stack, logical_id = provenance.resource_of(construct)
    where = f"{stack}/{logical_id}" if logical_id else path
    location = _location(*provenance.created_at(path))
    location["logicalLocations"] = [{"name": logical_id or path, "fullyQualifiedName": path, "kind": "resource"}]
    found: dict[str, Any] = {
        "ruleId": rule_id,
        "ruleIndex": rule_index,
        "level": LEVELS.get(finding.get("severity", ""), "note"),
        "message": {"text": f"{finding['ruleName']} on {path} ({where}): {finding.get('description', '')}".strip()},
        "locations": [location],
        "partialFingerprints": {
            "aigwFinding/v1": hashlib.sha256(f"{finding['ruleName']}|{path}|{where}".encode()).hexdigest(),
        },
        "properties": {
            "pack": pack,
            "ruleName": finding["ruleName"],
            "constructPath": path,
            "stack": stack,
            "logicalId": logical_id,
            "template": provenance.templates.get(stack),
        },
    }
    if acknowledged:
        at_path = finding.get("acknowledgedAt") or path
        suppression: dict[str, Any] = {"kind": "inSource", "status": "accepted"}
        if reason := finding.get("reason"):  # the CDK leaves it out when empty; constructs/compliance.py never does
            suppression["justification"] = reason
        if written := provenance.acknowledged.get(at_path, {}).get(finding.get("acknowledgedId", "")):
            file, _, line = written.rpartition(":")
            suppression["location"] = _location(file, int(line))
        suppression["properties"] = {"acknowledgedAt": at_path, "acknowledgedId": finding.get("acknowledgedId")}
        found["suppressions"] = [suppression]
    return found


def sarif(assembly: Path) -> dict[str, Any]:
    report = json.loads((assembly / "validation-report.json").read_bytes())
    provenance = Provenance.of(assembly)
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [run_for(plugin, provenance) for plugin in report["pluginReports"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("assembly", nargs="?", type=Path, default=Path("cdk.out"))
    parser.add_argument("--out", type=Path, help="the SARIF file (default: CDK_OUT/compliance.sarif)")
    args = parser.parse_args(argv)
    if not (args.assembly / "validation-report.json").is_file():
        print(f"sarif: {args.assembly} has no validation-report.json (run `make synth` first)", file=sys.stderr)
        return 2
    log = sarif(args.assembly)
    out = args.out or args.assembly / "compliance.sarif"
    out.write_text(json.dumps(log, indent=2) + "\n")
    results, result = [r for run in log["runs"] for r in run["results"]], gate(log)
    not_run = f", did not run: {', '.join(result['packs_not_run'])}" if result["packs_not_run"] else ""
    print(f"wrote {out}: {len(results)} findings in {len(log['runs'])} packs, "
          f"{result['open_findings']} not acknowledged{not_run}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
