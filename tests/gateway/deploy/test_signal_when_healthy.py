"""signal-when-healthy.sh as a process: a local /healthz that answers what the test says, and a fake
cfn-signal first on PATH that records its arguments in the same log as the health checks (so the log
shows what was signalled after which answer)."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "gateway" / "deploy" / "signal-when-healthy.sh"
TARGET = ["--stack", "aigw-dev-gateway", "--resource", "FleetGroupASG1234", "--region", "eu-west-1"]
SIGNALLED = "cfn-signal --stack aigw-dev-gateway --resource FleetGroupASG1234 --region eu-west-1 --role proxy-role"


@dataclass
class Health:
    """A /healthz that answers `statuses` in turn (the last one for ever), logging each answer."""

    url: str
    statuses: list[int]


def fake_cfn_signal(bin_dir: Path, log: Path, exit_code: int = 0) -> None:
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "cfn-signal"
    # The order cfn-signal gets its options in does not matter to it: log them sorted, --success first.
    fake.write_text(
        "#!/bin/bash\n"
        'success=""; rest=()\n'
        'while [ $# -gt 0 ]; do if [ "$1" = --success ]; then success=$2; else rest+=("$1" "$2"); fi; shift 2; done\n'
        f'echo "cfn-signal ${{rest[*]}} success=$success" >> {log}\n'
        f"exit {exit_code}\n"
    )
    fake.chmod(0o755)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "events.log"


@pytest.fixture
def health(log: Path) -> Iterator[Health]:
    statuses: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            with log.open("a") as events:
                events.write(f"healthz {status}\n")
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Health(f"http://127.0.0.1:{server.server_address[1]}/healthz", statuses)
    finally:
        server.shutdown()
        server.server_close()


def run(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    command = ["bash", str(SCRIPT), *TARGET, "--role", "proxy-role", "--url", url, "--interval", "0.1", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_success_is_signalled_only_after_a_200(tmp_path: Path, log: Path, health: Health) -> None:
    fake_cfn_signal(tmp_path / "bin", log)
    health.statuses[:] = [503, 503, 503, 200]
    completed = run(tmp_path, health.url, "--wait", "30")
    assert completed.returncode == 0, completed.stderr
    assert log.read_text().splitlines() == [
        "healthz 503",
        "healthz 503",
        "healthz 503",
        "healthz 200",
        f"{SIGNALLED} success=true",
    ]


def test_never_healthy_signals_failure_after_the_bounded_wait(tmp_path: Path, log: Path, health: Health) -> None:
    fake_cfn_signal(tmp_path / "bin", log)
    health.statuses[:] = [503]
    started = time.monotonic()
    completed = run(tmp_path, health.url, "--wait", "2")
    elapsed = time.monotonic() - started
    assert completed.returncode != 0
    *checks, signalled = log.read_text().splitlines()
    assert signalled == f"{SIGNALLED} success=false"
    assert len(checks) >= 2 and set(checks) == {"healthz 503"}  # it kept asking until the wait ran out
    assert 1 <= elapsed < 20  # bash's SECONDS counts whole seconds: the wait ends within its last second
    assert "answered 503 for 2s, signalling FAILURE" in completed.stderr


def test_nothing_listening_signals_failure(tmp_path: Path, log: Path) -> None:
    fake_cfn_signal(tmp_path / "bin", log)
    completed = run(tmp_path, "http://127.0.0.1:9/healthz", "--wait", "1")
    assert completed.returncode != 0
    assert log.read_text().splitlines() == [f"{SIGNALLED} success=false"]


def test_a_refused_signal_does_not_fail_a_healthy_instance(tmp_path: Path, log: Path, health: Health) -> None:
    # An instance a scale-out launched: no create or update waits for it, so CloudFormation refuses the signal.
    fake_cfn_signal(tmp_path / "bin", log, exit_code=1)
    health.statuses[:] = [200]
    completed = run(tmp_path, health.url, "--wait", "5")
    assert completed.returncode == 0
    assert log.read_text().splitlines() == ["healthz 200", f"{SIGNALLED} success=true"]
    assert "cfn-signal failed" in completed.stderr


def test_missing_target_is_refused_before_any_signal(tmp_path: Path, log: Path) -> None:
    fake_cfn_signal(tmp_path / "bin", log)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    completed = subprocess.run(
        ["bash", str(SCRIPT), "--stack", "s"], env=env, capture_output=True, text=True, timeout=10, check=False
    )
    assert completed.returncode == 2 and "--resource and --region are required" in completed.stderr
    assert not log.exists()
