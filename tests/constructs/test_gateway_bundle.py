"""The gateway's offline bundle: built as the asset builds it, installed with no index into a scratch
prefix by its own install.sh, then started from there (not from this checkout) and asked /healthz."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aws_cdk import App, Environment, Stack
from constructs.gateway_bundle import (
    TARGET_PYTHON,
    GatewayBundle,
    build_bundle,
    bundle_fingerprint,
    gateway_wheel,
    systemd_unit,
)

from config import load_config
from config.render import gateway_settings
from gateway.settings import GatewaySettings
from local.harness import GATEWAY_ENV, Process, free_port

SETTINGS = gateway_settings(load_config("dev"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, bundle_cache: Path) -> Path:
    output = tmp_path_factory.mktemp("bundle")
    build_bundle(output, SETTINGS)
    return output


def install(bundle: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    # No index anywhere: an unreachable one, in case anything tried to use it.
    env = {
        **os.environ,
        "AIGW_PREFIX": str(prefix),
        "AIGW_PYTHON": sys.executable,
        "PIP_INDEX_URL": "http://127.0.0.1:9/",
    }
    return subprocess.run(["sh", str(bundle / "install.sh")], env=env, capture_output=True, text=True, check=False)


def test_bundle_contents(bundle: Path) -> None:
    pinned = [line for line in (bundle / "requirements.txt").read_text().splitlines() if "==" in line]
    wheels = sorted(p.name for p in (bundle / "wheels").glob("*.whl"))
    assert len(wheels) == len(pinned) > 20
    assert any(name.startswith("aigw_gateway-") for name in wheels)
    assert GatewaySettings.model_validate_json((bundle / "gateway.json").read_text()) == SETTINGS
    lines = (bundle / "requirements.txt").read_text().splitlines()
    assert all(lines[i + 1].strip().startswith("--hash=sha256:") for i, line in enumerate(lines) if "==" in line)
    assert (bundle / "python-version").read_text() == f"{TARGET_PYTHON}\n"  # what install.sh insists on
    assert (bundle / "signal-when-healthy.sh").is_file()


def test_bundle_rotates_the_files_the_gateway_writes(bundle: Path) -> None:
    rotated = f"{SETTINGS.audit.path} {SETTINGS.metrics.path} {SETTINGS.telemetry.path} {{"
    assert rotated in (bundle / "logrotate.conf").read_text().splitlines()
    service = (bundle / "aigw-logrotate.service").read_text()
    assert (
        "ExecStart=/usr/sbin/logrotate --state /var/lib/aigw/logrotate.status /opt/aigw/etc/logrotate.conf" in service
    )
    timer = (bundle / "aigw-logrotate.timer").read_text()
    assert "OnUnitActiveSec=5min" in timer and "WantedBy=timers.target" in timer
    install = (bundle / "install.sh").read_text()
    assert 'install -m 0644 "$here/logrotate.conf" "$prefix/etc/logrotate.conf"' in install
    assert "systemctl enable --now aigw-gateway.service aigw-lifecycle-watch.service aigw-logrotate.timer" in install


def test_install_offline_then_serve_healthz(bundle: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "opt-aigw"
    installed = install(bundle, prefix)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    python = prefix / "venv" / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import gateway; print(gateway.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(prefix))  # the installed wheel, not this checkout

    settings = json.loads((prefix / "etc" / "gateway.json").read_text())
    for sink in ("audit", "metrics", "telemetry"):
        settings[sink]["path"] = str(tmp_path / f"{sink}.jsonl")
    settings["signin"] = None  # its signing key is in KMS, out of reach here
    (tmp_path / "local.json").write_text(json.dumps(settings))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | GATEWAY_ENV
    popen = subprocess.Popen(
        [str(python), "-m", "gateway", "--settings", str(tmp_path / "local.json"), "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    process = Process("installed-gateway", popen, f"http://127.0.0.1:{port}", tmp_path / "none.log")
    try:
        for _ in range(200):
            try:
                health = httpx.get(process.url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert popen.poll() is None, "the installed gateway exited"
                time.sleep(0.05)
        assert health.status_code == 200 and health.json()["environment"] == "dev"
    finally:
        process.stop()


def test_a_tampered_wheel_is_refused(bundle: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "bundle"
    subprocess.run(["cp", "-r", str(bundle), str(tampered)], check=True)
    wheel = next((tampered / "wheels").glob("httpx-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    installed = install(tampered, tmp_path / "prefix")
    assert installed.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in installed.stdout + installed.stderr


def test_gateway_wheel_is_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    assert gateway_wheel(first).read_bytes() == gateway_wheel(second).read_bytes()


def test_systemd_unit_runs_unprivileged_and_outlasts_a_stream() -> None:
    unit = systemd_unit(SETTINGS)
    assert "User=aigw" in unit and "Restart=on-failure" in unit and "NoNewPrivileges=yes" in unit
    assert f"TimeoutStopSec={int(SETTINGS.upstream.stream_timeout_seconds) + 30}" in unit
    assert "ExecStart=/opt/aigw/venv/bin/python -m gateway --settings /opt/aigw/etc/gateway.json" in unit


def asset_hash(settings: GatewaySettings) -> str:
    app = App(context={"aws:cdk:bundling-stacks": []})  # the hash is known without building
    stack = Stack(app, "Test", env=Environment(account="123456789012", region="eu-west-1"))
    return GatewayBundle(stack, "Bundle", settings=settings).asset.asset_hash


def test_asset_hash_follows_the_settings_and_the_sources() -> None:
    assert asset_hash(SETTINGS) == asset_hash(SETTINGS.model_copy())
    assert asset_hash(SETTINGS) != asset_hash(SETTINGS.model_copy(update={"environment": "other"}))
    assert bundle_fingerprint(SETTINGS) == bundle_fingerprint(SETTINGS.model_copy())
