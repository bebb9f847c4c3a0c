"""Every piece of model output is checked, in both stream formats and buffered: text, tool input, thinking,
citations and block starts, read back by boto3's own bedrock-runtime client (its service model parses
every event, so the shapes are Bedrock's) or by the event-stream decoder where a test needs the raw events."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.exceptions import ClientError, EventStreamError
from botocore.validate import ParamValidator

from gateway import eventstream
from local.harness import MODEL, prompt
from tests.gateway.conftest import AWS_KEY, SSN, GatewayFactory, RunningGateway, bash

pytestmark = pytest.mark.usefixtures("reset_vendor")


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    return make_stack()


@pytest.fixture
def runtime(stack: RunningGateway) -> Iterator[Any]:
    client = stack.boto3_client("bedrock-runtime")
    yield client
    client.close()


def script(stack: RunningGateway, *replies: dict[str, Any]) -> None:
    stack.vendor_control(script=list(replies))


def thinking(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": "c2lnbmVkLWJ5LXRoZS12ZW5kb3I="}


def invoke_events(response: httpx.Response) -> tuple[list[dict[str, Any]], list[eventstream.Event]]:
    """The Anthropic Messages events inside an InvokeModelWithResponseStream answer, and its raw frames."""
    frames = list(eventstream.Decoder().feed(response.content))
    inner = [json.loads(base64.b64decode(json.loads(f.payload)["bytes"])) for f in frames if f.event_type == "chunk"]
    return inner, frames


def leaked(response: httpx.Response, secret: str) -> bool:
    """Whether any part of the secret longer than a few characters reached the client, in any event."""
    inner, frames = invoke_events(response)
    seen = json.dumps(inner) + "".join(f.payload.decode(errors="replace") for f in frames)
    return any(secret[i : i + 8] in seen for i in range(len(secret) - 7))


def test_ordinary_text_leaves_in_the_vendors_own_pieces(stack: RunningGateway) -> None:
    """No fixed holdback: plain prose leaves as it arrives, less at most the word in progress (which could still
    become an e-mail address)."""
    stack.vendor_control(completion="Plain words, nothing anyone would redact here.", chunk_chars=5)
    response = stack.call("invoke-with-response-stream")
    inner, _ = invoke_events(response)
    deltas = [e["delta"]["text"] for e in inner if e["type"] == "content_block_delta"]
    assert deltas[:3] == ["Plain ", "words, ", "nothing "]
    assert "".join(deltas) == "Plain words, nothing anyone would redact here."


ATTACKS = {
    "tool input": ({"content": [{"type": "text", "text": "Running it."}, bash(f"export KEY={AWS_KEY}")]}, AWS_KEY),
    "thinking": ({"content": [thinking(f"The key is {AWS_KEY}."), {"type": "text", "text": "Done."}]}, AWS_KEY),
    "citation": (
        {
            "content": [
                {
                    "type": "text",
                    "text": "See the runbook.",
                    "citations": [{"type": "char_location", "cited_text": f"key {AWS_KEY}", "document_index": 0}],
                }
            ]
        },
        AWS_KEY,
    ),
    "block start": ({"content": [{"type": "redacted_thinking", "data": "opaque"}, bash("ls")]}, None),
}


@pytest.mark.parametrize("where", ["tool input", "thinking", "citation"])
def test_a_secret_anywhere_in_a_streamed_answer_ends_the_stream(stack: RunningGateway, where: str) -> None:
    reply, secret = ATTACKS[where]
    assert secret is not None
    script(stack, reply)
    response = stack.call("invoke-with-response-stream")
    _, frames = invoke_events(response)
    assert frames[-1].message_type == "exception"
    assert frames[-1].headers[":exception-type"] == "validationException"
    assert not leaked(response, secret)
    record = stack.audit(response.headers["x-request-id"])
    assert (record["outcome"], record["reason"]) == ("completion_blocked", "aws-access-key-id")
    assert record["policy"]["completion"]["matches"] == {"aws-access-key-id": 1}


def test_a_tool_call_streams_whole_and_in_order(stack: RunningGateway) -> None:
    script(stack, {"content": [{"type": "text", "text": "Listing."}, bash("ls -la /tmp")]})
    response = stack.call("invoke-with-response-stream")
    inner, _ = invoke_events(response)
    kinds = [e["type"] for e in inner]
    assert kinds[0] == "message_start" and inner[0]["message"]["content"] == []
    assert kinds[-2:] == ["message_delta", "message_stop"]
    tool_json = "".join(
        e["delta"]["partial_json"] for e in inner if e.get("delta", {}).get("type") == "input_json_delta"
    )
    assert json.loads(tool_json) == {"command": "ls -la /tmp"}
    assert [e["index"] for e in inner if e["type"] == "content_block_start"] == [0, 1]


def test_a_redact_match_in_signed_thinking_blocks_instead(stack: RunningGateway) -> None:
    """The vendor checks thinking's signature when the client sends it back: it cannot be edited."""
    script(stack, {"content": [thinking(f"The SSN on file is {SSN}."), {"type": "text", "text": "ok"}]})
    response = stack.call("invoke-with-response-stream")
    _, frames = invoke_events(response)
    assert frames[-1].headers[":exception-type"] == "validationException"
    assert stack.audit(response.headers["x-request-id"])["reason"] == "us-ssn"


def test_converse_stream_tool_input_and_reasoning_are_checked(stack: RunningGateway, runtime: Any) -> None:
    script(stack, {"content": [bash("echo safe")]}, {"content": [bash(f"aws configure set {AWS_KEY}")]})
    ok = runtime.converse_stream(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    events = list(ok["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "Bash"
    tool_json = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e)
    assert json.loads(tool_json) == {"command": "echo safe"}

    blocked = runtime.converse_stream(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    with pytest.raises(EventStreamError) as raised:
        for _ in blocked["stream"]:
            pass
    assert raised.value.response["Error"]["Code"] == "validationException"
    assert "aws-access-key-id" in raised.value.response["Error"]["Message"]


def test_buffered_answers_check_tool_input_and_signed_reasoning(stack: RunningGateway) -> None:
    script(stack, {"content": [bash(f"export KEY={AWS_KEY}")]}, {"content": [thinking(f"SSN {SSN}")]})
    tool = stack.call("invoke")
    assert tool.json()["error"]["type"] == "completion_blocked" and AWS_KEY not in tool.text
    reasoning = stack.call("converse", {"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    assert reasoning.json()["error"]["type"] == "completion_blocked" and SSN not in reasoning.text
    assert stack.audit(reasoning.headers["x-request-id"])["reason"] == "us-ssn"


def test_vendor_garbage_mid_stream_is_the_vendors_fault(stack: RunningGateway, runtime: Any) -> None:
    script(stack, {"content": [{"type": "text", "text": "Hello there"}], "garbage_after": 2})
    answer = runtime.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(prompt("hi")))
    with pytest.raises(EventStreamError) as raised:
        for _ in answer["body"]:
            pass
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-request-id"]
    record = stack.audit(request_id)
    assert record["outcome"] == "upstream_malformed"


# -- refusals in Bedrock's shape -----------------------------------------------------------------


def refusal(call: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"], error["Error"]["Message"]


def test_refusals_are_errors_boto3_reads_and_does_not_retry(stack: RunningGateway, runtime: Any) -> None:
    before = stack.vendor_last()["requests"]
    blocked = refusal(lambda: runtime.invoke_model(modelId=MODEL, body=json.dumps(prompt(f"use {AWS_KEY}"))))
    assert blocked[:2] == (400, "ValidationException") and "aws-access-key-id" in blocked[2]
    unknown = refusal(lambda: runtime.invoke_model(modelId="anthropic.claude-v1", body=json.dumps(prompt("hi"))))
    assert unknown[:2] == (400, "ValidationException")
    assert stack.vendor_last()["requests"] == before

    expired = stack.keys.token("k1", issued_ago=9 * 3600, lifetime=8 * 3600)
    response = stack.call(token=expired)
    assert (response.status_code, response.headers["x-amzn-errortype"]) == (401, "UnrecognizedClientException")
    assert stack.settings.auth.refresh_hint in response.json()["message"]


def test_vendor_errors_pass_as_written_unless_they_carry_a_secret(stack: RunningGateway) -> None:
    wording = "Input is too long for requested model."
    script(
        stack,
        {"error": {"status": 400, "type": "ValidationException", "message": wording}},
        {"error": {"status": 400, "type": "ValidationException", "message": f"bad field {AWS_KEY}"}},
    )
    plain = stack.call()
    assert (plain.status_code, plain.headers["x-amzn-errortype"], plain.json()) == (
        400, "ValidationException", {"message": wording},
    )  # fmt: skip
    echoed = stack.call()
    assert (echoed.status_code, echoed.json()["error"]["type"]) == (502, "vendor_error_withheld")
    assert AWS_KEY not in echoed.text


def test_an_answer_that_is_not_json_is_still_checked(stack: RunningGateway) -> None:
    script(stack, {"raw": f"plain text with {SSN} in it"}, {"raw": f"plain text with {AWS_KEY}"})
    redacted = stack.call()
    assert (redacted.status_code, redacted.text) == (200, "plain text with [REDACTED:us-ssn] in it")
    blocked = stack.call()
    assert blocked.status_code == 400 and AWS_KEY not in blocked.text


def test_the_fake_vendors_converse_answer_has_bedrocks_shape(stack: RunningGateway) -> None:
    """Checked against botocore's own service model of bedrock-runtime: every required member, every type."""
    script(stack, {"content": [thinking("plan"), {"type": "text", "text": "ok"}, bash("ls")]})
    response = stack.call("converse", {"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    assert response.status_code == 200
    shape = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse")
    report = ParamValidator().validate(response.json(), shape.output_shape)
    assert not report.has_errors(), report.generate_report()
    content = response.json()["output"]["message"]["content"]
    assert [next(iter(block)) for block in content] == ["reasoningContent", "text", "toolUse"]
