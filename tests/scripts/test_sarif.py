"""`make sarif`: the gate's findings as SARIF 2.1.0, valid against OASIS's schema, each at its construct's line
and each acknowledgment a suppression with its reason and the line it is written on."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_sqs as sqs
from constructs.compliance import add_compliance_packs, record_sources

from scripts import audit_report, sarif
from tests.conftest import Synthesized

ROOT = Path(__file__).resolve().parents[2]
# OASIS SARIF 2.1.0 (errata 01), unmodified: oasis-tcs/sarif-spec, sarif-2.1/schema/sarif-schema-2.1.0.json as of
# commit a560296ca8c921f3bdb8d4a8db57ab83dae968a7. A JSON Schema draft-04 document.
SCHEMA = ROOT / "tests" / "schemas" / "sarif-schema-2.1.0.json"
SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"


def validate(log: dict[str, Any]) -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    errors = sorted(validator(schema).iter_errors(log), key=str)
    assert not errors, "\n".join(f"{list(error.absolute_path)}: {error.message}" for error in errors[:5])


def line_of(location: dict[str, Any]) -> str:
    physical = location["physicalLocation"]
    uri: str = physical["artifactLocation"]["uri"]
    line: int = physical["region"]["startLine"]
    return (ROOT / uri).read_text().splitlines()[line - 1]


def test_the_gates_findings_as_valid_sarif(each_environment: Synthesized, tmp_path: Path) -> None:
    log = sarif.sarif(each_environment.directory)
    validate(log)
    report = each_environment.validation_report
    assert [run["tool"]["driver"]["name"] for run in log["runs"]] == [p["pluginName"] for p in report["pluginReports"]]
    for run, plugin in zip(log["runs"], report["pluginReports"], strict=True):
        acknowledged = {
            (s["ruleName"], c["constructPath"], s["reason"])
            for s in plugin["suppressedViolations"]
            for c in s["violatingConstructs"]
        }
        results = run["results"]
        assert {
            (r["properties"]["ruleName"], r["properties"]["constructPath"], r["suppressions"][0]["justification"])
            for r in results
        } == acknowledged
        rules = run["tool"]["driver"]["rules"]
        for found in results:
            assert rules[found["ruleIndex"]]["id"] == found["ruleId"] == found["properties"]["ruleName"].split("[")[0]
            assert rules[found["ruleIndex"]]["properties"]["pack"] == plugin["pluginName"]
            properties = found["properties"]
            template = json.loads((each_environment.directory / properties["template"]).read_text())
            assert properties["logicalId"] in template["Resources"]
            # Where the resource's construct is created in this repository, and where it is acknowledged.
            created = line_of(found["locations"][0])
            segments = properties["constructPath"].split("/")
            assert any(f'"{segment}"' in created for segment in segments) or created.startswith("class "), created
            suppression = found["suppressions"][0]
            assert suppression["kind"] == "inSource" and suppression["status"] == "accepted"
            assert "acknowledge" in line_of(suppression["location"])


def test_a_failing_gate_still_gives_sarif_with_the_open_finding_where_it_is_written(tmp_path: Path) -> None:
    app = App(outdir=str(tmp_path), context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Bare", env=Environment(account="123456789012", region="eu-west-1"))
    sqs.Queue(stack, "Unencrypted", encryption=sqs.QueueEncryption.UNENCRYPTED)
    add_compliance_packs(app)
    record_sources(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    log = sarif.sarif(tmp_path)
    validate(log)
    open_results = [r for run in log["runs"] for r in run["results"] if "suppressions" not in r]
    assert {r["ruleId"] for r in open_results} >= {"AwsSolutions-SQS2", "AwsSolutions-SQS4"}
    for found in open_results:
        assert found["level"] == "error"
        assert found["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "Bare/Unencrypted/Resource"
        assert found["properties"]["logicalId"].startswith("Unencrypted")


def test_a_pack_that_did_not_run_a_resource_named_only_by_its_template_and_a_missing_reason(
    dev: Synthesized, tmp_path: Path
) -> None:
    """What the CDK writes for a plugin that threw (a failure without findings), for a finding a plugin names only
    by template and logical id (an empty construct path), and for an acknowledgment without a reason."""
    assembly = tmp_path / "cdk.out"
    shutil.copytree(dev.directory, assembly, ignore=shutil.ignore_patterns("asset.*"))
    stack = dev.stacks[0]
    logical_id, _ = next(iter(dev.template_json(stack.node.id)["Resources"].items()))
    by_template = {
        "constructPath": "",
        "cloudFormationResource": {"templatePath": f"{stack.artifact_id}.template.json", "logicalId": logical_id},
    }
    plugins = [
        {"pluginName": "Crashed", "conclusion": "failure", "violations": [], "suppressedViolations": [],
         "metadata": {"error": "Validation plugin 'Crashed' failed: boom"}},
        {"pluginName": "Guard", "pluginVersion": "9.9.9", "conclusion": "failure", "suppressedViolations": [],
         "violations": [{"ruleName": "rule_a", "severity": "error", "violatingConstructs": [by_template]},
                        {"ruleName": "rule_b", "severity": "warning", "violatingConstructs": [{"constructPath": ""}]}]},
        {"pluginName": "Nag", "conclusion": "success", "violations": [],
         "suppressedViolations": [{"ruleName": "rule_c", "severity": "error", "violatingConstructs": [by_template]}]},
    ]  # fmt: skip
    (assembly / "validation-report.json").write_text(json.dumps({"pluginReports": plugins}))

    log = sarif.sarif(assembly)
    validate(log)
    crashed, guard, nag = log["runs"]
    assert crashed["invocations"] == [
        {
            "executionSuccessful": False,
            "toolExecutionNotifications": [
                {"level": "error", "message": {"text": "Validation plugin 'Crashed' failed: boom"}}
            ],
        }
    ]
    assert guard["invocations"] == [{"executionSuccessful": True}] and guard["tool"]["driver"]["version"] == "9.9.9"
    assert sarif.gate(log) == {"passed": False, "open_findings": 2, "packs_not_run": ["Crashed"]}
    named, unnamed = guard["results"]
    assert (named["properties"]["stack"], named["properties"]["logicalId"]) == (stack.artifact_id, logical_id)
    assert named["properties"]["constructPath"].startswith(f"{stack.node.id}/")
    assert unnamed["properties"]["logicalId"] is None
    assert named["partialFingerprints"] != unnamed["partialFingerprints"]
    # Code scanning refuses a result without a file of the repository: every one has a line to show.
    for found in [*guard["results"], *nag["results"]]:
        assert line_of(found["locations"][0]) is not None
    (suppressed,) = nag["results"]
    assert suppressed["suppressions"][0]["kind"] == "inSource" and "justification" not in suppressed["suppressions"][0]

    packs = {pack.name: pack for pack in audit_report.packs(assembly)}
    assert [(name, packs[name].passed, packs[name].summary) for name in ("Crashed", "Guard", "Nag")] == [
        ("Crashed", False, "did not run: Validation plugin 'Crashed' failed: boom"),
        ("Guard", False, "2 unacknowledged findings"),
        ("Nag", True, "0 unacknowledged findings"),
    ]
