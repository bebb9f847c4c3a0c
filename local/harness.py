"""Real processes on loopback for the gateway's tests, `make gateway-local` and `make bench-gateway`:
the fake vendor, the token issuer and the gateway itself, each a `python -m …` child on a free port."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from config import load_config
from config.render import gateway_settings
from gateway.settings import GatewaySettings
from local import fake_vendor, token_issuer
from local.tls import LocalTls

ROOT = Path(__file__).resolve().parents[1]


MODEL = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"


def prompt(text: str, **extra: Any) -> dict[str, Any]:
    """An InvokeModel body in the Anthropic Messages format that Claude Code sends to Bedrock."""
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def team_profile_ids(environment: str = "dev") -> dict[tuple[str, str], str]:
    """Stand-ins for the ids AWS gives each team's application inference profiles (12 lowercase letters and
    digits, like Bedrock's), one per configured team and model: what AIGW_TEAM_PROFILES carries on an instance."""
    config = load_config(environment)
    return {
        (team, route.id): hashlib.sha256(f"{team}/{route.id}".encode()).hexdigest()[:12]
        for team in config.teams
        for route in config.models
    }


T = TypeVar("T")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.99 for p99) of `values`; 0 when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)] if ordered else 0.0


def wait_until(condition: Callable[[], T], what: str, timeout: float, interval: float = 0.05) -> T:
    """condition()'s first truthy value, checked every `interval` seconds: a test waits for what it waits for, not
    for a fixed time; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


def start(
    name: str,
    module: str,
    args: Sequence[str],
    ready_path: str,
    workdir: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    tls: LocalTls | None = None,
) -> Process:
    """Start `python -m module args --port PORT` (serving HTTPS with `tls`) and wait until GET ready_path answers
    200."""
    port = port or free_port()
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, *args, "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    process = Process(name, popen, f"{'https' if tls else 'http'}://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 30
    while True:
        try:
            verify = ssl.create_default_context(cafile=tls.ca) if tls else True
            if httpx.get(process.url + ready_path, timeout=1, verify=verify).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if popen.poll() is not None or time.monotonic() > deadline:
            process.stop(signal.SIGKILL)
            raise RuntimeError(f"{name} did not start:\n{process.log_tail()}")
        time.sleep(0.05)


# aigw's own tokens are signed with this locally (in AWS: a KMS key, or a secret from Secrets Manager).
SIGNIN_SECRET_ENV = "AIGW_SIGNIN_SECRET"
SIGNIN_SECRET = "a-local-signing-secret-for-aigw-tests-only"


# The gateway signs with these (botocore's default chain reads the environment); nothing else leaks in.
GATEWAY_ENV = {
    "AWS_ACCESS_KEY_ID": fake_vendor.ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": fake_vendor.SECRET_KEY,
    "AWS_REGION": fake_vendor.REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    SIGNIN_SECRET_ENV: SIGNIN_SECRET,
}


def signin(public_url: str, issuer_url: str, **changes: Any) -> dict[str, Any]:
    """The `signin` settings (for settings_for) that serve sign-in at public_url with the local IdP, its tokens
    signed with the local secret."""
    return {
        "public_url": public_url,
        "oidc": {
            "issuer": token_issuer.ISSUER,
            "authorization_endpoint": issuer_url + token_issuer.AUTHORIZE_PATH,
            "token_endpoint": issuer_url + token_issuer.TOKEN_PATH,
            "client_id": token_issuer.CLIENT_ID,
            "redirect_uris": [public_url + "/oauth/callback"],
        },
        "signing": {"kind": "secret", "secret_env": SIGNIN_SECRET_ENV},
        **changes,
    }


def settings_for(
    workdir: Path, vendor_url: str, issuer_url: str, environment: str = "dev", **changes: Any
) -> GatewaySettings:
    """The environment's rendered settings, pointed at the local vendor and issuer and at files in workdir."""
    settings = gateway_settings(load_config(environment))
    data = settings.model_dump(mode="json")
    data["vendor"]["url"] = vendor_url
    data["auth"].update(
        issuer=token_issuer.ISSUER, audience=token_issuer.AUDIENCE, jwks_url=issuer_url + token_issuer.JWKS_PATH
    )
    data["audit"]["path"] = str(workdir / "audit.jsonl")
    data["metrics"]["path"] = str(workdir / "metrics.jsonl")
    data["telemetry"]["path"] = str(workdir / "telemetry.jsonl")
    data["workers"] = 1  # one process here, unless a test starts workers (`start_gateway(worker=...)`)
    # The environment's sign-in names its IdP and a KMS key: locally, sign-in is the local IdP's (`signin()`), if any.
    data["signin"] = None
    for dotted, value in changes.items():
        target = data
        *parents, leaf = dotted.split("__")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return GatewaySettings.model_validate(data)


def start_gateway(
    workdir: Path,
    settings: GatewaySettings,
    port: int | None = None,
    env: dict[str, str] | None = None,
    tls: LocalTls | None = None,
    worker: int | None = None,
) -> Process:
    """The gateway on `port` (a free one if None); as one of the instance's workers sharing the port with `worker`."""
    path = workdir / "gateway.json"
    path.write_text(settings.model_dump_json(indent=2))
    https = ["--ssl-certfile", str(tls.certificate), "--ssl-keyfile", str(tls.key)] if tls else []
    shared = ["--worker", str(worker), "--reuse-port"] if worker is not None else []
    return start(
        "gateway" if worker is None else f"gateway-{worker}",
        "gateway",
        ["--settings", str(path), "--log-level", "warning", *https, *shared],
        "/healthz",
        workdir,
        port,
        {**GATEWAY_ENV, **(env or {})},
        tls,
    )


def start_vendor(workdir: Path) -> Process:
    return start("vendor", "local.fake_vendor", [], "/_ready", workdir)


def start_issuer(workdir: Path, keys: Path, tls: LocalTls | None = None) -> Process:
    https = ["--ssl-certfile", str(tls.certificate), "--ssl-keyfile", str(tls.key)] if tls else []
    return start(
        "issuer", "local.token_issuer", ["--keys", str(keys), *https], token_issuer.JWKS_PATH, workdir, tls=tls
    )


class RedisServer:
    """A real redis-server on a loopback port of its own, with no persistence; it can be killed
    (as a crash would) and started again on the same port."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.password = password
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make test` installs Debian's package")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        log = (self.workdir / "redis.log").open("ab")
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "no",
            "dir": str(self.workdir),
        }
        if self.password:
            options["requirepass"] = self.password
        self.popen = subprocess.Popen(
            [self.binary, *(part for name, value in options.items() for part in (f"--{name}", value))],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(self.workdir / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def pause(self) -> None:
        """Stop the server without closing its connections: a Redis that no longer answers."""
        if self.popen is not None:
            self.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.popen is not None:
            self.popen.send_signal(signal.SIGCONT)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def flush(self) -> None:
        assert self.command("FLUSHALL").startswith(b"+OK")

    def command(self, *args: str) -> bytes:
        """One command, as RESP; its raw reply."""
        request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(request.encode())
            return sock.recv(4096)

    def settings(self) -> dict[str, Any]:
        """Settings changes (for settings_for) that point a gateway at this server."""
        return {"redis__host": "127.0.0.1", "redis__port": self.port, "redis__tls": False}


@dataclass
class Bench:
    """A scratch folder with the fake vendor, the token issuer (its key `bench`) and a redis-server, for the
    benchmarks; gateways started with `gateway()` are stopped (flushing their audit files) with the rest."""

    workdir: Path
    keys: token_issuer.KeyFolder
    vendor: Process
    issuer: Process
    redis: RedisServer
    processes: list[Process]

    def gateway(self, name: str, **changes: Any) -> tuple[Process, GatewaySettings]:
        folder = self.workdir / name
        folder.mkdir()
        settings = settings_for(folder, self.vendor.url, self.issuer.url, **changes)
        process = start_gateway(folder, settings)
        self.processes.append(process)
        return process, settings

    def token(self, **claims: Any) -> str:
        return self.keys.token("bench", **claims)

    def stop(self) -> None:
        """Stop every process (each flushes its audit file); again at the end does nothing more."""
        for process in reversed(self.processes):
            process.stop()
        self.redis.kill()


@contextlib.contextmanager
def bench() -> Iterator[Bench]:
    with tempfile.TemporaryDirectory(prefix="aigw-bench-") as scratch:
        workdir = Path(scratch)
        keys = token_issuer.KeyFolder(workdir / "keys")
        keys.add("bench")
        vendor = start_vendor(workdir)
        issuer = start_issuer(workdir, keys.folder)
        redis = RedisServer(workdir).start()
        running = Bench(workdir, keys, vendor, issuer, redis, [vendor, issuer])
        try:
            yield running
        finally:
            running.stop()
