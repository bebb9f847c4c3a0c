"""One evidence bundle an auditor can check against a commit: evidence-<env>-<commit>.zip.

    python scripts/evidence.py --env prod [CDK_OUT] [--out DIR]      (default: cdk.out, the bundle into .)

From a synthesized cloud assembly: the templates (and the assembly's manifest), validation-report.json (less
its stack traces), the audit report (md and html), the findings as SARIF, the architecture diagram, the
gateway's settings as the fleet will read them (rate limits, fail mode, policy rules: gateway.json from the
deployed bundle), every acknowledgment with its reason, and manifest.json: each file's sha256, the commit (and
whether the working tree differed from it), the tool versions and the gate's and the controls' results. The zip
is reproducible: the same commit synthesized again with the same tools gives the same bytes (entries sorted,
timestamps the commit's, nothing of the machine's). Exits 1 when the gate or a control failed, or a rule pack
did not run (the bundle is still written, and says so).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import platform
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import audit_report, cloud_assembly, diagram, sarif

ROOT = Path(__file__).resolve().parent.parent
PYTHON_TOOLS = ("aws-cdk-lib", "constructs", "cdk-nag", "cdklabs-cdk-validator-cfnguard", "jsonschema")
REPORT_FILES = ("audit-report.md", "audit-report.html", "compliance.sarif")
TRACE_KEYS = {"stackTraces", "acknowledgedStackTrace"}
SETTINGS_FILE = "gateway.json"  # in the gateway bundle's asset folder (constructs/gateway_bundle.py)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def commit() -> dict[str, Any]:
    return {
        "sha": git("rev-parse", "HEAD"),
        "time": git("show", "-s", "--format=%cI", "HEAD"),
        "timestamp": int(git("show", "-s", "--format=%ct", "HEAD")),
        # Tracked files that differ from the commit: the bundle is then not the commit's alone.
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    versions |= {name: version for name in PYTHON_TOOLS if (version := sarif.installed_version(name))}
    for name, command in (("node", ["node", "--version"]), ("graphviz", ["dot", "-V"])):
        found = shutil.which(command[0])
        if found:
            completed = subprocess.run(command, capture_output=True, text=True, check=False)
            versions[name] = (completed.stdout or completed.stderr).strip()
    lock = json.loads((ROOT / "package-lock.json").read_bytes())
    versions["aws-cdk (CLI)"] = lock["packages"]["node_modules/aws-cdk"]["version"]
    return versions


def acknowledgments(assembly: Path, log: dict[str, Any]) -> list[dict[str, Any]]:
    """Every acknowledgment: the packs' (from the SARIF log's suppressions, with where they are written) and the
    independent scanners' (checkov's and cfn-lint's, from the templates' Metadata)."""
    found = [
        {
            "tool": run["tool"]["driver"]["name"],
            "rule": result["properties"]["ruleName"],
            "resource": f"{result['properties']['stack']}/{result['properties']['logicalId']}",
            "construct": result["properties"]["constructPath"],
            "reason": suppression["justification"],
            "written_at": _where(suppression.get("location")),
        }
        for run in log["runs"]
        for result in run["results"]
        for suppression in result.get("suppressions", [])
    ]
    for stack in cloud_assembly.stacks(assembly):
        for logical_id, resource in stack.template.get("Resources", {}).items():
            meta = resource.get("Metadata", {})
            for skip in meta.get("checkov", {}).get("skip", []):
                found.append({"tool": "checkov", "rule": skip["id"], "resource": f"{stack.id}/{logical_id}",
                              "reason": skip.get("comment", "")})  # fmt: skip
            reasons = meta.get("aigw-acknowledgments", {})
            for rule in meta.get("cfn-lint", {}).get("config", {}).get("ignore_checks", []):
                found.append({"tool": "cfn-lint", "rule": rule, "resource": f"{stack.id}/{logical_id}",
                              "reason": reasons.get(f"cfn-lint {rule}", "")})  # fmt: skip
    return sorted(found, key=lambda a: (a["tool"], a["resource"], a["rule"]))


def _where(location: dict[str, Any] | None) -> str | None:
    if not location:
        return None
    physical = location["physicalLocation"]
    return f"{physical['artifactLocation']['uri']}:{physical['region']['startLine']}"


def gateway_settings(assembly: Path) -> bytes:
    found = [folder / SETTINGS_FILE for folder in cloud_assembly.asset_directories(assembly)]
    found = [path for path in found if path.is_file()]
    if len(found) != 1:
        raise ValueError(f"expected one gateway bundle with {SETTINGS_FILE} in {assembly}'s assets, found {len(found)}")
    return found[0].read_bytes()


def validation_report(assembly: Path) -> bytes:
    """validation-report.json less its stack traces: JavaScript frames only (no line of this repository; SARIF
    has those), and they name the synthesizing machine's temporary folders, so no two synths would match."""

    def without_traces(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_traces(v) for k, v in value.items() if k not in TRACE_KEYS}
        return [without_traces(v) for v in value] if isinstance(value, list) else value

    report = without_traces(json.loads((assembly / "validation-report.json").read_bytes()))
    return (json.dumps(report, indent=2) + "\n").encode()


def contents(assembly: Path) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The bundle's files (name -> bytes) and the results that go into its manifest."""
    controls_passed = audit_report.main([str(assembly)]) == 0  # writes the reports and the diagram into it
    log = sarif.sarif(assembly)
    (assembly / "compliance.sarif").write_text(json.dumps(log, indent=2) + "\n")
    files: dict[str, bytes] = {name: (assembly / name).read_bytes() for name in REPORT_FILES}
    files["validation-report.json"] = validation_report(assembly)
    files["assembly-manifest.json"] = (assembly / "manifest.json").read_bytes()
    for stack in cloud_assembly.stacks(assembly):
        files[f"templates/{stack.template_file}"] = (assembly / stack.template_file).read_bytes()
    for fmt in ("dot", *diagram.FORMATS):
        files[f"{diagram.NAME}.{fmt}"] = (assembly / f"{diagram.NAME}.{fmt}").read_bytes()
    files["gateway-settings.json"] = gateway_settings(assembly)
    acknowledged = acknowledgments(assembly, log)
    files["acknowledgments.json"] = (json.dumps(acknowledged, indent=2) + "\n").encode()
    results = {
        "gate": sarif.gate(log),
        "controls": {"passed": controls_passed},
        "acknowledgments": len(acknowledged),
    }
    return files, results


def manifest(environment: str, files: dict[str, bytes], results: dict[str, Any], source: dict[str, Any]) -> bytes:
    document = {
        "bundle": "aigw compliance evidence",
        "environment": environment,
        "commit": source,
        "tools": tool_versions(),
        "results": results,
        "files": [
            {"path": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(files.items())
        ],
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def write_zip(path: Path, files: dict[str, bytes], timestamp: int) -> None:
    """Entries sorted, each stamped with `timestamp`, permissions fixed: the same files give the same zip."""
    stamp = time.gmtime(max(timestamp, 315532800))[:6]  # a zip cannot date before 1980
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix, whichever system writes it
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    path.write_bytes(buffer.getvalue())


def bundle(assembly: Path, environment: str, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    stacks = cloud_assembly.stacks(assembly)
    if not stacks:
        raise ValueError(f"{assembly} holds no stack")
    if other := sorted(stack.name for stack in stacks if not stack.name.startswith(f"aigw-{environment}-")):
        raise ValueError(f"{assembly} holds stacks of another environment than {environment!r}: {', '.join(other)}")
    source = commit()
    files, results = contents(assembly)
    files["manifest.json"] = manifest(environment, files, results, source)
    name = f"evidence-{environment}-{source['sha'][:12]}{'-dirty' if source['dirty'] else ''}.zip"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_zip(out_dir / name, files, source["timestamp"])
    return out_dir / name, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("assembly", nargs="?", type=Path, default=Path("cdk.out"))
    parser.add_argument("--env", required=True, help="the environment the assembly was synthesized for")
    parser.add_argument("--out", type=Path, default=Path(), help="folder for the zip (default: here)")
    args = parser.parse_args(argv)
    if not (args.assembly / "validation-report.json").is_file():
        print(f"evidence: {args.assembly} is not a synthesized cloud assembly (run `make synth`)", file=sys.stderr)
        return 2
    try:
        path, results = bundle(args.assembly, args.env, args.out)
    except ValueError as error:
        print(f"evidence: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}: gate {'passed' if results['gate']['passed'] else 'FAILED'}, "
          f"controls {'passed' if results['controls']['passed'] else 'FAILED'}, "
          f"{results['acknowledgments']} acknowledgments")  # fmt: skip
    return 0 if results["gate"]["passed"] and results["controls"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
