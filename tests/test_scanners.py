"""Independent scanners on the synthesized templates, as auditors run them (`make scan`): cfn-lint reports
nothing, and checkov fails no check that is not acknowledged in code, with its reason.

checkov takes minutes to start, so it runs once, over prod's templates and two small ones that show the check
can fail (an unencrypted queue) and that an acknowledgment in a resource's Metadata is honoured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts import scan_templates
from scripts.scan_templates import Finding
from tests.conftest import Synthesized

REASON = "a queue of public build notices, deliberately unencrypted for this test"


def write(path: Path, resources: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}))
    return path


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scanned")
    bad = write(
        folder / "Bad.template.json",
        {
            "Queue": {"Type": "AWS::SQS::Queue"},
            "Other": {
                "Type": "AWS::SQS::Queue",
                "DependsOn": ["Queue"],
                "Properties": {
                    "KmsMasterKeyId": "alias/aws/sqs",
                    "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Queue", "Arn"]}, "maxReceiveCount": 3},
                },
            },
        },
    )
    acknowledged = write(
        folder / "Acknowledged.template.json",
        {
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_27", "comment": REASON}]}},
            }
        },
    )
    return {"bad": bad, "acknowledged": acknowledged}


@pytest.fixture(scope="module")
def checkov(prod: Synthesized, samples: dict[str, Path]) -> tuple[list[Finding], list[Finding]]:
    return scan_templates.checkov([*scan_templates.templates(prod.directory), *samples.values()])


def test_cfn_lint_reports_nothing(each_environment: Synthesized) -> None:
    findings = scan_templates.cfn_lint(scan_templates.templates(each_environment.directory))
    assert findings == [], "\n".join(map(str, findings))


def test_checkov_fails_nothing_that_is_not_acknowledged_with_a_reason(
    prod: Synthesized, checkov: tuple[list[Finding], list[Finding]]
) -> None:
    """On prod only: dev's templates differ in sizes and names, not in what checkov looks at."""
    ours = {path.name for path in scan_templates.templates(prod.directory)}
    failed, acknowledged = ([f for f in findings if f.template in ours] for findings in checkov)
    assert failed == [], "\n".join(map(str, failed))
    assert acknowledged, "the templates acknowledge some checks: checkov must have read them"
    for finding in acknowledged:
        assert len(finding.message) >= 40, f"{finding}: an acknowledgment needs a specific reason"


def test_both_scanners_would_see_a_finding(
    samples: dict[str, Path], checkov: tuple[list[Finding], list[Finding]]
) -> None:
    """The checks above can fail: an unencrypted queue, and a DependsOn its GetAtt already implies."""
    assert [finding.rule for finding in scan_templates.cfn_lint([samples["bad"]])] == ["W3005"]
    failed, _ = checkov
    assert ("CKV_AWS_27", "AWS::SQS::Queue.Queue") in {
        (f.rule, f.resource) for f in failed if f.template == "Bad.template.json"
    }


def test_an_acknowledgment_in_metadata_is_honoured_and_reported_with_its_reason(
    checkov: tuple[list[Finding], list[Finding]],
) -> None:
    failed, acknowledged = checkov
    name = "Acknowledged.template.json"
    assert not [finding for finding in failed if finding.template == name]
    assert [(f.rule, f.message) for f in acknowledged if f.template == name] == [("CKV_AWS_27", REASON)]
