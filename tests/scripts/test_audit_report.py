"""`make audit-report`: evidence from a cloud assembly alone, and a FAIL that names what is wrong."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Synthesized

ROOT = Path(__file__).resolve().parents[2]
CONTROLS = (
    "Encryption at rest",
    "Encryption in transit",
    "Retention",
    "Network isolation",
    "Multi-AZ",
    "Least privilege",
    "Logging",
)


def report(assembly: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/audit_report.py", str(assembly)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def copy_with(
    dev: Synthesized, tmp_path: Path, change: Callable[[dict[str, Any]], None], stack: str = "Gateway"
) -> Path:
    """A copy of the dev assembly with one change to one stack's template."""
    assembly = tmp_path / "cdk.out"
    shutil.copytree(dev.directory, assembly, ignore=shutil.ignore_patterns("asset.*"))
    template_path = assembly / f"{stack}.template.json"
    template = json.loads(template_path.read_text())
    change(template["Resources"])
    template_path.write_text(json.dumps(template))
    return assembly


def of_type(resources: dict[str, Any], resource_type: str) -> list[tuple[str, dict[str, Any]]]:
    return [(k, r) for k, r in resources.items() if r["Type"] == resource_type]


def test_the_real_synth_passes_every_control(dev: Synthesized, tmp_path: Path) -> None:
    assembly = tmp_path / "cdk.out"
    shutil.copytree(dev.directory, assembly, ignore=shutil.ignore_patterns("asset.*"))
    completed = report(assembly)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    text = (assembly / "audit-report.md").read_text()
    for control in CONTROLS:
        assert f"## {control}: PASS" in text
    assert "FAIL" not in text.replace("PASS", "")
    for pack in ("AwsSolutions", "PCI.DSS.321", "NIST.800.53.R5"):
        assert f"### {pack}: PASS (0 unacknowledged findings)" in text  # listed although the report omits clean packs
    assert "IAM5" in text and "Every '*' here carries a condition" in text  # acknowledgments with their reasons
    page = (assembly / "audit-report.html").read_text()
    assert page.startswith("<!doctype html>") and "<h2>Multi-AZ: PASS</h2>" in page and "<table>" in page
    # The architecture drawn from the same templates, beside the report and shown in it.
    assert "![architecture](architecture.svg)" in text and "<img src='architecture.svg'" in page
    assert (assembly / "architecture.svg").read_text().lstrip().startswith("<?xml")


def test_a_bucket_without_encryption_fails_by_name(dev: Synthesized, tmp_path: Path) -> None:
    def unencrypt(resources: dict[str, Any]) -> None:
        (logical_id, bucket), *_ = of_type(resources, "AWS::S3::Bucket")
        del bucket["Properties"]["BucketEncryption"]
        unencrypt.name = logical_id  # type: ignore[attr-defined]

    completed = report(copy_with(dev, tmp_path, unencrypt))
    assert completed.returncode == 1
    assert f"FAIL Encryption at rest: Gateway/{unencrypt.name}: SSEAlgorithm=null" in completed.stdout  # type: ignore[attr-defined]


def test_a_shortened_expiration_fails_by_name(dev: Synthesized, tmp_path: Path) -> None:
    def shorten(resources: dict[str, Any]) -> None:
        for _, bucket in of_type(resources, "AWS::S3::Bucket"):
            for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]:
                rule["ExpirationInDays"] = 30

    completed = report(copy_with(dev, tmp_path, shorten))
    assert completed.returncode == 1
    assert (
        "FAIL Retention: Gateway/LoadBalancerAccessLogs" in completed.stdout
        and "ExpirationInDays=[30]" in completed.stdout
    )


def test_an_internet_facing_load_balancer_fails_by_name(dev: Synthesized, tmp_path: Path) -> None:
    def expose(resources: dict[str, Any]) -> None:
        for _, balancer in of_type(resources, "AWS::ElasticLoadBalancingV2::LoadBalancer"):
            balancer["Properties"]["Scheme"] = "internet-facing"

    completed = report(copy_with(dev, tmp_path, expose))
    assert completed.returncode == 1
    assert (
        "FAIL Network isolation: Gateway/LoadBalancer" in completed.stdout
        and "Scheme=internet-facing" in completed.stdout
    )
    assert "## Network isolation: FAIL" in (tmp_path / "cdk.out" / "audit-report.md").read_text()


def test_not_an_assembly_exits_2(tmp_path: Path) -> None:
    completed = report(tmp_path)
    assert completed.returncode == 2 and "not a synthesized cloud assembly" in completed.stderr


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
        {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::x"},
    ],
)
def test_an_unconditioned_wildcard_fails_least_privilege(
    dev: Synthesized, tmp_path: Path, statement: dict[str, str]
) -> None:
    def widen(resources: dict[str, Any]) -> None:
        for _, policy in of_type(resources, "AWS::IAM::ManagedPolicy"):
            policy["Properties"]["PolicyDocument"]["Statement"].append({**statement, "Sid": "TooWide"})

    completed = report(copy_with(dev, tmp_path, widen))
    assert completed.returncode == 1 and "FAIL Least privilege: Gateway/FleetPolicy" in completed.stdout


def audit_bucket(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [(k, b) for k, b in of_type(resources, "AWS::S3::Bucket") if "ObjectLockEnabled" in b["Properties"]]
    return found


def test_the_audit_bucket_without_encryption_fails_by_name(dev: Synthesized, tmp_path: Path) -> None:
    def unencrypt(resources: dict[str, Any]) -> None:
        del audit_bucket(resources)[1]["Properties"]["BucketEncryption"]

    completed = report(copy_with(dev, tmp_path, unencrypt, stack="Audit"))
    assert completed.returncode == 1
    logical_id = audit_bucket(dev.template_json("Audit")["Resources"])[0]
    assert f"FAIL Encryption at rest: Audit/{logical_id}: SSEAlgorithm=null" in completed.stdout


def test_the_audit_bucket_expiring_at_30_days_fails_by_name(dev: Synthesized, tmp_path: Path) -> None:
    def shorten(resources: dict[str, Any]) -> None:
        for rule in audit_bucket(resources)[1]["Properties"]["LifecycleConfiguration"]["Rules"]:
            rule["ExpirationInDays"] = 30

    completed = report(copy_with(dev, tmp_path, shorten, stack="Audit"))
    assert completed.returncode == 1
    logical_id = audit_bucket(dev.template_json("Audit")["Resources"])[0]
    assert (
        f"FAIL Retention: Audit/{logical_id}: ExpirationInDays=[30] (at least 365, an audit bucket)" in completed.stdout
    )


def test_an_unsubscribed_audit_group_or_unencrypted_stream_fails(dev: Synthesized, tmp_path: Path) -> None:
    def break_pipeline(resources: dict[str, Any]) -> None:
        for logical_id, _ in of_type(resources, "AWS::Logs::SubscriptionFilter"):
            del resources[logical_id]
        for _, stream in of_type(resources, "AWS::KinesisFirehose::DeliveryStream"):
            del stream["Properties"]["DeliveryStreamEncryptionConfigurationInput"]

    completed = report(copy_with(dev, tmp_path, break_pipeline, stack="Audit"))
    assert completed.returncode == 1
    assert "FAIL Logging: Audit/AuditLogs" in completed.stdout and "no subscription filter" in completed.stdout
    assert "FAIL Encryption at rest: Audit/AuditDeliveryStream" in completed.stdout
    assert "DeliveryStreamEncryptionConfigurationInput.KeyType=null" in completed.stdout
