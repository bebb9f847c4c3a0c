"""`python -m gateway.policy`: one JSON line per file; exit 2 on bad arguments or bad rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from config import load_config
from config.render import gateway_settings

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.policy", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_one_json_line_per_file(tmp_path: Path) -> None:
    clean, leaky = tmp_path / "clean.py", tmp_path / "leaky.env"
    clean.write_text("print('hello')\n")
    leaky.write_text("AWS_KEY=AKIAZ7QXMP3VBN2LKW4R\ncard=4000 0012 3456 7899\nowner=alice@bank.co.uk\n")
    completed = run("--env", "dev", str(clean), str(leaky))
    assert completed.returncode == 0, completed.stderr
    first, second = (json.loads(line) for line in completed.stdout.splitlines())
    assert first["file"] == str(clean) and first["action"] == "allow" and first["matches"] == []
    assert second["action"] == "block"
    assert second["matches"] == [
        {"rule": "aws-access-key-id", "count": 1},
        {"rule": "card-number", "count": 1},
        {"rule": "email-address", "count": 1},
    ]
    assert isinstance(second["ms"], float) and second["ms"] >= 0


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert run("--env", "dev").returncode == 2  # no files
    missing = run("--env", "dev", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    unknown_env = run("--env", "staging", __file__)
    assert unknown_env.returncode == 2 and "no such environment 'staging'" in unknown_env.stderr


def test_bad_rule_exits_2_naming_the_rule(tmp_path: Path) -> None:
    data = gateway_settings(load_config("dev")).model_dump(mode="json")
    data["policy"]["rules"].append({"id": "lookahead", "pattern": "secret(?=s)", "action": "block"})
    settings = tmp_path / "gateway.json"
    settings.write_text(json.dumps(data))
    completed = run("--settings", str(settings), __file__)
    assert completed.returncode == 2
    assert "rule lookahead: pattern: 'secret(?=s)' is not a valid RE2 pattern" in completed.stderr
