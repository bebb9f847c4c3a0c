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


def steps(job: str | None = None) -> list[dict[str, Any]]:
    return [step for name, body in workflow()["jobs"].items() if job in (None, name) for step in body["steps"]]


def test_every_action_is_pinned_to_a_commit_with_its_release_named() -> None:
    uses = [step["uses"] for step in steps() if "uses" in step]
    assert len(set(uses)) == 7
    assert all(PINNED.match(action) for action in uses), uses
    for action in uses:  # the comment that says which release the commit is
        assert re.search(rf"uses: {re.escape(action)} # v\d+\.\d+\.\d+$", WORKFLOW.read_text(), re.MULTILINE)


def test_it_runs_on_pull_requests_and_main_with_read_only_defaults() -> None:
    document = workflow()
    assert "pull_request" in document[True]  # YAML 1.1 reads the key `on` as true
    assert document[True]["push"] == {"branches": ["main"]}
    assert document["permissions"] == {"contents": "read"}
    jobs = document["jobs"]
    assert jobs["compliance"]["permissions"] == {"contents": "read", "security-events": "write"}
    for job in jobs.values():
        checkout = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@"))
        assert checkout["with"]["persist-credentials"] is False
    # Nothing that runs after a cancelled run's steps, and nothing that hides a failure.
    conditions = [step["if"] for step in steps() if "if" in step]
    assert not any("always()" in condition for condition in conditions)
    assert not any("continue-on-error" in step for step in steps())


def test_only_the_diff_job_may_ask_for_an_oidc_token_and_it_runs_no_code_of_the_change() -> None:
    jobs = workflow()["jobs"]
    assert [name for name, job in jobs.items() if "id-token" in job["permissions"]] == ["diff"]
    diff = jobs["diff"]
    assert diff["permissions"] == {"contents": "read", "id-token": "write"}
    assert diff["needs"] == "compliance" and diff["if"] == "vars.AIGW_DIFF_ROLE_ARN != ''"
    commands = [step["run"] for step in diff["steps"] if "run" in step]
    assert commands == ["npm ci --ignore-scripts", "npx --no-install cdk diff --app cdk.out --method template"]
    by_name = {step.get("name"): step for step in diff["steps"]}
    assert by_name["AWS credentials for cdk diff (OIDC)"]["with"]["role-to-assume"] == "${{ vars.AIGW_DIFF_ROLE_ARN }}"
    downloaded = next(step for step in diff["steps"] if step.get("uses", "").startswith("actions/download-artifact@"))
    uploaded = next(step for step in steps("compliance") if step.get("name") == "Templates for cdk diff")
    assert downloaded["with"]["name"] == uploaded["with"]["name"]
    assert uploaded["if"] == "vars.AIGW_DIFF_ROLE_ARN != ''"
    skipped = next(step for step in steps("compliance") if step.get("name") == "cdk diff skipped")
    assert skipped["if"] == "vars.AIGW_DIFF_ROLE_ARN == ''"


def test_the_gate_scanners_sarif_and_evidence_run_and_their_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    declared = re.search(r"^\.PHONY: (.*)$", makefile, re.MULTILINE)
    assert declared
    phony = set(declared[1].split())
    targets = [match[1] for step in steps() for match in re.finditer(r"\bmake (\w[\w-]*)", step.get("run", ""))]
    assert targets == ["install", "synth", "scan", "sarif", "evidence"]
    assert set(targets) <= phony and all(re.search(rf"^{target}:", makefile, re.MULTILINE) for target in targets)
    uploaded = next(step for step in steps() if step.get("name") == "Upload SARIF and evidence")
    assert uploaded["with"]["path"].split() == ["cdk.out/compliance.sarif", "evidence-*.zip"]
    sarif = next(step for step in steps() if "upload-sarif@" in step.get("uses", ""))
    assert sarif["with"]["sarif_file"] == "cdk.out/compliance.sarif"
    # Code scanning only where it exists: public repositories, or private ones that say they have it.
    assert "!github.event.repository.private || vars.AIGW_CODE_SCANNING == 'true'" in sarif["if"]
