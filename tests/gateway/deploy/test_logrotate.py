"""The shipped logrotate configuration, run by the real logrotate (Debian's package) against a scratch
folder while the gateway's own sink keeps appending: files rotate by size, no record is lost or doubled,
and the number of archives stays bounded."""

from __future__ import annotations

import getpass
import grp
import gzip
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from constructs.gateway_bundle import LOG_ROTATE_KEEP, LOG_ROTATE_SIZE, logrotate_config

from config import load_config
from config.render import gateway_settings
from gateway.sinks import JsonLinesSink

# Debian's package, which `make test` installs when it is missing (the Makefile's system-packages).
LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"


def render(folder: Path, max_size: str = "4k", keep: int = LOG_ROTATE_KEEP) -> Path:
    config = folder / "logrotate.conf"
    user, group = getpass.getuser(), grp.getgrgid(os.getgid()).gr_name
    config.write_text(
        logrotate_config(
            [folder / "audit.jsonl", folder / "metrics.jsonl"], user=user, group=group, max_size=max_size, keep=keep
        )
    )
    return config


def logrotate(config: Path, state: Path) -> None:
    completed = subprocess.run(
        [LOGROTATE, "--state", str(state), str(config)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr


def records(folder: Path, name: str) -> list[int]:
    """Every record in the live file and its archives, oldest first."""
    archives = sorted(
        (p for p in folder.glob(f"{name}.*")), key=lambda p: int(p.name.removeprefix(f"{name}.").split(".")[0])
    )
    seqs: list[int] = []
    for path in [*reversed(archives), folder / name]:
        if not path.exists():
            continue
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        seqs += [json.loads(line)["seq"] for line in text.splitlines()]
    return seqs


def test_shipped_limits() -> None:
    settings = gateway_settings(load_config("dev"))
    shipped = logrotate_config([settings.audit.path, settings.metrics.path, settings.telemetry.path])
    assert "\n/var/log/aigw/audit.jsonl /var/log/aigw/metrics.jsonl /var/log/aigw/telemetry.jsonl {\n" in shipped
    assert f"    size {LOG_ROTATE_SIZE}\n" in shipped and f"    rotate {LOG_ROTATE_KEEP}\n" in shipped
    assert "    su aigw aigw\n" in shipped and "    compress\n" in shipped and "    nocopytruncate\n" in shipped
    assert "\n    copytruncate" not in shipped


def test_rotates_by_size_while_the_sink_appends_and_loses_nothing(tmp_path: Path) -> None:
    config, state = render(tmp_path), tmp_path / "state"
    sink = JsonLinesSink(tmp_path / "audit.jsonl", queue_size=100, name="audit")
    sink.start()
    written = 0
    stop = threading.Event()

    def write() -> None:
        nonlocal written
        while not stop.is_set():
            sink.put({"seq": written, "padding": "x" * 200})
            written += 1
            time.sleep(0.001)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        rotations = 0
        for _ in range(200):
            before = set(tmp_path.glob("audit.jsonl.*"))
            logrotate(config, state)
            rotations += set(tmp_path.glob("audit.jsonl.*")) != before
            if rotations >= LOG_ROTATE_KEEP - 2:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        writer.join()
        sink.close()
    assert rotations >= LOG_ROTATE_KEEP - 2, "the file never grew past the size limit"
    assert sink.error is None
    # Every record the sink wrote is in exactly one place, in order: none went to a file that was gone.
    assert records(tmp_path, "audit.jsonl") == list(range(written))
    # The newest archive stays plain for one round (a batch under way lands there); the older ones are gzip'd.
    assert (tmp_path / "audit.jsonl.1").exists() and (tmp_path / "audit.jsonl.2.gz").exists()


def test_archives_are_bounded(tmp_path: Path) -> None:
    config, state = render(tmp_path, keep=3), tmp_path / "state"
    live = tmp_path / "audit.jsonl"
    for round_ in range(8):
        live.write_text("".join(json.dumps({"seq": round_, "n": i}) + "\n" for i in range(400)))
        logrotate(config, state)
    assert sorted(p.name for p in tmp_path.glob("audit.jsonl.*")) == [
        "audit.jsonl.1",
        "audit.jsonl.2.gz",
        "audit.jsonl.3.gz",
    ]


def test_a_small_file_is_left_alone(tmp_path: Path) -> None:
    config, state = render(tmp_path, max_size="1M"), tmp_path / "state"
    (tmp_path / "audit.jsonl").write_text('{"seq": 0}\n')
    logrotate(config, state)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("audit")] == ["audit.jsonl"]
