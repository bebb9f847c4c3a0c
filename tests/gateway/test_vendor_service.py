"""A vendor endpoint service instead of Bedrock: its API paths pass through with the vendor key,
read from Secrets Manager (moto's server standing in for it: nothing real can run here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from local import fake_vendor
from scripts.deploy_local import moto_server
from tests.gateway.conftest import GatewayFactory, RunningGateway

SECRET_ID = "aigw/dev/vendor-api-key"
pytestmark = pytest.mark.usefixtures("reset_vendor")


@pytest.fixture(scope="module")
def secrets_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server("123456789012", tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        client = boto3.client(
            "secretsmanager", endpoint_url=endpoint, region_name=fake_vendor.REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        client.create_secret(Name=SECRET_ID, SecretString=fake_vendor.VENDOR_API_KEY)
        yield endpoint


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory, secrets_endpoint: str) -> RunningGateway:
    return make_stack(
        env={"AWS_ENDPOINT_URL": secrets_endpoint},
        vendor__kind="endpoint_service",
        vendor__models=[],
        vendor__account=None,
        vendor__api_key_secret_id=SECRET_ID,
    )


def messages_body(stream: bool = False) -> dict[str, object]:
    return {
        "model": "vendor-model",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "card 4000 0012 3456 7899"}],
    }


def test_api_path_passes_through_with_the_key_from_secrets_manager(stack: RunningGateway) -> None:
    response = stack.call("/v1/messages", messages_body())
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "Hello from the fake vendor."
    last = stack.vendor_last()["last"]
    assert last["headers"]["x-api-key"] == fake_vendor.VENDOR_API_KEY
    assert "authorization" not in last["headers"]  # the client's JWT stays in the gateway
    assert "[REDACTED:card-number]" in last["body"]
    record = stack.audit(response.headers["x-request-id"])
    assert (record["path"], record["status"], record["output_tokens"]) == ("/v1/messages", 200, 4)


def test_server_sent_events_are_checked_as_they_stream(stack: RunningGateway) -> None:
    stack.vendor_control(completion="Your SSN is 536-22-8765, keep it safe. " + "ok " * 200, chunk_chars=4)
    response = stack.call("/v1/messages", messages_body(stream=True), headers={"accept": "text/event-stream"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    text = "".join(
        json.loads(line[5:])["delta"]["text"]
        for line in response.text.splitlines()
        if line.startswith("data:") and '"content_block_delta"' in line
    )
    assert text.startswith("Your SSN is [REDACTED:us-ssn], keep it safe.")
    assert "536-22-8765" not in response.text
    record = stack.audit(response.headers["x-request-id"])
    assert record["stream"] is True and record["policy"]["completion"]["matches"] == {"us-ssn": 1}


def test_without_the_key_the_vendor_refuses(make_stack: GatewayFactory, tmp_path: Path) -> None:
    keyless = make_stack(
        vendor__kind="endpoint_service",
        vendor__models=[],
        vendor__account=None,
        vendor__api_key_env="AIGW_TEST_NO_KEY",
        env={"AIGW_TEST_NO_KEY": "wrong"},
    )
    response = keyless.call("/v1/messages", messages_body())
    assert response.status_code == 401
    assert httpx.get(keyless.gateway.url + "/healthz").status_code == 200
