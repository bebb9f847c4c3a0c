"""An instance's workers: processes sharing one port (SO_REUSEPORT), each with its own files, all drained on stop."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

from gateway.settings import worker_path
from local import harness, token_issuer
from local.harness import MODEL, prompt


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_workers_share_the_port_and_each_writes_its_own_audit_file(
    vendor: harness.Process, issuer: harness.Process, keys: token_issuer.KeyFolder, tmp_path: Path
) -> None:
    settings = harness.settings_for(tmp_path, vendor.url, issuer.url, workers=2, limits__enabled=False)
    port = harness.free_port()
    workers = [harness.start_gateway(tmp_path, settings, port=port, worker=index) for index in range(2)]
    files = [worker_path(settings.audit.path, index) for index in range(2)]
    headers = {"authorization": f"Bearer {keys.token('k1')}", "content-type": "application/json"}
    sent: list[str] = []
    try:
        # New connections until both workers have answered (the kernel spreads connections by their addresses).
        while len(sent) < 400 and not all(f.exists() and f.stat().st_size for f in files):
            with httpx.Client(timeout=10) as client:  # one connection each
                answer = client.post(f"{workers[0].url}/model/{MODEL}/invoke", json=prompt("hi"), headers=headers)
            assert answer.status_code == 200, answer.text
            sent.append(answer.headers["x-request-id"])
    finally:
        stopped = [worker.stop(signal.SIGTERM) for worker in workers]
    # Each drained and flushed its own file, then ended by the signal (uvicorn re-raises it; systemd counts that as
    # a clean stop).
    assert stopped == [-signal.SIGTERM, -signal.SIGTERM]
    written = [records(path) for path in files]
    assert all(written), f"one worker answered none of {len(sent)} connections"
    assert sorted(str(r["request_id"]) for r in written[0] + written[1]) == sorted(sent)  # each once, none lost
    assert not settings.audit.path.exists()  # no worker wrote the shared name


def test_a_worker_index_outside_the_instance_is_refused(tmp_path: Path) -> None:
    settings = harness.settings_for(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", workers=2)
    assert settings.for_worker(1).metrics.path == tmp_path / "metrics-1.jsonl"
    with pytest.raises(ValueError, match="worker 2 is not one of this instance's 2"):
        settings.for_worker(2)
