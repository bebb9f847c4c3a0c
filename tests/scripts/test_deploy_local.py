"""`make deploy-local` end to end: a real `cdk bootstrap` and `cdk deploy` against moto's server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.deploy
def test_local_deploy_creates_the_network_and_reports_what_moto_skipped(tmp_path: Path) -> None:
    config = load_config("dev")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    completed = subprocess.run(
        [sys.executable, "scripts/deploy_local.py", "--env", "dev", "--moto-log", str(tmp_path / "moto.log")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = completed.stdout
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    rows = [line.split() for line in output.splitlines() if line.startswith("aigw-dev-network ")]
    created = [(row[1], row[3]) for row in rows]
    assert ("AWS::EC2::VPC", "CREATE_COMPLETE") in created
    assert all(status == "CREATE_COMPLETE" for _, status in created)

    subnet_azs = [row[4] for row in rows if row[1] == "AWS::EC2::Subnet"]
    assert sorted(set(subnet_azs)) == sorted(config.availability_zones)
    assert len(subnet_azs) == 2 * len(config.availability_zones)

    endpoint_services = {row[5] for row in rows if row[1] == "AWS::EC2::VPCEndpoint"}
    region = config.region
    assert {
        f"com.amazonaws.{region}.{s}" for s in ("ssm", "logs", "kms", "sts", "s3", "bedrock-runtime")
    } <= endpoint_services

    assert [row for row in rows if row[1] == "AWS::Logs::LogGroup" and row[4] == "/aigw-dev/vpc-flow-logs"]
    # moto's CloudFormation does not model security-group egress rules: the report must say so.
    assert re.search(r"emulator skipped.*\n\s+AWS::EC2::SecurityGroupEgress: aigw-dev-network/", output)


def test_a_bad_environment_deploys_nothing() -> None:
    completed = subprocess.run(
        [sys.executable, "scripts/deploy_local.py", "--env", "staging"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "config/staging.yaml: no such environment 'staging'" in completed.stderr
