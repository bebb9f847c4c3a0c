"""`make gateway-local`: the printed curl line works against the running gateway."""

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
    assert "Authorization: Bearer ey" in curl and "/invoke" in curl
    assert '"text":"Hello from the fake vendor."' in completed.stdout
