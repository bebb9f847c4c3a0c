"""Acknowledgments must say why; the gate reads every violation, warnings included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import aws_sns as sns
from constructs.compliance import AWS_SOLUTIONS, acknowledge, unacknowledged_findings

from tests.conftest import BareStack


def test_a_short_or_empty_reason_is_refused(bare_stack: BareStack) -> None:
    topic = sns.Topic(bare_stack, "Topic")
    for reason in ("", "   ", "accepted risk"):
        with pytest.raises(ValueError, match="needs a specific reason"):
            acknowledge(topic, f"{AWS_SOLUTIONS}-SNS3", reason=reason)


def test_warnings_count_as_findings(tmp_path: Path) -> None:
    report = {
        "pluginReports": [
            {
                "pluginName": "NIST.800.53.R5",
                "violations": [
                    {
                        "ruleName": "NIST.800.53.R5-VPCDefaultSecurityGroupClosed",
                        "severity": "warning",
                        "violatingConstructs": [{"constructPath": "Network/Vpc/Resource"}],
                    }
                ],
            },
            {"pluginName": "AwsSolutions", "violations": []},
        ]
    }
    (tmp_path / "validation-report.json").write_text(json.dumps(report))
    assert unacknowledged_findings(tmp_path) == [
        "NIST.800.53.R5 NIST.800.53.R5-VPCDefaultSecurityGroupClosed (warning): Network/Vpc/Resource"
    ]
