"""Exactly one parseable audit record per request: 500 concurrent mixed requests, also across a
graceful restart of the gateway in the middle of them."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from local import harness
from local.harness import MODEL, prompt
from tests.gateway.conftest import GatewayFactory, RunningGateway

pytestmark = pytest.mark.usefixtures("reset_vendor")


def mixed_requests(stack: RunningGateway, count: int) -> list[dict[str, Any]]:
    """Every outcome the gateway has short of vendor trouble, in a fixed mix."""
    token, expired = stack.token(), stack.keys.token("k1", issued_ago=9 * 3600, lifetime=8 * 3600)
    kinds = [
        ("invoke", prompt("hello"), token, {}),
        ("invoke-with-response-stream", prompt("stream please"), token, {}),
        ("converse", {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}, token, {}),
        ("converse-stream", {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}, token, {}),
        ("invoke", prompt("card 4000 0012 3456 7899"), token, {}),  # redacted
        ("invoke", prompt("key AKIAZ7QXMP3VBN2LKW4R"), token, {}),  # 400 policy
        ("invoke", prompt("hello"), expired, {}),  # 401
        ("invoke", prompt("hello"), token, {"x-aigw-repository": "card-vault"}),  # 400 scope
    ]
    requests: list[dict[str, Any]] = []
    for i in range(count):
        action, body, bearer, extra = kinds[i % len(kinds)]
        requests.append(
            {
                "url": f"{stack.gateway.url}/model/{MODEL}/{action}",
                "content": json.dumps(body),
                "headers": {"authorization": f"Bearer {bearer}", "content-type": "application/json", **extra},
            }
        )
    return requests


async def send_all(requests: list[dict[str, Any]], retry: bool = False, spread: float = 0) -> list[httpx.Response]:
    """All at once (or started evenly over `spread` seconds). With `retry`, a request that never reached
    a gateway (refused or reset during the restart) is sent again until one answers; a request the
    gateway accepted is never resent, so a duplicate would show as a record nobody got an answer for."""
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(index: int, request: dict[str, Any]) -> httpx.Response:
            await asyncio.sleep(spread * index / len(requests))
            for _ in range(400):
                try:
                    return await client.post(**request)
                except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                    if not retry:
                        raise
                    await asyncio.sleep(0.05)
            raise AssertionError("no gateway answered")

        return await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))


def audit_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]  # every line must parse


def expected_statuses(responses: list[httpx.Response]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for response in responses:
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
    return counts


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


# Room for all 500 at once: this is about records, not capacity (that has its own test).
ROOMY = {"upstream__max_concurrency": 1000}


def test_500_concurrent_requests_give_500_records(make_stack: GatewayFactory) -> None:
    stack = make_stack(**ROOMY)
    responses = asyncio.run(send_all(mixed_requests(stack, 500)))
    assert expected_statuses(responses) == {200: 314, 400: 124, 401: 62}
    ids = [r.headers["x-request-id"] for r in responses]
    path = stack.settings.audit.path
    wait_for(lambda: path.exists() and len(path.read_text().splitlines()) >= 500)
    stack.gateway.stop()  # flushes; afterwards the file must hold exactly these 500
    records = audit_lines(path)
    assert len(records) == 500
    assert sorted(str(r["request_id"]) for r in records) == sorted(ids)
    by_id = {r["request_id"]: r for r in records}
    assert all(by_id[r.headers["x-request-id"]]["status"] == r.status_code for r in responses)


def test_graceful_restart_loses_and_duplicates_no_record(make_stack: GatewayFactory) -> None:
    stack = make_stack(**ROOMY)
    stack.vendor_control(chunk_delay_seconds=0.05, chunk_chars=4)  # streams take ~0.4 s: in flight at SIGTERM
    port = int(stack.gateway.url.rsplit(":", 1)[1])

    async def scenario() -> list[httpx.Response]:
        sending = asyncio.create_task(send_all(mixed_requests(stack, 500), retry=True, spread=2))
        path = stack.settings.audit.path
        while not (path.exists() and len(path.read_text().splitlines()) >= 20):  # well under way
            await asyncio.sleep(0.01)
        stack.gateway.popen.send_signal(signal.SIGTERM)  # graceful: in-flight requests finish
        await asyncio.to_thread(stack.gateway.popen.wait, 60)
        served_before.append(len(audit_lines(stack.settings.audit.path)))
        stack.gateway = await asyncio.to_thread(harness.start_gateway, stack.workdir, stack.settings, port)
        return await sending

    served_before: list[int] = []
    responses = asyncio.run(scenario())
    assert len(responses) == 500
    assert 0 < served_before[0] < 500, "the restart must fall in the middle of the requests"
    stack.gateway.stop()
    records = audit_lines(stack.settings.audit.path)
    assert len(records) == 500
    ids = sorted(r.headers["x-request-id"] for r in responses)
    assert sorted(str(r["request_id"]) for r in records) == ids
    assert expected_statuses(responses) == {200: 314, 400: 124, 401: 62}
