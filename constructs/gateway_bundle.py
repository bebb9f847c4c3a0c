"""The gateway as an offline bundle for the proxy instances, built into a CDK asset without Docker.

The bundle holds the gateway as a wheel, every dependency as the wheel `gateway/requirements.lock`
pins by hash for Amazon Linux 2023 (x86_64, CPython 3.11), the rendered settings, the systemd units
(the gateway, its drain, its log rotation), the script that tells CloudFormation the instance is healthy,
and `install.sh` (`pip install --no-index --require-hashes`). Instances fetch it from the asset bucket
through the S3 gateway endpoint: nothing is downloaded from the internet at run time.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway"
LOCK = GATEWAY / "requirements.lock"
DEPLOY = GATEWAY / "deploy"
GATEWAY_DIST = "aigw_gateway"
GATEWAY_VERSION = "0.1.0"
PREFIX = "/opt/aigw"
PORT = 8080
# The one CPython the lock's wheels are for; install.sh refuses any other (the bundle's python-version).
TARGET_PYTHON = "3.11"
# The wheels the lock names: for the instances, whatever machine builds the bundle.
TARGET = [
    "--only-binary=:all:", "--implementation", "cp", "--python-version", TARGET_PYTHON,
    *(arg for tag in (34, 28, 27, 24, 17) for arg in ("--platform", f"manylinux_2_{tag}_x86_64")),
    "--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64",
]  # fmt: skip
DEFAULT_CACHE = ROOT / ".bundle-cache"
# Rotated by size (checked every 5 minutes), 8 archives kept, all but the newest gzip'd: well under 1 GB
# per file on the 30 GB root volume, whatever the traffic.
LOG_ROTATE_SIZE = "256M"
LOG_ROTATE_KEEP = 8


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def gateway_wheel(output_dir: Path) -> Path:
    """The `gateway` package as a pure-Python wheel, byte-for-byte the same for the same sources."""
    dist_info = f"{GATEWAY_DIST}-{GATEWAY_VERSION}.dist-info"
    files = {f"gateway/{path.name}": path.read_bytes() for path in sorted(GATEWAY.glob("*.py"))}
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {GATEWAY_DIST}\nVersion: {GATEWAY_VERSION}\n".encode()
    )
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: aigw\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    wheel = output_dir / f"{GATEWAY_DIST}-{GATEWAY_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return wheel


def locked_wheels(cache_dir: Path) -> list[Path]:
    """The lock's wheels, from the cache or PyPI; every one is checked against its pinned hash."""
    hashes = {line.split("sha256:", 1)[1].strip() for line in LOCK.read_text().splitlines() if "sha256:" in line}

    def cached() -> list[Path]:
        return [w for w in cache_dir.glob("*.whl") if hashlib.sha256(w.read_bytes()).hexdigest() in hashes]

    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = cached()
    # pip is asked only for what the cache lacks: resolving a full cache against the indexes costs seconds
    # a synth and adds nothing, since a wheel whose sha256 is pinned is the wheel the lock names.
    if len(wheels) != len(hashes):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--require-hashes", *TARGET, "-d", str(cache_dir), "-r", str(LOCK)],
            check=True,
        )  # fmt: skip
        wheels = cached()
    if len(wheels) != len(hashes):
        raise RuntimeError(f"{LOCK.name}: {len(hashes)} wheels pinned, {len(wheels)} found in {cache_dir}")
    return wheels


def systemd_unit(settings: GatewaySettings) -> str:
    stop_timeout = int(settings.upstream.stream_timeout_seconds) + 30
    template = (DEPLOY / "aigw-gateway.service").read_text()
    return template.format(prefix=PREFIX, port=PORT, stop_timeout=stop_timeout)


def logrotate_config(
    files: Sequence[Path | str],
    *,
    user: str = "aigw",
    group: str = "aigw",
    max_size: str = LOG_ROTATE_SIZE,
    keep: int = LOG_ROTATE_KEEP,
) -> str:
    """logrotate's configuration for the gateway's JSON-lines files (tests render it for a scratch folder)."""
    template = (DEPLOY / "aigw-logrotate.conf").read_text()
    return template.format(files=" ".join(map(str, files)), user=user, group=group, max_size=max_size, keep=keep)


def build_bundle(output_dir: Path, settings: GatewaySettings, cache_dir: Path = DEFAULT_CACHE) -> None:
    wheels = output_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for wheel in locked_wheels(cache_dir):
        shutil.copy2(wheel, wheels / wheel.name)
    own = gateway_wheel(wheels)
    own_pin = (
        f"{GATEWAY_DIST}=={GATEWAY_VERSION} \\\n    --hash=sha256:{hashlib.sha256(own.read_bytes()).hexdigest()}\n"
    )
    (output_dir / "requirements.txt").write_text(LOCK.read_text() + own_pin)
    (output_dir / "gateway.json").write_text(settings.model_dump_json(indent=2) + "\n")
    (output_dir / "aigw-gateway.service").write_text(systemd_unit(settings))
    (output_dir / "python-version").write_text(TARGET_PYTHON + "\n")
    (output_dir / "logrotate.conf").write_text(logrotate_config([sink.path for sink in settings.files]))
    (output_dir / "aigw-logrotate.service").write_text(
        (DEPLOY / "aigw-logrotate.service").read_text().format(prefix=PREFIX)
    )
    for name in (
        "install.sh",
        "lifecycle-watch.sh",
        "aigw-lifecycle-watch.service",
        "aigw-logrotate.timer",
        "signal-when-healthy.sh",
    ):
        shutil.copy2(DEPLOY / name, output_dir / name)


def bundle_fingerprint(settings: GatewaySettings) -> str:
    """Changes exactly when the bundle would: the gateway's sources, the lock, the deploy files, the settings
    and the constants the files are rendered with."""
    digest = hashlib.sha256(settings.model_dump_json().encode())
    digest.update(f"{TARGET_PYTHON} {PREFIX} {PORT} {LOG_ROTATE_SIZE} {LOG_ROTATE_KEEP}".encode())
    for path in sorted([*GATEWAY.glob("*.py"), LOCK, *DEPLOY.iterdir()]):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@jsii.implements(ILocalBundling)
class _LocalBundle:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: object) -> bool:
        build_bundle(Path(output_dir), self.settings)
        return True


class GatewayBundle(Construct):
    """The bundle as an S3 asset; `asset` is what the fleet grants its instances read access to, `settings` what
    the gateway on them runs with."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: GatewaySettings) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.asset = s3_assets.Asset(
            self,
            "Asset",
            path=str(DEPLOY),
            asset_hash=bundle_fingerprint(settings),
            asset_hash_type=AssetHashType.CUSTOM,
            bundling=BundlingOptions(
                image=DockerImage.from_registry("unused-local-bundling"), local=_LocalBundle(settings)
            ),
        )
