"""Independent scanners on a cloud assembly's templates, as CI and auditors run them: cfn-lint and checkov.

    python scripts/scan_templates.py cdk.out        (make scan ENV=prod synthesizes first)

Prints every finding; exits non-zero if cfn-lint reports anything or checkov fails a check that is not
acknowledged in code (`constructs/compliance.py:acknowledge_scanner` writes the acknowledgment, with its
reason, into the resource's Metadata, where each scanner reads it). The acknowledged checks are listed with
their reasons, for auditors. cfn-lint comes with the project's virtualenv (moto needs it); checkov pins
another boto3, so it has a virtualenv of its own (`.venv-scan`, from requirements-scan.txt).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
CHECKOV = ROOT / ".venv-scan" / "bin" / "checkov"


@dataclass(frozen=True)
class Finding:
    scanner: str
    rule: str
    template: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"{self.scanner} {self.rule} {self.template} {self.resource}: {self.message}"


def templates(assembly: Path) -> list[Path]:
    found = sorted(assembly.glob("*.template.json"))
    if not found:
        raise SystemExit(f"scan: no *.template.json in {assembly}: synthesize first (make synth ENV=…)")
    return found


def cfn_lint(files: list[Path]) -> list[Finding]:
    """Every error, warning and informational match (cfn-lint's exit code is a bit set of those three)."""
    completed = subprocess.run(
        [str(CFN_LINT), "--format", "json", *map(str, files)], capture_output=True, text=True, check=False
    )
    if completed.returncode & ~(2 | 4 | 8) or not completed.stdout.strip():
        raise SystemExit(f"scan: cfn-lint failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return [
        Finding(
            "cfn-lint",
            match["Rule"]["Id"],
            Path(match["Filename"]).name,
            "/".join(str(part) for part in match.get("Location", {}).get("Path", [])[:2]),
            match["Message"],
        )
        for match in json.loads(completed.stdout)
    ]


def checkov(files: list[Path]) -> tuple[list[Finding], list[Finding]]:
    """(failed, acknowledged) checks, each acknowledged one with the reason the code gives."""
    arguments = [str(CHECKOV), "--framework", "cloudformation", "--output", "json", "--compact"]
    for file in files:
        arguments += ["--file", str(file)]
    completed = subprocess.run(arguments, capture_output=True, text=True, check=False)
    try:
        reports = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise SystemExit(
            f"scan: checkov printed no report ({completed.returncode}): {completed.stderr[-2000:]}"
        ) from error
    failed: list[Finding] = []
    acknowledged: list[Finding] = []
    # One report per framework; with --quiet and nothing failed, checkov may print a summary without results.
    for report in reports if isinstance(reports, list) else [reports]:
        results = report.get("results", {})
        for check in results.get("failed_checks", []):
            failed.append(_checkov_finding(check, check.get("check_name", "")))
        for check in results.get("skipped_checks", []):
            acknowledged.append(_checkov_finding(check, check.get("check_result", {}).get("suppress_comment", "")))
    return failed, acknowledged


def _checkov_finding(check: dict[str, Any], message: str) -> Finding:
    return Finding("checkov", check["check_id"], Path(check["file_path"]).name, check["resource"], message)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scan_templates", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("assembly", type=Path, nargs="?", default=ROOT / "cdk.out")
    args = parser.parse_args(argv)
    files = templates(args.assembly)
    lint = cfn_lint(files)
    failed, acknowledged = checkov(files)
    for finding in [*lint, *failed]:
        print(f"FAIL  {finding}")
    for finding in acknowledged:
        print(f"ACK   {finding}")
    print(
        f"{len(files)} templates: cfn-lint {len(lint)} findings; "
        f"checkov {len(failed)} failed, {len(acknowledged)} acknowledged in code"
    )
    return 1 if lint or failed else 0


if __name__ == "__main__":
    sys.exit(main())
