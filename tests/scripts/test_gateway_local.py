"""`make gateway-local`: the printed curl line works against the running gateway (over HTTPS, trusting the local
CA), and it serves sign-in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_printed_curl_line_works() -> None:
    completed = subprocess.run(
        [sys.executable, "scripts/gateway_local.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    curl = next(line for line in completed.stdout.splitlines() if line.startswith("curl "))
    assert "Authorization: Bearer ey" in curl and "/invoke" in curl and "--cacert" in curl
    assert " https://127.0.0.1:" in curl
    assert '"forceLoginMethod": "gateway"' in completed.stdout and "export NODE_EXTRA_CA_CERTS=" in completed.stdout
    assert "export CLAUDE_CODE_USE_BEDROCK=1 AWS_REGION=eu-west-1" in completed.stdout
    assert "models   eu.anthropic.claude-opus-5-5, " in completed.stdout  # what Claude Code picks by default here
    assert '"text":"Hello from the fake vendor."' in completed.stdout
