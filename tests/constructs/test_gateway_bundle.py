"""The gateway's offline bundle: built as the asset builds it, installed with no index into a scratch
prefix by its own install.sh, then started from there (not from this checkout) and asked /healthz."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aws_cdk import App, AssetStaging, Environment, Stack
from constructs import gateway_bundle
from constructs.gateway_bundle import (
    TARGET_PYTHON,
    GatewayBundle,
    build_bundle,
    bundle_fingerprint,
    gateway_wheel,
    systemd_units,
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
    rotated = [
        f"/var/log/aigw/{name}-{index}.jsonl" for name in ("audit", "metrics", "telemetry") for index in range(4)
    ]
    assert f"{' '.join(rotated)} {{" in (bundle / "logrotate.conf").read_text().splitlines()  # every worker's
    service = (bundle / "aigw-logrotate.service").read_text()
    assert (
        "ExecStart=/usr/sbin/logrotate --state /var/lib/aigw/logrotate.status /opt/aigw/etc/logrotate.conf" in service
    )
    timer = (bundle / "aigw-logrotate.timer").read_text()
    assert "OnUnitActiveSec=5min" in timer and "WantedBy=timers.target" in timer
    install = (bundle / "install.sh").read_text()
    assert 'install -m 0644 "$here/logrotate.conf" "$prefix/etc/logrotate.conf"' in install
    assert "systemctl enable --now aigw-gateway.target aigw-lifecycle-watch.service aigw-logrotate.timer" in install


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


def unit_entries(unit: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))


def test_one_worker_per_vcpu_each_unprivileged_and_outlasting_a_stream(bundle: Path) -> None:
    config = load_config("dev")
    assert config.fleet.instance_type == "c6i.xlarge" and SETTINGS.workers == 4  # a c6i.xlarge has 4 vCPUs
    units = systemd_units(SETTINGS)
    assert all((bundle / name).read_text() == text for name, text in units.items())  # as the bundle ships them
    worker = unit_entries(units["aigw-gateway@.service"])
    assert (worker["User"], worker["Restart"], worker["NoNewPrivileges"]) == ("aigw", "on-failure", "yes")
    assert worker["TimeoutStopSec"] == str(int(SETTINGS.upstream.stream_timeout_seconds) + 30)
    assert worker["ExecStart"] == (
        "/opt/aigw/venv/bin/python -m gateway --settings /opt/aigw/etc/gateway.json --host 0.0.0.0 --port 8080 "
        "--worker %i --reuse-port"
    )
    assert worker["PartOf"] == worker["WantedBy"] == "aigw-gateway.target"  # stopping the target stops each one
    target = unit_entries(units["aigw-gateway.target"])
    workers = " ".join(f"aigw-gateway@{index}.service" for index in range(4))
    assert target["Wants"] == target["After"] == workers and target["WantedBy"] == "multi-user.target"
    install = (bundle / "install.sh").read_text()
    assert "systemctl enable --now aigw-gateway.target" in install
    drain = (bundle / "lifecycle-watch.sh").read_text()
    assert "systemctl stop aigw-gateway.target 'aigw-gateway@*.service'\n" in drain  # waits for every worker


def asset_hash(settings: GatewaySettings) -> str:
    app = App(context={"aws:cdk:bundling-stacks": []})  # the hash is known without building
    stack = Stack(app, "Test", env=Environment(account="123456789012", region="eu-west-1"))
    return GatewayBundle(stack, "Bundle", settings=settings).asset.asset_hash


def test_asset_hash_follows_the_settings_and_the_sources() -> None:
    assert asset_hash(SETTINGS) == asset_hash(SETTINGS.model_copy())
    assert asset_hash(SETTINGS) != asset_hash(SETTINGS.model_copy(update={"environment": "other"}))
    assert bundle_fingerprint(SETTINGS) == bundle_fingerprint(SETTINGS.model_copy())


def stage(outdir: Path, settings: GatewaySettings) -> Path:
    """The bundle's asset as a new synth into `outdir` stages it (bundling on): its folder there."""
    # CDK also remembers staged assets in its process; a new process starts without that.
    AssetStaging.clear_asset_hash_cache()
    app = App(outdir=str(outdir))
    stack = Stack(app, "Test", env=Environment(account="123456789012", region="eu-west-1"))
    return outdir / f"asset.{GatewayBundle(stack, 'Bundle', settings=settings).asset.asset_hash}"


def test_the_bundle_is_built_only_when_its_asset_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    def build(output_dir: Path, settings: GatewaySettings) -> None:  # the real one: pip, 31 MB of wheels
        built.append(settings.environment)
        (output_dir / "gateway.json").write_text(settings.model_dump_json())

    monkeypatch.setattr(gateway_bundle, "build_bundle", build)
    asset = stage(tmp_path, SETTINGS)
    assert built == ["dev"] and (asset / "gateway.json").is_file()
    assert stage(tmp_path, SETTINGS) == asset and built == ["dev"]  # synthesized again: reused
    other = stage(tmp_path, SETTINGS.model_copy(update={"environment": "other"}))
    assert other != asset and built == ["dev", "other"]  # an input changed: a new asset, built
    shutil.rmtree(asset)
    assert stage(tmp_path, SETTINGS) == asset and built == ["dev", "other", "dev"]  # it was the folder


@pytest.fixture
def bundle_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of gateway/ that bundle_fingerprint reads instead, to edit."""
    copy = tmp_path / "gateway"
    shutil.copytree(gateway_bundle.GATEWAY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(gateway_bundle, "GATEWAY", copy)
    monkeypatch.setattr(gateway_bundle, "LOCK", copy / "requirements.lock")
    monkeypatch.setattr(gateway_bundle, "DEPLOY", copy / "deploy")
    return copy


@pytest.mark.parametrize("changed", ["app.py", "requirements.lock", "deploy/install.sh", "deploy/new-file"])
def test_the_fingerprint_follows_every_input_file(bundle_inputs: Path, changed: str) -> None:
    before = bundle_fingerprint(SETTINGS)
    assert bundle_fingerprint(SETTINGS) == before
    path = bundle_inputs / changed
    with path.open("a") as file:
        file.write("\n")
    assert bundle_fingerprint(SETTINGS) != before


def test_the_fingerprint_follows_every_setting() -> None:
    before = bundle_fingerprint(SETTINGS)
    upstream = SETTINGS.upstream
    longer = upstream.model_copy(update={"stream_timeout_seconds": upstream.stream_timeout_seconds + 60})
    assert bundle_fingerprint(SETTINGS.model_copy(update={"upstream": longer})) != before
    assert bundle_fingerprint(SETTINGS.model_copy(update={"environment": "other"})) != before


def test_pip_is_asked_only_for_wheels_the_cache_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(gateway_bundle.DEFAULT_CACHE, cache)
    wheels = sorted(w.name for w in gateway_bundle.locked_wheels(cache))
    missing = next(cache.glob("httpx-*.whl"))
    served = [missing.read_bytes()]  # what the index hands out for it
    missing.unlink()
    downloads: list[list[str]] = []

    def pip(command: list[str], check: bool) -> None:  # stands in for `pip download` into the cache
        downloads.append(command)
        missing.write_bytes(served[0])

    monkeypatch.setattr(subprocess, "run", pip)
    assert sorted(w.name for w in gateway_bundle.locked_wheels(cache)) == wheels and len(downloads) == 1
    assert "--require-hashes" in downloads[0]
    assert sorted(w.name for w in gateway_bundle.locked_wheels(cache)) == wheels and len(downloads) == 1
    served[0] += b"\0"  # a wheel whose hash is not pinned does not count
    missing.write_bytes(served[0])
    with pytest.raises(RuntimeError, match="wheels pinned"):
        gateway_bundle.locked_wheels(cache)
    assert len(downloads) == 2
