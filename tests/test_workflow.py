"""The compliance workflow users copy (.github/workflows/compliance.yml): pinned, least privilege, and every make
target it runs exists. Its shape against GitHub's schema is checked by `make lint`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "compliance.yml"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def steps() -> list[dict[str, Any]]:
    return [step for job in workflow()["jobs"].values() for step in job["steps"]]


def test_every_action_is_pinned_to_a_commit_with_its_release_named() -> None:
    uses = [step["uses"] for step in steps() if "uses" in step]
    assert len(uses) == 6
    assert all(PINNED.match(action) for action in uses), uses
    for action in uses:  # the comment that says which release the commit is
        assert re.search(rf"uses: {re.escape(action)} # v\d+\.\d+\.\d+$", WORKFLOW.read_text(), re.MULTILINE)


def test_it_runs_on_pull_requests_with_read_only_defaults() -> None:
    document = workflow()
    assert "pull_request" in document[True]  # YAML 1.1 reads the key `on` as true
    assert document["permissions"] == {"contents": "read"}
    (job,) = document["jobs"].values()
    assert job["permissions"] == {"contents": "read", "security-events": "write", "id-token": "write"}
    checkout = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False


def test_the_gate_scanners_sarif_and_evidence_run_and_their_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    declared = re.search(r"^\.PHONY: (.*)$", makefile, re.MULTILINE)
    assert declared
    phony = set(declared[1].split())
    targets = [match[1] for step in steps() for match in re.finditer(r"\bmake (\w[\w-]*)", step.get("run", ""))]
    assert targets == ["install", "synth", "scan", "sarif", "evidence"]
    assert set(targets) <= phony and all(re.search(rf"^{target}:", makefile, re.MULTILINE) for target in targets)
    uploaded = next(step for step in steps() if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert uploaded["with"]["path"].split() == ["cdk.out/compliance.sarif", "evidence-*.zip"]
    sarif = next(step for step in steps() if "upload-sarif@" in step.get("uses", ""))
    assert sarif["with"]["sarif_file"] == "cdk.out/compliance.sarif"


def test_cdk_diff_runs_only_with_a_role_configured() -> None:
    by_name = {step.get("name"): step for step in steps()}
    credentials = by_name["AWS credentials for cdk diff (OIDC)"]
    assert credentials["if"] == "vars.AIGW_DIFF_ROLE_ARN != ''"
    assert credentials["with"]["role-to-assume"] == "${{ vars.AIGW_DIFF_ROLE_ARN }}"
    assert by_name["cdk diff against the deployed stacks"]["if"] == "vars.AIGW_DIFF_ROLE_ARN != ''"
    assert by_name["cdk diff skipped"]["if"] == "vars.AIGW_DIFF_ROLE_ARN == ''"
