"""The gateway keeps an idle connection open longer than the load balancer does, so it is always the load
balancer that closes it: a target that closes first gets requests on a closing connection, and the load
balancer answers them 502. Both numbers come from the same settings."""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from aws_cdk import aws_s3_assets as s3_assets

import gateway.__main__ as service
from gateway.__main__ import server_options
from gateway.settings import GatewaySettings
from local import harness
from tests.conftest import Synthesized
from tests.gateway.conftest import GatewayFactory

UVICORN_DEFAULT_KEEP_ALIVE = 5


def shipped_settings(synthesized: Synthesized) -> GatewaySettings:
    """The settings file in the gateway bundle, as the cloud assembly holds it for the instances."""
    bundle = synthesized.stack("Gateway").node.find_child("Bundle").node.find_child("Asset")
    assert isinstance(bundle, s3_assets.Asset)
    return GatewaySettings.model_validate_json((synthesized.directory / bundle.asset_path / "gateway.json").read_text())


def test_the_gateway_outlasts_the_load_balancers_idle_timeout(dev: Synthesized) -> None:
    (balancer,) = dev.template("Gateway").find_resources("AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    attributes = {a["Key"]: a["Value"] for a in balancer["Properties"]["LoadBalancerAttributes"]}
    idle = int(attributes["idle_timeout.timeout_seconds"])
    settings = shipped_settings(dev)
    assert server_options(settings)["timeout_keep_alive"] > idle
    assert idle > settings.upstream.stream_timeout_seconds  # nor does the load balancer cut a stream as idle
    assert idle <= 4000  # the most an ALB accepts


def test_the_service_runs_uvicorn_with_these_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = harness.settings_for(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    path = tmp_path / "gateway.json"
    path.write_text(settings.model_dump_json())
    runs: list[tuple[uvicorn.Config, object]] = []
    monkeypatch.setattr(service, "create_app", lambda _settings: "app")
    monkeypatch.setattr(uvicorn.Server, "run", lambda server, sockets=None: runs.append((server.config, sockets)))
    monkeypatch.setattr(sys, "argv", ["gateway", "--settings", str(path), "--log-level", "warning"])
    service.main()
    ((config, sockets),) = runs
    assert {name: getattr(config, name) for name in server_options(settings)} == server_options(settings)
    assert config.timeout_keep_alive == settings.upstream.keep_alive_seconds > UVICORN_DEFAULT_KEEP_ALIVE
    assert sockets is None  # one process, its own port (workers share theirs: test_workers.py)


def get_health(connection: socket.socket) -> bytes:
    """One GET /healthz on an open HTTP/1.1 connection: the response head, or b"" if the server closed it."""
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            return received
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head


def test_an_idle_connection_stays_open_and_does_not_hold_up_a_graceful_stop(make_stack: GatewayFactory) -> None:
    stack = make_stack()
    address = urlsplit(stack.gateway.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        assert get_health(connection).startswith(b"HTTP/1.1 200")
        time.sleep(UVICORN_DEFAULT_KEEP_ALIVE + 1.5)  # uvicorn's default would have closed it by now
        assert get_health(connection).startswith(b"HTTP/1.1 200")
        stopping = time.monotonic()
        stack.gateway.popen.send_signal(signal.SIGTERM)  # with the connection open and idle
        stack.gateway.popen.wait(timeout=120)
        assert time.monotonic() - stopping < 60  # not the keep-alive (660 s), nor the stream cap (600 s)
        assert connection.recv(1) == b""  # closed by the gateway as it stopped
    # uvicorn re-raises the signal once it has shut down cleanly (systemd counts a SIGTERM exit as success).
    assert stack.gateway.popen.returncode in (0, -signal.SIGTERM)
