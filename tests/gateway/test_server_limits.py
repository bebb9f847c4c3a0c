"""What a connection may hold before its request reaches the gateway, and bodies no parser should choke on:
raw sockets and odd bodies against a running gateway."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from local.harness import MODEL, prompt
from tests.gateway.conftest import GatewayFactory, RunningGateway, read_jsonl

pytestmark = pytest.mark.usefixtures("reset_vendor")


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    return make_stack(server__header_timeout_seconds=1, server__body_idle_timeout_seconds=1, server__max_connections=16)


def connect(stack: RunningGateway) -> socket.socket:
    url = urlsplit(stack.gateway.url)
    return socket.create_connection((url.hostname, url.port), timeout=10)


def answer(sock: socket.socket) -> bytes:
    """The gateway's response: until it closes the connection, or its declared length has arrived."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lengths = [line.split(b":")[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
        if lengths and len(body) >= int(lengths[0]):
            break
    return received


def head(stack: RunningGateway, length: int) -> bytes:
    return (
        f"POST /model/{MODEL}/invoke HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {stack.token()}\r\n"
        f"content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    ).encode()


def test_headers_that_never_finish_get_408_and_the_connection_back(stack: RunningGateway) -> None:
    with connect(stack) as sock:
        sock.sendall(b"POST /model/x/invoke HTTP/1.1\r\nhost: gw\r\n")  # and then nothing
        assert answer(sock).startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_sends_nothing_is_closed(stack: RunningGateway) -> None:
    with connect(stack) as sock:
        assert answer(sock).startswith(b"HTTP/1.1 408 ")


def test_oversized_headers_get_431(stack: RunningGateway) -> None:
    with connect(stack) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: gw\r\nx-padding: " + b"a" * 40_000 + b"\r\n\r\n")
        assert answer(sock).startswith(b"HTTP/1.1 431 ")


def test_a_body_that_stalls_gets_408_and_a_record(stack: RunningGateway) -> None:
    with connect(stack) as sock:
        sock.sendall(head(stack, 100) + b'{"anthropic')
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 408 ")
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["type"] == "body_timeout"
    assert stack.audit(body["request_id"])["outcome"] == "body_timeout"


def test_a_client_leaving_mid_body_is_recorded_not_a_500(stack: RunningGateway) -> None:
    started = time.time()
    with connect(stack) as sock:
        sock.sendall(head(stack, 1000) + b'{"anthropic_version": ')
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = [r for r in read_jsonl(stack.settings.audit.path) if r["outcome"] == "client_disconnected"]
        if records:
            break
        time.sleep(0.05)
    assert records and records[-1]["status"] == 400 and records[-1]["reason"] == "body"
    assert not [r for r in read_jsonl(stack.settings.audit.path) if r["status"] == 500]
    assert time.time() - started < 60


def test_idle_connections_cannot_take_every_slot_for_long(stack: RunningGateway) -> None:
    sockets = [connect(stack) for _ in range(16)]
    try:
        assert httpx.get(stack.gateway.url + "/healthz").status_code == 503  # all 16 slots held
        time.sleep(1.5)  # their headers never came: each was closed after a second
        assert httpx.get(stack.gateway.url + "/healthz").status_code == 200
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested"),
        (b'{"messages": ' + b"[" * 300 + b"]" * 300 + b"}", "deeper than 128"),
        (b'{"max_tokens": 1' + b"0" * 5000 + b"}", "digits"),
        (b'{"messages": "\xff\xfe"}', "utf-8"),
    ],
)
def test_odd_bodies_get_400_with_a_reason(stack: RunningGateway, body: bytes, reason: str) -> None:
    response = stack.call(body=body)
    assert (response.status_code, response.json()["error"]["type"]) == (400, "malformed_body"), response.text
    assert reason in response.json()["message"]


def test_the_prompt_limits_still_apply_after_all_that(stack: RunningGateway) -> None:
    assert stack.call(body=prompt("hello")).status_code == 200
