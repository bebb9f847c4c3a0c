"""`make evidence`: one zip an auditor checks against a commit; its manifest's hashes match its files."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from scripts import evidence
from tests.conftest import Synthesized

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def assembly(prod: Synthesized, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's prod assembly, without the 31 MB of wheels in the gateway bundle (only its settings file)."""
    copy = tmp_path_factory.mktemp("evidence") / "cdk.out"
    shutil.copytree(prod.directory, copy, ignore=shutil.ignore_patterns("asset.*"))
    for settings in prod.directory.glob(f"asset.*/{evidence.SETTINGS_FILE}"):
        (copy / settings.parent.name).mkdir()
        shutil.copy(settings, copy / settings.parent.name / settings.name)
    # An earlier synth's bundle, left behind in cdk.out as the CDK does: no stack deploys it any more.
    (copy / "asset.0ld").mkdir()
    (copy / "asset.0ld" / evidence.SETTINGS_FILE).write_text('{"limits": "of an earlier synth"}')
    return copy


def test_the_bundle_holds_what_an_auditor_needs_and_its_manifest_proves_each_file(
    prod: Synthesized, assembly: Path, tmp_path: Path
) -> None:
    path, results = evidence.bundle(assembly, "prod", tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert path.name in (f"evidence-prod-{head.stdout.strip()[:12]}.zip", f"evidence-prod-{head.stdout[:12]}-dirty.zip")
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(files.pop("manifest.json"))
    assert sorted(entry["path"] for entry in manifest["files"]) == sorted(files)
    for entry in manifest["files"]:
        data = files[entry["path"]]
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry["sha256"], entry["bytes"]), entry["path"]
    assert manifest["commit"]["sha"] == head.stdout.strip() and manifest["environment"] == "prod"
    assert manifest["results"] == results
    assert results["gate"] == {"passed": True, "open_findings": 0, "packs_not_run": []}
    assert results["controls"] == {"passed": True}
    assert {"aws-cdk-lib", "cdk-nag", "python", "node", "graphviz", "aws-cdk (CLI)"} <= set(manifest["tools"])

    for stack in prod.stacks:
        assert json.loads(files[f"templates/{stack.artifact_id}.template.json"]) == prod.template_json(stack.node.id)
    for name in ("validation-report.json", "audit-report.md", "audit-report.html", "compliance.sarif"):
        assert files[name]
    assert files["architecture.png"][:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in files["architecture.svg"]
    assert b"<img src='architecture.svg'" in files["audit-report.html"]

    settings = json.loads(files["gateway-settings.json"])
    limits = prod.config.limits
    assert (settings["limits"]["fail_mode"], settings["limits"]["user_per_hour"]) == (
        limits.fail_mode,
        limits.user_per_hour,
    )
    assert settings["policy"]["rules"], "the content policy's rules are part of the evidence"

    acknowledged = json.loads(files["acknowledgments.json"])
    from_report = {
        (plugin["pluginName"], suppressed["ruleName"], construct["constructPath"], suppressed["reason"])
        for plugin in prod.validation_report["pluginReports"]
        for suppressed in plugin["suppressedViolations"]
        for construct in suppressed["violatingConstructs"]
    }
    packs = {(a["tool"], a["rule"], a["construct"], a["reason"]) for a in acknowledged if "construct" in a}
    assert packs == from_report
    assert all(a["written_at"] for a in acknowledged if "construct" in a)
    assert {a["tool"] for a in acknowledged} >= {"checkov", "cfn-lint"}
    assert all(len(a["reason"]) >= 40 for a in acknowledged)


def test_nothing_in_the_bundle_names_the_machine_that_made_it(assembly: Path, tmp_path: Path) -> None:
    """The validation report's stack traces name the synth's temporary jsii folders: left out, so the same commit
    synthesized again gives the same bundle, and no build machine's paths reach an auditor."""
    assert "jsii-kernel-" in (assembly / "validation-report.json").read_text(), "the synth wrote no traces to strip"
    path, _ = evidence.bundle(assembly, "prod", tmp_path)
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
        assert {info.create_system for info in archive.infolist()} == {3}
    for name, data in files.items():
        for machine in (b"jsii-kernel-", str(ROOT).encode(), str(assembly).encode(), str(tmp_path).encode()):
            assert machine not in data, (name, machine)
    report = json.loads(files["validation-report.json"])
    assert [p["pluginName"] for p in report["pluginReports"]] == [
        p["pluginName"] for p in json.loads((assembly / "validation-report.json").read_text())["pluginReports"]
    ]
    assert not {"stackTraces", "acknowledgedStackTrace"} & set(json.dumps(report).split('"'))


def test_the_same_assembly_and_commit_give_the_same_bytes(assembly: Path, tmp_path: Path) -> None:
    first, _ = evidence.bundle(assembly, "prod", tmp_path / "first")
    second, _ = evidence.bundle(assembly, "prod", tmp_path / "second")
    assert first.read_bytes() == second.read_bytes()


def test_an_assembly_of_another_environment_is_refused(assembly: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="another environment than 'dev': aigw-prod-"):
        evidence.bundle(assembly, "dev", tmp_path)
