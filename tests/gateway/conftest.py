"""Processes for the gateway's end-to-end tests: one fake vendor and one token issuer per session,
gateways per module (each in its own folder, with its own audit file)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from gateway.settings import GatewaySettings
from local import fake_vendor, harness, token_issuer
from local.harness import MODEL, prompt

# Shapes the shipped rules catch, none of them real.
AWS_KEY = "AKIAZ7QXMP3VBN2LKW4R"  # a long-term access key id
SSN = "536-22-8765"


def bash(command: str) -> dict[str, Any]:
    """A tool call in the Anthropic Messages format, as Claude Code's Bash tool receives it."""
    return {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": command}}


@dataclass
class RunningGateway:
    """A gateway process with the fake vendor and token issuer it talks to."""

    gateway: harness.Process
    vendor: harness.Process
    keys: token_issuer.KeyFolder
    workdir: Path
    settings: GatewaySettings

    def token(self, **claims: Any) -> str:
        return self.keys.token("k1", **claims)

    def call(
        self,
        action: str = "invoke",
        body: Any = None,
        *,
        token: str | None = "default",
        headers: dict[str, str] | None = None,
        model: str = MODEL,
    ) -> httpx.Response:
        sent = {"content-type": "application/json", **(headers or {})}
        if token is not None:
            sent["authorization"] = f"Bearer {self.token() if token == 'default' else token}"
        path = f"/model/{model}/{action}" if not action.startswith("/") else action
        content = body if isinstance(body, bytes) else json.dumps(body if body is not None else prompt("Say hello."))
        return httpx.post(self.gateway.url + path, content=content, headers=sent, timeout=30)

    def boto3_client(self, service: str, token: str | None = "default") -> Any:
        """boto3's own client for a Bedrock service, pointed at the gateway, sending the IdP token as Claude Code
        does (unsigned, `Authorization: Bearer`), without retries of its own."""
        client = boto3.client(
            service,
            endpoint_url=self.gateway.url,
            region_name=fake_vendor.REGION,
            config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
        )
        if token is not None:
            bearer = f"Bearer {self.token() if token == 'default' else token}"
            client.meta.events.register(
                f"before-send.{service}", lambda request, **_: request.headers.__setitem__("Authorization", bearer)
            )
        return client

    def vendor_control(self, **changes: Any) -> None:
        httpx.post(self.vendor.url + "/_control", json=changes).raise_for_status()

    def vendor_last(self) -> dict[str, Any]:
        last: dict[str, Any] = httpx.get(self.vendor.url + "/_last").json()
        return last

    def audit(self, request_id: str, timeout: float = 10) -> dict[str, Any]:
        """The audit record of one request (the writer thread is asynchronous: wait for it)."""
        deadline = time.monotonic() + timeout
        while True:
            for record in read_jsonl(self.settings.audit.path):
                if record["request_id"] == request_id:
                    return record
            if time.monotonic() > deadline:
                raise AssertionError(f"no audit record for {request_id}")
            time.sleep(0.05)

    def metrics(self, request_id: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for line in read_jsonl(self.settings.metrics.path):
                if line.get("RequestId") == request_id:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no metrics line for {request_id}")
            time.sleep(0.05)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file that may be being written (a last line without its
    newline is still on its way)."""
    if not path.exists():
        return []
    complete = path.read_text().rpartition("\n")[0]
    return [json.loads(line) for line in complete.splitlines() if line]


@pytest.fixture(scope="session")
def gateway_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="session")
def keys(gateway_workdir: Path) -> token_issuer.KeyFolder:
    folder = token_issuer.KeyFolder(gateway_workdir / "keys")
    folder.add("k1")
    return folder


@pytest.fixture(scope="session")
def vendor(gateway_workdir: Path) -> Iterator[harness.Process]:
    process = harness.start_vendor(gateway_workdir)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def issuer(gateway_workdir: Path, keys: token_issuer.KeyFolder) -> Iterator[harness.Process]:
    process = harness.start_issuer(gateway_workdir, keys.folder)
    yield process
    process.stop()


@pytest.fixture
def reset_vendor(vendor: harness.Process) -> None:
    httpx.post(vendor.url + "/_control", json={"reset": True}).raise_for_status()


GatewayFactory = Callable[..., RunningGateway]


@pytest.fixture(scope="module")
def make_stack(
    tmp_path_factory: pytest.TempPathFactory,
    vendor: harness.Process,
    issuer: harness.Process,
    keys: token_issuer.KeyFolder,
) -> Iterator[GatewayFactory]:
    """Start a gateway with the dev settings and the given changes (`upstream__breaker__failures=2`).

    Rate limits and budgets are off unless a test turns them on (`limits__enabled=True`, with a Redis):
    the other tests send far more than one user's hourly allowance."""
    started: list[harness.Process] = []

    def make(env: dict[str, str] | None = None, **changes: Any) -> RunningGateway:
        workdir = tmp_path_factory.mktemp("gw")
        settings = harness.settings_for(workdir, vendor.url, issuer.url, **{"limits__enabled": False, **changes})
        process = harness.start_gateway(workdir, settings, env=env)
        started.append(process)
        return RunningGateway(process, vendor, keys, workdir, settings)

    yield make
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def redis_server(gateway_workdir: Path) -> Iterator[harness.RedisServer]:
    server = harness.RedisServer(gateway_workdir).start()
    yield server
    server.kill()


@pytest.fixture
def fresh_redis(redis_server: harness.RedisServer) -> harness.RedisServer:
    """The shared redis-server, running and empty."""
    if not redis_server.ping():
        redis_server.start()
    redis_server.flush()
    return redis_server
